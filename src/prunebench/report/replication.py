"""The replication report, `paper/replication.md`: each paper's claims with our verdict and the numbers
behind it, our accuracy table beside the paper's numbers where transcribed, where the results came
from (preset, data copy, hardware), and the paper's figures.

API::

    write_report(results_dirs, claims_paths="paper/reference", out="paper/replication.md", preset=None,
                 figures_dir=None, generated=None) -> dict[claim id, Verdict]
    render_report(...) -> str        # the same text, not written

Deterministic: the same tables and claim files give the same bytes (no timestamp unless `generated`
is passed, e.g. a date or a git commit string).
"""
from __future__ import annotations

import fnmatch
import os
import re
from pathlib import Path

import pandas as pd

from prunebench.report import claims as claims_mod
from prunebench.report import stats
from prunebench.report.arms import ablation_arm
from prunebench.report.arms import arm_order_key as _arm_key
from prunebench.report.figures import DATASET_LABELS, FIGURES
from prunebench.library.artifacts import atomic_path
from prunebench.report.papers import order_key as paper_order_key
from prunebench.report.tables import Results, load_results



def _pct(v) -> str:
    return f"{v * 100:.2f}"


def _is_pct(v: dict) -> bool:
    return v.get("metric") in claims_mod.ACC_METRICS and v.get("transform", "none") in ("none", None, "error")


def _num(v: dict) -> str:
    """mean ± std (n seeds; failures) of one operand, in % for accuracies."""
    f = (lambda x: f"{x * 100:.2f}%") if _is_pct(v) else (lambda x: f"{x:.4g}")
    if v.get("mean") is None:
        body = "no value"
    else:
        body = f(v["mean"]) + (f" ± {f(v['std'])}" if v.get("std") is not None else "")
    extra = [f"n={v['n']}"]
    if v.get("failed"):
        extra.append(f"{v['failed']} diverged")
    if v.get("collapsed"):
        extra.append(f"{v['collapsed']} collapsed")
    return f"{body} ({', '.join(extra)})"


def _ci(r: dict, pct: bool) -> str:
    """Δ with its interval, e.g. '+1.23 pts [−0.40, +2.86]'."""
    iv = r.get("interval") or {}
    d = r.get("diff")
    if d is None:
        return "—"
    scale, unit = (100.0, " pts") if pct else (1.0, "")
    lo, hi = iv.get("lo"), iv.get("hi")
    if lo is None or lo != lo:  # NaN: too few seeds for an interval
        return f"{d * scale:+.2f}{unit} [no interval]"
    return f"{d * scale:+.2f}{unit} [{lo * scale:+.2f}, {hi * scale:+.2f}]"


def _md(s) -> str:
    return str(s).replace("|", "\\|").replace("\n", " ")


def _claim_arms(c: dict) -> list:
    arms = []
    for k in ("lhs", "rhs"):
        if k in c:
            arms.append(c[k]["arm"])
    if "arm" in c:
        arms.append(c["arm"])
        if c.get("ablation"):
            arms.append(ablation_arm(c["arm"], c["ablation"]))
    arms += c.get("arms", [])
    arms += [p["arm"] for p in c.get("series", [])]
    return arms


def _paper_arms(paper: claims_mod.PaperClaims, present) -> list:
    pats = {"dense"}
    for spec in FIGURES.values():
        if spec.paper == paper.paper:
            pats |= set(spec.arms)
    for c in paper.claims:
        pats |= {a for a in _claim_arms(c) if a != "*"}
    pats |= {r["arm"] for r in paper.reported}
    arms = {a for a in present if any(fnmatch.fnmatchcase(a, p) for p in pats)}
    return sorted(arms, key=_arm_key)


def _provenance(S: pd.DataFrame) -> list[str]:
    if S.empty:
        return ["No results rows."]
    lines = ["| dataset | model | data copy | device | preset | cells | seeds | diverged cells |",
             "|---|---|---|---|---|---|---|---|"]
    cols = ["dataset", "model", "source_note", "device", "preset"]
    d = S[cols + ["seed"]].copy()
    div = S["diverged"].fillna(False).astype(bool) if "diverged" in S.columns else False
    d["_failed"] = S["final_acc"].isna() | div
    for c in cols:
        d[c] = d[c].map(lambda v: "unknown" if v is None or (isinstance(v, float) and pd.isna(v)) else str(v))
    for key, g in d.groupby(cols, sort=True):
        seeds = ", ".join(str(int(s)) for s in sorted(g["seed"].dropna().unique()))
        lines.append("| " + " | ".join(_md(k) for k in key) + f" | {len(g)} | {seeds} | {int(g['_failed'].sum())} |")
    return lines


def _claim_block(c: dict, v: claims_mod.Verdict) -> list[str]:
    out = [f"#### `{c['id']}` — **{v.status}**", "", f"> {_md(c['text'])}", ""]
    meta = [f"kind `{c['kind']}`", f"metric `{c['metric']}`", f"quantifier `{c['quantifier']}`"]
    out.append("- " + "; ".join(meta))
    out.append(f"- Source: {_md(c['source'])}" + (f" (grounding: {_md(c['grounding'])})" if c.get("grounding") else ""))
    if c.get("paper_setting"):
        out.append(f"- Paper setting: {_md(c['paper_setting'])}")
    if c.get("note"):
        out.append(f"- Note: {_md(c['note'])}")
    rep = c["reported"]
    if rep.get("status") == "transcribed":
        val = rep["value"]
        val = ", ".join(f"{k}: {x}" for k, x in sorted(val.items())) if isinstance(val, dict) else val
        out.append(f"- Paper's numbers: {_md(val)} ({_md(rep['where'])})")
    else:
        where = "" if rep["where"].strip().lower() == "not transcribed" else f" ({_md(rep['where'])})"
        out.append(f"- Paper's numbers: not transcribed{where}")
    out += ["", f"Verdict: **{v.status}** — {_md(v.explanation)}", ""]
    if v.numbers:
        labels = []
        for r in v.numbers:
            for lab in r["values"]:
                if lab not in labels:
                    labels.append(lab)
        head = (["dataset", "model", "sparsity", "init"] + [_md(lab) for lab in labels]
                + [f"Δ [{int(stats.LEVEL * 100)}% CI]", "verdict"])
        out += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for r in v.numbers:
            cells = [DATASET_LABELS.get(r.get("dataset"), str(r.get("dataset", "—"))), str(r.get("model", "—")),
                     f"{r['sparsity'] * 100:g}%" if r.get("sparsity") is not None else "—", str(r.get("init", "—"))]
            cells += [_num(r["values"][lab]) if lab in r["values"] else "—" for lab in labels]
            cells.append(_ci(r, _is_pct(next(iter(r["values"].values())))))
            cells.append(f"{r['status']} ({r['reason']})" if r["status"] != stats.HOLDS else r["status"])
            out.append("| " + " | ".join(_md(x) for x in cells) + " |")
        out.append("")
    return out


def _preset_config(results) -> dict:
    """The preset as the pipeline resolved it (results/<preset>/config.yaml, written by the aggregate rule)."""
    import yaml

    if isinstance(results, (str, Path)) and (Path(results) / "config.yaml").exists():
        return yaml.safe_load((Path(results) / "config.yaml").read_text()) or {}
    return {}


def _hours(seconds: float) -> str:
    return f"{seconds / 3600:.2g} h" if seconds >= 360 else f"{seconds / 60:.2g} min"


def _compute(S: pd.DataFrame) -> list[str]:
    """Compute used: training and pruning time per device, pruning time per method. Measured times are the
    only numbers of the report that change from run to run (this block is marked so tests can mask it)."""
    if S.empty or "train_time_s" not in S.columns:
        return []
    d = S.copy()
    d["device"] = d["device"].map(lambda v: "unknown" if v is None or (isinstance(v, float) and pd.isna(v)) else str(v))
    L = ["<!-- compute -->", "## Compute used", "",
         "Wall time of the training and pruning steps, summed over cells (measured; excludes data preparation, "
         "figures and process start-up).", "", "| device | cells | training | pruning |", "|---|---|---|---|"]
    for dev, g in d.groupby("device", sort=True):
        L.append(f"| {_md(dev)} | {len(g)} | {_hours(float(g['train_time_s'].fillna(0).sum()))} | "
                 f"{_hours(float(g['prune_time_s'].fillna(0).sum()))} |")
    pr = d.dropna(subset=["prune_time_s"])
    if len(pr):
        L += ["", "Pruning wall time per method (mean over its cells, seconds):", "",
              "| method | model | cells | mean | max |", "|---|---|---|---|---|"]
        for (m, model), g in pr.groupby(["method", "model"], sort=True):
            L.append(f"| {m} | {model} | {len(g)} | {g['prune_time_s'].mean():.3g} | {g['prune_time_s'].max():.3g} |")
    return L + ["<!-- /compute -->", ""]


COMPUTE_BLOCK = re.compile(rb"<!-- compute -->.*?<!-- /compute -->\n?", re.S)


def without_compute(report: bytes) -> bytes:
    """The report with its measured-time block removed: the part that must be byte-identical between two runs
    of the same configuration (the determinism tests compare this)."""
    return COMPUTE_BLOCK.sub(b"<!-- compute (masked) -->\n", report)


def _obstacles(paper: str) -> list[str]:
    """The paper-vs-code differences of the methods a paper uses, with their option names (generated)."""
    from prunebench.library.pruners.during import paper_vs_code as during_rows
    from prunebench.library.pruners.registry import paper_vs_code as at_init_rows

    methods = {"force": ("force", "iter_snip", "snip", "grasp"), "spp": ("snip",),
               "prospr": ("prospr", "snip", "grasp", "synflow", "force", "iter_snip"),
               "fggp": ("fggp", "gmp", "mfgn_annealed")}.get(paper, ())
    seen, out = set(), []
    for r in at_init_rows() + during_rows():
        if r["method"] in methods and (r["option"], r["note"]) not in seen:
            seen.add((r["option"], r["note"]))
            out.append(f"`{r['option']}` ({r['method']}): {r['note']}")
    return out


def _replication_summary(p, config: dict, S: pd.DataFrame, verdicts: dict) -> list[str]:
    """A ReScience-style summary: full or partial replication, what ran at the paper's protocol and what was
    scaled down (from the preset's `replication` block), the verdicts, the obstacles met."""
    rep = (config or {}).get("replication", {}).get(p.paper)
    L = ["### Replication summary", ""]
    if rep:
        L.append(f"- **{rep['scope'].capitalize()} replication** with preset `{config.get('preset', '?')}`.")
        for k, title in (("protocol", "At the paper's protocol"), ("scaled", "Scaled down"), ("missing", "Not run")):
            for item in rep.get(k, []):
                L.append(f"- {title}: {_md(item)}")
    else:
        L.append(f"- Not a replication of the paper's protocol: preset `{config.get('preset', '?')}` runs small "
                 "stand-ins (see its header); the verdicts say whether the claims' directions show up there.")
    st = [verdicts[c["id"]].status for c in p.claims]
    L.append("- Claims: " + ", ".join(f"{st.count(x)} {x}" for x in stats.STATUSES + ("not run",) if st.count(x)) + ".")
    obstacles = _obstacles(p.paper)
    if obstacles:
        L.append("- Where the official code and the paper's text differ, the paper presets follow the code. Each "
                 "difference below names the option that controls it and, in parentheses, the method it belongs "
                 "to: " + "; ".join(_md(o) for o in obstacles) + ".")
    return L + [""]


def _ours_minus_theirs(g: pd.DataFrame, value: float) -> str:
    vals = g.dropna().tolist()
    if not vals:
        return "—"
    iv = stats.interval(vals, float(value))
    return iv.text(100.0, " pts")


def _accuracy_table(S: pd.DataFrame, arms: list, reported: list) -> list[str]:
    d = S[S["arm"].isin(arms)].copy()
    if d.empty:
        return ["No runs of this paper's arms in these results.", ""]
    d["init"] = d["init"].map(lambda v: "—" if v is None or (isinstance(v, float) and pd.isna(v)) else str(v))
    # a diverged seed (summary column `diverged`, or no final accuracy) has no result: counted, left out
    div = d["diverged"].fillna(False).astype(bool) if "diverged" in d.columns else False
    d["_failed"] = d["final_acc"].isna() | div
    for c in ("final_acc", "best_acc"):
        d[c] = d[c].where(~d["_failed"])
    keys = ["dataset", "model", "init", "arm", "sparsity"]
    g = d.groupby(keys, sort=False).agg(f_mean=("final_acc", "mean"), f_std=("final_acc", "std"),
                                        b_mean=("best_acc", "mean"), b_std=("best_acc", "std"),
                                        n=("seed", "nunique"), failed=("_failed", "sum"),
                                        ).reset_index()
    g["_arm"] = g["arm"].map(_arm_key)
    g = g.sort_values(["dataset", "model", "init", "_arm", "sparsity"]).drop(columns="_arm")
    rep = {}
    for r in reported:
        rep[(r["dataset"], r["model"], r["arm"], round(float(r["sparsity"]), 6), r["metric"])] = r
    matched = set()

    def ms(m, s):
        if pd.isna(m):
            return "—"
        return f"{_pct(m)} ± {_pct(s)}" if not pd.isna(s) else _pct(m)

    lines = ["| dataset | model | init | arm | sparsity | final acc % (mean ± std) | best acc % | seeds (diverged) | paper |",
             "|---|---|---|---|---|---|---|---|---|"]
    for _, r in g.iterrows():
        paper = []
        for metric in claims_mod.ACC_METRICS:
            k = (r["dataset"], r["model"], r["arm"], round(float(r["sparsity"]), 6), metric)
            if k in rep:
                matched.add(k)
                x = rep[k]
                if x["status"] == "transcribed" and x["value"] is not None:
                    sd = f" ± {_pct(x['std'])}" if x.get("std") is not None else ""
                    ours = d[(d["dataset"] == r["dataset"]) & (d["model"] == r["model"]) & (d["arm"] == r["arm"])
                             & (d["init"] == r["init"]) & ((d["sparsity"] - r["sparsity"]).abs() < 1e-9)][metric]
                    paper.append(f"{_pct(x['value'])}{sd} ({metric}, {x['where']}); ours − theirs "
                                 f"{_ours_minus_theirs(ours, x['value'])}")
                else:
                    paper.append(f"not transcribed ({x['where']})")
        cells = [DATASET_LABELS.get(r["dataset"], r["dataset"]), r["model"], r["init"], r["arm"],
                 f"{r['sparsity'] * 100:g}%", ms(r["f_mean"], r["f_std"]), ms(r["b_mean"], r["b_std"]),
                 f"{int(r['n'])}" + (f" ({int(r['failed'])})" if r["failed"] else ""), "; ".join(paper) or "—"]
        lines.append("| " + " | ".join(_md(c) for c in cells) + " |")
    lines.append("")
    left = sorted(k for k in rep if k not in matched)
    done = [k for k in left if rep[k]["status"] == "transcribed"]
    for k in done:
        x = rep[k]
        lines.insert(-1, "| " + " | ".join(_md(c) for c in [DATASET_LABELS.get(k[0], k[0]), k[1], "—", k[2],
                                                          f"{k[3] * 100:g}%", "not run", "not run", "0",
                                                          f"{_pct(x['value'])} ({k[4]}, {x['where']})"]) + " |")
    rest = len(left) - len(done)
    if rest:
        lines.append(f"{rest} more cell(s) of the paper have slots in the reference file but were not run here "
                     "and are not transcribed.")
        lines.append("")
    return lines


def render_report(results, claims_paths="paper/reference", out="paper/replication.md", preset: str | None = None,
                  figures_dir=None, generated: str | None = None, results_label: str | None = None,
                  embed_dir=None):
    """(markdown text, {claim id: Verdict}) — see write_report."""
    res: Results = load_results(results, preset)
    S = res.summary
    config = _preset_config(results)
    shown = set(config.get("figures", FIGURES)) if config else set(FIGURES)
    papers = claims_mod.load_claims(claims_paths)
    papers.sort(key=lambda p: paper_order_key(p.paper))
    verdicts = {c["id"]: claims_mod.check(c, S) for p in papers for c in p.claims}
    out = Path(out)
    if results_label is None:
        if isinstance(results, (str, Path)):
            results_label = str(results)
        elif isinstance(results, Results):
            results_label = "(tables passed in)"
        else:
            results_label = ", ".join(str(r) for r in results)
    preset_txt = preset or res.preset or "; ".join(sorted({str(p) for p in S["preset"].dropna()})) or "unknown"

    L = ["# Replication report", ""]
    L.append(f"Preset: **{preset_txt}** · results: `{results_label}`" + (f" · generated: {generated}" if generated else ""))
    L.append("")
    L.append("Generated by `prunebench report` from the results tables and the claim files in `paper/reference/` "
             "(see `paper/README.md`). A claim is checked in every setting (dataset, model, sparsity, init) where "
             f"all its arms ran. Per setting, the claimed difference between arms gets a {int(stats.LEVEL * 100)}% "
             "confidence interval over seeds from Welch's t (unequal variances; a bootstrap over 2–5 seeds would be "
             "far too narrow). The setting **holds** when the interval excludes the claim's bar in the claimed "
             "direction, is **contradicted** when it excludes it in the opposite direction, and is **inconclusive** "
             f"otherwise or with fewer than {stats.MIN_SEEDS} seeds on a side. A claim combines its settings by its "
             "quantifier (all: holds if every setting holds, contradicted if any is; majority; any) and is **not "
             "run** when no setting exists. " + claims_mod.FAILED_NOTE.capitalize() + ". Paper numbers are printed "
             "only where transcribed, with ours − theirs and its interval.")
    L.append("")
    L += ["## Where the results come from", ""] + _provenance(S) + [""]
    L += _compute(S)
    head = " | ".join(stats.STATUSES + ("not run",))
    L += ["## Verdicts at a glance", "", f"| paper | claims | {head} |", "|---|---|" + "---|" * 4]
    for p in papers:
        st = [verdicts[c["id"]].status for c in p.claims]
        L.append(f"| {p.paper} | {len(st)} | " + " | ".join(str(st.count(x)) for x in stats.STATUSES + ("not run",))
                 + " |")
    L.append("")
    for p in papers:
        L += [f"## {p.paper}: {_md(p.title)}", ""]
        meta = [f"{k}: {_md(v)}" for k, v in p.meta.items() if k != "notes"]
        if meta:
            L += ["- " + m for m in meta] + [""]
        if p.meta.get("notes"):
            L += [_md(p.meta["notes"]), ""]
        L += _replication_summary(p, config, S, verdicts)
        L += ["### Claims", "", "| id | claim | verdict |", "|---|---|---|"]
        for c in p.claims:
            L.append(f"| `{c['id']}` | {_md(c['text'])} | **{verdicts[c['id']].status}** |")
        L.append("")
        for c in p.claims:
            L += _claim_block(c, verdicts[c["id"]])
        L += ["### Our numbers", "", "Test accuracy (%), mean ± std over seeds, beside the paper's number where "
              "transcribed.", ""]
        L += _accuracy_table(S, _paper_arms(p, set(S["arm"].dropna())), p.reported)
        kinds = {c["kind"] for c in p.claims}
        specs = [s for s in FIGURES.values() if s.name in shown
                 and (s.paper == p.paper or kinds & set(s.claim_kinds))]
        if specs:
            L += ["### Figures", ""]
            for s in specs:
                if figures_dir is None:
                    L += [f"- `{s.name}`: {_md(s.reproduces)} (figures not generated for this report)"]
                    continue
                png = Path(embed_dir or figures_dir) / f"{s.name}.png"
                rel = os.path.relpath(png, out.parent if str(out.parent) else ".").replace(os.sep, "/")
                if png.exists():
                    L += [f"![{s.name}]({rel})", "", f"*`{s.name}`* — {_md(s.reproduces)}", ""]
                else:
                    L += [f"- `{s.name}`: not generated ({rel} missing). {_md(s.reproduces)}", ""]
            if figures_dir is None:
                L.append("")
    text = "\n".join(L).rstrip("\n") + "\n"
    return text, verdicts


def write_report(results, claims_paths="paper/reference", out="paper/replication.md", preset: str | None = None,
                 figures_dir=None, generated: str | None = None, results_label: str | None = None,
                 embed_dir=None) -> dict:
    """Write the replication report to `out` (atomically). `results`: a results folder, a list of them
    or a Results. `figures_dir`: where `<figure name>.png` live. `embed_dir`: a git-tracked folder the
    PNGs are copied into and linked from (relative to `out`), so the report reads without any DVC remote.
    Returns {claim id: Verdict}."""
    if embed_dir is not None and figures_dir is not None:
        import shutil

        for png in sorted(Path(figures_dir).glob("*.png")):
            with atomic_path(Path(embed_dir) / png.name) as tmp:
                shutil.copyfile(png, tmp)
    text, verdicts = render_report(results, claims_paths, out, preset, figures_dir, generated, results_label,
                                   embed_dir)
    with atomic_path(out) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return verdicts
