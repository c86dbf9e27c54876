"""The panel API every figure module builds on: selecting and summarising rows, laying out panels, drawing
arms with visible intervals, titles, legends and placeholders.

Statistics drawn: the mean over seeds with its 95% t interval as error bars (visible at a single x); a
figure says so in its context line. Accuracy axes span at least `MIN_SPAN_PCT` points, so that a
0.1-point gap does not look decisive. A panel whose reference (the dense baseline) has no result says so on
the panel (not run, or its seeds diverged / stayed at chance).
"""
from __future__ import annotations

import logging
import math
from typing import Callable

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter, NullLocator
from scipy import stats as sps

from prunebench.report.arms import Arm, lookup
from prunebench.report.figures.look import DATASET_LABELS, DPI, LEGEND_SIZE, TITLE_SIZE
from prunebench.report.figures.registry import FIGURES
from prunebench.report.figures.text import SEP, fit_phrases, fit_title, phrases, text_width
from prunebench.report.outcomes import AT_CHANCE, DIVERGED, TRAINED, outcomes
from prunebench.report.tables import Results

log = logging.getLogger("prunebench.report.figures")
LEVEL = 0.95
STAT = "mean and 95% interval over seeds"
MIN_SPAN_PCT = 2.0
DODGE = 0.04


def pct(v: float) -> str:
    return f"{v * 100:.3g}"


# ------------------------------------------------------------------------------------------------ rows
def seed_stats(df: pd.DataFrame, by, col: str) -> pd.DataFrame:
    """mean, std (0 with one seed), n and the 95% t interval [lo, hi] of the mean over seeds, NaN values
    dropped."""
    d = df[list(by) + [col]].dropna(subset=[col])
    cols = list(by) + ["mean", "std", "n", "lo", "hi"]
    if d.empty:
        return pd.DataFrame(columns=cols)
    g = d.groupby(list(by), sort=True, dropna=False)[col]
    out = g.agg(["mean", "std", "count"]).reset_index().rename(columns={"count": "n"})
    out["std"] = out["std"].fillna(0.0)
    half = [float(sps.t(n - 1).ppf(0.5 + LEVEL / 2)) * s / math.sqrt(n) if n > 1 else 0.0
            for n, s in zip(out["n"], out["std"])]
    out["lo"] = out["mean"] - half
    out["hi"] = out["mean"] + half
    return out[cols]


def split_panels(df: pd.DataFrame, extra=("init",)) -> list:
    """[(key dict, rows)] per dataset × model (× init etc. where the rows hold several values)."""
    keys = ["dataset", "model"] + [c for c in extra if c in df.columns and df[c].nunique(dropna=True) > 1]
    out = []
    for vals, sub in df.groupby(keys, sort=True, dropna=False):
        vals = vals if isinstance(vals, tuple) else (vals,)
        out.append((dict(zip(keys, vals)), sub))
    return out


def match(df: pd.DataFrame, key: dict) -> pd.DataFrame:
    m = pd.Series(True, index=df.index)
    for k, v in key.items():
        if k in df.columns:
            m &= (df[k] == v) if v is not None and not (isinstance(v, float) and math.isnan(v)) else df[k].isna()
    return df[m]


def select(df: pd.DataFrame, arms) -> pd.DataFrame:
    return df[df["arm"].isin(list(arms))]


def plain_arms(res: Results, methods) -> list:
    """What a method-comparison figure draws: for each of `methods`, the arms of `res` that run it as the grid's
    plain run (no ablation, isometry or uniform labels), or, where none did, the method's name (a panel then
    names it as not run)."""
    out = []
    for m in methods:
        arms = [a.name for a in res.arms.values() if a.method == m and not a.is_variant]
        out += arms or [m]
    return out


def arm_rows(df: pd.DataFrame, arms) -> tuple:
    """([(arm, its rows), ...] for the arms of `arms` that have rows in `df`, in order; the arms without any,
    which a panel title names as not run)."""
    present, missing = [], []
    for arm in arms:
        rows = df[df["arm"] == arm]
        (missing.append(arm) if rows.empty else present.append((arm, rows)))
    return present, missing


def one_init(df: pd.DataFrame, init: str | None = None) -> tuple:
    """(rows, notes): for method comparisons, one init scheme per dataset × model — `init` if given, else the
    one under which most arms ran (ties: most rows, then name) — and, per (dataset, model), a note naming the
    other schemes that ran ('also run: xavier_normal'); other inits are the SPP figures' subject."""
    notes = {}
    if df.empty or df["init"].nunique(dropna=True) <= 1:
        return df, notes
    keep = []
    for (ds, model), sub in df.groupby(["dataset", "model"], sort=True):
        inits = sorted(str(i) for i in sub["init"].dropna().unique())
        if init is not None:
            best = init
        else:
            counts = sub.groupby("init", dropna=False).agg(arms=("arm", "nunique"), rows=("arm", "size")).reset_index()
            counts["name"] = counts["init"].astype(str)
            best = counts.sort_values(["arms", "rows", "name"], ascending=[False, False, True]).iloc[0]["init"]
        keep.append(sub[sub["init"] == best])
        others = [i for i in inits if i != best]
        if others:
            notes[(ds, model)] = "also run: " + ", ".join(others)
    return pd.concat(keep), notes


def seeds_text(df: pd.DataFrame, by=("dataset", "model", "arm", "sparsity", "init")) -> str:
    if df.empty or "seed" not in df.columns:
        return "0 seeds"
    by = [c for c in by if c in df.columns]
    n = df.groupby(by, dropna=False)["seed"].nunique()
    lo, hi = int(n.min()), int(n.max())
    return f"{lo} seed{'s' if lo != 1 else ''}" if lo == hi else f"{lo}–{hi} seeds"


def uniq(series) -> str:
    vals = sorted({str(v) for v in series.dropna()}) if series is not None else []
    return "; ".join(vals) if vals else "unknown"


def context_line(res: Results, used: pd.DataFrame, seeds: str | None = None, stat: str = STAT) -> str:
    """'preset P · n seeds · data: … · device: … · <stat>', from the rows drawn."""
    preset = res.preset or uniq(res.summary.get("preset"))
    rows = res.summary if used is None else used
    bits = [f"preset {preset}", seeds or seeds_text(rows),
            f"data: {uniq(rows['source_note']) if 'source_note' in rows else 'unknown'}",
            f"device: {uniq(rows['device']) if 'device' in rows else 'unknown'}"]
    return " · ".join(bits + ([stat] if stat else []))


# ------------------------------------------------------------------------------------------------ layout
def grid(n: int, ncols: int | None = None, panel_w=2.35, panel_h=1.95, extra_h=1.05):
    ncols = ncols or min(n, 3)
    nrows = int(math.ceil(n / ncols))
    width = max(3.4, min(7.0, panel_w * ncols + 0.4))
    fig = Figure(figsize=(width, panel_h * nrows + extra_h), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    for ax in axes[n:]:
        ax.remove()
    return fig, list(axes[:n])


def panel_title(key: dict, extra=(), missing=(), arms: dict | None = None) -> str:
    """Line 1: data set · model; then init / sparsity / notes; then 'not run: …' — as phrases that `finish`
    flows into lines as wide as the panel (a phrase is never split)."""
    groups = [f"{DATASET_LABELS.get(key.get('dataset'), str(key.get('dataset')))} · {key.get('model')}"]
    second = [f"init {key['init']}"] if key.get("init") is not None else []
    second += [e for e in ([extra] if isinstance(extra, str) else list(extra)) if e]
    if second:
        groups.append((" · " + SEP).join(second))
    if missing:
        groups.append("not run: " + (", " + SEP).join(a.label if isinstance(a, Arm) else lookup(arms or {}, a).label
                                                      for a in missing))
    return "\n".join(groups)


def _rc_size(name: str, default: float) -> float:
    v = matplotlib.rcParams[name]
    return float(v) if not isinstance(v, str) else default


def finish(fig: Figure, title: str, context: str, handles=None, order=None) -> Figure:
    """Figure title + context line (wrapped between phrases to the figure's width), panel titles flowed to
    their panel's width, one legend below the panels (in `order` of labels where given)."""
    width_pt = fig.get_figwidth() * 72 - 12
    size = 8.0
    lines = fit_phrases(phrases(title, " – "), width_pt, size) + fit_phrases(phrases(context, " · "), width_pt, size)
    fig.suptitle("\n".join(lines), fontsize=size)
    tsize = _rc_size("axes.titlesize", TITLE_SIZE)
    for ax in fig.axes:
        ss = ax.get_subplotspec()
        if ss is None:
            continue
        ncols = ss.get_gridspec().get_geometry()[1]
        span = ss.colspan.stop - ss.colspan.start
        panel_pt = fig.get_figwidth() * 72 * span / ncols - 40  # less the y tick labels and axis label
        ax.set_title(fit_title(ax.get_title(), panel_pt, tsize))
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
        lsize = _rc_size("legend.fontsize", LEGEND_SIZE)
        col_pt = max(text_width(lab, lsize) for lab in labels) + (2.2 + 0.8 + 1.2) * lsize
        ncols = max(1, min(len(labels), int((fig.get_figwidth() * 72 - 12) // col_pt)))
        rows = math.ceil(len(labels) / ncols)
        if rows > 2:  # a tall legend gets its own room instead of squeezing the panels
            fig.set_figheight(fig.get_figheight() + (rows - 2) * lsize * 1.45 / 72)
        fig.legend(handles, labels, loc="outside lower center", ncols=ncols, frameon=False,
                   handlelength=2.2, columnspacing=1.2)
    return fig


def placeholder(name: str, reason: str, res: Results | None = None) -> Figure:
    """A figure that says why it has no data (the pipeline's outputs always exist)."""
    log.warning("figure %s: %s; writing a placeholder", name, reason)
    fig = Figure(figsize=(3.4, 1.8), dpi=DPI)
    FigureCanvasAgg(fig)
    spec = FIGURES.get(name)
    head = spec.reproduces if spec else name
    preset = (res.preset or uniq(res.summary.get("preset"))) if res is not None else "unknown"
    width_pt = fig.get_figwidth() * 72 - 16
    text = "\n".join(fit_phrases(phrases(head, " "), width_pt, 7.5) + [""]
                     + fit_phrases(phrases(f"No data: {reason} (preset {preset}).", " "), width_pt, 7.5))
    fig.text(0.5, 0.5, text, ha="center", va="center", fontsize=7.5, wrap=False)
    return fig


NOTE_SIZE = 6.0


def note(ax, text: str, where: str = "bottom") -> None:
    """A short note inside a panel (e.g. why its reference line is missing), wrapped to the panel's width."""
    ss = ax.get_subplotspec()
    ncols = ss.get_gridspec().get_geometry()[1] if ss is not None else 1
    width_pt = ax.get_figure().get_figwidth() * 72 / ncols - 70  # less the y axis and the note's padding
    text = "\n".join(fit_phrases(phrases(text, " "), width_pt, NOTE_SIZE))
    y, va = (0.03, "bottom") if where == "bottom" else (0.97, "top")
    ax.text(0.03, y, text, transform=ax.transAxes, ha="left", va=va, fontsize=NOTE_SIZE, color="#333333",
            bbox=dict(boxstyle="round,pad=0.2", facecolor="white", edgecolor="#bbbbbb", linewidth=0.4, alpha=0.9))


# ------------------------------------------------------------------------------------------------ axes
def density_axis(ax, densities, label=True):
    ds = sorted({float(d) for d in densities if d > 0})
    if len(ds) == 1:
        ax.set_xlim(ds[0] * 1.6, ds[0] / 1.6)
    ax.set_xscale("log")
    if 1 <= len(ds) <= 7:
        ax.set_xticks(ds)
        ax.set_xticklabels([pct(d) for d in ds])
        ax.xaxis.set_minor_locator(NullLocator())
    else:
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: pct(v)))
        ax.xaxis.set_minor_locator(NullLocator())
    if len(ds) == 1:
        ax.set_xlim(ds[0] * 1.6, ds[0] / 1.6)
    else:
        ax.invert_xaxis()
    if label:
        ax.set_xlabel("remaining weights (%, log)")


def log_ticks(axis, fmt):
    """Readable log ticks: decades, or 1-2-5 steps when the data span less than ~1.6 decades."""
    lo, hi = sorted(axis.get_view_interval())
    lo = max(lo, 1e-12)
    subs = (1.0,) if math.log10(max(hi, lo * 1.0001) / lo) > 1.6 else (1.0, 2.0, 5.0)
    axis.set_major_locator(LogLocator(base=10, subs=subs, numticks=8))
    axis.set_major_formatter(FuncFormatter(lambda v, _: fmt(v)))
    axis.set_minor_formatter(NullFormatter())


def min_span(ax, span: float = MIN_SPAN_PCT, floor: float | None = 0.0, ceil: float | None = 100.0) -> None:
    """Widen the y axis to at least `span` (in data units), centred on the data, within [floor, ceil]."""
    lo, hi = ax.get_ylim()
    if hi - lo >= span:
        return
    mid = (lo + hi) / 2
    lo, hi = mid - span / 2, mid + span / 2
    if floor is not None and lo < floor:
        lo, hi = floor, floor + span
    if ceil is not None and hi > ceil:
        lo, hi = ceil - span, ceil
    ax.set_ylim(lo, hi)


# ------------------------------------------------------------------------------------------------ marks
ACCURACY_RANGE = (0.0, 1.0)


def points(ax, x, agg: pd.DataFrame, arm: Arm, scale: Callable, connect=True, label=None, markersize=4.5,
           bounds=ACCURACY_RANGE):
    """An arm's means at `x` with their 95% intervals as error bars (visible at a single x), the intervals
    clipped to the metric's range `bounds` (an accuracy cannot leave [0, 1]; None: unbounded)."""
    st = arm.style
    y = scale(agg["mean"].to_numpy())
    lo, hi = agg["lo"].to_numpy(dtype=float), agg["hi"].to_numpy(dtype=float)
    if bounds is not None:
        lo, hi = np.clip(lo, *bounds), np.clip(hi, *bounds)
    lo, hi = scale(lo), scale(hi)
    ylo, yhi = np.minimum(lo, hi), np.maximum(lo, hi)
    ax.errorbar(x, y, yerr=[y - ylo, yhi - y], color=st["color"], marker=st["marker"],
                linestyle=st["linestyle"] if connect and len(agg) > 1 else "none", fillstyle=st["fillstyle"],
                markersize=markersize, linewidth=1.2, elinewidth=0.9, capsize=2.5,
                label=arm.label if label is None else label)


def dense_reference(ax, res: Results, key: dict, metric: str, scale: Callable,
                    summary: pd.DataFrame | None = None, where: str = "bottom") -> bool:
    """The dense baseline of a panel's setting as a horizontal line with its 95% band. Where it has no result,
    the panel says why (a note at the `where` edge: away from the data). True when drawn. `summary`: the table
    to read (one with derived metrics)."""
    dense = [a.name for a in res.arms.values() if a.method == "dense"]
    rows = match(select(res.summary if summary is None else summary, dense), key)
    arm = lookup(res.arms, dense[0]) if dense else None
    if rows.empty:
        note(ax, "dense baseline not run", where)
        return False
    out = outcomes(rows, metric)
    good = rows[out == TRAINED]  # a diverged or dead (at chance) seed is not a baseline: said, not averaged in
    vals = good[metric].dropna() if metric in good.columns else pd.Series(dtype=float)
    failed = {k: int((out == k).sum()) for k in (DIVERGED, AT_CHANCE)}
    bad = ", ".join(f"{n} {k}" for k, n in failed.items() if n)
    if vals.empty:
        note(ax, f"dense baseline: no result ({bad or 'no value'} of {len(rows)} seeds)", where)
        return False
    st = arm.style
    agg = seed_stats(good.assign(_k=0), ["_k"], metric).iloc[0]
    m, lo, hi = scale(agg["mean"]), scale(np.clip(agg["lo"], *ACCURACY_RANGE)), scale(np.clip(agg["hi"], *ACCURACY_RANGE))
    ax.axhline(m, color=st["color"], linestyle=st["linestyle"], linewidth=1.0, label=arm.label)
    if hi != lo:
        ax.axhspan(min(lo, hi), max(lo, hi), color=st["color"], alpha=0.07, linewidth=0)
    if bad:
        note(ax, f"dense baseline: {bad} of {len(rows)} seeds left out", where)
    return True


def metric_label(metric: str, error: bool) -> str:
    what = "test error (%)" if error else "test accuracy (%)"
    return what if metric == "final_acc" else f"{what} [{metric}]"


# ------------------------------------------------------------------------------------------------ figures
def metric_vs_sparsity(name: str, res: Results, arms, title: str, metric="final_acc", error=False,
                       min_sparsity=0.0, max_sparsity=1.0, with_dense=True, split_init=False,
                       init: str | None = None, summary: pd.DataFrame | None = None) -> Figure:
    """Accuracy (or error) of `arms` vs remaining weights, one panel per dataset × model (× init with
    `split_init`), error bars at every x, the dense baseline as a line (or a note saying why it is missing).
    Panels where fewer than two of the arms ran are left out when another panel has two or more."""
    summary = res.summary if summary is None else summary
    df = select(summary, arms)
    df = df[(df["sparsity"] > 0) & (df["sparsity"] >= min_sparsity) & (df["sparsity"] <= max_sparsity)]
    df = df.dropna(subset=[metric]) if metric in df.columns else df.iloc[:0]
    notes = {}
    if not split_init:
        df, notes = one_init(df, init)
    if df.empty:
        return placeholder(name, f"none of the arms {', '.join(arms) or '(none)'} has results on {metric}", res)
    scale = (lambda v: (1 - np.asarray(v)) * 100) if error else (lambda v: np.asarray(v) * 100)
    panels = split_panels(df, extra=("init",) if split_init else ())
    if len(arms) > 1:
        several = [p for p in panels if p[1]["arm"].nunique() >= 2]
        panels = several or panels
    fig, axes = grid(len(panels))
    for ax, (key, sub) in zip(axes, panels):
        agg = seed_stats(sub, ["arm", "sparsity"], metric)
        present, missing = arm_rows(agg, arms)
        for k, (arm, a) in enumerate(present):  # arms side by side at each x (a few percent apart on the log axis)
            a = a.sort_values("sparsity")
            dodge = 1.0 + DODGE * (k - (len(present) - 1) / 2)
            points(ax, (1 - a["sparsity"].to_numpy()) * dodge, a, lookup(res.arms, arm), scale)
        ref = dict(key, init=sub["init"].iloc[0]) if "init" not in key and sub["init"].nunique() == 1 else key
        if with_dense:
            dense_reference(ax, res, {k: v for k, v in ref.items() if k != "sparsity"}, metric, scale, summary,
                            "top" if error else "bottom")
        density_axis(ax, 1 - sub["sparsity"])
        ax.set_ylabel(metric_label(metric, error))
        min_span(ax)
        shown = dict(key, init=ref.get("init"))
        ax.set_title(panel_title(shown, notes.get((key["dataset"], key["model"]), ""), missing, res.arms))
    order = [lookup(res.arms, a).label for a in arms] + [a.label for a in res.arms.values() if a.method == "dense"]
    return finish(fig, title, context_line(res, df), order=order)
