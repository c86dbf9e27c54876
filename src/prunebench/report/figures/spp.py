"""SPP (Lee, Ajanthan, Gould, Torr, ICLR 2020): Jacobian singular values, approximate isometry, supervision."""
from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from prunebench.report.arms import arm_label, arm_style
from prunebench.report.figures.style import (  # noqa: F401
    DATASET_LABELS, _agg, _context_line, _dense_line, _density_axis, _finish, _grid, _init_note, _line, _log_ticks, _main_init, _match, _metric_vs_sparsity, _panel_title, _panels, _pct, _placeholder, _register, _seeds_text, _select, _uniq, FIGURES, CB,
)
from prunebench.report.tables import Results

_STAGES = (("init", "after init", "#4d4d4d", "o"), ("prune", "after pruning", CB[1], "v"),
           ("isometry", "after approx. isometry", CB[2], "^"))


def jsv_examples_text(rows: pd.DataFrame) -> str:
    """How many training examples the Jacobians were computed on (summary column `jsv_examples`: the pruning
    block's `jsv_examples`, i.e. `prunebench prune --jsv-examples`, used after init and after pruning)."""
    n = sorted({int(v) for v in rows.get("jsv_examples", pd.Series(dtype=float)).dropna()})
    if not n:
        return "number of examples not recorded"
    return f"Jacobians of {'/'.join(str(v) for v in n)} training example{'s' if n != [1] else ''} per seed"


@_register("spp_jsv", "spp",
           "SPP: input–output Jacobian singular values (mean ± std bar, min–max line) after initialization, "
           "after pruning and after approximate isometry, for each initialization scheme, with the number of "
           "training examples the Jacobians were computed on in the title "
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
    return _finish(fig, "SPP – Jacobian singular values per initialization (SNIP masks) – " + jsv_examples_text(used),
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


