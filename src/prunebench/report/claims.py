"""Machine-checkable paper claims: load + validate `paper/reference/<paper>.yaml`, check them on summary.csv.

API::

    load_claims(paths, schema=None) -> list[PaperClaims]   # files or folders; one-line PrunebenchError on bad files
    check(claim, summary_df) -> Verdict      # status: "holds" | "contradicted" | "inconclusive" | "not run"

A claim compares arms over seeds (on `final_acc` unless the claim or the file's `defaults` names
another metric) in every *setting* — one (dataset, model, sparsity, init) cell — that the claim's
`where` admits and where every operand has results. `dataset: any` (the default) means "whatever data
set / model the results contain", so the same claim is checked on a paper's full grid and on the quick
preset's small one. Per setting, the claimed difference gets a 95% Welch interval over seeds and a
status (`prunebench.report.stats`): **holds** (the interval excludes the claim's bar in the claimed direction),
**contradicted** (it excludes it in the opposite direction) or **inconclusive** (otherwise, or fewer than
3 seeds on a side). The claim's verdict combines its settings by its `quantifier` (all / majority / any).
No setting with data: "not run". Failed seeds (diverged: no accuracy) are counted and left out of the
means; collapsed seeds keep their (chance-level) accuracy and are counted.
Kinds: greater (lhs > rhs + margin), close (|lhs − rhs| ≤ tolerance), near (|lhs − value| ≤ tolerance),
best (arm beats each listed competitor), monotone (metric non-decreasing along a series of arms over x),
beats_ablation (an arm beats its own sanity-check ablation, e.g. its layer-wise shuffle). See paper/README.md.
"""
from __future__ import annotations

import fnmatch
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from prunebench.report import stats
from prunebench.report.arms import ablation_arm, parse_arm
from prunebench.report.resources import claims_path, schema_path
from prunebench.library.errors import PrunebenchError
from prunebench.report.tables import truthy

SETTING = ("dataset", "model", "sparsity", "init")
STATUSES = stats.STATUSES + ("not run",)
ACC_METRICS = ("final_acc", "best_acc")
_EPS = 1e-9


@dataclass
class PaperClaims:
    paper: str
    title: str
    path: str
    claims: list          # validated claim dicts, file defaults merged in (metric, quantifier)
    reported: list        # the paper's per-cell numbers (slots; value None until transcribed)
    meta: dict = field(default_factory=dict)   # citation, arxiv, code, notes


@dataclass
class Verdict:
    claim_id: str
    status: str
    numbers: list         # one dict per setting: dataset, model, sparsity, init, values{label: {mean,std,n}}, ok
    explanation: str
    metric: str = "final_acc"

    def to_dict(self) -> dict:
        return asdict(self)


# --------------------------------------------------------------------------------------------
# Loading and validation
# --------------------------------------------------------------------------------------------
def _default_schema_path() -> Path:
    return schema_path()  # shipped with the package (prunebench.report.resources)


def _expand(paths) -> list[Path]:
    if isinstance(paths, (str, Path)):
        paths = [paths]
    out = []
    for p in paths:
        p = claims_path(p)  # a path, or a shipped paper's key ("force")
        if p.is_dir():
            out += sorted(q for q in p.glob("*.yaml") if q.name != "schema.yaml")
        elif p.exists():
            out.append(p)
        else:
            raise PrunebenchError(f"missing claims file {str(p)!r}")
    if not out:
        raise PrunebenchError(f"no claims files in {', '.join(str(p) for p in paths)!r}")
    return out


def _read_yaml(path: Path):
    import yaml

    try:
        return yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise PrunebenchError(f"{path}:{where} invalid YAML: {problem}") from None
    except UnicodeDecodeError as e:
        raise PrunebenchError(f"{path}: not UTF-8 text ({e.reason})") from None


def _one_line(s: str, n=180) -> str:
    s = " ".join(str(s).split())
    return s if len(s) <= n else s[: n - 1] + "…"


def _load_schema(schema, first: Path):
    if isinstance(schema, dict):
        return schema
    candidates = [Path(schema)] if schema is not None else [first.parent / "schema.yaml", _default_schema_path()]
    for c in candidates:
        if c.exists():
            doc = _read_yaml(c)
            if not isinstance(doc, dict):
                raise PrunebenchError(f"{c}: schema is not a mapping")
            return doc
    raise PrunebenchError(f"no claims schema found (looked at {', '.join(str(c) for c in candidates)})")


def validate_file(path, doc, schema) -> None:
    """Raise a one-line PrunebenchError naming the file (and the claim id) on the first problem."""
    import jsonschema

    if not isinstance(doc, dict):
        raise PrunebenchError(f"{path}: expected a mapping with keys paper, title, claims; got {type(doc).__name__}")
    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(doc), key=lambda e: (list(map(str, e.absolute_path)), e.message))
    if errors:
        err = jsonschema.exceptions.best_match(errors)
        loc = list(err.absolute_path)
        where = ""
        if len(loc) >= 2 and loc[0] == "claims" and isinstance(loc[1], int):
            claim = doc["claims"][loc[1]]
            cid = claim.get("id") if isinstance(claim, dict) else None
            rest = "/".join(map(str, loc[2:]))
            where = f"claim {cid!r}" if cid else f"claims[{loc[1]}]"
            where += f" field {rest!r}" if rest else ""
        elif loc:
            where = "field " + repr("/".join(map(str, loc)))
        raise PrunebenchError(_one_line(f"{path}: {where + ': ' if where else ''}{err.message}"))
    seen = set()
    for c in doc.get("claims", []):
        if c["id"] in seen:
            raise PrunebenchError(f"{path}: claim {c['id']!r}: duplicate id")
        seen.add(c["id"])
        if c["kind"] == "best" and c["arm"] in c["arms"]:
            raise PrunebenchError(f"{path}: claim {c['id']!r}: 'arms' (the competitors) must not contain {c['arm']!r}")


def load_claims(paths, schema=None) -> list[PaperClaims]:
    """Load and validate claim files (a file, a folder of *.yaml, or a list of either).

    `schema`: a path or a dict; default: `schema.yaml` beside the first file, else the repository's
    paper/reference/schema.yaml. Claim ids must be unique across all files."""
    files = _expand(paths)
    sch = _load_schema(schema, files[0])
    out, ids = [], {}
    for path in files:
        doc = _read_yaml(path)
        validate_file(path, doc, sch)
        defaults = doc.get("defaults", {})
        claims = []
        for c in doc["claims"]:
            if c["id"] in ids:
                raise PrunebenchError(f"{path}: claim {c['id']!r}: id already used in {ids[c['id']]}")
            ids[c["id"]] = str(path)
            c = dict(c)
            c.setdefault("metric", defaults.get("metric", "final_acc"))
            c.setdefault("quantifier", defaults.get("quantifier", "all"))
            claims.append(c)
        meta = {k: doc[k] for k in ("citation", "arxiv", "code", "notes") if k in doc}
        reported = [dict(r, metric=r.get("metric", defaults.get("metric", "final_acc"))) for r in doc.get("reported", [])]
        for r in reported:
            if r["metric"] in ACC_METRICS and r["value"] is not None and not 0 <= r["value"] <= 1:
                raise PrunebenchError(f"{path}: reported {r['arm']} {r['dataset']}/{r['model']} s={r['sparsity']}: "
                                      f"{r['metric']} {r['value']!r} must be a fraction in [0, 1] (not percent)")
        out.append(PaperClaims(doc["paper"], doc["title"], str(path), claims, reported, meta))
    return out


# --------------------------------------------------------------------------------------------
# Checking
# --------------------------------------------------------------------------------------------
def _names_match(series: pd.Series, flt) -> pd.Series:
    if flt is None or flt == "any":
        return pd.Series(True, index=series.index)
    pats = [flt] if isinstance(flt, str) else list(flt)
    if "any" in pats:
        return pd.Series(True, index=series.index)
    vals = series.astype(str)
    return vals.map(lambda v: any(fnmatch.fnmatchcase(v, p) for p in pats)).astype(bool)


def _sparsity_match(series: pd.Series, flt) -> pd.Series:
    if flt is None or flt == "any":
        return pd.Series(True, index=series.index)
    if isinstance(flt, dict):
        m = pd.Series(True, index=series.index)
        if "min" in flt:
            m &= series >= flt["min"] - _EPS
        if "max" in flt:
            m &= series <= flt["max"] + _EPS
        return m
    vals = [flt] if isinstance(flt, (int, float)) else list(flt)
    return series.map(lambda s: any(abs(s - v) < 1e-6 for v in vals)).astype(bool)


def _apply_where(df: pd.DataFrame, where: dict, skip=()) -> pd.DataFrame:
    m = pd.Series(True, index=df.index)
    for col in ("dataset", "model", "init"):
        if col not in skip:
            m &= _names_match(df[col], where.get(col, "any"))
    if "sparsity" not in skip:
        m &= _sparsity_match(df["sparsity"], where.get("sparsity", "any"))
    return df[m]


def _transform(v: pd.Series, how) -> pd.Series:
    if how in (None, "none"):
        return v
    if how == "error":
        return 1.0 - v
    if how == "neg":
        return -v
    if how == "abs_log":
        return np.abs(np.log(v.where(v > 0)))
    raise PrunebenchError(f"unknown transform {how!r}")


def _prepare(summary: pd.DataFrame) -> pd.DataFrame:
    need = ("dataset", "model", "arm", "sparsity", "seed")
    missing = [c for c in need if c not in summary.columns]
    if missing:
        raise PrunebenchError(f"summary table lacks column(s) {', '.join(missing)}")
    df = summary.copy()
    if "init" not in df.columns:
        df["init"] = "unknown"
    df["init"] = df["init"].astype(object).where(df["init"].notna(), "unknown")
    df["sparsity"] = pd.to_numeric(df["sparsity"], errors="coerce").round(6)
    return df


def _label(op: dict, metric: str) -> str:
    if op.get("label"):
        return op["label"]
    lab = "any arm" if op["arm"] == "*" else op["arm"]
    m = op.get("metric", metric)
    if m != metric:
        lab += f" {m}"
    if op.get("transform") not in (None, "none"):
        lab = f"{op['transform']}({lab})"
    pins = [f"{c}={op[c]:g}" if c == "sparsity" else f"{c}={op[c]}" for c in SETTING if c in op]
    return lab + (f" [{', '.join(pins)}]" if pins else "")


FAILED_NOTE = ("seeds whose training diverged have no accuracy: they are counted as failures and left out of the "
               "means; collapsed seeds (a layer pruned away entirely) keep their measured accuracy and are counted")


def _operand_table(df: pd.DataFrame, op: dict, where: dict, metric: str):
    """(table with key columns + mean/std/n/failed/collapsed, key columns) for one operand."""
    pinned = [c for c in SETTING if c in op]
    d = df[_names_match(df["arm"], op["arm"])]
    d = _apply_where(d, where, skip=pinned)
    for c in pinned:
        d = d[_sparsity_match(d[c], op[c])] if c == "sparsity" else d[d[c].astype(str) == str(op[c])]
    col = op.get("metric", metric)
    key = [c for c in SETTING if c not in pinned]
    cols = key + ["mean", "std", "n", "failed", "collapsed"]
    if col not in d.columns:
        return pd.DataFrame(columns=cols), key
    vals = _transform(pd.to_numeric(d[col], errors="coerce"), op.get("transform"))
    if "diverged" in d.columns:  # a diverged seed has no result, whatever numbers it recorded before diverging
        vals = vals.where(~d["diverged"].map(truthy).astype(bool))
    collapsed = pd.to_numeric(d["collapsed"], errors="coerce").fillna(0) > 0 if "collapsed" in d.columns else False
    d = d.assign(_v=vals, _collapsed=collapsed, _failed=vals.isna())
    # the same cell listed twice (e.g. 'prospr' and 'prospr_m3' globbed together) counts once per seed
    d = d.drop_duplicates(subset=key + ["seed"])
    if d.empty:
        return pd.DataFrame(columns=cols), key
    g = d.groupby(key, sort=True)
    t = g["_v"].agg(["mean", "std", "count"]).rename(columns={"count": "n"})
    t["failed"] = g["_failed"].sum().astype(int)
    t["collapsed"] = g["_collapsed"].sum().astype(int)
    return t.reset_index(), key


def _apply_top(joined: pd.DataFrame, where: dict) -> pd.DataFrame:
    spec = where.get("sparsity")
    if not (isinstance(spec, dict) and "top" in spec) or "sparsity" not in joined.columns or joined.empty:
        return joined
    k = spec["top"]
    grp = [c for c in ("dataset", "model", "init") if c in joined.columns]
    rank = joined.groupby(grp)["sparsity"].rank(method="dense", ascending=False)
    return joined[rank <= k]


def _setting(row, cols) -> dict:
    out = {}
    for c in SETTING:
        if c in cols:
            v = row[c]
            out[c] = float(v) if c == "sparsity" else str(v)
    return out


def _iv(a_mean, a_sd, a_n, b_mean, b_sd=None, b_n=None) -> stats.Interval:
    sd = lambda v: float("nan") if v is None or pd.isna(v) else float(v)  # noqa: E731
    return stats.summary_interval(float(a_mean), sd(a_sd), int(a_n), float(b_mean),
                                  None if b_n is None else sd(b_sd), None if b_n is None else int(b_n))


def _judge(iv: stats.Interval, kind: str, margin: float = 0.0, tolerance: float = 0.0) -> dict:
    status, reason = stats.verdict(iv, kind, margin=margin, tolerance=tolerance)
    return {"status": status, "reason": reason, "interval": iv.to_dict()}


def _verdict(claim, rows, desc, absent, metric) -> Verdict:
    q = claim.get("quantifier", "all")
    if not rows:
        why = f"no results for {', '.join(absent)}" if absent else "no setting where every operand has results"
        flt = _where_text(claim.get("where", {}))
        return Verdict(claim["id"], "not run", [], f"{desc} — {why}{' (where ' + flt + ')' if flt else ''}.", metric)
    st = [r["status"] for r in rows]
    status = stats.combine(st, q)
    need = {"all": "all", "majority": "a majority", "any": "at least one"}[q]
    counts = ", ".join(f"{st.count(x)} {x}" for x in stats.STATUSES if st.count(x))
    expl = (f"{desc}: {len(st)} setting(s): {counts}; {need} must hold "
            f"({int(stats.LEVEL * 100)}% Welch intervals, at least {stats.MIN_SEEDS} seeds a side).")
    failed = sum(v.get("failed", 0) for r in rows for v in r["values"].values())
    if failed:
        expl += f" {failed} failed seed(s) left out (see the tables)."
    if absent:
        expl += f" Not run here: {', '.join(absent)}."
    return Verdict(claim["id"], status, rows, expl, metric)


def _where_text(where: dict) -> str:
    parts = []
    for k in ("dataset", "model", "init", "sparsity"):
        v = where.get(k, "any")
        if v != "any":
            if isinstance(v, dict):
                v = ", ".join(f"{a} {b}" for a, b in v.items())
            parts.append(f"{k} {v}")
    return "; ".join(parts)


def _absent(df: pd.DataFrame, arms) -> list:
    present = df["arm"].astype(str)
    return [a for a in arms if not present.map(lambda v: fnmatch.fnmatchcase(v, a)).any()]


def _check_pair(claim, df, metric):
    where = claim.get("where", {})
    lhs, rhs = claim["lhs"], claim["rhs"]
    lt, lk = _operand_table(df, lhs, where, metric)
    rt, rk = _operand_table(df, rhs, where, metric)
    on = [c for c in SETTING if c in lk and c in rk]
    # a column pinned on one side is not matched; the other side's value labels the setting
    j = lt.merge(rt, on=on, suffixes=("_l", "_r")) if len(lt) and len(rt) else pd.DataFrame()
    j = _apply_top(j, where)
    la, ra = _label(lhs, metric), _label(rhs, metric)
    kind = claim["kind"]
    margin = float(claim.get("margin", 0.0))
    rows = []
    for _, r in j.sort_values([c for c in SETTING if c in j.columns]).iterrows() if len(j) else []:
        if not (r["n_l"] and r["n_r"]):
            continue
        iv = _iv(r["mean_l"], r["std_l"], r["n_l"], r["mean_r"], r["std_r"], r["n_r"])
        judged = (_judge(iv, "greater", margin=margin) if kind == "greater"
                  else _judge(iv, "close", tolerance=float(claim["tolerance"])))
        values = {la: _val(r, "_l", lhs, metric), _rhs_key(ra, la): _val(r, "_r", rhs, metric)}
        rows.append(dict(_setting(r, j.columns), values=values, diff=iv.diff, **judged))
    on_txt = _on(metric, lhs, rhs)
    if kind == "greater":
        desc = f"{la} {claim.get('op', '>')} {ra}{f' + {margin:g}' if margin else ''}{on_txt}"
    else:
        desc = f"|{la} − {ra}| ≤ {claim['tolerance']:g}{on_txt}"
    return rows, desc, _absent(df, [lhs["arm"], rhs["arm"]])


def _check_ablation(claim, df, metric):
    """The arm beats its own sanity-check ablation (Frankle et al. 2021): greater(arm, arm_<ablation>)."""
    arm = claim["arm"]
    pair = dict(claim, kind="greater", lhs={"arm": arm}, rhs={"arm": ablation_arm(arm, claim["ablation"])})
    return _check_pair(pair, df, metric)


def _on(metric, *ops) -> str:
    used = sorted({op.get("metric", metric) for op in ops})
    return "" if all("metric" in op for op in ops) else f" on {', '.join(used)}"


def _rhs_key(ra: str, la: str) -> str:
    return ra if ra != la else ra + " (rhs)"


def _val(r, suffix: str, op: dict, metric: str) -> dict:
    """One operand's numbers in one setting; `metric`/`transform` tell the report how to print them."""
    g = (lambda k: r[k + suffix]) if suffix else (lambda k: r[k])
    return {"mean": _nan(g("mean")), "std": _nan(g("std")), "n": int(g("n")), "failed": int(g("failed")),
            "collapsed": int(g("collapsed")), "metric": op.get("metric", metric),
            "transform": op.get("transform", "none")}


def _nan(v):
    return None if pd.isna(v) else float(v)


def _check_near(claim, df, metric):
    op = claim["lhs"]
    t, key = _operand_table(df, op, claim.get("where", {}), metric)
    t = _apply_top(t, claim.get("where", {}))
    la = _label(op, metric)
    rows = []
    for _, r in t.iterrows():
        if not r["n"]:
            continue
        iv = _iv(r["mean"], r["std"], r["n"], claim["value"])
        rows.append(dict(_setting(r, t.columns), values={la: _val(r, "", op, metric)}, diff=iv.diff,
                         **_judge(iv, "near", tolerance=float(claim["tolerance"]))))
    desc = f"|{la} − {claim['value']:g}| ≤ {claim['tolerance']:g}{_on(metric, op)}"
    return rows, desc, _absent(df, [op["arm"]])


def _all_of(judged: list) -> dict:
    """A conjunction of sub-comparisons: holds iff all hold, contradicted iff any is (the first such
    interval is shown), else inconclusive (the first undecided one is shown)."""
    for status in (stats.CONTRADICTED, stats.INCONCLUSIVE):
        for j in judged:
            if j["status"] == status:
                return j
    return min(judged, key=lambda j: j["interval"]["lo"])


def _check_best(claim, df, metric):
    where = claim.get("where", {})
    target, others = claim["arm"], list(claim["arms"])
    margin = float(claim.get("margin", 0.0))
    tabs = {}
    for a in [target] + others:
        t, _ = _operand_table(df, {"arm": a}, where, metric)
        t = t[t["n"] > 0]
        if len(t):
            tabs[a] = t.set_index(list(SETTING))
    rows = []
    if target in tabs:
        for idx, r in tabs[target].iterrows():
            comp = {a: tabs[a].loc[idx] for a in others if a in tabs and idx in tabs[a].index}
            if not comp:
                continue
            vals = {target: _val(r, "", {}, metric)}
            vals.update({a: _val(c, "", {}, metric) for a, c in comp.items()})
            judged = [_judge(_iv(r["mean"], r["std"], r["n"], c["mean"], c["std"], c["n"]), "greater", margin=margin)
                      for c in comp.values()]
            pick = _all_of(judged)
            rows.append(dict(dict(zip(SETTING, (idx[0], idx[1], float(idx[2]), idx[3]))), values=vals,
                             diff=pick["interval"]["diff"], **pick))
        if rows:
            j = _apply_top(pd.DataFrame(rows), where)
            rows = [rows[i] for i in j.index]
    desc = f"{target} {claim.get('op', '>')} each of ({', '.join(others)}) on {metric}"
    return rows, desc, _absent(df, [target] + others)


def _check_monotone(claim, df, metric):
    where = claim.get("where", {})
    parts = []
    for p in claim["series"]:
        d = _apply_where(df[_names_match(df["arm"], p["arm"])], where)
        if "x" in p:
            x = pd.Series(float(p["x"]), index=d.index)
        else:
            col = p["x_column"]
            x = pd.to_numeric(d[col], errors="coerce") if col in d.columns else pd.Series(np.nan, index=d.index)
            if col == "meta_steps":  # prospr_m<M> arms name their M
                parsed = d["arm"].astype(str).map(lambda a: parse_arm(a).meta_steps).astype(float)
                x = x.where(x.notna(), parsed)
        parts.append(d.assign(_x=x))
    d = pd.concat(parts) if parts else df.iloc[:0].assign(_x=np.nan)
    d = d.assign(_v=pd.to_numeric(d[metric], errors="coerce") if metric in d.columns else np.nan)
    d = d.dropna(subset=["_x", "_v"]).drop_duplicates(subset=list(SETTING) + ["_x", "seed"])
    rows = []
    sign = 1.0 if claim.get("direction", "increasing") == "increasing" else -1.0
    mode = claim.get("mode", "pairwise")
    tol = float(claim.get("tolerance", 0.0))
    if len(d):
        g = d.groupby(list(SETTING) + ["_x"], sort=True)["_v"].agg(["mean", "std", "count"]).reset_index()
        for key, s in g.groupby(list(SETTING), sort=True):
            if len(s) < 2:
                continue
            s = s.sort_values("_x").reset_index(drop=True)
            pairs = [(len(s) - 1, 0)] if mode == "endpoints" else [(i + 1, i) for i in range(len(s) - 1)]
            judged = []
            for hi_i, lo_i in pairs:  # sign * (later - earlier) > -tol (pairwise) or > 0 (endpoints)
                a, b = s.iloc[hi_i], s.iloc[lo_i]
                iv = _iv(sign * a["mean"], a["std"], a["count"], sign * b["mean"], b["std"], b["count"])
                judged.append(_judge(iv, "greater", margin=0.0 if mode == "endpoints" else -tol))
            pick = _all_of(judged)
            vals = {f"x={x:g}": {"mean": float(m), "std": _nan(sd), "n": int(n), "failed": 0, "collapsed": 0,
                                 "metric": metric, "transform": "none"}
                    for x, m, sd, n in zip(s["_x"], s["mean"], s["std"], s["count"])}
            rows.append(dict(dict(zip(SETTING, (key[0], key[1], float(key[2]), key[3]))), values=vals,
                             diff=float(s["mean"].iloc[-1] - s["mean"].iloc[0]), **pick))
        if rows:
            j = _apply_top(pd.DataFrame(rows), where)
            rows = [rows[i] for i in j.index]
    series = ", ".join(f"{p['arm']}(x={p['x']:g})" if "x" in p else f"{p['arm']}(x={p['x_column']})"
                       for p in claim["series"])
    inc = sign > 0
    what = "last > first" if mode == "endpoints" else f"non-{'de' if inc else 'in'}creasing within {tol:g}"
    desc = f"{metric} {'increasing' if inc else 'decreasing'} in x along {series} ({what})"
    return rows, desc, _absent(df, [p["arm"] for p in claim["series"]])


_KINDS = {"greater": _check_pair, "close": _check_pair, "near": _check_near, "best": _check_best,
          "monotone": _check_monotone, "beats_ablation": _check_ablation}


def check(claim: dict, summary: pd.DataFrame) -> Verdict:
    """Verdict of one (validated) claim on a summary table: per setting, the Welch interval of the claimed
    difference over seeds and its status (prunebench.report.stats); the claim's verdict combines them by its
    quantifier."""
    metric = claim.get("metric", "final_acc")
    if claim.get("kind") not in _KINDS:
        raise PrunebenchError(f"claim {claim.get('id')!r}: unknown kind {claim.get('kind')!r}")
    df = _prepare(summary)
    rows, desc, absent = _KINDS[claim["kind"]](claim, df, metric)
    for r in rows:  # JSON-friendly, deterministic
        r["sparsity"] = round(float(r["sparsity"]), 6) if "sparsity" in r else r.get("sparsity")
        if isinstance(r.get("diff"), float) and math.isnan(r["diff"]):
            r["diff"] = None
    return _verdict(claim, rows, desc, absent, metric)
