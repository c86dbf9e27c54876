"""FGGP (Zhu, Bezek, Goksel, SCIA 2025): accuracy at the target sparsities, the cubic schedule, ranks."""
from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from prunebench.report.arms import arm_label, arm_style
from prunebench.report.figures.style import (  # noqa: F401
    DATASET_LABELS, _agg, _arm_rows, _context_line, _dense_line, _density_axis, _finish, _grid, _init_note, _line, _log_ticks, _main_init, _match, _metric_vs_sparsity, _panel_title, _panels, _pct, _placeholder, _register, _seeds_text, _select, _uniq, FIGURES, CB,
)
from prunebench.report.tables import Results

FGGP_BASES = ("fggp", "gmp", "mfgn_annealed")
FGGP_ARMS = FGGP_BASES + tuple(f"{b}_sparse" for b in FGGP_BASES)
T_END = 0.8


def cubic_density(t, d_i: float, d_f: float, t_end: float = T_END):
    """FGGP/GMP cubic schedule (docs/methods.md A.9): d(t) = d_f + (d_i − d_f)(1 − t/T_end)^3, t = fraction of training."""
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
           "(a check of the schedule in docs/methods.md A.9; whether the paper has such a figure is not verified)",
           FGGP_ARMS, inputs=("summary.csv", "history.csv"))
def fggp_schedule(res: Results, t_end: float = T_END) -> Figure:
    H = _select(res.history, FGGP_ARMS).dropna(subset=["density", "epoch"])
    H = H[H["sparsity"] > 0]
    if H.empty:
        return _placeholder("fggp_schedule", "history.csv has no FGGP / GMP / annealed runs", res)
    H = H.copy()
    last = H.groupby(["dataset", "model", "init", "arm", "sparsity", "seed"], dropna=False)["epoch"].transform("max")
    H["t"] = H["epoch"] / last.where(last > 0, 1)
    panels = []
    for key, sub in _panels(H):  # per init too when several ran: their schedules are not averaged
        for s in sorted(sub["sparsity"].unique()):
            panels.append((key, s, sub[sub["sparsity"] == s]))
    fig, axes = _grid(len(panels), panel_h=1.9)
    tt = np.linspace(0, 1, 201)
    for ax, (key, s, sub) in zip(axes, panels):
        present, missing = _arm_rows(sub, FGGP_ARMS)
        for arm, a in present:
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


