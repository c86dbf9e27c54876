"""Every paper figure, drawn from the pipeline's tidy tables.

Inputs (written by the aggregator): ``results/<preset>/summary.csv`` (one row per trained cell),
``layers.csv`` (per-layer mask density) and ``history.csv`` (per-epoch curves).

API::

    FIGURES[name] -> FigureSpec(function, paper, reproduces, arms, inputs)
    make_figure(name, results_dir, out_stem, preset=None, **kw) -> (pdf_path, png_path)
    make_all_figures(results_dir, out_dir, preset=None) -> {name: (pdf_path, png_path)}
    load_results(results_dir_or_dirs, preset=None) -> Results

Every figure function takes a :class:`Results` and keyword options and returns a
``matplotlib.figure.Figure`` (no pyplot, no global backend switch; PNGs are rendered with Agg).
Outputs are byte-deterministic for the same inputs and library versions: fixed PDF/PNG metadata,
fixed fonts (DejaVu Sans, shipped with matplotlib), fixed dpi, ``svg.hashsalt``.
Missing arms are noted in the panel title ("not run: ..."); a figure with no data at all still
writes a placeholder saying so (and logs a warning), so the pipeline's outputs always exist.
"""
from __future__ import annotations

import logging
import math
import re
import textwrap
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import FuncFormatter, LogLocator, MaxNLocator, NullFormatter, NullLocator

from prunebench.errors import PrunebenchError
from prunebench.io import atomic_path, verify_checked_file

log = logging.getLogger("prunebench.figures")

# --------------------------------------------------------------------------------------------
# Table schemas
# --------------------------------------------------------------------------------------------
SUMMARY_COLUMNS = (
    "preset", "dataset", "model", "arm", "method", "sparsity", "seed", "init", "density", "epochs",
    "final_acc", "best_acc", "final_loss", "train_time_s", "prune_time_s", "prune_peak_mb", "collapsed",
    "layers", "isometry", "supervision", "meta_steps", "start", "options",
    "jsv_init_mean", "jsv_init_std", "jsv_init_min", "jsv_init_max",
    "jsv_prune_mean", "jsv_prune_std", "jsv_prune_min", "jsv_prune_max",
    "jsv_isometry_mean", "jsv_isometry_std", "jsv_isometry_min", "jsv_isometry_max",
    "source_note", "device",
)
LAYERS_COLUMNS = ("dataset", "model", "arm", "method", "sparsity", "seed", "layer_index", "layer", "numel",
                  "kept", "density")
HISTORY_COLUMNS = ("dataset", "model", "arm", "method", "sparsity", "seed", "epoch", "step", "lr", "train_loss",
                   "train_acc", "test_loss", "test_acc", "density")
_REQUIRED = {
    "summary.csv": ("dataset", "model", "arm", "sparsity", "seed", "final_acc"),
    "layers.csv": ("dataset", "model", "arm", "sparsity", "seed", "layer_index", "density"),
    "history.csv": ("dataset", "model", "arm", "sparsity", "seed", "epoch", "density"),
}
_NUMERIC = {
    "sparsity", "seed", "density", "epochs", "final_acc", "best_acc", "final_loss", "train_time_s",
    "prune_time_s", "prune_peak_mb", "collapsed", "layers", "meta_steps", "layer_index", "numel", "kept",
    "epoch", "step", "lr", "train_loss", "train_acc", "test_loss", "test_acc",
} | {c for c in SUMMARY_COLUMNS if c.startswith("jsv_")}


_CELL = ("dataset", "model", "arm", "sparsity", "seed")


@dataclass
class Results:
    """The three tidy tables of one or more result folders (empty frames where a table is absent)."""
    summary: pd.DataFrame
    layers: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=list(LAYERS_COLUMNS)))
    history: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=list(HISTORY_COLUMNS)))
    preset: str | None = None

    def __post_init__(self):
        self.summary = _tidy(self.summary, SUMMARY_COLUMNS)
        self.layers = _tidy(self.layers, LAYERS_COLUMNS)
        self.history = _tidy(self.history, HISTORY_COLUMNS)


def _tidy(df: pd.DataFrame, columns) -> pd.DataFrame:
    df = df.copy()
    for c in columns:
        if c not in df.columns:
            df[c] = np.nan
    for c in df.columns:
        if c in _NUMERIC:
            df[c] = pd.to_numeric(df[c], errors="coerce")
    if "sparsity" in df.columns:
        df["sparsity"] = df["sparsity"].round(6)
    if "isometry" in df.columns:
        df["isometry"] = df["isometry"].map(_truthy)
    for c in ("dataset", "model", "arm", "method", "init", "start", "supervision", "source_note", "device",
              "preset", "layer"):
        if c in df.columns:
            df[c] = df[c].astype(object).where(df[c].notna(), None)
    return df.reset_index(drop=True)


def _truthy(v) -> bool:
    if isinstance(v, str):
        return v.strip().lower() in ("true", "1", "yes")
    try:
        return bool(v) and not (isinstance(v, float) and math.isnan(v))
    except (TypeError, ValueError):
        return False


def _read_table(path: Path, columns, required: bool) -> pd.DataFrame:
    if not path.exists():
        if required:
            raise PrunebenchError(f"missing results table {str(path)!r}")
        return pd.DataFrame(columns=list(columns))
    verify_checked_file(path)
    try:
        df = pd.read_csv(path)
    except pd.errors.EmptyDataError:
        return pd.DataFrame(columns=list(columns))
    except (pd.errors.ParserError, UnicodeDecodeError) as e:
        raise PrunebenchError(f"corrupt results table {str(path)!r}: {str(e).splitlines()[0]}") from None
    missing = [c for c in _REQUIRED[path.name] if c not in df.columns]
    if missing:
        raise PrunebenchError(f"results table {str(path)!r} lacks column(s) {', '.join(missing)}")
    return df


_TIMING = ("prune_time_s", "prune_peak_mb", "train_time_s")


def _merge_timing(summary: pd.DataFrame, path: Path) -> pd.DataFrame:
    """Add the timing columns from timing.csv (the aggregator keeps timings apart: they are the only
    non-deterministic numbers, so summary.csv stays byte-stable)."""
    if not path.exists() or not len(summary):
        return summary
    verify_checked_file(path)
    try:
        tim = pd.read_csv(path)
    except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError) as e:
        raise PrunebenchError(f"corrupt results table {str(path)!r}: {str(e).splitlines()[0]}") from None
    keys = [k for k in ("dataset", "model", "init", "arm", "method", "sparsity", "seed")
            if k in tim.columns and k in summary.columns]
    cols = [c for c in _TIMING if c in tim.columns]
    if not keys or not cols:
        return summary
    tim = tim[keys + cols].drop_duplicates(subset=keys)
    return summary.drop(columns=[c for c in cols if c in summary.columns]).merge(tim, on=keys, how="left")


def load_results(results_dir, preset: str | None = None) -> Results:
    """Read summary.csv (required), layers.csv and history.csv (optional) from one folder or a list.

    With `preset`, rows whose `preset` column names another preset are dropped (summary only; the
    other tables are kept for the cells that remain)."""
    if isinstance(results_dir, Results):
        res = results_dir
    else:
        dirs = [results_dir] if isinstance(results_dir, (str, Path)) else list(results_dir)
        if not dirs:
            raise PrunebenchError("no results folder given")
        parts = {"summary": [], "layers": [], "history": []}
        for d in dirs:
            d = Path(d)
            summary = _read_table(d / "summary.csv", SUMMARY_COLUMNS, True)
            parts["summary"].append(_merge_timing(summary, d / "timing.csv"))
            parts["layers"].append(_read_table(d / "layers.csv", LAYERS_COLUMNS, False))
            parts["history"].append(_read_table(d / "history.csv", HISTORY_COLUMNS, False))
        cat = {k: pd.concat([p for p in v if len(p)] or [v[0]], ignore_index=True) for k, v in parts.items()}
        res = Results(cat["summary"], cat["layers"], cat["history"], preset)
    if preset is not None and res.summary["preset"].notna().any():
        keep = res.summary["preset"].isna() | (res.summary["preset"] == preset)
        if not keep.all():  # layers/history carry no preset: keep the cells the summary keeps
            cells = res.summary.loc[keep, list(_CELL)].drop_duplicates()
            res = Results(res.summary[keep], res.layers.merge(cells, on=list(_CELL)),
                          res.history.merge(cells, on=list(_CELL)), preset)
    if preset is not None:
        res.preset = preset
    return res


# --------------------------------------------------------------------------------------------
# One look everywhere
# --------------------------------------------------------------------------------------------
DPI = 200
CB = ['#0173b2', '#de8f05', '#029e73', '#d55e00', '#cc78bc', '#ca9161', '#fbafe4', '#949494', '#ece133',
      '#56b4e9']  # seaborn "colorblind" palette, as hex so the colours never move
_DARK_GREY = "#4d4d4d"

# One (colour, marker) per arm everywhere; pairs are unique across all arms.
ARM_STYLES = {
    "dense": dict(color="#000000", marker="", linestyle=":"),
    "random": dict(color=CB[7], marker="x", linestyle="-"),
    "magnitude": dict(color=_DARK_GREY, marker="v", linestyle="-"),
    "snip": dict(color=CB[0], marker="o", linestyle="-"),
    "snip_unsup": dict(color=CB[0], marker="h", linestyle="-.", fillstyle="none"),
    "grasp": dict(color=CB[2], marker="s", linestyle="-"),
    "synflow": dict(color=CB[5], marker="P", linestyle="-"),
    "iter_snip": dict(color=CB[9], marker="D", linestyle="-"),
    "force": dict(color=CB[3], marker="^", linestyle="-"),
    "prospr": dict(color=CB[4], marker="*", linestyle="-"),
    "fggp": dict(color=CB[1], marker="o", linestyle="-"),
    "gmp": dict(color=CB[5], marker="s", linestyle="-"),
    "mfgn_annealed": dict(color=CB[2], marker="D", linestyle="-"),
}
ARM_LABELS = {
    "dense": "Dense", "random": "Random", "magnitude": "Magnitude", "snip": "SNIP", "snip_unsup": "SNIP (unsup.)",
    "grasp": "GraSP", "synflow": "SynFlow", "iter_snip": "Iter SNIP", "force": "FORCE", "prospr": "ProsPr",
    "fggp": "FGGP", "gmp": "GMP", "mfgn_annealed": "MFGN (annealed)",
}
_VARIANT = {"_ai": " + AI", "_sparse": " (50% sparse start)"}
_FALLBACK_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "h", "<", ">")
_META = re.compile(r"^prospr_m(\d+)$")


def arm_style(arm: str) -> dict:
    """Matplotlib line/marker keywords for an arm: fixed per arm, shared by every figure."""
    if arm in ARM_STYLES:
        st = dict(ARM_STYLES[arm])
    elif _META.match(arm):
        st = dict(ARM_STYLES["prospr"])
    else:
        for suffix in _VARIANT:
            base = arm[: -len(suffix)]
            if arm.endswith(suffix) and base in ARM_STYLES:
                st = dict(ARM_STYLES[base], linestyle="--", fillstyle="none")
                break
        else:  # an arm nobody planned for: deterministic, never Python's salted hash()
            h = zlib.crc32(arm.encode())
            st = dict(color=CB[h % len(CB)], marker=_FALLBACK_MARKERS[(h // 7) % len(_FALLBACK_MARKERS)],
                      linestyle="-.")
    st.setdefault("fillstyle", "full")
    return st


def arm_label(arm: str) -> str:
    if arm in ARM_LABELS:
        return ARM_LABELS[arm]
    m = _META.match(arm)
    if m:
        return f"ProsPr (M={m.group(1)})"
    for suffix, text in _VARIANT.items():
        if arm.endswith(suffix) and arm[: -len(suffix)] in ARM_LABELS:
            return ARM_LABELS[arm[: -len(suffix)]] + text
    return arm


DATASET_LABELS = {"mnist": "MNIST", "cifar10": "CIFAR-10", "cifar100": "CIFAR-100",
                  "tiny-imagenet": "Tiny-ImageNet", "imagenet": "ImageNet", "fashion-mnist": "Fashion-MNIST"}


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


FIGURES: dict[str, FigureSpec] = {}


def _register(name, paper, reproduces, arms, inputs=("summary.csv",)):
    def deco(fn):
        FIGURES[name] = FigureSpec(name, fn, paper, reproduces, tuple(arms), tuple(inputs))
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


def _panel_title(key: dict, extra: str = "", missing=(), width: int = 34) -> str:
    """Line 1: data set · model; line 2: init / sparsity / start; then "not run: ..." (wrapped)."""
    lines = [f"{DATASET_LABELS.get(key.get('dataset'), str(key.get('dataset')))} · {key.get('model')}"]
    second = ([f"init {key['init']}"] if key.get("init") is not None and "init" in key else []) + \
        ([extra] if extra else [])
    if second:
        lines += textwrap.wrap(" · ".join(second), width)
    if missing:
        lines += textwrap.wrap("not run: " + ", ".join(arm_label(a) if a in ARM_LABELS or _META.match(a) or
                                                        a.endswith(tuple(_VARIANT)) else a for a in missing), width)
    return "\n".join(lines)


def _init_note(before: pd.DataFrame, sub: pd.DataFrame) -> str:
    """'init X (of n run)' when `_main_init` chose one of several init schemes for this panel."""
    if sub.empty:
        return ""
    key = {"dataset": sub["dataset"].iloc[0], "model": sub["model"].iloc[0]}
    n = _match(before, key)["init"].nunique(dropna=True)
    chosen = sorted(str(i) for i in sub["init"].dropna().unique())
    return f"init {', '.join(chosen)} (1 of {n} inits run)" if n > 1 and len(chosen) == 1 else ""


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
    width_in = fig.get_figwidth()
    chars = int(width_in * 14.5)
    lines = textwrap.wrap(title, chars) + textwrap.wrap(context, int(chars * 1.12))
    fig.suptitle("\n".join(lines), fontsize=8)
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
        longest = max(len(lab) for lab in labels)
        ncols = max(1, min(len(labels), int(width_in * 72 / (longest * 4.6 + 28))))
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
    text = "\n".join(textwrap.wrap(head, 52) + [""] + textwrap.wrap(f"No data: {reason} (preset {preset}).", 52))
    fig.text(0.5, 0.5, text, ha="center", va="center", fontsize=7.5, wrap=False)
    return fig


def _select(df: pd.DataFrame, arms) -> pd.DataFrame:
    return df[df["arm"].isin(list(arms))]


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
        missing = []
        for arm in arms:
            a = agg[agg["arm"] == arm].sort_values("sparsity")
            if a.empty:
                missing.append(arm)
                continue
            _line(ax, 1 - a["sparsity"].to_numpy(), scale(a["mean"].to_numpy()), a["std"].to_numpy() * 100, arm)
        if with_dense:
            _dense_line(ax, _match(S[S["arm"] == "dense"], key), metric, scale)
        _density_axis(ax, 1 - sub["sparsity"])
        ax.set_ylabel(("test error (%)" if error else "test accuracy (%)") + ("" if metric == "final_acc" else
                                                                             f" [{metric}]"))
        ax.set_title(_panel_title(key, "" if split_init else _init_note(before, sub), missing=missing))
    return _finish(fig, title, _context_line(res, df), order=[arm_label(a) for a in arms] + [arm_label("dense")])


# --------------------------------------------------------------------------------------------
# FORCE (de Jorge et al., ICLR 2021)
# --------------------------------------------------------------------------------------------
FORCE_ARMS = ("snip", "grasp", "random", "iter_snip", "force")


@_register("force_acc_vs_sparsity", "force",
           "FORCE: test accuracy vs. fraction of remaining weights (log scale, 90% → 99.9% sparsity in the paper) "
           "for SNIP, GraSP, random, Iter SNIP and FORCE, dense baseline as a horizontal line "
           "(the paper's main accuracy-vs-sparsity figure; figure number not transcribed)",
           FORCE_ARMS + ("dense",))
def force_acc_vs_sparsity(res: Results, metric: str = "final_acc", min_sparsity: float = 0.0,
                          init: str | None = None) -> Figure:
    return _metric_vs_sparsity("force_acc_vs_sparsity", res, FORCE_ARMS,
                               "FORCE – test accuracy vs. remaining weights", metric, min_sparsity=min_sparsity,
                               init=init)


@_register("force_walltime", "force",
           "FORCE: wall time to compute the pruning mask vs. test accuracy at the highest sparsity ≤ 99.5% "
           "(paper panel: CIFAR-10 / ResNet-50 / Tesla K40m at 99.5%; figure number not transcribed)",
           ("snip", "grasp", "iter_snip", "force", "random"))
def force_walltime(res: Results, metric: str = "final_acc", max_sparsity: float = 0.995,
                   init: str | None = None) -> Figure:
    arms = FIGURES["force_walltime"].arms
    df = _select(res.summary, arms)
    df = df[(df["sparsity"] > 0) & (df["sparsity"] <= max_sparsity + 1e-9)].dropna(subset=[metric, "prune_time_s"])
    before, df = df, _main_init(df, init)
    if df.empty:
        return _placeholder("force_walltime", "no pruning wall times for SNIP/GraSP/Iter SNIP/FORCE/random", res)
    panels = _panels(df)
    fig, axes = _grid(len(panels))
    used = []
    for ax, (key, sub) in zip(axes, panels):
        s = sub["sparsity"].max()
        sub = sub[sub["sparsity"] == s]
        used.append(sub)
        acc = _agg(sub, ["arm"], metric).set_index("arm")
        tim = _agg(sub, ["arm"], "prune_time_s").set_index("arm")
        missing = []
        for arm in arms:
            if arm not in acc.index or arm not in tim.index:
                missing.append(arm)
                continue
            st = arm_style(arm)
            t = max(tim.loc[arm, "mean"], 1e-4)
            ax.errorbar([t], [acc.loc[arm, "mean"] * 100], xerr=[[min(tim.loc[arm, "std"], t * 0.999)],
                                                                  [tim.loc[arm, "std"]]],
                        yerr=[acc.loc[arm, "std"] * 100], color=st["color"], marker=st["marker"],
                        fillstyle=st["fillstyle"], markersize=6, linestyle="none", capsize=2, elinewidth=0.8,
                        label=arm_label(arm))
        ax.set_xscale("log")
        _log_ticks(ax.xaxis, lambda v: f"{v:g}")
        ax.set_xlabel("pruning wall time (s, log)")
        ax.set_ylabel("test accuracy (%)")
        ax.set_title(_panel_title(key, " · ".join(filter(None, [_init_note(before, sub), f"sparsity {_pct(s)}%"])),
                                  missing))
    used = pd.concat(used)
    return _finish(fig, "FORCE – pruning wall time vs. test accuracy (hardware-dependent)",
                   _context_line(res, used))


@_register("force_layer_density", "force",
           "FORCE: per-layer density of each method's mask at the most extreme sparsity run; "
           "× marks layers pruned away entirely (layer collapse) (FORCE's layer-wise analysis; which paper figure "
           "it matches is not verified here)",
           ("snip", "grasp", "iter_snip", "force", "random"), inputs=("summary.csv", "layers.csv"))
def force_layer_density(res: Results) -> Figure:
    arms = FIGURES["force_layer_density"].arms
    L = _select(res.layers, arms).dropna(subset=["density", "layer_index"])
    L = L[L["sparsity"] > 0]
    if L.empty:
        return _placeholder("force_layer_density", "layers.csv has no masks of SNIP/GraSP/Iter SNIP/FORCE/random",
                            res)
    panels = _panels(L, extra=())
    fig, axes = _grid(len(panels), ncols=min(len(panels), 2), panel_w=3.3, panel_h=2.1)
    used = []
    for ax, (key, sub) in zip(axes, panels):
        s = sub["sparsity"].max()
        sub = sub[sub["sparsity"] == s]
        used.append(_match(_select(res.summary, arms), dict(key, sparsity=s)))
        pos = sub.loc[sub["density"] > 0, "density"]
        floor = (pos.min() if len(pos) else (1 - s)) / 3
        missing = []
        for arm in arms:
            a = sub[sub["arm"] == arm]
            if a.empty:
                missing.append(arm)
                continue
            g = a.groupby("layer_index", sort=True)
            mean = g["density"].mean()
            collapsed = g["density"].apply(lambda d: bool((d <= 0).any()))
            st = arm_style(arm)
            y = mean.where(mean > 0, floor)
            ax.plot(mean.index, y, color=st["color"], marker=st["marker"], fillstyle=st["fillstyle"],
                    linestyle=st["linestyle"], markersize=3.5, linewidth=1.0, label=arm_label(arm))
            if collapsed.any():
                xs = collapsed.index[collapsed.to_numpy()]
                ax.plot(xs, [floor] * len(xs), linestyle="none", marker="X", markersize=7, color=st["color"],
                        markeredgecolor="black", markeredgewidth=0.5)
        ax.axhline(1 - s, color="black", linewidth=0.6, linestyle=":")
        ax.axhline(floor, color="black", linewidth=0.4, linestyle="-", alpha=0.3)
        ax.set_yscale("log")
        _log_ticks(ax.yaxis, _pct)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("layer index (input → output)")
        ax.set_ylabel("layer density (%, log)")
        ax.set_title(_panel_title(key, f"sparsity {_pct(s)}%", missing))
    fig_handles = []
    seen = set()
    for ax in fig.axes:
        for h, lab in zip(*ax.get_legend_handles_labels()):
            if lab not in seen:
                seen.add(lab)
                fig_handles.append(h)
    fig_handles.append(Line2D([], [], linestyle="none", marker="X", color="white", markeredgecolor="black",
                              markersize=6, label="layer collapsed (0 kept)"))
    fig_handles.append(Line2D([], [], linestyle=":", color="black", linewidth=0.6, label="global density"))
    used = pd.concat(used)
    return _finish(fig, "FORCE – per-layer density at the most extreme sparsity",
                   _context_line(res, used), fig_handles)


# --------------------------------------------------------------------------------------------
# SPP (Lee, Ajanthan, Gould, Torr, ICLR 2020)
# --------------------------------------------------------------------------------------------
_STAGES = (("init", "after init", "#4d4d4d", "o"), ("prune", "after pruning", CB[1], "v"),
           ("isometry", "after approx. isometry", CB[2], "^"))


@_register("spp_jsv", "spp",
           "SPP: input–output Jacobian singular values (mean ± std bar, min–max line) after initialization, "
           "after pruning and after approximate isometry, for each initialization scheme "
           "(the paper's JSV statistics; table/figure number not transcribed)",
           ("snip", "snip_ai"))
def spp_jsv(res: Results, arms=("snip", "snip_ai"), sparsity: float | None = None) -> Figure:
    S = res.summary
    jcols = [c for c in S.columns if c.startswith("jsv_") and c.endswith("_mean")]
    has = S[jcols].notna().any(axis=1) if jcols else pd.Series(False, index=S.index)
    df = S[has & S["arm"].isin(list(arms))]
    note = ""
    if df.empty and has.any():
        df = S[has]
        note = f"arms {', '.join(sorted(df['arm'].unique()))}"
    if df.empty:
        return _placeholder("spp_jsv", "no Jacobian singular values measured (jsv_* columns are empty)", res)
    panels = _panels(df, extra=())
    fig, axes = _grid(len(panels), ncols=min(len(panels), 2), panel_w=3.3, panel_h=2.2)
    used = []
    for ax, (key, sub) in zip(axes, panels):
        if sparsity is not None:
            s = sparsity
        else:  # the highest sparsity at which the most init schemes were measured
            cov = sub.groupby("sparsity")["init"].nunique().reset_index().sort_values(["init", "sparsity"])
            s = cov.iloc[-1]["sparsity"]
        sub = sub[sub["sparsity"] == s]
        used.append(sub)
        inits = sorted(sub["init"].dropna().unique()) or [None]
        for i, init in enumerate(inits):
            rows = sub if init is None else sub[sub["init"] == init]
            for j, (stage, label, color, marker) in enumerate(_STAGES):
                r = rows[rows[f"jsv_{stage}_mean"].notna()] if f"jsv_{stage}_mean" in rows else rows.iloc[:0]
                if r.empty:
                    continue
                m = r[f"jsv_{stage}_mean"].mean()
                sd = r[f"jsv_{stage}_std"].mean() if r[f"jsv_{stage}_std"].notna().any() else 0.0
                lo = r[f"jsv_{stage}_min"].min() if r[f"jsv_{stage}_min"].notna().any() else m
                hi = r[f"jsv_{stage}_max"].max() if r[f"jsv_{stage}_max"].notna().any() else m
                x = i + (j - 1) * 0.24
                ax.vlines(x, max(lo, 1e-12), max(hi, 1e-12), color=color, linewidth=0.7)
                low = m - max(min(m - sd, m), max(lo, m * 1e-3))
                ax.errorbar([x], [m], yerr=[[max(low, 0)], [sd]], color=color, marker=marker, markersize=4.5,
                            linestyle="none", capsize=2.5, elinewidth=1.6,
                            label=label if i == 0 else "_" + label)
        ax.axhline(1.0, color="black", linewidth=0.6, linestyle=":")
        ax.set_yscale("log")
        ax.set_xticks(range(len(inits)))
        ax.set_xticklabels([str(i).replace("_", "\n") for i in inits], fontsize=6.5)
        ax.set_xlim(-0.6, len(inits) - 0.4)
        ax.set_ylabel("Jacobian singular values (log)")
        ax.set_title(_panel_title(key, f"sparsity {_pct(s)}%" + (f" · {note}" if note else "")))
    handles = [Line2D([], [], color=c, marker=mk, linestyle="none", label=lab) for _, lab, c, mk in _STAGES]
    handles.append(Line2D([], [], color="black", linestyle=":", linewidth=0.6, label="isometry (all = 1)"))
    used = pd.concat(used)
    return _finish(fig, "SPP – Jacobian singular values per initialization (SNIP masks)",
                   _context_line(res, used, _seeds_text(used, ("dataset", "model", "arm", "sparsity", "init"))),
                   handles)


@_register("spp_isometry_error", "spp",
           "SPP: test error of pruned networks without and with approximate isometry (arm vs. arm_ai) across "
           "sparsities (the paper's AI-vs-no-AI comparison; table/figure number not transcribed)",
           ("snip", "snip_ai", "random", "random_ai", "*_ai"))
def spp_isometry_error(res: Results, metric: str = "final_acc") -> Figure:
    S = res.summary
    ai = sorted(a for a in S["arm"].dropna().unique() if a.endswith("_ai"))
    present = set(S["arm"])
    ai = sorted(ai, key=lambda b: (b != "snip_ai", b))  # SNIP (the paper's pruner) first
    pairs = [a for b in ai if b[:-3] in present for a in (b[:-3], b)]
    arms = pairs or ai
    if not arms:
        return _placeholder("spp_isometry_error", "no approximate-isometry (*_ai) arms were run", res)
    return _metric_vs_sparsity("spp_isometry_error", res, tuple(arms),
                               "SPP – test error without / with approximate isometry (AI)", metric, error=True,
                               split_init=True)


@_register("spp_supervision", "spp",
           "SPP: supervised vs. unsupervised (uniform-label) connection sensitivity: test error across "
           "sparsities (the paper's supervision study; number not transcribed)",
           ("snip", "snip_unsup"))
def spp_supervision(res: Results, metric: str = "final_acc") -> Figure:
    return _metric_vs_sparsity("spp_supervision", res, ("snip", "snip_unsup"),
                               "SPP – supervised vs. unsupervised pruning", metric, error=True, split_init=True)


# --------------------------------------------------------------------------------------------
# ProsPr (Alizadeh et al., ICLR 2022)
# --------------------------------------------------------------------------------------------
PROSPR_ARMS = ("prospr", "snip", "grasp", "synflow", "random", "iter_snip", "force")


@_register("prospr_acc_vs_sparsity", "prospr",
           "ProsPr: test accuracy vs. remaining weights for ProsPr against SNIP, GraSP, SynFlow, random, "
           "Iter SNIP and FORCE, dense baseline as a horizontal line (the paper's main comparison; "
           "figure/table number not transcribed)",
           PROSPR_ARMS + ("dense",))
def prospr_acc_vs_sparsity(res: Results, metric: str = "final_acc", init: str | None = None) -> Figure:
    return _metric_vs_sparsity("prospr_acc_vs_sparsity", res, PROSPR_ARMS,
                               "ProsPr – test accuracy vs. remaining weights", metric, init=init)


def _meta_steps_rows(S: pd.DataFrame) -> pd.DataFrame:
    rows = S[(S["arm"] == "prospr") | S["arm"].astype(str).str.match(_META.pattern)].copy()
    parsed = rows["arm"].astype(str).str.extract(_META)[0].astype(float)
    rows["M"] = rows["meta_steps"].where(rows["meta_steps"].notna(), parsed)
    return rows.dropna(subset=["M"])


@_register("prospr_meta_steps", "prospr",
           "ProsPr: test accuracy vs. number of meta-steps M (M = 0 is SNIP-equivalent, drawn from the SNIP arm) "
           "(the paper's meta-steps ablation; number not transcribed)",
           ("prospr", "prospr_m*", "snip"))
def prospr_meta_steps(res: Results, metric: str = "final_acc", init: str | None = None) -> Figure:
    S = res.summary
    pr = _meta_steps_rows(S).dropna(subset=[metric])
    pr = pr[pr["sparsity"] > 0].drop_duplicates(subset=["dataset", "model", "init", "sparsity", "M", "seed"])
    all_pr, pr = pr, _main_init(pr, init)
    if pr.empty:
        return _placeholder("prospr_meta_steps", "no ProsPr runs with a known number of meta-steps", res)
    snip = S[(S["arm"] == "snip")].dropna(subset=[metric]).copy()
    snip["M"] = 0.0
    panels = _panels(pr)
    fig, axes = _grid(len(panels))
    base = np.array(matplotlib.colors.to_rgb(ARM_STYLES["prospr"]["color"]))
    light, dark = base + (1 - base) * 0.45, base * 0.55
    used = [pr]
    all_sps = sorted(pr["sparsity"].unique())  # one shade and marker per sparsity across panels
    for ax, (key, sub) in zip(axes, panels):
        sps = sorted(sub["sparsity"].unique())
        missing = []
        for s in sps:
            k = all_sps.index(s)
            pts = sub[sub["sparsity"] == s]
            sn = _match(snip, dict(key, sparsity=s))
            if sn.empty:
                missing.append(f"snip@{_pct(s)}%")
            used.append(sn)
            both = pd.concat([sn, pts]) if len(sn) else pts
            agg = _agg(both, ["M"], metric).sort_values("M")
            frac = k / max(len(all_sps) - 1, 1)  # light → dark purple as sparsity grows
            color = tuple(float(c) for c in light + (dark - light) * frac)
            marker = _FALLBACK_MARKERS[k % len(_FALLBACK_MARKERS)]
            x, y, sd = agg["M"].to_numpy(), agg["mean"].to_numpy() * 100, agg["std"].to_numpy() * 100
            ax.errorbar(x, y, yerr=sd, color=color, marker=marker, markersize=4, capsize=2, linewidth=1.1,
                        elinewidth=0.7, label=f"ProsPr, sparsity {_pct(s)}%")
            if len(sn):
                st = arm_style("snip")
                ax.plot([0], [y[0]], linestyle="none", marker=st["marker"], color=st["color"], markersize=5.5,
                        fillstyle="none", markeredgewidth=1.2, label="SNIP (M = 0)")
        ax.set_xlabel("meta-steps M")
        ax.set_ylabel("test accuracy (%)")
        ms = sorted(set(sub["M"]) | ({0.0} if len(snip) else set()))
        ax.set_xticks(ms)
        ax.set_xticklabels([f"{m:g}" for m in ms])
        ax.set_title(_panel_title(key, _init_note(all_pr, sub), missing))
    used = pd.concat(used)
    order = ["SNIP (M = 0)"] + [f"ProsPr, sparsity {_pct(s)}%" for s in all_sps]
    return _finish(fig, "ProsPr – test accuracy vs. number of meta-steps", _context_line(res, used), order=order)


# --------------------------------------------------------------------------------------------
# FGGP (Zhu, Bezek, Goksel, SCIA 2025)
# --------------------------------------------------------------------------------------------
FGGP_BASES = ("fggp", "gmp", "mfgn_annealed")
FGGP_ARMS = FGGP_BASES + tuple(f"{b}_sparse" for b in FGGP_BASES)
T_END = 0.8


def cubic_density(t, d_i: float, d_f: float, t_end: float = T_END):
    """FGGP/GMP cubic schedule (methods.md A.9): d(t) = d_f + (d_i − d_f)(1 − t/T_end)^3, t = fraction of training."""
    return d_f + (d_i - d_f) * (1 - np.clip(np.asarray(t, dtype=float) / t_end, 0, 1)) ** 3


def _fggp_start(arm: str) -> str:
    return "sparse50" if arm.endswith("_sparse") else "dense"


@_register("fggp_accuracy", "fggp",
           "FGGP: test accuracy at each target sparsity (paper: 90/95/98%) from a dense start and from a "
           "50%-sparse start for FGGP, GMP and the annealed variant, mean ± std over initializations "
           "(the paper's main results; table number not transcribed)",
           FGGP_ARMS + ("dense",))
def fggp_accuracy(res: Results, metric: str = "final_acc") -> Figure:
    S = res.summary
    df = _select(S, FGGP_ARMS).dropna(subset=[metric])
    df = df[df["sparsity"] > 0]
    if df.empty:
        return _placeholder("fggp_accuracy", "no FGGP / GMP / annealed runs", res)
    panels = []
    for key, sub in _panels(df):
        for start in ("dense", "sparse50"):
            part = sub[sub["arm"].map(_fggp_start) == start]
            panels.append((key, start, part, sub))
    fig, axes = _grid(len(panels), ncols=2, panel_w=3.3, panel_h=2.0)
    for ax, (key, start, part, whole) in zip(axes, panels):
        sps = sorted(whole["sparsity"].unique())
        arms = [b if start == "dense" else f"{b}_sparse" for b in FGGP_BASES]
        missing = []
        agg = _agg(part, ["arm", "sparsity"], metric)
        for k, arm in enumerate(arms):
            a = agg[agg["arm"] == arm]
            if a.empty:
                missing.append(arm)
                continue
            st = arm_style(arm)
            x = np.array([sps.index(s) for s in a["sparsity"]]) + (k - 1) * 0.2
            ax.errorbar(x, a["mean"] * 100, yerr=a["std"] * 100, color=st["color"], marker=st["marker"],
                        fillstyle=st["fillstyle"], markersize=5, linestyle="none", capsize=2, elinewidth=0.8,
                        label=arm_label(arm))
        _dense_line(ax, _match(S[S["arm"] == "dense"], key), metric, lambda v: v * 100)
        ax.set_xticks(range(len(sps)))
        ax.set_xticklabels([f"{_pct(s)}%" for s in sps])
        ax.set_xlim(-0.6, len(sps) - 0.4)
        ax.set_xlabel("target sparsity")
        ax.set_ylabel("test accuracy (%)")
        ax.set_title(_panel_title(key, "dense start" if start == "dense" else "50% sparse start", missing))
    return _finish(fig, "FGGP – test accuracy at the target sparsities", _context_line(res, df))


@_register("fggp_schedule", "fggp",
           "FGGP: mask density vs. training progress as realized by each gradual method (per epoch), with the "
           "analytic cubic schedule d_f + (d_i − d_f)(1 − t/T_end)^3, T_end = 0.8 (thin lines) "
           "(a check of the schedule in methods.md A.9; whether the paper has such a figure is not verified)",
           FGGP_ARMS, inputs=("summary.csv", "history.csv"))
def fggp_schedule(res: Results, t_end: float = T_END) -> Figure:
    H = _select(res.history, FGGP_ARMS).dropna(subset=["density", "epoch"])
    H = H[H["sparsity"] > 0]
    if H.empty:
        return _placeholder("fggp_schedule", "history.csv has no FGGP / GMP / annealed runs", res)
    H = H.copy()
    last = H.groupby(["dataset", "model", "arm", "sparsity", "seed"])["epoch"].transform("max")
    H["t"] = H["epoch"] / last.where(last > 0, 1)
    panels = []
    for key, sub in _panels(H, extra=()):
        for s in sorted(sub["sparsity"].unique()):
            panels.append((key, s, sub[sub["sparsity"] == s]))
    fig, axes = _grid(len(panels), panel_h=1.9)
    tt = np.linspace(0, 1, 201)
    for ax, (key, s, sub) in zip(axes, panels):
        missing = []
        for arm in FGGP_ARMS:
            a = sub[sub["arm"] == arm]
            if a.empty:
                missing.append(arm)
                continue
            g = a.groupby("t", sort=True)["density"].mean()
            st = arm_style(arm)
            ax.plot(g.index, g.to_numpy() * 100, color=st["color"], marker=st["marker"], fillstyle=st["fillstyle"],
                    linestyle=st["linestyle"], markersize=3, linewidth=1.0, label=arm_label(arm))
        starts = sorted({1.0 if _fggp_start(a) == "dense" else 0.5 for a in sub["arm"].unique()}, reverse=True)
        for d_i in starts:
            ax.plot(tt, cubic_density(tt, d_i, 1 - s, t_end) * 100, color="black", linewidth=0.6,
                    linestyle="-" if d_i == 1.0 else "--",
                    label=f"cubic schedule, d_i = {d_i:g}")
        ax.axvline(t_end, color="black", linewidth=0.4, alpha=0.4)
        ax.set_ylim(0, 105)
        ax.set_xlim(0, 1.0)
        ax.set_xlabel("training progress t / T")
        ax.set_ylabel("density (%)")
        ax.set_title(_panel_title(key, f"target {_pct(s)}% sparse", missing))
    used = _select(res.summary, FGGP_ARMS)
    return _finish(fig, "FGGP – density during training (realized, and the cubic schedule)",
                   _context_line(res, used, _seeds_text(H), stat="mean over seeds"),
                   order=[arm_label(a) for a in FGGP_ARMS])


@_register("fggp_ranks", "fggp",
           "FGGP: each method's mean rank (1 = best test accuracy) across the (target sparsity, start) settings "
           "run (a summary of the accuracy results; not known to be a figure of the paper)",
           FGGP_ARMS)
def fggp_ranks(res: Results, metric: str = "final_acc") -> Figure:
    df = _select(res.summary, FGGP_ARMS).dropna(subset=[metric])
    df = df[df["sparsity"] > 0].copy()
    if df.empty:
        return _placeholder("fggp_ranks", "no FGGP / GMP / annealed runs", res)
    df["base"] = df["arm"].str.replace(r"_sparse$", "", regex=True)
    df["start"] = df["arm"].map(_fggp_start)
    panels = _panels(df)
    fig, axes = _grid(len(panels), ncols=min(len(panels), 2), panel_w=3.3, panel_h=1.6)
    for ax, (key, sub) in zip(axes, panels):
        means = sub.groupby(["sparsity", "start", "base"])[metric].mean().reset_index()
        means = means[means.groupby(["sparsity", "start"])["base"].transform("count") >= 2]
        missing = [b for b in FGGP_BASES if b not in set(sub["base"])]
        if means.empty:
            ax.text(0.5, 0.5, "fewer than two methods per setting:\nnothing to rank", ha="center", va="center",
                    transform=ax.transAxes, fontsize=7)
            ax.set_axis_off()
            ax.set_title(_panel_title(key, missing=missing))
            continue
        means["rank"] = means.groupby(["sparsity", "start"])[metric].rank(ascending=False, method="average")
        r = means.groupby("base")["rank"].agg(["mean", "count"])
        n_set = means.groupby(["sparsity", "start"]).ngroups
        order = [b for b in FGGP_BASES if b in r.index]
        for i, b in enumerate(order):
            st = arm_style(b)
            ax.barh(i, r.loc[b, "mean"], color=st["color"], alpha=0.85, height=0.6, label=arm_label(b),
                    edgecolor="none")
            ax.text(r.loc[b, "mean"] + 0.05, i, f"{r.loc[b, 'mean']:.2f} ({int(r.loc[b, 'count'])})", va="center",
                    fontsize=6.5)
        ax.set_yticks(range(len(order)))
        ax.set_yticklabels([arm_label(b) for b in order])
        ax.invert_yaxis()
        ax.set_xlim(0, len(FGGP_BASES) + 0.8)
        ax.set_xlabel(f"mean rank over {n_set} setting{'s' if n_set != 1 else ''} (1 = best)")
        ax.set_title(_panel_title(key, missing=missing))
    return _finish(fig, "FGGP – mean rank across (sparsity, start) settings",
                   _context_line(res, df, stat="ranks of the seed means"))


# --------------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------------
def render(name: str, results, preset: str | None = None, **kw) -> Figure:
    """Build (but do not save) figure `name`. `results`: a folder, a list of folders or a Results."""
    if name not in FIGURES:
        raise PrunebenchError(f"unknown figure {name!r}; choose one of: {', '.join(sorted(FIGURES))}")
    res = load_results(results, preset)
    spec = FIGURES[name]
    with matplotlib.rc_context(_style_rc()):
        if res.summary.empty and "summary.csv" in spec.inputs and len(spec.inputs) == 1:
            return _placeholder(name, "summary.csv has no rows" + (f" for preset {preset}" if preset else ""), res)
        return spec.function(res, **kw)


def save_figure(fig: Figure, out_stem) -> tuple[Path, Path]:
    """Write `<out_stem>.pdf` and `<out_stem>.png` atomically with fixed metadata (byte-stable)."""
    out_stem = Path(out_stem)
    if out_stem.suffix in (".pdf", ".png"):
        out_stem = out_stem.with_suffix("")
    paths = (out_stem.parent / (out_stem.name + ".pdf"), out_stem.parent / (out_stem.name + ".png"))
    with matplotlib.rc_context(_style_rc()):
        with atomic_path(paths[0]) as tmp:
            fig.savefig(tmp, format="pdf", metadata=PDF_METADATA, dpi=DPI)
        with atomic_path(paths[1]) as tmp:
            FigureCanvasAgg(fig)
            fig.savefig(tmp, format="png", metadata=PNG_METADATA, dpi=DPI)
    return paths


def make_figure(name: str, results_dir, out_stem, preset: str | None = None, **kw) -> tuple[Path, Path]:
    """Draw paper figure `name` from `results_dir` (folder, list of folders or Results) into
    `<out_stem>.pdf` and `<out_stem>.png`. Returns the two paths."""
    with matplotlib.rc_context(_style_rc()):
        fig = render(name, results_dir, preset, **kw)
        return save_figure(fig, out_stem)


def make_all_figures(results_dir, out_dir, preset: str | None = None, names=None) -> dict:
    """Every registered figure (or `names`) into `<out_dir>/<name>.{pdf,png}`; tables read once."""
    res = load_results(results_dir, preset)
    out = {}
    for name in names or sorted(FIGURES):
        out[name] = make_figure(name, res, Path(out_dir) / name, preset)
    return out


def figure_table_markdown() -> str:
    """README-ready table: figure name, paper, what it reproduces, arms drawn, inputs."""
    rows = ["| Figure | Paper | Reproduces | Arms | Inputs |", "|---|---|---|---|---|"]
    for name in sorted(FIGURES, key=lambda n: (["force", "spp", "prospr", "fggp"].index(FIGURES[n].paper), n)):
        s = FIGURES[name]
        rows.append(f"| `{name}` | {s.paper} | {s.reproduces} | {', '.join(s.arms)} | {', '.join(s.inputs)} |")
    return "\n".join(rows) + "\n"
