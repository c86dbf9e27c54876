"""SPP (Lee, Ajanthan, Gould, Torr, ICLR 2020): Jacobian singular values (per init, and against sparsity),
approximate isometry, supervision, training-loss curves.

The accuracy figures draw the metric of SPP's claims (`paper/reference/spp.yaml` `defaults`: the accuracy the
official test script reports, `prunebench.report.outcomes`). Which arm adds isometry to which, and which is the
unsupervised twin of which, is read from the summary's columns (`isometry`, `supervision`, `options`)."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from prunebench.report.arms import UNSUPERVISED, lookup
from prunebench.report.claims.files import paper_claims
from prunebench.report.figures import panels
from prunebench.report.figures.look import CB, DARK_GREY
from prunebench.report.figures.registry import register
from prunebench.report.outcomes import TRAINED, outcomes, with_metrics
from prunebench.report.tables import JSV_STAGES, Results

PAPER = "spp"
PRUNER = "snip"   # the pruner SPP studies (docs/methods.md A.7)
_STAGE_STYLE = {"init": ("after init", DARK_GREY, "o"), "prune": ("after pruning", CB[1], "v"),
                "isometry": ("after approx. isometry", CB[2], "^")}


def spp_metric(res: Results) -> tuple:
    """(summary with the metric column, metric name): the metric SPP's claims use."""
    claims = paper_claims(PAPER)
    metric = claims.default_metric if claims else "final_acc"
    protocol = claims.protocol if claims else None
    summary = with_metrics(res.summary, res.history, {metric} - set(res.summary.columns), protocol)
    return summary, metric


def _options(res: Results, arm: str) -> dict:
    rows = res.summary[res.summary["arm"] == arm]["options"].dropna()
    if rows.empty:
        return {}
    v = rows.iloc[0]
    return json.loads(v) if isinstance(v, str) and v.strip().startswith("{") else {}


def twins(res: Results, what: str) -> list:
    """[(plain arm, its variant)]: `what` = "isometry" (the arm that adds approximate isometry) or
    "supervision" (the arm that scores with uniform labels), matched on method, options and the other
    variant columns."""
    arms = [a for a in res.arms.values() if not a.is_ablation]
    out = []
    for v in arms:
        if what == "isometry" and not v.isometry or what == "supervision" and v.supervision != UNSUPERVISED:
            continue
        vopt = {k: x for k, x in _options(res, v.name).items() if not (what == "supervision" and k == "labels")}
        for p in arms:
            same = (p.method == v.method and p.start == v.start and p.meta_steps == v.meta_steps
                    and (p.isometry == v.isometry if what == "supervision" else not p.isometry)
                    and (p.supervision == v.supervision if what == "isometry" else p.supervision != UNSUPERVISED))
            popt = {k: x for k, x in _options(res, p.name).items() if not (what == "supervision" and k == "labels")}
            if same and popt == vopt:
                out.append((p.name, v.name))
                break
    return sorted(out, key=lambda pv: (lookup(res.arms, pv[0]).method != PRUNER, pv))


def _by_init(name: str, res: Results, arms: list, title: str, summary: pd.DataFrame, metric: str,
             error: bool) -> Figure:
    """One panel per dataset × model × sparsity, the init schemes along x, the arms side by side with 95%
    intervals; the dense baseline of each init as a short line (or a note where it has no result)."""
    df = panels.select(summary, arms)
    df = df[df["sparsity"] > 0].dropna(subset=[metric])
    scale = (lambda v: (1 - np.asarray(v)) * 100) if error else (lambda v: np.asarray(v) * 100)
    chosen = [(dict(key, sparsity=s), sub[sub["sparsity"] == s]) for key, sub in panels.split_panels(df, extra=())
              for s in sorted(sub["sparsity"].unique())]
    fig, axes = panels.grid(len(chosen), ncols=min(len(chosen), 2), panel_w=3.3, panel_h=2.3)
    dense = [a.name for a in res.arms.values() if a.method == "dense"]
    dense_rows = panels.select(summary, dense)
    for ax, (key, sub) in zip(axes, chosen):
        inits = sorted(sub["init"].dropna().unique())
        agg = panels.seed_stats(sub, ["arm", "init"], metric)
        present, missing = panels.arm_rows(agg, arms)
        for k, (arm, a) in enumerate(present):
            x = np.array([inits.index(i) for i in a["init"]]) + (k - (len(present) - 1) / 2) * 0.18
            panels.points(ax, x, a, lookup(res.arms, arm), scale, connect=False)
        no_dense = []
        for i, init in enumerate(inits):
            d = panels.match(dense_rows, {"dataset": key["dataset"], "model": key["model"], "init": init})
            d = d[outcomes(d, metric) == TRAINED] if len(d) else d  # diverged / dead seeds: no baseline
            vals = d[metric].dropna()
            if vals.empty:
                no_dense.append(init)
                continue
            st = lookup(res.arms, dense[0]).style
            agg_d = panels.seed_stats(d.assign(_k=0), ["_k"], metric).iloc[0]
            bounds = panels.ACCURACY_RANGE
            m, lo, hi = scale(agg_d["mean"]), scale(np.clip(agg_d["lo"], *bounds)), scale(np.clip(agg_d["hi"], *bounds))
            ax.hlines(m, i - 0.42, i + 0.42, color=st["color"], linestyle=st["linestyle"], linewidth=1.0,
                      label=lookup(res.arms, dense[0]).label)
            if hi != lo:
                ax.fill_between([i - 0.42, i + 0.42], min(lo, hi), max(lo, hi), color=st["color"], alpha=0.07,
                                linewidth=0)
        if dense and no_dense:
            panels.note(ax, "dense: no result under " + ", ".join(no_dense), where="top")
        elif not dense:
            panels.note(ax, "dense baseline not run", where="top")
        ax.set_xticks(range(len(inits)))
        ax.set_xticklabels([str(i).replace("_", "\n") for i in inits], fontsize=6.5)
        ax.set_xlim(-0.6, len(inits) - 0.4)
        ax.set_ylabel(panels.metric_label(metric, error))
        panels.min_span(ax)
        ax.set_title(panels.panel_title({k: v for k, v in key.items() if k != "sparsity"},
                                        f"sparsity {panels.pct(key['sparsity'])}%", missing, res.arms))
    order = [lookup(res.arms, a).label for a in arms] + [lookup(res.arms, d).label for d in dense]
    return panels.finish(fig, title, panels.context_line(res, df), order=order)


def complete_pairs(df: pd.DataFrame, pairs: list, key=("dataset", "model", "init")) -> pd.DataFrame:
    """The rows of `pairs`' arms in the settings (`key`) where both arms of at least one pair ran; other rows
    (e.g. dense) of those settings too."""
    both = []
    for a, b in pairs:
        sa = df[df["arm"] == a][list(key)].drop_duplicates()
        sb = df[df["arm"] == b][list(key)].drop_duplicates()
        both.append(sa.merge(sb, on=list(key)))
    keep = pd.concat(both).drop_duplicates() if both else df.iloc[:0][list(key)]
    return df.merge(keep, on=list(key)) if len(keep) else df.iloc[:0]


def _comparison(name: str, res: Results, what: str, title: str, metric: str | None, error: bool) -> Figure:
    pairs = twins(res, what)
    if not pairs:
        return panels.placeholder(name, f"no arm pairs differing only by {what} were run", res)
    summary, claims_metric = spp_metric(res)
    metric = metric or claims_metric
    arms = [a for pair in pairs for a in pair]
    summary = complete_pairs(summary, pairs)
    drawn = summary[summary["arm"].isin(arms) & (summary["sparsity"] > 0)].dropna(subset=[metric])
    if drawn.empty:
        return panels.placeholder(name, f"no setting where an arm and its twin differing by {what} both have "
                                        f"{metric}", res)
    one_sparsity = drawn.groupby(["dataset", "model"])["sparsity"].nunique().max() == 1
    if one_sparsity:
        return _by_init(name, res, arms, title, summary, metric, error)
    return panels.metric_vs_sparsity(name, res, arms, title, metric, error=error, split_init=True, summary=summary)


@register("spp_isometry_error", "spp",
          "SPP: test error of pruned networks without and with approximate isometry (each arm beside its twin with "
          "AI), on the metric of SPP's claims (the official test script's), per init scheme, with 95% intervals "
          "over seeds and the dense baseline (the paper's AI-vs-no-AI comparison; table/figure number not "
          "transcribed)",
          ("arms and their approximate-isometry twins", "dense"))
def spp_isometry_error(res: Results, metric: str | None = None) -> Figure:
    return _comparison("spp_isometry_error", res, "isometry",
                       "SPP – test error without / with approximate isometry (AI)", metric, True)


@register("spp_supervision", "spp",
          "SPP: supervised vs. unsupervised (uniform-label) connection sensitivity: test error on the metric of "
          "SPP's claims, per init scheme, with 95% intervals over seeds (the paper's supervision study; number "
          "not transcribed)",
          ("arms and their unsupervised twins", "dense"))
def spp_supervision(res: Results, metric: str | None = None) -> Figure:
    return _comparison("spp_supervision", res, "supervision", "SPP – supervised vs. unsupervised pruning",
                       metric, True)


def jsv_examples_text(rows: pd.DataFrame) -> str:
    """How many training examples each stage's Jacobians were computed on, per seed (summary columns
    `jsv_<stage>_examples`, counted from the recorded singular values; `jsv_examples`, the planned count, for
    tables from before they existed)."""
    counts = {}
    for stage in JSV_STAGES:
        col = f"jsv_{stage}_examples"
        has = rows[f"jsv_{stage}_mean"].notna() if f"jsv_{stage}_mean" in rows else pd.Series(False, index=rows.index)
        if col in rows and rows.loc[has, col].notna().any():
            vals = sorted({int(v) for v in rows.loc[has, col].dropna()})
        elif has.any() and "jsv_examples" in rows and rows.loc[has, "jsv_examples"].notna().any():
            vals = sorted({int(v) for v in rows.loc[has, "jsv_examples"].dropna()})
        else:
            continue
        counts[stage] = "/".join(str(v) for v in vals)
    if not counts:
        return "number of examples not recorded"
    if len(set(counts.values())) == 1:
        n = next(iter(counts.values()))
        return f"Jacobians of {n} training example{'s' if n != '1' else ''} per seed"
    parts = [f"{n} ({_STAGE_STYLE[s][0]})" for s, n in counts.items()]
    return "Jacobians of " + ", ".join(parts) + " training examples per seed"


@register("spp_jsv", "spp",
          "SPP: input–output Jacobian singular values after initialization, after pruning and after approximate "
          "isometry, for each initialization scheme (marker: mean singular value; bar: their SD within a run; "
          "both averaged over seeds; line: min–max over all seeds), with the number of training examples each "
          "stage's Jacobians were computed on in the title (the paper's JSV statistics; table/figure number not "
          "transcribed)",
          ("SNIP's arms (plain and with AI)",))
def spp_jsv(res: Results, sparsity: float | None = None) -> Figure:
    summary = res.summary
    arms = [a.name for a in res.arms.values() if a.method == PRUNER and not a.is_ablation
            and a.supervision != UNSUPERVISED]
    jcols = [f"jsv_{s}_mean" for s in JSV_STAGES if f"jsv_{s}_mean" in summary.columns]
    has = summary[jcols].notna().any(axis=1) if jcols else pd.Series(False, index=summary.index)
    df = summary[has & summary["arm"].isin(arms)]
    if df.empty:
        return panels.placeholder("spp_jsv", "no Jacobian singular values of SNIP's arms were measured", res)
    chosen = panels.split_panels(df, extra=())
    fig, axes = panels.grid(len(chosen), ncols=min(len(chosen), 2), panel_w=3.3, panel_h=2.2)
    used = []
    for ax, (key, sub) in zip(axes, chosen):
        if sparsity is not None:
            s = sparsity
        else:  # the sparsity at which the most init schemes (then stages) were measured; ties: the highest
            cov = sub.groupby("sparsity").agg(inits=("init", "nunique"),
                                              iso=("jsv_isometry_mean", "count")).reset_index()
            s = cov.sort_values(["inits", "iso", "sparsity"]).iloc[-1]["sparsity"]
        sub = sub[sub["sparsity"] == s]
        used.append(sub)
        inits = sorted(sub["init"].dropna().unique())
        for i, init in enumerate(inits):
            rows = sub[sub["init"] == init]
            for j, stage in enumerate(JSV_STAGES):
                label, color, marker = _STAGE_STYLE[stage]
                r = rows[rows[f"jsv_{stage}_mean"].notna()]
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
                            linestyle="none", capsize=2.5, elinewidth=1.6, label=label if i == 0 else "_" + label)
        ax.axhline(1.0, color="black", linewidth=0.6, linestyle=":")
        ax.set_yscale("log")
        ax.set_xticks(range(len(inits)))
        ax.set_xticklabels([str(i).replace("_", "\n") for i in inits], fontsize=6.5)
        ax.set_xlim(-0.6, len(inits) - 0.4)
        ax.set_ylabel("Jacobian singular values (log)")
        ax.set_title(panels.panel_title(key, f"sparsity {panels.pct(s)}%"))
    handles = [Line2D([], [], color=c, marker=mk, linestyle="none", label=lab) for lab, c, mk in _STAGE_STYLE.values()]
    handles.append(Line2D([], [], color="black", linestyle=":", linewidth=0.6, label="isometry (all = 1)"))
    used = pd.concat(used)
    return panels.finish(
        fig, "SPP – Jacobian singular values per initialization (SNIP masks) – " + jsv_examples_text(used),
        panels.context_line(res, used, panels.seeds_text(used),
                            stat="marker: mean singular value, bar: their SD within a run (averages over seeds); "
                                 "line: min–max over all seeds"), handles)


def _log_stats(rows: pd.DataFrame, col: str) -> pd.DataFrame:
    """Per sparsity, the geometric mean of `col` over seeds with its 95% interval (a t interval of the logs)."""
    d = rows.assign(_lg=np.log10(rows[col].where(rows[col] > 0)))
    out = panels.seed_stats(d, ["sparsity"], "_lg")
    for c in ("mean", "lo", "hi"):
        out[c] = 10.0 ** out[c].astype(float)
    return out


@register("spp_jsv_sparsity", "spp",
          "SPP: mean input–output Jacobian singular value of SNIP-pruned networks against the remaining weights, one "
          "line per initialization scheme (100% = the unpruned network at initialization; open markers: after "
          "approximate isometry), geometric mean and 95% interval over seeds: how pruning moves each "
          "initialization away "
          "from dynamical isometry (the paper's signal-propagation analysis; figure number not transcribed)",
          ("SNIP's arms (plain and with AI), trained or measured only",))
def spp_jsv_sparsity(res: Results) -> Figure:
    summary = res.summary
    plain = [a.name for a in res.arms.values() if a.method == PRUNER and not a.is_variant]
    with_ai = [a.name for a in res.arms.values() if a.method == PRUNER and a.isometry and not a.is_ablation
               and a.supervision != UNSUPERVISED]
    df = summary[summary["arm"].isin(plain + with_ai) & (summary["sparsity"] > 0)]
    df = df[df["jsv_prune_mean"].notna()] if "jsv_prune_mean" in df else df.iloc[:0]
    if df.empty:
        return panels.placeholder("spp_jsv_sparsity", "no Jacobian singular values after pruning were measured", res)
    chosen = panels.split_panels(df, extra=())
    fig, axes = panels.grid(len(chosen), ncols=min(len(chosen), 2), panel_w=3.3, panel_h=2.3)
    inits_all = sorted(df["init"].dropna().unique())
    for ax, (key, sub) in zip(axes, chosen):
        for init in sorted(sub["init"].dropna().unique()):
            color = CB[inits_all.index(init) % len(CB)]
            rows = sub[(sub["init"] == init) & sub["arm"].isin(plain)]
            pruned = _log_stats(rows, "jsv_prune_mean").assign(density=lambda d: 1 - d["sparsity"])
            start = _log_stats(rows.assign(sparsity=0.0), "jsv_init_mean").assign(density=1.0)
            line = pd.concat([start, pruned]).sort_values("density", ascending=False)
            if not line.empty:
                ax.errorbar(line["density"], line["mean"], yerr=[line["mean"] - line["lo"], line["hi"] - line["mean"]],
                            color=color, marker="o", markersize=3.5, linewidth=1.1, elinewidth=0.8, capsize=2,
                            label=f"init {init}")
            ai = _log_stats(sub[(sub["init"] == init) & sub["arm"].isin(with_ai)], "jsv_isometry_mean")
            if not ai.empty:
                ax.errorbar(1 - ai["sparsity"], ai["mean"], yerr=[ai["mean"] - ai["lo"], ai["hi"] - ai["mean"]],
                            color=color, marker="o", fillstyle="none", markersize=4.5, linestyle="none",
                            elinewidth=0.8, capsize=2, label="_ai")
        ax.axhline(1.0, color="black", linewidth=0.6, linestyle=":")
        ax.set_yscale("log")
        panels.density_axis(ax, [1.0] + list(1 - sub["sparsity"]))
        ax.set_ylabel("mean Jacobian singular value (log)")
        ax.set_title(panels.panel_title(key))
    handles = [Line2D([], [], color=CB[i % len(CB)], marker="o", markersize=3.5, label=f"init {init}")
               for i, init in enumerate(inits_all)]
    handles.append(Line2D([], [], color="black", marker="o", fillstyle="none", linestyle="none",
                          label="after approx. isometry"))
    handles.append(Line2D([], [], color="black", linestyle=":", linewidth=0.6, label="isometry (= 1)"))
    trained = int(df["trained"].sum()) if "trained" in df else len(df)
    return panels.finish(fig, "SPP – mean JSV vs. remaining weights (SNIP masks) – " + jsv_examples_text(df),
                         panels.context_line(res, df, panels.seeds_text(df, ("dataset", "model", "init", "sparsity"))
                                             + f" · {len(df) - trained} of {len(df)} cells measured only",
                                             stat="geometric mean and 95% interval over seeds"),
                         handles)


@register("spp_training_loss", "spp",
          "SPP: training loss against iterations of each arm beside its twin with approximate isometry (mean and "
          "95% interval over seeds at each evaluation; the loss is the mean over the iterations since the previous "
          "one): how fast training starts, SPP's trainability (the paper's training curves; figure number not "
          "transcribed)",
          ("arms and their approximate-isometry twins",), inputs=("summary.csv", "history.csv"))
def spp_training_loss(res: Results) -> Figure:
    pairs = twins(res, "isometry")
    arms = [a for pair in pairs for a in pair]
    history = panels.select(res.history, arms).dropna(subset=["train_loss", "step"])
    history = complete_pairs(history[history["sparsity"] > 0], pairs, ("dataset", "model", "init", "sparsity"))
    if history.empty:
        return panels.placeholder("spp_training_loss", "no training curves of arms with and without isometry", res)
    chosen = panels.split_panels(history, extra=("init", "sparsity"))
    fig, axes = panels.grid(len(chosen), ncols=min(len(chosen), 2), panel_w=3.3, panel_h=2.0)
    for ax, (key, sub) in zip(axes, chosen):
        agg = panels.seed_stats(sub, ["arm", "step"], "train_loss")
        present, missing = panels.arm_rows(agg, arms)
        for arm, a in present:
            panels.points(ax, a["step"].to_numpy(), a, lookup(res.arms, arm), lambda v: np.asarray(v), markersize=3,
                          bounds=(1e-6, np.inf))
        ax.set_yscale("log")
        panels.log_ticks(ax.yaxis, lambda v: f"{v:g}")
        ax.set_xlabel("iterations")
        ax.set_ylabel("training loss (log)")
        shown = dict(key, init=sub["init"].iloc[0]) if "init" not in key else key
        extra = f"sparsity {panels.pct(sub['sparsity'].iloc[0])}%" if sub["sparsity"].nunique() == 1 else ""
        ax.set_title(panels.panel_title({k: v for k, v in shown.items() if k != "sparsity"}, extra, missing,
                                        res.arms))
    cells = panels.select(res.summary, arms).merge(
        history[["dataset", "model", "init", "sparsity"]].drop_duplicates(), on=["dataset", "model", "init", "sparsity"])
    return panels.finish(fig, "SPP – training loss without / with approximate isometry",
                         panels.context_line(res, cells, panels.seeds_text(history)),
                         order=[lookup(res.arms, a).label for a in arms])
