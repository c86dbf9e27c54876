"""ProsPr (Alizadeh et al., ICLR 2022): accuracy vs. sparsity, meta-steps ablation (M from the summary's
`meta_steps` column)."""
from __future__ import annotations

import matplotlib.colors
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from prunebench.report.arms import FALLBACK_MARKERS, lookup
from prunebench.report.figures import panels
from prunebench.report.figures.registry import register
from prunebench.report.papers import PAPERS
from prunebench.report.tables import Results

METHODS = PAPERS["prospr"].methods
PROSPR = METHODS[0]      # the paper's own method, first in its row of the paper table
SNIP = "snip"            # ProsPr with M = 0 is SNIP (docs/methods.md A.8)


@register("prospr_acc_vs_sparsity", "prospr",
          "ProsPr: test accuracy vs. remaining weights for ProsPr against SNIP, GraSP, SynFlow, random, "
          "Iter SNIP and FORCE, dense baseline as a horizontal line (the paper's main comparison; "
          "figure/table number not transcribed)",
          ("the plain arms of ProsPr's methods", "dense"))
def prospr_acc_vs_sparsity(res: Results, metric: str = "final_acc", init: str | None = None) -> Figure:
    return panels.metric_vs_sparsity("prospr_acc_vs_sparsity", res, panels.plain_arms(res, METHODS),
                                     "ProsPr – test accuracy vs. remaining weights", metric, init=init)


def meta_steps_rows(res: Results) -> pd.DataFrame:
    """The rows of every plain ProsPr arm (not an ablation, and not one the columns cannot tell from another),
    with its number of meta-steps as column M."""
    arms = [a.name for a in res.arms.values() if a.method == PROSPR and not a.is_variant and not a.suffix]
    rows = panels.select(res.summary, arms).copy()
    rows["M"] = pd.to_numeric(rows["meta_steps"], errors="coerce")
    return rows.dropna(subset=["M"])


@register("prospr_meta_steps", "prospr",
          "ProsPr: test accuracy vs. number of meta-steps M (M = 0 is SNIP-equivalent, drawn from the SNIP arm) "
          "(the paper's meta-steps ablation; number not transcribed)",
          ("ProsPr arms by their meta_steps", "SNIP as M = 0"))
def prospr_meta_steps(res: Results, metric: str = "final_acc", init: str | None = None) -> Figure:
    summary = res.summary
    pr = meta_steps_rows(res).dropna(subset=[metric])
    pr = pr[pr["sparsity"] > 0].drop_duplicates(subset=["dataset", "model", "init", "sparsity", "M", "seed"])
    pr, notes = panels.one_init(pr, init)
    if pr.empty:
        return panels.placeholder("prospr_meta_steps", "no ProsPr runs with a known number of meta-steps", res)
    snip_arms = [a.name for a in res.arms.values() if a.method == SNIP and not a.is_variant and not a.suffix]
    snip = panels.select(summary, snip_arms).dropna(subset=[metric]).copy()
    snip["M"] = 0.0
    chosen = panels.split_panels(pr)
    fig, axes = panels.grid(len(chosen))
    base = np.array(matplotlib.colors.to_rgb(lookup(res.arms, PROSPR).style["color"]))
    light, dark = base + (1 - base) * 0.45, base * 0.55
    used = [pr]
    all_sps = sorted(pr["sparsity"].unique())  # one shade and marker per sparsity across panels
    snip_style = lookup(res.arms, SNIP).style
    for ax, (key, sub) in zip(axes, chosen):
        missing = []
        key = dict(key, init=sub["init"].iloc[0])
        for s in sorted(sub["sparsity"].unique()):
            k = all_sps.index(s)
            pts = sub[sub["sparsity"] == s]
            sn = panels.match(snip, dict(key, sparsity=s))
            if sn.empty:
                missing.append(f"snip@{panels.pct(s)}%")
            used.append(sn)
            agg = panels.seed_stats(pd.concat([sn, pts]) if len(sn) else pts, ["M"], metric).sort_values("M")
            agg[["lo", "hi"]] = agg[["lo", "hi"]].clip(*panels.ACCURACY_RANGE)
            frac = k / max(len(all_sps) - 1, 1)  # light → dark purple as sparsity grows
            color = tuple(float(c) for c in light + (dark - light) * frac)
            x, y = agg["M"].to_numpy(), agg["mean"].to_numpy() * 100
            ax.errorbar(x, y, yerr=[(agg["mean"] - agg["lo"]).to_numpy() * 100, (agg["hi"] - agg["mean"]).to_numpy() * 100],
                        color=color, marker=FALLBACK_MARKERS[k % len(FALLBACK_MARKERS)], markersize=4, capsize=2,
                        linewidth=1.1, elinewidth=0.7, label=f"ProsPr, sparsity {panels.pct(s)}%")
            if len(sn):
                ax.plot([0], [y[0]], linestyle="none", marker=snip_style["marker"], color=snip_style["color"],
                        markersize=5.5, fillstyle="none", markeredgewidth=1.2, label="SNIP (M = 0)")
        ax.set_xlabel("meta-steps M")
        ax.set_ylabel("test accuracy (%)")
        panels.min_span(ax)
        ms = sorted(set(sub["M"]) | ({0.0} if len(snip) else set()))
        ax.set_xticks(ms)
        ax.set_xticklabels([f"{m:g}" for m in ms])
        ax.set_title(panels.panel_title(key, notes.get((key["dataset"], key["model"]), ""), missing, res.arms))
    used = pd.concat(used)
    order = ["SNIP (M = 0)"] + [f"ProsPr, sparsity {panels.pct(s)}%" for s in all_sps]
    return panels.finish(fig, "ProsPr – test accuracy vs. number of meta-steps", panels.context_line(res, used),
                         order=order)
