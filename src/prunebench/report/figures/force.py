"""FORCE (de Jorge et al., ICLR 2021): accuracy vs. sparsity, pruning wall time, per-layer density."""
from __future__ import annotations

import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator

from prunebench.report.arms import lookup
from prunebench.report.figures import panels
from prunebench.report.figures.registry import register
from prunebench.report.papers import PAPERS
from prunebench.report.tables import Results

METHODS = PAPERS["force"].methods


@register("force_acc_vs_sparsity", "force",
          "FORCE: test accuracy vs. fraction of remaining weights (log scale, 90% → 99.9% sparsity in the paper) "
          "for SNIP, GraSP, random, Iter SNIP and FORCE, dense baseline as a horizontal line "
          "(the paper's main accuracy-vs-sparsity figure; figure number not transcribed)",
          ("the plain arms of FORCE's methods", "dense"))
def force_acc_vs_sparsity(res: Results, metric: str = "final_acc", min_sparsity: float = 0.0,
                          init: str | None = None) -> Figure:
    return panels.metric_vs_sparsity("force_acc_vs_sparsity", res, panels.plain_arms(res, METHODS),
                                     "FORCE – test accuracy vs. remaining weights", metric,
                                     min_sparsity=min_sparsity, init=init)


@register("force_walltime", "force",
          "FORCE: wall time to compute the pruning mask vs. test accuracy at the highest sparsity ≤ 99.5% "
          "(paper panel: CIFAR-10 / ResNet-50 / Tesla K40m at 99.5%; figure number not transcribed)",
          ("the plain arms of FORCE's methods",))
def force_walltime(res: Results, metric: str = "final_acc", max_sparsity: float = 0.995,
                   init: str | None = None) -> Figure:
    arms = panels.plain_arms(res, METHODS)
    df = panels.select(res.summary, arms)
    df = df[(df["sparsity"] > 0) & (df["sparsity"] <= max_sparsity + 1e-9)].dropna(subset=[metric, "prune_time_s"])
    df, notes = panels.one_init(df, init)
    if df.empty:
        return panels.placeholder("force_walltime", "no pruning wall times of FORCE's methods", res)
    chosen = panels.split_panels(df)
    fig, axes = panels.grid(len(chosen))
    used = []
    for ax, (key, sub) in zip(axes, chosen):
        s = sub["sparsity"].max()
        sub = sub[sub["sparsity"] == s]
        used.append(sub)
        acc = panels.seed_stats(sub, ["arm"], metric).set_index("arm")
        acc[["lo", "hi"]] = acc[["lo", "hi"]].clip(*panels.ACCURACY_RANGE)
        tim = panels.seed_stats(sub, ["arm"], "prune_time_s").set_index("arm")
        missing = []
        for arm in arms:
            if arm not in acc.index or arm not in tim.index:
                missing.append(arm)
                continue
            a = lookup(res.arms, arm)
            st = a.style
            t = max(tim.loc[arm, "mean"], 1e-4)
            ax.errorbar([t], [acc.loc[arm, "mean"] * 100],
                        xerr=[[min(t - tim.loc[arm, "lo"], t * 0.999)], [tim.loc[arm, "hi"] - t]],
                        yerr=[[(acc.loc[arm, "mean"] - acc.loc[arm, "lo"]) * 100],
                              [(acc.loc[arm, "hi"] - acc.loc[arm, "mean"]) * 100]],
                        color=st["color"], marker=st["marker"], fillstyle=st["fillstyle"], markersize=6,
                        linestyle="none", capsize=2, elinewidth=0.8, label=a.label)
        ax.set_xscale("log")
        panels.log_ticks(ax.xaxis, lambda v: f"{v:g}")
        ax.set_xlabel("pruning wall time (s, log)")
        ax.set_ylabel("test accuracy (%)")
        panels.min_span(ax)
        shown = dict(key, init=sub["init"].iloc[0])
        ax.set_title(panels.panel_title(shown, [notes.get((key["dataset"], key["model"]), ""),
                                                f"sparsity {panels.pct(s)}%"], missing, res.arms))
    used = pd.concat(used)
    return panels.finish(fig, "FORCE – pruning wall time vs. test accuracy (hardware-dependent)",
                         panels.context_line(res, used))


@register("force_layer_density", "force",
          "FORCE: per-layer density of each method's mask at the most extreme sparsity run; "
          "× marks layers pruned away entirely (layer collapse) (FORCE's layer-wise analysis; which paper figure "
          "it matches is not verified here)",
          ("the plain arms of FORCE's methods",), inputs=("summary.csv", "layers.csv"))
def force_layer_density(res: Results) -> Figure:
    arms = panels.plain_arms(res, METHODS)
    layers = panels.select(res.layers, arms).dropna(subset=["density", "layer_index"])
    layers = layers[layers["sparsity"] > 0]
    if layers.empty:
        return panels.placeholder("force_layer_density", "layers.csv has no masks of FORCE's methods", res)
    chosen = panels.split_panels(layers)  # per init too when several ran: masks of different inits are not averaged
    fig, axes = panels.grid(len(chosen), ncols=min(len(chosen), 2), panel_w=3.3, panel_h=2.1)
    used = []
    for ax, (key, sub) in zip(axes, chosen):
        s = sub["sparsity"].max()
        sub = sub[sub["sparsity"] == s]
        used.append(panels.match(panels.select(res.summary, arms), dict(key, sparsity=s)))
        pos = sub.loc[sub["density"] > 0, "density"]
        floor = (pos.min() if len(pos) else (1 - s)) / 3
        present, missing = panels.arm_rows(sub, arms)
        for arm, a in present:
            g = a.groupby("layer_index", sort=True)
            mean = g["density"].mean()
            collapsed = g["density"].apply(lambda d: bool((d <= 0).any()))
            info = lookup(res.arms, arm)
            st = info.style
            y = mean.where(mean > 0, floor)
            ax.plot(mean.index, y, color=st["color"], marker=st["marker"], fillstyle=st["fillstyle"],
                    linestyle=st["linestyle"], markersize=3.5, linewidth=1.0, label=info.label)
            if collapsed.any():
                xs = collapsed.index[collapsed.to_numpy()]
                ax.plot(xs, [floor] * len(xs), linestyle="none", marker="X", markersize=7, color=st["color"],
                        markeredgecolor="black", markeredgewidth=0.5)
        ax.axhline(1 - s, color="black", linewidth=0.6, linestyle=":")
        ax.axhline(floor, color="black", linewidth=0.4, linestyle="-", alpha=0.3)
        ax.set_yscale("log")
        panels.log_ticks(ax.yaxis, panels.pct)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("layer index (input → output)")
        ax.set_ylabel("layer density (%, log)")
        shown = dict(key, init=sub["init"].iloc[0]) if sub["init"].nunique() == 1 else key
        ax.set_title(panels.panel_title(shown, f"sparsity {panels.pct(s)}%", missing, res.arms))
    handles, seen = [], set()
    for ax in fig.axes:
        for h, lab in zip(*ax.get_legend_handles_labels()):
            if lab not in seen:
                seen.add(lab)
                handles.append(h)
    handles.append(Line2D([], [], linestyle="none", marker="X", color="white", markeredgecolor="black",
                          markersize=6, label="layer collapsed (0 kept)"))
    handles.append(Line2D([], [], linestyle=":", color="black", linewidth=0.6, label="global density"))
    used = pd.concat(used)
    return panels.finish(fig, "FORCE – per-layer density at the most extreme sparsity",
                         panels.context_line(res, used, stat="mean over seeds"), handles)
