"""The sections of the replication report, each a list of markdown lines (prunebench.report.replication puts
them together): where the results come from, compute, a paper's replication summary, one claim's block, the
trainability table, the accuracy table, the closing note."""
from __future__ import annotations

import math

import pandas as pd
from scipy import stats as sps

from prunebench.report import stats
from prunebench.report.arms import lookup
from prunebench.report.claims.check import NOT_RUN, STATUSES
from prunebench.report.claims.files import is_accuracy
from prunebench.report.markdown import (DATASET_LABELS, difference, magnitude, md, missing, operand, pct, pvalue,
                                        setting_text, table)
from prunebench.report.outcomes import AT_CHANCE, CHANCE_FACTOR, DIVERGED, NOT_TRAINED, TRAINED, outcomes

RUN_BLOCK = ("<!-- run -->", "<!-- /run -->")
COMPUTE_BLOCK = ("<!-- compute -->", "<!-- /compute -->")


def _unknown(v) -> str:
    return "unknown" if missing(v) else str(v)


def provenance(summary: pd.DataFrame) -> list:
    """Per dataset × model: data copy, devices, preset, cells, seeds, measured-only / diverged / at chance cells."""
    if summary.empty:
        return ["No results rows."]
    cols = ["dataset", "model", "source_note", "preset"]
    d = summary[cols + ["seed", "device"]].copy()
    d["_outcome"] = outcomes(summary)
    for c in cols:
        d[c] = d[c].map(_unknown)
    rows = []
    for key, g in d.groupby(cols, sort=True):
        seeds = ", ".join(str(int(s)) for s in sorted(g["seed"].dropna().unique()))
        devices = "; ".join(sorted({str(v) for v in g["device"] if not missing(v) and str(v)})) or "unknown"
        n = g["_outcome"].value_counts()
        rows.append(list(key[:3]) + [devices, key[3], len(g), seeds, int(n.get(NOT_TRAINED, 0)),
                                     int(n.get(DIVERGED, 0)), int(n.get(AT_CHANCE, 0))])
    return table(["dataset", "model", "data copy", "device", "preset", "cells", "seeds", "measured only (no training)",
                  "diverged", "at chance"], rows)


def run_block(run: dict, data_label: str, regenerate: str) -> list:
    """The commits that made the cells, the command that ran the pipeline, the regeneration command (masked
    in the determinism comparisons: a command line carries the paths it was run from)."""
    commits = run.get("commits") or []
    if not commits:
        made = "not recorded (the cells' manifests name no git commit)"
    elif len(commits) == 1:
        made = f"commit `{commits[0]}`" + (" (a working tree with uncommitted changes)" if "dirty" in commits[0] else "")
    else:
        made = f"{len(commits)} commits: " + ", ".join(f"`{c}`" for c in commits) + " (not one commit: a reviewer " \
               "cannot tie every number to one version of the code)"
    if commits and run.get("cells_without_commit"):
        made += f"; {run['cells_without_commit']} cells record no commit (measured-only cells: no training manifest)"
    cmd = run.get("command")
    wall = run.get("wall_time_s")
    out = [RUN_BLOCK[0], f"- Cells produced by: {made}.",
           f"- Command that ran the pipeline: " + (f"`{md(cmd)}`" if cmd else "not recorded") + ".",
           f"- Per-seed data (git-tracked, checksummed): `{data_label}`; this report and its figures regenerate "
           f"from it alone with `{regenerate}`."]
    if wall is not None:
        alone = {True: ", alone on the machine", False: ", sharing the machine with other jobs"}.get(run.get("alone"), "")
        out.append(f"- Wall time of the run: {_duration(float(wall))}{alone}"
                   + (f" ({md(run['machine'])})" if run.get("machine") else "") + ".")
    return out + [RUN_BLOCK[1], ""]


def _duration(seconds: float) -> str:
    return f"{seconds / 3600:.2g} h" if seconds >= 3600 else f"{seconds / 60:.2g} min"


def compute(summary: pd.DataFrame) -> list:
    """Compute used: training and pruning time per device, pruning time per method. Measured times are the
    only numbers of the report that change from run to run (the block is marked so tests can mask it)."""
    if summary.empty or "train_time_s" not in summary.columns:
        return []
    d = summary.copy()
    d["device"] = d["device"].map(_unknown)
    out = [COMPUTE_BLOCK[0], "## Compute used", "",
           "Wall time of the training and pruning steps, summed over cells (measured; excludes data preparation, "
           "figures and process start-up).", ""]
    out += table(["device", "cells", "training", "pruning"],
                 [[dev, len(g), _duration(float(g["train_time_s"].fillna(0).sum())),
                   _duration(float(g["prune_time_s"].fillna(0).sum()))] for dev, g in d.groupby("device", sort=True)])
    pr = d.dropna(subset=["prune_time_s"])
    if len(pr):
        out += ["", "Pruning wall time per method (mean over its cells, seconds):", ""]
        out += table(["method", "model", "cells", "mean", "max"],
                     [[m, model, len(g), f"{g['prune_time_s'].mean():.3g}", f"{g['prune_time_s'].max():.3g}"]
                      for (m, model), g in pr.groupby(["method", "model"], sort=True)])
    return out + [COMPUTE_BLOCK[1], ""]


def obstacles(methods, run: dict) -> list:
    """The paper-vs-code differences of `methods` with their option names (from run.json, written by the
    aggregator from the pruners' typed options)."""
    seen, out = set(), []
    for r in run.get("paper_vs_code", []):
        if r["method"] in set(methods) and (r["option"], r["note"]) not in seen:
            seen.add((r["option"], r["note"]))
            out.append(f"`{r['option']}` ({r['method']}): {r['note']}")
    return out


def replication_summary(p, config: dict, verdicts: dict, methods, run: dict) -> list:
    """A ReScience-style summary: full or partial replication, what ran at the paper's protocol and what was
    scaled down (the preset's `replication` block), the claims' verdicts, the obstacles met."""
    rep = (config or {}).get("replication", {}).get(p.paper)
    out = ["### Replication summary", ""]
    if rep:
        out.append(f"- **{rep['scope'].capitalize()} replication** with preset `{config.get('preset', '?')}`.")
        for k, title in (("protocol", "At the paper's protocol"), ("scaled", "Scaled down"), ("missing", "Not run")):
            out += [f"- {title}: {md(item)}" for item in rep.get(k, [])]
    else:
        out.append(f"- Not a replication of the paper's protocol: preset `{config.get('preset', '?')}` runs small "
                   "stand-ins (see its header); the verdicts say whether the claims' directions show up there.")
    for role, what in (("claim", "Claims"), ("check", "Checks (not claims of the paper)")):
        st = [verdicts[c["id"]].status for c in p.claims if c["role"] == role]
        if st:
            out.append(f"- {what}: " + ", ".join(f"{st.count(x)} {x}" for x in STATUSES if st.count(x)) + ".")
    obs = obstacles(methods, run)
    if obs:
        out.append("- Where the official code and the paper's text differ, the paper presets follow the code. Each "
                   "difference below names the option that controls it and, in parentheses, the method it belongs "
                   "to: " + "; ".join(md(o) for o in obs) + ".")
    return out + [""]


def _source(c: dict) -> str:
    return f"- Source: {md(c['source'])}" + (f" (grounding: {md(c['grounding'])})" if c.get("grounding") else "")


def claim_block(c: dict, v) -> list:
    """One claim (or check): what it says, how it is tested, every setting with its numbers, the pooled row."""
    out = [f"#### `{c['id']}` — **{v.status}**", "", f"> {md(c['text'])}", ""]
    meta = [f"kind `{c['kind']}`", f"metric `{v.metric}`", f"quantifier `{c['quantifier']}`"]
    if c.get("op") == ">=":
        meta.append(f"non-inferiority margin {magnitude(c['margin'], is_accuracy(v.metric))}")
    out.append("- " + "; ".join(meta))
    out.append(_source(c))
    if c.get("paper_setting"):
        out.append(f"- Paper setting: {md(c['paper_setting'])}")
    if c.get("note"):
        out.append(f"- Note: {md(c['note'])}")
    rep = c["reported"]
    if rep.get("status") == "transcribed":
        val = rep["value"]
        val = ", ".join(f"{k}: {x}" for k, x in sorted(val.items())) if isinstance(val, dict) else val
        out.append(f"- Paper's numbers: {md(val)} ({md(rep['where'])})")
    else:
        where = "" if rep["where"].strip().lower() == "not transcribed" else f" ({md(rep['where'])})"
        out.append(f"- Paper's numbers: not transcribed{where}")
    out += ["", f"Verdict: **{v.status}** — {md(v.explanation)}", ""]
    if not v.rows:
        return out
    is_pct = is_accuracy(v.metric) and all(x.get("transform", "none") in ("none", "error")
                                            for r in v.rows for x in r["values"].values())
    labels = []
    for r in v.rows:
        labels += [lab for lab in r["values"] if lab not in labels]
    rows = []
    for r in v.rows:
        e = r["estimate"]
        design = {"paired": f"paired ({r['pairs']} seeds)", "welch": "Welch", "one-sample": "one-sample"}[r["design"]]
        if r.get("unpaired"):
            design += f", {r['unpaired']} unpaired"
        rows.append(setting_text(r) + [operand(r["values"][lab], _op_pct(r["values"][lab], is_pct)) if lab in r["values"]
                                       else "—" for lab in labels]
                    + [design, difference(e["diff"], e["lo"], e["hi"], is_pct), magnitude(r.get("mde"), is_pct),
                       pvalue(r.get("p_holds_holm")), r["status"] if r["status"] == stats.HOLDS
                       else f"{r['status']} ({r['reason']})"])
    pool = v.pooled
    if pool and pool.get("k"):
        pooled = difference(pool["estimate"], pool["lo"], pool["hi"], is_pct)
        what = f"{pool['k']} settings; τ² = {pool['tau2']:.2g}, I² = {pool['i2'] * 100:.0f}%" if pool["k"] > 1 \
            else "1 setting"
        rows.append([f"**pooled** ({what})", "", "", ""] + [""] * len(labels)
                    + ["random effects", f"**{pooled}**", magnitude(v.pooled_mde, is_pct), "",
                       "decides the claim" if c["quantifier"] == "pooled" else "(informative)"])
    out += table(["dataset", "model", "init", "sparsity"] + labels
                 + ["design", f"Δ [{int(stats.LEVEL * 100)}% CI]", f"MDE (power {stats.POWER:g})",
                    "Holm p", "verdict"], rows)
    return out + [""]


def _op_pct(v: dict, is_pct: bool) -> bool:
    return is_pct and v.get("transform", "none") in ("none", None, "error")


def _mcnemar(a: pd.Series, b: pd.Series) -> str:
    """Exact McNemar test on paired failures (a failed, b not vs b failed, a not)."""
    n01 = int((a & ~b).sum())
    n10 = int((~a & b).sum())
    if n01 + n10 == 0:
        return "no discordant pairs"
    p = sps.binomtest(n01, n01 + n10, 0.5).pvalue
    return f"{n01} vs {n10} discordant pairs, exact McNemar p = {pvalue(p)}"


def trainability(summary: pd.DataFrame, arms: list, catalog: dict, metric: str, pairs=()) -> list:
    """Per setting and arm: seeds, how many trained / diverged (and when) / stayed at chance, and the mean
    training loss at the first evaluation; then, for each pair of arms a paired claim compares, the failures
    compared seed by seed (McNemar)."""
    d = summary[summary["arm"].isin(arms)].copy()
    d = d[~(outcomes(d) == NOT_TRAINED)] if len(d) else d
    if d.empty:
        return []
    d["_outcome"] = outcomes(d, metric)
    out = ["### Trainability", "",
           f"Every trained seed, by outcome: **diverged** (the training loss became non-finite; the step it was "
           f"detected at in parentheses), **at chance** (a finite run whose test accuracy stayed below "
           f"{CHANCE_FACTOR:g}× chance: it did not learn), **trained**. No seed is left out of this table; a claim "
           f"row lists the seeds without a value on its metric.", ""]
    first_loss = d.get("train_loss_first")
    rows = []
    keys = ["dataset", "model", "init", "sparsity", "arm"]
    d["_arm_order"] = d["arm"].map(lambda a: lookup(catalog, a).order_key())
    for (ds, model, init, s, arm), g in d.sort_values(["dataset", "model", "init", "sparsity", "_arm_order"]).groupby(
            keys, sort=False):
        n = g["_outcome"].value_counts()
        steps = sorted(int(x) for x in g.loc[g["_outcome"] == DIVERGED, "diverged_step"].dropna())
        div = f"{int(n.get(DIVERGED, 0))}" + (f" ({', '.join(map(str, steps))})" if steps else "")
        loss = g["train_loss_first"].mean() if first_loss is not None else math.nan
        rows.append([DATASET_LABELS.get(ds, ds), model, init, f"{s * 100:g}%", lookup(catalog, arm).label, len(g),
                     int(n.get(TRAINED, 0)), div, int(n.get(AT_CHANCE, 0)), "—" if missing(loss) else f"{loss:.3f}"])
    out += table(["dataset", "model", "init", "sparsity", "arm", "seeds", "trained", "diverged (at step)",
                  "at chance", "train loss, first evaluation (mean)"], rows)
    lines = []
    for lhs, rhs in pairs:
        a = d[d["arm"] == lhs].set_index(["dataset", "model", "init", "sparsity", "seed"])["_outcome"] != TRAINED
        b = d[d["arm"] == rhs].set_index(["dataset", "model", "init", "sparsity", "seed"])["_outcome"] != TRAINED
        common = a.index.intersection(b.index)
        if len(common):
            lines.append(f"- {lookup(catalog, lhs).label} vs {lookup(catalog, rhs).label}, failures over "
                         f"{len(common)} paired seeds: {int(a[common].sum())} vs {int(b[common].sum())} "
                         f"({_mcnemar(a[common], b[common])}).")
    return out + ([""] + lines if lines else []) + [""]


def accuracy_table(summary: pd.DataFrame, arms: list, catalog: dict, reported: list, metric: str) -> list:
    """Per setting and arm: the claims' metric, final and best accuracy (mean ± std over the seeds with a value),
    seeds and failures, and the paper's number where transcribed (ours − theirs with a one-sample interval)."""
    d = summary[summary["arm"].isin(arms)].copy()
    d = d[~(outcomes(d) == NOT_TRAINED)] if len(d) else d
    if d.empty:
        return ["No trained runs of this paper's arms in these results.", ""]
    d["init"] = d["init"].map(lambda v: "—" if missing(v) else str(v))
    d["_outcome"] = outcomes(d, metric)
    cols = list(dict.fromkeys([metric, "final_acc", "best_acc"]))
    rep = {(r["dataset"], r["model"], r["arm"], round(float(r["sparsity"]), 6), r["metric"]): r for r in reported}
    matched, rows = set(), []
    d["_arm_order"] = d["arm"].map(lambda a: lookup(catalog, a).order_key())
    d = d.sort_values(["dataset", "model", "init", "_arm_order", "sparsity"])
    for (ds, model, init, arm, s), g in d.groupby(["dataset", "model", "init", "arm", "sparsity"], sort=False):
        cells = [DATASET_LABELS.get(ds, ds), model, init, lookup(catalog, arm).label, f"{s * 100:g}%"]
        for c in cols:
            v = pd.to_numeric(g[c], errors="coerce").dropna() if c in g.columns else pd.Series(dtype=float)
            cells.append("—" if v.empty else pct(v.mean()) + (f" ± {pct(v.std())}" if len(v) > 1 else "")
                         + (f" (n={len(v)})" if len(v) != len(g) else ""))
        fails = int((g["_outcome"] != TRAINED).sum())
        cells.append(f"{len(g)}" + (f" ({fails} failed)" if fails else ""))
        paper = []
        for m in cols:
            k = (ds, model, arm, round(float(s), 6), m)
            if k in rep:
                matched.add(k)
                x = rep[k]
                if x["status"] == "transcribed" and x["value"] is not None:
                    ours = pd.to_numeric(g[m], errors="coerce").dropna().tolist()
                    sd = f" ± {pct(x['std'])}" if x.get("std") is not None else ""
                    diff = stats.one_sample(ours, float(x["value"])).text(100.0, " pts") if ours else "—"
                    paper.append(f"{pct(x['value'])}{sd} ({m}, {x['where']}); ours − theirs {diff}")
                else:
                    paper.append(f"not transcribed ({x['where']})")
        rows.append(cells + ["; ".join(paper) or "—"])
    left = sorted(k for k in rep if k not in matched)
    done = [k for k in left if rep[k]["status"] == "transcribed"]
    for k in done:
        x = rep[k]
        rows.append([DATASET_LABELS.get(k[0], k[0]), k[1], "—", k[2], f"{k[3] * 100:g}%"] + ["not run"] * len(cols)
                    + ["0", f"{pct(x['value'])} ({k[4]}, {x['where']})"])
    heads = {metric: f"{metric} % (claims' metric)", "final_acc": "final acc %", "best_acc": "best acc %"}
    out = table(["dataset", "model", "init", "arm", "sparsity"] + [heads[c] for c in cols]
                + ["seeds (failed)", "paper"], rows) + [""]
    rest = len(left) - len(done)
    if rest:
        out += [f"{rest} more cell(s) of the paper have slots in the reference file but were not run here and are "
                "not transcribed.", ""]
    return out


def closing_note(papers, verdicts: dict, config: dict, run: dict) -> list:
    """What a reviewer would still object to, from the verdicts, the data and the preset's own caveats."""
    items = []
    wall = run.get("wall_time_s")
    if wall is None:
        items.append("The run's wall time was not recorded (`prunebench report --data … --wall-time-s …` adds it).")
    elif run.get("alone") is not True:
        items.append("The run's wall time was measured with other jobs on the machine, not alone.")
    commits = run.get("commits") or []
    if len(commits) != 1 or any("dirty" in c for c in commits):
        items.append("The cells do not come from one clean commit: a number cannot be tied to one version of the "
                     "code.")
    for p in papers:
        claims = [c for c in p.claims if c["role"] == "claim"]
        if claims and all(c["reported"].get("status") != "transcribed" for c in claims):
            items.append(f"{p.paper}: the paper's own numbers are not transcribed, so every verdict is about the "
                         "direction of an effect, not its size against the paper's.")
        for c in claims:
            v = verdicts[c["id"]]
            pool = v.pooled
            if v.status == stats.INCONCLUSIVE and pool and pool.get("k") and v.pooled_mde is not None:
                is_pct = is_accuracy(v.metric)
                items.append(f"`{c['id']}` is inconclusive: pooled Δ {difference(pool['estimate'], pool['lo'], pool['hi'], is_pct)} "
                             f"against a minimum detectable pooled effect of {magnitude(v.pooled_mde, is_pct)}; "
                             "more seeds or settings would decide it.")
            elif v.status == NOT_RUN:
                items.append(f"`{c['id']}` was not run by this preset.")
        for item in (config or {}).get("replication", {}).get(p.paper, {}).get("scaled", []):
            items.append(f"{p.paper}, scaled down: {item}")
    return ["## Closing note: what a reviewer would still object to", ""] + [f"- {md(i)}" for i in items] + [""]
