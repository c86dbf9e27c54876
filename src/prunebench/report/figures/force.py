"""FORCE (de Jorge et al., ICLR 2021): accuracy vs. sparsity, pruning wall time, per-layer density."""
from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator

from prunebench.report.arms import arm_label, arm_style
from prunebench.report.figures.style import (  # noqa: F401
    DATASET_LABELS, _agg, _arm_rows, _context_line, _dense_line, _density_axis, _finish, _grid, _init_note, _line, _log_ticks, _main_init, _match, _metric_vs_sparsity, _panel_title, _panels, _pct, _placeholder, _register, _seeds_text, _select, _uniq, FIGURES, CB,
)
from prunebench.report.tables import Results

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
    panels = _panels(L)  # per init too when several ran: masks of different init schemes are not averaged
    fig, axes = _grid(len(panels), ncols=min(len(panels), 2), panel_w=3.3, panel_h=2.1)
    used = []
    for ax, (key, sub) in zip(axes, panels):
        s = sub["sparsity"].max()
        sub = sub[sub["sparsity"] == s]
        used.append(_match(_select(res.summary, arms), dict(key, sparsity=s)))
        pos = sub.loc[sub["density"] > 0, "density"]
        floor = (pos.min() if len(pos) else (1 - s)) / 3
        present, missing = _arm_rows(sub, arms)
        for arm, a in present:
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


