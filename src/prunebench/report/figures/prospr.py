"""ProsPr (Alizadeh et al., ICLR 2022): accuracy vs. sparsity, meta-steps ablation."""
from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
import matplotlib.colors

from prunebench.report.arms import ARM_STYLES, arm_label, arm_style, parse_arm
from prunebench.report.arms import FALLBACK_MARKERS
from prunebench.report.figures.style import (  # noqa: F401
    DATASET_LABELS, _agg, _context_line, _dense_line, _density_axis, _finish, _grid, _init_note, _line, _log_ticks, _main_init, _match, _metric_vs_sparsity, _panel_title, _panels, _pct, _placeholder, _register, _seeds_text, _select, _uniq, FIGURES, CB,
)
from prunebench.report.tables import Results

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
    parsed_arms = S["arm"].astype(str).map(parse_arm)
    rows = S[parsed_arms.map(lambda a: a.base == "prospr" and a.variant is None and a.ablation is None)].copy()
    parsed = rows["arm"].astype(str).map(lambda a: parse_arm(a).meta_steps).astype(float)
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
            marker = FALLBACK_MARKERS[k % len(FALLBACK_MARKERS)]
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


