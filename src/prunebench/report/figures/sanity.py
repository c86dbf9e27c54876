"""Sanity checks of the pruning-at-initialization methods (Frankle et al., ICLR 2021; Su et al., NeurIPS 2020):
each method beside its own ablations — its per-layer densities at random positions (`<arm>_shuffle`), its
lowest-scored weights kept (`<arm>_invert`), its mask trained from a fresh initialization (`<arm>_reinit`)."""
from __future__ import annotations

import pandas as pd
from matplotlib.figure import Figure

from prunebench.report.arms import ABLATIONS, ablation_arm, arm_label, parse_arm
from prunebench.report.figures.style import (
    _agg, _arm_rows, _context_line, _dense_line, _density_axis, _finish, _grid, _line, _match, _panel_title, _panels,
    _placeholder, _register,
)
from prunebench.library.methods import METHODS
from prunebench.report.tables import Results


def ablated_arms(arms) -> dict:
    """{arm: [its ablations present]} for every at-init arm with at least one ablation among `arms`."""
    present = set(arms)
    out = {}
    for a in sorted(present):
        p = parse_arm(a)
        if p.ablation and p.of and p.method in METHODS and METHODS[p.method].at_init:
            out.setdefault(p.of, []).append(p.ablation)
    return {k: [ab for ab in ABLATIONS if ab in v] for k, v in sorted(out.items())}


@_register("sanity_checks", "force",
           "Sanity checks (Frankle et al. 2021): test accuracy vs. remaining weights of each pruning-at-init method "
           "that ran with ablations, beside its layer-wise shuffle, inverted scores and reinitialization "
           "(mean ± std over seeds; one panel per data set, model and init; a check, not a figure of the papers)",
           ("*_shuffle", "*_invert", "*_reinit"), claim_kinds=("beats_ablation",))
def sanity_checks(res: Results, metric: str = "final_acc") -> Figure:
    S = res.summary
    abl = ablated_arms(S["arm"].dropna().unique())
    if not abl:
        return _placeholder("sanity_checks", "no ablation arms (<arm>_shuffle / _invert / _reinit) were run", res)
    arms = [a for base, abs_ in abl.items() for a in [base] + [ablation_arm(base, ab) for ab in abs_]]
    df = S[S["arm"].isin(arms) & (S["sparsity"] > 0)].dropna(subset=[metric])
    has_abl = df[df["arm"].map(lambda a: parse_arm(a).ablation is not None)]
    settings = has_abl[["dataset", "model", "init"]].drop_duplicates()
    df = df.merge(settings, on=["dataset", "model", "init"]) if len(settings) else df.iloc[:0]
    if df.empty:
        return _placeholder("sanity_checks", "the ablation arms have no accuracy", res)
    panels = _panels(df, extra=())
    panels = [(dict(key, init=i), part) for key, sub in panels
              for i, part in sub.groupby(sub["init"].fillna("unknown"), sort=True)]
    fig, axes = _grid(len(panels), ncols=min(len(panels), 2), panel_w=3.3, panel_h=2.1)
    for ax, (key, sub) in zip(axes, panels):
        agg = _agg(sub, ["arm", "sparsity"], metric)
        bases = [b for b in abl if b in set(sub["arm"]) or any(parse_arm(a).of == b for a in sub["arm"])]
        present, missing = _arm_rows(agg, [arm for base in bases
                                           for arm in [base] + [ablation_arm(base, ab) for ab in abl[base]]])
        for arm, a in present:
            a = a.sort_values("sparsity")
            _line(ax, 1 - a["sparsity"].to_numpy(), a["mean"].to_numpy() * 100, a["std"].to_numpy() * 100, arm)
        _dense_line(ax, _match(S[S["arm"] == "dense"], key), metric, lambda v: v * 100)
        _density_axis(ax, 1 - sub["sparsity"])
        ax.set_ylabel("test accuracy (%)")
        ax.set_title(_panel_title(key, missing=missing))
    used = pd.concat([p for _, p in panels])
    return _finish(fig, "Sanity checks – each method vs. its own ablations", _context_line(res, used),
                   order=[arm_label(a) for a in arms] + [arm_label("dense")])
