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
from pathlib import Path

import pandas as pd

from prunebench import claims as claims_mod
from prunebench.figures import ARM_LABELS, DATASET_LABELS, FIGURES, Results, load_results
from prunebench.io import atomic_path

PAPER_ORDER = ("force", "spp", "prospr", "fggp")
_ARM_ORDER = list(ARM_LABELS)


def _arm_key(arm: str):
    base = arm
    for suf in ("_ai", "_sparse"):
        if arm.endswith(suf):
            base = arm[: -len(suf)]
    if base.startswith("prospr_m"):
        base = "prospr"
    return (_ARM_ORDER.index(base) if base in _ARM_ORDER else len(_ARM_ORDER), arm)


def _pct(v) -> str:
    return f"{v * 100:.2f}"


def _num(v: dict) -> str:
    """mean ± std (n) of one operand, in % for accuracies."""
    pct = v.get("metric") in claims_mod.ACC_METRICS and v.get("transform", "none") in ("none", None, "error")
    f = (lambda x: f"{x * 100:.2f}%") if pct else (lambda x: f"{x:.4g}")
    sd = f" ± {f(v['std'])}" if v.get("std") is not None else ""
    return f"{f(v['mean'])}{sd} (n={v['n']})"


def _md(s) -> str:
    return str(s).replace("|", "\\|").replace("\n", " ")


def _claim_arms(c: dict) -> list:
    arms = []
    for k in ("lhs", "rhs"):
        if k in c:
            arms.append(c[k]["arm"])
    if "arm" in c:
        arms.append(c["arm"])
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
    lines = ["| dataset | model | data copy | device | preset | cells | seeds |", "|---|---|---|---|---|---|---|"]
    cols = ["dataset", "model", "source_note", "device", "preset"]
    d = S[cols + ["seed"]].copy()
    for c in cols:
        d[c] = d[c].map(lambda v: "unknown" if v is None or (isinstance(v, float) and pd.isna(v)) else str(v))
    for key, g in d.groupby(cols, sort=True):
        seeds = ", ".join(str(int(s)) for s in sorted(g["seed"].dropna().unique()))
        lines.append("| " + " | ".join(_md(k) for k in key) + f" | {len(g)} | {seeds} |")
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
        head = ["dataset", "model", "sparsity", "init"] + [_md(lab) for lab in labels] + ["Δ", "true?"]
        out += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for r in v.numbers:
            cells = [DATASET_LABELS.get(r.get("dataset"), str(r.get("dataset", "—"))), str(r.get("model", "—")),
                     f"{r['sparsity'] * 100:g}%" if r.get("sparsity") is not None else "—", str(r.get("init", "—"))]
            cells += [_num(r["values"][lab]) if lab in r["values"] else "—" for lab in labels]
            first = next(iter(r["values"].values()))
            pct = first.get("metric") in claims_mod.ACC_METRICS and first.get("transform", "none") in ("none", "error")
            d = r.get("diff")
            cells.append("—" if d is None else (f"{d * 100:+.2f} pts" if pct else f"{d:+.4g}"))
            cells.append("yes" if r["ok"] else "no")
            out.append("| " + " | ".join(_md(x) for x in cells) + " |")
        out.append("")
    return out


def _accuracy_table(S: pd.DataFrame, arms: list, reported: list) -> list[str]:
    d = S[S["arm"].isin(arms)].copy()
    if d.empty:
        return ["No runs of this paper's arms in these results.", ""]
    d["init"] = d["init"].map(lambda v: "—" if v is None or (isinstance(v, float) and pd.isna(v)) else str(v))
    keys = ["dataset", "model", "init", "arm", "sparsity"]
    g = d.groupby(keys, sort=False).agg(f_mean=("final_acc", "mean"), f_std=("final_acc", "std"),
                                        b_mean=("best_acc", "mean"), b_std=("best_acc", "std"),
                                        n=("seed", "nunique")).reset_index()
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

    lines = ["| dataset | model | init | arm | sparsity | final acc % (mean ± std) | best acc % | seeds | paper |",
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
                    paper.append(f"{_pct(x['value'])}{sd} ({metric}, {x['where']})")
                else:
                    paper.append(f"not transcribed ({x['where']})")
        cells = [DATASET_LABELS.get(r["dataset"], r["dataset"]), r["model"], r["init"], r["arm"],
                 f"{r['sparsity'] * 100:g}%", ms(r["f_mean"], r["f_std"]), ms(r["b_mean"], r["b_std"]),
                 str(int(r["n"])), "; ".join(paper) or "—"]
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
                  figures_dir=None, generated: str | None = None, results_label: str | None = None):
    """(markdown text, {claim id: Verdict}) — see write_report."""
    res: Results = load_results(results, preset)
    S = res.summary
    papers = claims_mod.load_claims(claims_paths)
    papers.sort(key=lambda p: (PAPER_ORDER.index(p.paper) if p.paper in PAPER_ORDER else len(PAPER_ORDER), p.paper))
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
             "(see `paper/README.md`). A claim is checked on the mean over seeds of each setting "
             "(dataset, model, sparsity, init) where all its arms ran; it **holds** when true in all / a majority "
             "/ any of those settings as the claim states, and is **not run** when no such setting exists. "
             "Verdicts compare means; the standard deviations beside them show how much to trust small gaps. "
             "Paper numbers are printed only where transcribed.")
    L.append("")
    L += ["## Where the results come from", ""] + _provenance(S) + [""]
    L += ["## Verdicts at a glance", "", "| paper | claims | holds | does not hold | not run |", "|---|---|---|---|---|"]
    for p in papers:
        st = [verdicts[c["id"]].status for c in p.claims]
        L.append(f"| {p.paper} | {len(st)} | {st.count('holds')} | {st.count('does not hold')} | {st.count('not run')} |")
    L.append("")
    for p in papers:
        L += [f"## {p.paper}: {_md(p.title)}", ""]
        meta = [f"{k}: {_md(v)}" for k, v in p.meta.items() if k != "notes"]
        if meta:
            L += ["- " + m for m in meta] + [""]
        if p.meta.get("notes"):
            L += [_md(p.meta["notes"]), ""]
        L += ["### Claims", "", "| id | claim | verdict |", "|---|---|---|"]
        for c in p.claims:
            L.append(f"| `{c['id']}` | {_md(c['text'])} | **{verdicts[c['id']].status}** |")
        L.append("")
        for c in p.claims:
            L += _claim_block(c, verdicts[c["id"]])
        L += ["### Our numbers", "", "Test accuracy (%), mean ± std over seeds, beside the paper's number where "
              "transcribed.", ""]
        L += _accuracy_table(S, _paper_arms(p, set(S["arm"].dropna())), p.reported)
        specs = [s for s in FIGURES.values() if s.paper == p.paper]
        if specs:
            L += ["### Figures", ""]
            for s in specs:
                if figures_dir is None:
                    L += [f"- `{s.name}`: {_md(s.reproduces)} (figures not generated for this report)"]
                    continue
                png = Path(figures_dir) / f"{s.name}.png"
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
                 figures_dir=None, generated: str | None = None, results_label: str | None = None) -> dict:
    """Write the replication report to `out` (atomically). `results`: a results folder, a list of them
    or a Results. `figures_dir`: where `<figure name>.png` live (linked relative to `out`).
    Returns {claim id: Verdict}."""
    text, verdicts = render_report(results, claims_paths, out, preset, figures_dir, generated, results_label)
    with atomic_path(out) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return verdicts
