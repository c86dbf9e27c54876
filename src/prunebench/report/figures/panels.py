"""What every figure shares: one look (palette, fonts, fixed metadata), the figure registry, and the
helpers that build panels, titles, legends and placeholders.

Text is laid out so that it never leaves the figure: panel titles are built from whole phrases (a phrase
is never split across lines; a line holds as many phrases as fit the panel's width) and the figure title
and context line are wrapped to the figure's width (`tests/test_figures.py` checks every text artist's
extent with the Agg renderer).
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Callable

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter, NullLocator

from prunebench.library.datasets import DATASETS
from prunebench.report.arms import ARM_LABELS, ARM_STYLES, CB, arm_label, arm_style  # noqa: F401  (re-exported)
from prunebench.report.tables import Results

log = logging.getLogger("prunebench.report.figures")
_DARK_GREY = "#4d4d4d"

# --------------------------------------------------------------------------------------------
# One look everywhere
# --------------------------------------------------------------------------------------------
DPI = 200
DATASET_LABELS = {name: spec.display for name, spec in DATASETS.items()}


def _style_rc() -> dict:
    """seaborn whitegrid + paper context, pinned to fonts every machine has (matplotlib's DejaVu)."""
    import seaborn as sns

    rc = {}
    rc.update(sns.axes_style("whitegrid"))
    rc.update(sns.plotting_context("paper", font_scale=0.95))
    rc.update({
        "font.family": ["sans-serif"], "font.sans-serif": ["DejaVu Sans"], "mathtext.fontset": "dejavusans",
        "xtick.bottom": True, "ytick.left": True, "axes.titlesize": 8.5, "figure.titlesize": 8.5,
        "legend.fontsize": 7.5, "legend.title_fontsize": 7.5,
        "figure.dpi": DPI, "savefig.dpi": DPI, "savefig.bbox": None, "savefig.pad_inches": 0.05,
        "svg.hashsalt": "prunebench", "svg.fonttype": "path", "pdf.fonttype": 42, "pdf.compression": 6,
        "path.simplify": True, "text.usetex": False, "axes.unicode_minus": True,
    })
    return rc


PDF_METADATA = {"CreationDate": None, "ModDate": None, "Creator": "prunebench",
                "Producer": f"prunebench via matplotlib {matplotlib.__version__}"}
PNG_METADATA = {"Software": None}


# --------------------------------------------------------------------------------------------
# Registry
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class FigureSpec:
    name: str
    function: Callable
    paper: str            # force | spp | prospr | fggp
    reproduces: str       # what it shows; the paper's figure number where known
    arms: tuple           # the arms it draws (a placeholder is written when none of them ran)
    inputs: tuple = ("summary.csv",)
    claim_kinds: tuple = ()  # the report also shows it in every paper section with a claim of these kinds


FIGURES: dict[str, FigureSpec] = {}


def _register(name, paper, reproduces, arms, inputs=("summary.csv",), claim_kinds=()):
    def deco(fn):
        FIGURES[name] = FigureSpec(name, fn, paper, reproduces, tuple(arms), tuple(inputs), tuple(claim_kinds))
        return fn
    return deco


# --------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------
def _pct(v: float) -> str:
    return f"{v * 100:.3g}"


def _agg(df: pd.DataFrame, by, col: str) -> pd.DataFrame:
    """mean, std (0 when n == 1), n over seeds, with NaN values dropped."""
    d = df[list(by) + [col]].dropna(subset=[col])
    if d.empty:
        return pd.DataFrame(columns=list(by) + ["mean", "std", "n"])
    g = d.groupby(list(by), sort=True, dropna=False)[col]
    out = g.agg(["mean", "std", "count"]).reset_index().rename(columns={"count": "n"})
    out["std"] = out["std"].fillna(0.0)
    return out


def _panels(df: pd.DataFrame, extra=("init",)):
    """[(key dict, rows)] per dataset x model (x init etc. when the rows mix several values)."""
    keys = ["dataset", "model"] + [c for c in extra if c in df.columns and df[c].nunique(dropna=True) > 1]
    out = []
    for vals, sub in df.groupby(keys, sort=True, dropna=False):
        vals = vals if isinstance(vals, tuple) else (vals,)
        out.append((dict(zip(keys, vals)), sub))
    return out


def _match(df: pd.DataFrame, key: dict) -> pd.DataFrame:
    m = pd.Series(True, index=df.index)
    for k, v in key.items():
        if k in df.columns:
            m &= (df[k] == v) if v is not None and not (isinstance(v, float) and math.isnan(v)) else df[k].isna()
    return df[m]


SEP = "\x1f"  # between the phrases of a panel title; the line breaks go there only (see _fit_title)


def _panel_title(key: dict, extra="", missing=()) -> str:
    """Line 1: data set · model; then init / sparsity / start; then "not run: ..." — as phrases that
    `_finish` flows into lines as wide as the panel (a phrase is never split)."""
    groups = [f"{DATASET_LABELS.get(key.get('dataset'), str(key.get('dataset')))} · {key.get('model')}"]
    second = [f"init {key['init']}"] if key.get("init") is not None and "init" in key else []
    second += [e for e in ([extra] if isinstance(extra, str) else list(extra)) if e]
    if second:
        groups.append((" · " + SEP).join(second))
    if missing:
        groups.append("not run: " + (", " + SEP).join(arm_label(a) for a in missing))
    return "\n".join(groups)


def text_width(s: str, size: float) -> float:
    """Width of one line of text in points, in the figures' font (DejaVu Sans)."""
    from matplotlib.font_manager import FontProperties
    from matplotlib.textpath import TextToPath

    return TextToPath().get_text_width_height_descent(s, FontProperties(family="DejaVu Sans", size=size),
                                                      ismath=False)[0]


def fit_phrases(phrases, width_pt: float, size: float) -> list:
    """Greedy lines of whole phrases (each carrying its own trailing separator) no wider than width_pt;
    a phrase wider than a line on its own is broken between words."""
    lines, cur = [], ""
    for ph in phrases:
        if cur and text_width((cur + ph).rstrip(" ·,"), size) > width_pt:
            lines.append(cur.rstrip(" ·–"))
            cur = ""
        cur += ph
        while text_width(cur.rstrip(" ·,"), size) > width_pt and " " in cur.strip():
            words, head = cur.split(" "), ""
            for i in range(1, len(words)):
                if text_width(" ".join(words[:i]), size) > width_pt:
                    break
                head = " ".join(words[:i])
            if not head:
                head = words[0]
            lines.append(head.rstrip(" ·–"))
            cur = cur[len(head):].lstrip(" ")
            if text_width(cur.rstrip(" ·,"), size) <= width_pt:
                break
    if cur.strip():
        lines.append(cur.rstrip(" ·–"))
    return lines


def _fit_title(text: str, width_pt: float, size: float) -> str:
    lines = []
    for group in text.split("\n"):
        lines += fit_phrases(group.split(SEP), width_pt, size)
    return "\n".join(lines)


def _phrases(text: str, sep: str) -> list:
    parts = text.split(sep)
    return [p + sep for p in parts[:-1]] + [parts[-1]]


def _init_note(before: pd.DataFrame, sub: pd.DataFrame) -> str:
    """'init X (of n run)' when `_main_init` chose one of several init schemes for this panel."""
    if sub.empty:
        return ""
    key = {"dataset": sub["dataset"].iloc[0], "model": sub["model"].iloc[0]}
    n = _match(before, key)["init"].nunique(dropna=True)
    chosen = sorted(str(i) for i in sub["init"].dropna().unique())
    return f"init {', '.join(chosen)} {SEP}(1 of {n} inits run)" if n > 1 and len(chosen) == 1 else ""


def _main_init(df: pd.DataFrame, init: str | None = None) -> pd.DataFrame:
    """One init scheme per data set x model for method comparisons: `init` if given, else the one
    under which most arms ran (ties: most rows, then name). Other inits (e.g. SPP's init study) are
    left to the SPP figures."""
    if df.empty or df["init"].nunique(dropna=True) <= 1:
        return df
    if init is not None:
        return df[df["init"] == init]
    keep = []
    for _, sub in df.groupby(["dataset", "model"], sort=True):
        counts = sub.groupby("init", dropna=False).agg(arms=("arm", "nunique"), rows=("arm", "size")).reset_index()
        counts["name"] = counts["init"].astype(str)
        best = counts.sort_values(["arms", "rows", "name"], ascending=[False, False, True]).iloc[0]["init"]
        keep.append(sub[sub["init"] == best] if best is not None else sub[sub["init"].isna()])
    return pd.concat(keep)


def _seeds_text(df: pd.DataFrame, by=("dataset", "model", "arm", "sparsity")) -> str:
    if df.empty or "seed" not in df.columns:
        return "0 seeds"
    by = [c for c in by if c in df.columns]
    n = df.groupby(by, dropna=False)["seed"].nunique()
    lo, hi = int(n.min()), int(n.max())
    return f"{lo} seed{'s' if lo != 1 else ''}" if lo == hi else f"{lo}–{hi} seeds"


def _uniq(series) -> str:
    vals = sorted({str(v) for v in series.dropna()}) if series is not None else []
    return "; ".join(vals) if vals else "unknown"


def _context_line(res: Results, used: pd.DataFrame, seeds: str | None = None,
                  stat: str = "mean ± std over seeds") -> str:
    preset = res.preset or _uniq(res.summary.get("preset"))
    rows = _match(res.summary, {}) if used is None else used
    bits = [f"preset {preset}", seeds or _seeds_text(rows)]
    src = _uniq(rows["source_note"]) if "source_note" in rows else "unknown"
    dev = _uniq(rows["device"]) if "device" in rows else "unknown"
    bits.append(f"data: {src}")
    bits.append(f"device: {dev}")
    return " · ".join(bits + [stat])


def _grid(n: int, ncols: int | None = None, panel_w=2.35, panel_h=1.95, extra_h=1.05):
    ncols = ncols or min(n, 3)
    nrows = int(math.ceil(n / ncols))
    width = max(3.4, min(7.0, panel_w * ncols + 0.4))
    fig = Figure(figsize=(width, panel_h * nrows + extra_h), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    for ax in axes[n:]:
        ax.remove()
    return fig, list(axes[:n])


def _finish(fig: Figure, title: str, context: str, handles=None, order=None) -> Figure:
    """Figure title + context line (wrapped between phrases to the figure's width), panel titles flowed to
    their panel's width, one legend below the panels."""
    width_pt = fig.get_figwidth() * 72 - 12
    size = 8.0
    lines = fit_phrases(_phrases(title, " – "), width_pt, size) + fit_phrases(_phrases(context, " · "), width_pt, size)
    fig.suptitle("\n".join(lines), fontsize=size)
    tsize = float(matplotlib.rcParams["axes.titlesize"]) if not isinstance(
        matplotlib.rcParams["axes.titlesize"], str) else 8.5
    for ax in fig.axes:
        ss = ax.get_subplotspec()
        if ss is None:
            continue
        ncols = ss.get_gridspec().get_geometry()[1]
        span = ss.colspan.stop - ss.colspan.start
        panel_pt = fig.get_figwidth() * 72 * span / ncols - 40  # less the y tick labels and axis label
        ax.set_title(_fit_title(ax.get_title(), panel_pt, tsize))
    if handles is None:
        handles, labels, seen = [], [], set()
        for ax in fig.axes:
            for h, lab in zip(*ax.get_legend_handles_labels()):
                if lab and not lab.startswith("_") and lab not in seen:
                    seen.add(lab)
                    handles.append(h)
                    labels.append(lab)
    else:
        labels = [h.get_label() for h in handles]
    if order and handles:  # canonical legend order, whatever panel drew an arm first
        rank = {lab: i for i, lab in enumerate(order)}
        pairs = sorted(zip(handles, labels), key=lambda p: rank.get(p[1], len(rank)))
        handles, labels = [p[0] for p in pairs], [p[1] for p in pairs]
    if handles:
        lsize = float(matplotlib.rcParams["legend.fontsize"]) if not isinstance(
            matplotlib.rcParams["legend.fontsize"], str) else 7.5
        col_pt = max(text_width(lab, lsize) for lab in labels) + (2.2 + 0.8 + 1.2) * lsize
        ncols = max(1, min(len(labels), int((fig.get_figwidth() * 72 - 12) // col_pt)))
        rows = math.ceil(len(labels) / ncols)
        if rows > 2:  # a tall legend gets its own room instead of squeezing the panels
            fig.set_figheight(fig.get_figheight() + (rows - 2) * lsize * 1.45 / 72)
        fig.legend(handles, labels, loc="outside lower center", ncols=ncols, frameon=False,
                   handlelength=2.2, columnspacing=1.2)
    return fig


def _placeholder(name: str, reason: str, res: Results | None = None) -> Figure:
    log.warning("figure %s: %s; writing a placeholder", name, reason)
    fig = Figure(figsize=(3.4, 1.8), dpi=DPI)
    FigureCanvasAgg(fig)
    spec = FIGURES.get(name)
    head = spec.reproduces if spec else name
    preset = (res.preset or _uniq(res.summary.get("preset"))) if res is not None else "unknown"
    width_pt = fig.get_figwidth() * 72 - 16
    text = "\n".join(fit_phrases(_phrases(head, " "), width_pt, 7.5) + [""]
                     + fit_phrases(_phrases(f"No data: {reason} (preset {preset}).", " "), width_pt, 7.5))
    fig.text(0.5, 0.5, text, ha="center", va="center", fontsize=7.5, wrap=False)
    return fig


def _select(df: pd.DataFrame, arms) -> pd.DataFrame:
    return df[df["arm"].isin(list(arms))]


def _arm_rows(df: pd.DataFrame, arms) -> tuple:
    """([(arm, its rows), ...] for the arms of `arms` that have rows in `df`, in order; the arms without any,
    which a panel title names as "not run")."""
    present, missing = [], []
    for arm in arms:
        rows = df[df["arm"] == arm]
        if rows.empty:
            missing.append(arm)
        else:
            present.append((arm, rows))
    return present, missing


def _density_axis(ax, densities, label=True):
    ds = sorted({float(d) for d in densities if d > 0})
    ax.set_xscale("log")
    if 1 <= len(ds) <= 7:
        ax.set_xticks(ds)
        ax.set_xticklabels([_pct(d) for d in ds])
        ax.xaxis.set_minor_locator(NullLocator())
    else:
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: _pct(v)))
        ax.xaxis.set_minor_locator(NullLocator())
    if len(ds) == 1:
        ax.set_xlim(ds[0] * 1.6, ds[0] / 1.6)
    else:
        ax.invert_xaxis()
    if label:
        ax.set_xlabel("remaining weights (%, log)")


def _log_ticks(axis, fmt):
    """Readable log ticks: decades, or 1-2-5 steps when the data span less than ~1.6 decades."""
    lo, hi = sorted(axis.get_view_interval())
    lo = max(lo, 1e-12)
    subs = (1.0,) if math.log10(max(hi, lo * 1.0001) / lo) > 1.6 else (1.0, 2.0, 5.0)
    axis.set_major_locator(LogLocator(base=10, subs=subs, numticks=8))
    axis.set_major_formatter(FuncFormatter(lambda v, _: fmt(v)))
    axis.set_minor_formatter(NullFormatter())


def _line(ax, x, y, sd, arm, band=True, label=None):
    st = arm_style(arm)
    ax.plot(x, y, label=arm_label(arm) if label is None else label, color=st["color"], marker=st["marker"],
            linestyle=st["linestyle"], fillstyle=st["fillstyle"], markersize=4.5, linewidth=1.2)
    if band and np.any(np.asarray(sd) > 0):
        ax.fill_between(x, np.asarray(y) - sd, np.asarray(y) + sd, color=st["color"], alpha=0.15, linewidth=0)


def _dense_line(ax, dense_rows: pd.DataFrame, metric: str, scale: Callable):
    vals = dense_rows[metric].dropna()
    if vals.empty:
        return False
    m = scale(vals.mean())
    sd = vals.std() * 100 if len(vals) > 1 else 0.0
    st = arm_style("dense")
    ax.axhline(m, color=st["color"], linestyle=st["linestyle"], linewidth=1.0, label=arm_label("dense"))
    if sd > 0:
        ax.axhspan(m - sd, m + sd, color=st["color"], alpha=0.07, linewidth=0)
    return True


# --------------------------------------------------------------------------------------------
# Shared: accuracy (or error) vs sparsity
# --------------------------------------------------------------------------------------------
def _metric_vs_sparsity(name: str, res: Results, arms, title: str, metric="final_acc", error=False,
                        min_sparsity=0.0, max_sparsity=1.0, with_dense=True, split_init=False,
                        init: str | None = None) -> Figure:
    S = res.summary
    df = _select(S, arms)
    df = df[(df["sparsity"] > 0) & (df["sparsity"] >= min_sparsity) & (df["sparsity"] <= max_sparsity)]
    df = df.dropna(subset=[metric])
    before = df
    if not split_init:
        df = _main_init(df, init)
    if df.empty:
        return _placeholder(name, f"none of the arms {', '.join(arms)} has results", res)
    scale = (lambda v: (1 - v) * 100) if error else (lambda v: v * 100)
    panels = _panels(df)
    fig, axes = _grid(len(panels))
    for ax, (key, sub) in zip(axes, panels):
        agg = _agg(sub, ["arm", "sparsity"], metric)
        present, missing = _arm_rows(agg, arms)
        for arm, a in present:
            a = a.sort_values("sparsity")
            _line(ax, 1 - a["sparsity"].to_numpy(), scale(a["mean"].to_numpy()), a["std"].to_numpy() * 100, arm)
        if with_dense:
            _dense_line(ax, _match(S[S["arm"] == "dense"], key), metric, scale)
        _density_axis(ax, 1 - sub["sparsity"])
        ax.set_ylabel(("test error (%)" if error else "test accuracy (%)") + ("" if metric == "final_acc" else
                                                                             f" [{metric}]"))
        ax.set_title(_panel_title(key, "" if split_init else _init_note(before, sub), missing=missing))
    return _finish(fig, title, _context_line(res, df), order=[arm_label(a) for a in arms] + [arm_label("dense")])


