"""Sanity checks of the pruning-at-initialization methods (Frankle et al., ICLR 2021; Su et al., NeurIPS 2020):
each method beside its own ablations — its per-layer densities at random positions (shuffle), its
lowest-scored weights kept (invert), its mask trained from a fresh initialization (reinit). Which arm ablates
which is read from the summary's `ablation` and `ablation_of` columns."""
from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from prunebench.report.arms import ABLATION_NAMES, lookup
from prunebench.report.figures import panels
from prunebench.report.figures.registry import register
from prunebench.report.tables import Results


def _percent(v):
    return np.asarray(v) * 100


def ablated_arms(arms: dict) -> dict:
    """{arm: [names of its ablation arms, in the ablation table's order]} over a catalogue of arms."""
    out = {}
    for a in arms.values():
        if a.is_ablation and a.ablation_of:
            out.setdefault(a.ablation_of, []).append(a)
    return {k: [a.name for a in sorted(v, key=lambda a: ABLATION_NAMES.index(a.ablation))]
            for k, v in sorted(out.items())}


@register("sanity_checks", "force",
          "Sanity checks (Frankle et al. 2021): test accuracy vs. remaining weights of each pruning-at-init method "
          "that ran with ablations, beside its layer-wise shuffle, inverted scores and reinitialization "
          "(mean and 95% interval over seeds; one panel per data set, model and init; a check, not a figure of "
          "the papers)",
          ("every arm with ablations, and its ablations",), claim_kinds=("beats_ablation",))
def sanity_checks(res: Results, metric: str = "final_acc") -> Figure:
    summary = res.summary
    abl = ablated_arms(res.arms)
    if not abl:
        return panels.placeholder("sanity_checks", "no sanity-check ablation arms were run", res)
    arms = [a for base, names in abl.items() for a in [base] + names]
    df = summary[summary["arm"].isin(arms) & (summary["sparsity"] > 0)].dropna(subset=[metric])
    has_abl = df[df["arm"].map(lambda a: lookup(res.arms, a).is_ablation)]
    settings = has_abl[["dataset", "model", "init"]].drop_duplicates()
    df = df.merge(settings, on=["dataset", "model", "init"]) if len(settings) else df.iloc[:0]
    if df.empty:
        return panels.placeholder("sanity_checks", "the ablation arms have no accuracy", res)
    chosen = [(dict(key, init=i), part) for key, sub in panels.split_panels(df, extra=())
              for i, part in sub.groupby(sub["init"].fillna("unknown"), sort=True)]
    fig, axes = panels.grid(len(chosen), ncols=min(len(chosen), 2), panel_w=3.3, panel_h=2.1)
    for ax, (key, sub) in zip(axes, chosen):
        agg = panels.seed_stats(sub, ["arm", "sparsity"], metric)
        bases = [b for b in abl if b in set(sub["arm"]) or any(lookup(res.arms, a).ablation_of == b
                                                                for a in sub["arm"])]
        present, missing = panels.arm_rows(agg, [arm for base in bases for arm in [base] + abl[base]])
        for arm, a in present:
            a = a.sort_values("sparsity")
            panels.points(ax, 1 - a["sparsity"].to_numpy(), a, lookup(res.arms, arm), _percent)
        panels.dense_reference(ax, res, key, metric, _percent)
        panels.density_axis(ax, 1 - sub["sparsity"])
        ax.set_ylabel("test accuracy (%)")
        panels.min_span(ax)
        ax.set_title(panels.panel_title(key, missing=missing, arms=res.arms))
    used = pd.concat([p for _, p in chosen])
    dense = [a.label for a in res.arms.values() if a.method == "dense"]
    return panels.finish(fig, "Sanity checks – each method vs. its own ablations", panels.context_line(res, used),
                         order=[lookup(res.arms, a).label for a in arms] + dense)
