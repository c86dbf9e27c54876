"""FGGP (Zhu, Bezek, Goksel, SCIA 2025): accuracy at the target sparsities, the cubic schedule, ranks.

The gradual methods are the method table's during-training rows; how a run starts (dense, or a random
sparse mask) is the summary's `start` column."""
from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from prunebench.library.methods import during
from prunebench.library.schedules import cubic
from prunebench.report.arms import Arm, lookup
from prunebench.report.figures import panels
from prunebench.report.figures.registry import register
from prunebench.report.tables import Results

METHODS = during()
DENSE_START = "dense"
T_END = 0.8  # end_ratio of the during-training pruners (docs/methods.md A.9)


def gradual_arms(res: Results) -> list:
    """The arms running a during-training method, in display order."""
    return [a.name for a in res.arms.values() if a.method in METHODS and not a.is_ablation]


def schedule_density(t, d_i: float, d_f: float, t_end: float = T_END):
    """The analytic cubic schedule (prunebench.library.schedules.cubic) at training progress t in [0, 1]."""
    return cubic(np.clip(np.asarray(t, dtype=float) / t_end, 0, 1), d_i, d_f)


def _start_label(start: str) -> str:
    return "dense start" if start == DENSE_START else f"{start[len('sparse'):]}% sparse start"


@register("fggp_accuracy", "fggp",
          "FGGP: test accuracy at each target sparsity (paper: 90/95/98%) from a dense start and from a "
          "50%-sparse start for FGGP, GMP and the annealed variant, mean and 95% interval over initializations "
          "(the paper's main results; table number not transcribed)",
          ("the during-training arms, by start", "dense"))
def fggp_accuracy(res: Results, metric: str = "final_acc") -> Figure:
    arms = gradual_arms(res)
    df = panels.select(res.summary, arms).dropna(subset=[metric])
    df = df[df["sparsity"] > 0]
    if df.empty:
        return panels.placeholder("fggp_accuracy", "no FGGP / GMP / annealed runs", res)
    starts = sorted(df["start"].dropna().unique(), key=lambda s: (s != DENSE_START, s))
    chosen = [(key, start, sub[sub["start"] == start], sub) for key, sub in panels.split_panels(df)
              for start in starts]
    fig, axes = panels.grid(len(chosen), ncols=min(len(chosen), 2), panel_w=3.3, panel_h=2.0)
    for ax, (key, start, part, whole) in zip(axes, chosen):
        sps = sorted(whole["sparsity"].unique())
        these = [a for a in arms if lookup(res.arms, a).start == start]
        present, missing = panels.arm_rows(panels.seed_stats(part, ["arm", "sparsity"], metric), these)
        missing += [Arm(f"{m}@{start}", m, start=start) for m in METHODS
                    if not any(lookup(res.arms, a).method == m for a in these)]
        for k, (arm, a) in enumerate(present):
            x = np.array([sps.index(s) for s in a["sparsity"]]) + (k - (len(present) - 1) / 2) * 0.2
            panels.points(ax, x, a, lookup(res.arms, arm), lambda v: np.asarray(v) * 100, connect=False,
                          markersize=5)
        panels.dense_reference(ax, res, key, metric, lambda v: np.asarray(v) * 100)
        ax.set_xticks(range(len(sps)))
        ax.set_xticklabels([f"{panels.pct(s)}%" for s in sps])
        ax.set_xlim(-0.6, len(sps) - 0.4)
        ax.set_xlabel("target sparsity")
        ax.set_ylabel("test accuracy (%)")
        panels.min_span(ax)
        shown = dict(key, init=whole["init"].iloc[0]) if whole["init"].nunique() == 1 else key
        ax.set_title(panels.panel_title(shown, _start_label(start), missing, res.arms))
    return panels.finish(fig, "FGGP – test accuracy at the target sparsities", panels.context_line(res, df))


@register("fggp_schedule", "fggp",
          "FGGP: mask density vs. training progress as realized by each gradual method (per epoch), with the "
          "analytic cubic schedule d_f + (d_i − d_f)(1 − t/T_end)^3, T_end = 0.8 (thin lines) "
          "(a check of the schedule in docs/methods.md A.9; whether the paper has such a figure is not verified)",
          ("the during-training arms",), inputs=("summary.csv", "history.csv"))
def fggp_schedule(res: Results, t_end: float = T_END) -> Figure:
    arms = gradual_arms(res)
    history = panels.select(res.history, arms).dropna(subset=["density", "epoch"])
    history = history[history["sparsity"] > 0]
    if history.empty:
        return panels.placeholder("fggp_schedule", "history.csv has no FGGP / GMP / annealed runs", res)
    history = history.copy()
    last = history.groupby(["dataset", "model", "init", "arm", "sparsity", "seed"], dropna=False)["epoch"].transform("max")
    history["t"] = history["epoch"] / last.where(last > 0, 1)
    chosen = [(key, s, sub[sub["sparsity"] == s]) for key, sub in panels.split_panels(history)
              for s in sorted(sub["sparsity"].unique())]  # per init too when several ran: not averaged
    fig, axes = panels.grid(len(chosen), panel_h=1.9)
    tt = np.linspace(0, 1, 201)
    for ax, (key, s, sub) in zip(axes, chosen):
        present, missing = panels.arm_rows(sub, arms)
        for arm, a in present:
            g = a.groupby("t", sort=True)["density"].mean()
            info = lookup(res.arms, arm)
            st = info.style
            ax.plot(g.index, g.to_numpy() * 100, color=st["color"], marker=st["marker"], fillstyle=st["fillstyle"],
                    linestyle=st["linestyle"], markersize=3, linewidth=1.0, label=info.label)
        starts = sorted({lookup(res.arms, a).start for a in sub["arm"].unique()}, key=lambda v: (v != DENSE_START, v))
        for start in starts:
            d_i = 1.0 if start == DENSE_START else 1 - float(start[len("sparse"):]) / 100
            ax.plot(tt, schedule_density(tt, d_i, 1 - s, t_end) * 100, color="black", linewidth=0.6,
                    linestyle="-" if start == DENSE_START else "--", label=f"cubic schedule, d_i = {d_i:g}")
        ax.axvline(t_end, color="black", linewidth=0.4, alpha=0.4)
        ax.set_ylim(0, 105)
        ax.set_xlim(0, 1.0)
        ax.set_xlabel("training progress t / T")
        ax.set_ylabel("density (%)")
        shown = dict(key, init=sub["init"].iloc[0]) if sub["init"].nunique() == 1 else key
        ax.set_title(panels.panel_title(shown, f"target {panels.pct(s)}% sparse", missing, res.arms))
    used = panels.select(res.summary, arms)
    return panels.finish(fig, "FGGP – density during training (realized, and the cubic schedule)",
                         panels.context_line(res, used, panels.seeds_text(history), stat="mean over seeds"),
                         order=[lookup(res.arms, a).label for a in arms])


@register("fggp_ranks", "fggp",
          "FGGP: each method's mean rank (1 = best test accuracy) across the (target sparsity, start) settings "
          "run (a summary of the accuracy results; not known to be a figure of the paper)",
          ("the during-training arms",))
def fggp_ranks(res: Results, metric: str = "final_acc") -> Figure:
    df = panels.select(res.summary, gradual_arms(res)).dropna(subset=[metric])
    df = df[df["sparsity"] > 0].copy()
    if df.empty:
        return panels.placeholder("fggp_ranks", "no FGGP / GMP / annealed runs", res)
    chosen = panels.split_panels(df)
    fig, axes = panels.grid(len(chosen), ncols=min(len(chosen), 2), panel_w=3.3, panel_h=1.6)
    for ax, (key, sub) in zip(axes, chosen):
        means = sub.groupby(["sparsity", "start", "method"])[metric].mean().reset_index()
        means = means[means.groupby(["sparsity", "start"])["method"].transform("count") >= 2]
        missing = [m for m in METHODS if m not in set(sub["method"])]
        shown = dict(key, init=sub["init"].iloc[0]) if sub["init"].nunique() == 1 else key
        if means.empty:
            ax.text(0.5, 0.5, "fewer than two methods per setting:\nnothing to rank", ha="center", va="center",
                    transform=ax.transAxes, fontsize=7)
            ax.set_axis_off()
            ax.set_title(panels.panel_title(shown, missing=missing, arms=res.arms))
            continue
        means["rank"] = means.groupby(["sparsity", "start"])[metric].rank(ascending=False, method="average")
        r = means.groupby("method")["rank"].agg(["mean", "count"])
        n_set = means.groupby(["sparsity", "start"]).ngroups
        order = [m for m in METHODS if m in r.index]
        for i, m in enumerate(order):
            info = lookup(res.arms, m)
            ax.barh(i, r.loc[m, "mean"], color=info.style["color"], alpha=0.85, height=0.6, label=info.label,
                    edgecolor="none")
            ax.text(r.loc[m, "mean"] + 0.05, i, f"{r.loc[m, 'mean']:.2f} ({int(r.loc[m, 'count'])})", va="center",
                    fontsize=6.5)
        ax.set_yticks(range(len(order)))
        ax.set_yticklabels([lookup(res.arms, m).label for m in order])
        ax.invert_yaxis()
        ax.set_xlim(0, len(METHODS) + 0.8)
        ax.set_xlabel(f"mean rank over {n_set} setting{'s' if n_set != 1 else ''} (1 = best)")
        ax.set_title(panels.panel_title(shown, missing=missing, arms=res.arms))
    return panels.finish(fig, "FGGP – mean rank across (sparsity, start) settings",
                         panels.context_line(res, df, stat="ranks of the seed means"))
