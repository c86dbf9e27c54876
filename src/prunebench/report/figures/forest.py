"""Forest plots of a paper's claims and checks: per claim, the difference it tests in every setting with its
95% interval (paired, Welch or one-sample, as the verdict computed it), the random-effects pooled estimate as
a diamond, and the claim's bar (0, the non-inferiority margin or the tolerance band). One figure per paper of
the paper table, `<paper>_forest`, drawn from the shipped claim files (`prunebench.report.claims`)."""
from __future__ import annotations

import math

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Polygon

from prunebench.report import claims
from prunebench.report.claims.files import is_accuracy
from prunebench.report.figures import panels
from prunebench.report.figures.look import CB, DARK_GREY, DPI
from prunebench.report.figures.registry import register
from prunebench.report.papers import PAPERS
from prunebench.report.tables import Results

STATUS_COLORS = {"holds": CB[2], "contradicted": CB[3], "inconclusive": DARK_GREY}
SETTING_COLUMNS = ("dataset", "model", "init", "sparsity")


def verdicts(res: Results, paper: str) -> list:
    """[(claim, Verdict)] of the paper's claims and checks that have at least one setting in `res`."""
    p = claims.paper_claims(paper)
    if p is None:
        return []
    out = []
    for c in p.claims:
        v = claims.check(c, res.summary, res.history, p.protocol)
        if v.rows:
            out.append((c, v))
    return out


def _setting_label(row: dict, varying) -> str:
    bits = []
    for c in varying:
        v = row.get(c)
        bits.append(f"{panels.pct(v)}%" if c == "sparsity" else str(v))
    return " · ".join(bits) or "all"


def _bars(claim: dict, scale: float) -> tuple:
    """(vertical lines, shaded band) of the claim's bar on the difference axis."""
    if claim["kind"] in ("close", "near"):
        t = float(claim["tolerance"]) * scale
        return [0.0], (-t, t)
    if claim.get("op") == ">=":
        return [0.0, -float(claim["margin"]) * scale], None
    return sorted({0.0, float(claim.get("margin", 0.0)) * scale}), None


def forest(res: Results, paper: str) -> Figure:
    name = f"{paper}_forest"
    judged = verdicts(res, paper)
    if not judged:
        return panels.placeholder(name, f"no claim of {paper} has a setting with results", res)
    heights = [len(v.rows) + 2.2 for _, v in judged]
    fig = Figure(figsize=(6.8, 1.1 + 0.16 * sum(heights)), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(len(judged), 1, squeeze=False, gridspec_kw={"height_ratios": heights}).ravel()
    for ax, (claim, v) in zip(axes, judged):
        scale, unit = (100.0, " (points)") if is_accuracy(v.metric) else (1.0, "")
        varying = [c for c in SETTING_COLUMNS if len({str(r.get(c)) for r in v.rows}) > 1]
        ys = list(range(len(v.rows), 0, -1))
        for y, r in zip(ys, v.rows):
            e = r["estimate"]
            color = STATUS_COLORS.get(r["status"], DARK_GREY)
            if e["lo"] is not None and not math.isnan(e["lo"]):
                ax.errorbar([e["diff"] * scale], [y], xerr=[[(e["diff"] - e["lo"]) * scale], [(e["hi"] - e["diff"]) * scale]],
                            color=color, marker="s", markersize=3.5, capsize=2, elinewidth=0.9, linestyle="none")
            else:
                ax.plot([e["diff"] * scale], [y], color=color, marker="s", markersize=3.5, fillstyle="none",
                        linestyle="none")
        pool = v.pooled
        if pool and pool.get("lo") is not None and not math.isnan(pool["lo"]):
            m, lo, hi = pool["estimate"] * scale, pool["lo"] * scale, pool["hi"] * scale
            ax.add_patch(Polygon(np.array([[lo, 0], [m, 0.28], [hi, 0], [m, -0.28]]), closed=True,
                                 facecolor=STATUS_COLORS.get(v.status, DARK_GREY), edgecolor="black", linewidth=0.5))
        lines, band = _bars(claim, scale)
        for x in lines:
            ax.axvline(x, color="black", linewidth=0.6, linestyle=":" if x == 0 else "--")
        if band:
            ax.axvspan(band[0], band[1], color=CB[2], alpha=0.08, linewidth=0)
        ax.set_yticks(ys + [0])
        ax.set_yticklabels([_setting_label(r, varying) for r in v.rows] + [f"pooled ({pool.get('k', 0)})"],
                           fontsize=6.0)
        ax.set_ylim(-0.8, len(v.rows) + 0.8)
        ax.tick_params(axis="x", labelsize=6.5)
        how = claim.get("transform") or claim.get("lhs", {}).get("transform")
        what = f"{how}({v.metric})" if how not in (None, "none") else v.metric
        ax.set_xlabel(f"Δ {what}{unit}", fontsize=6.5, labelpad=1)
        role = "check" if v.role == "check" else "claim"
        ax.set_title(f"{claim['id']} ({role}) — {v.status} (quantifier {v.quantifier})", fontsize=7, loc="left")
    used = res.summary
    return panels.finish(fig, f"{PAPERS[paper].citation} – claims: difference per setting (95% interval) "
                              "and pooled (random effects)",
                         panels.context_line(res, used, stat="colour: verdict (green holds, red contradicted, "
                                                             "grey inconclusive)"))


def _make(paper: str):
    def draw(res: Results) -> Figure:
        return forest(res, paper)
    draw.__name__ = f"{paper}_forest"
    return draw


for _paper in PAPERS:
    register(f"{_paper}_forest", _paper,
             f"{PAPERS[_paper].citation}: forest plot of every claim and check of paper/reference/{_paper}.yaml — the "
             "tested difference per setting with its 95% interval (paired by seed where the arms share seeds), "
             "the random-effects pooled estimate (diamond) and the claim's bar; colour = verdict (a summary of "
             "the replication, not a figure of the paper)",
             ("the operands of the paper's claims",), inputs=("summary.csv", "history.csv"))(_make(_paper))
