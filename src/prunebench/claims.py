"""Machine-checkable paper claims: load + validate `paper/reference/<paper>.yaml`, check them on summary.csv.

API::

    load_claims(paths, schema=None) -> list[PaperClaims]   # files or folders; one-line PrunebenchError on bad files
    check(claim, summary_df) -> Verdict                      # status: "holds" | "does not hold" | "not run"
    check_all(papers, summary_df) -> {claim id: Verdict}

A claim compares arm means over seeds (of `final_acc` unless the claim or the file's `defaults`
names another metric) in every *setting* — one (dataset, model, sparsity, init) cell — that the
claim's `where` admits and where every operand has results. `dataset: any` (the default) means
"whatever data set / model the results contain", so the same claim is checked on a paper's full
grid and on the quick preset's small one. The claim holds when its comparison is true in all /
a majority / any of those settings (`quantifier`). No setting with data: "not run".
Kinds: greater (lhs > rhs + margin), close (|lhs − rhs| ≤ tolerance), near (|lhs − value| ≤ tolerance),
best (arm beats every listed competitor), monotone (metric increases along a series of arms over x).
See paper/README.md.
"""
from __future__ import annotations

import fnmatch
import math
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from prunebench.errors import PrunebenchError

SETTING = ("dataset", "model", "sparsity", "init")
STATUSES = ("holds", "does not hold", "not run")
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
    return Path(__file__).resolve().parents[2] / "paper" / "reference" / "schema.yaml"


def _expand(paths) -> list[Path]:
    if isinstance(paths, (str, Path)):
        paths = [paths]
    out = []
    for p in paths:
        p = Path(p)
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


def _operand_table(df: pd.DataFrame, op: dict, where: dict, metric: str):
    """(table with key columns + mean/std/n, key columns) for one operand."""
    pinned = [c for c in SETTING if c in op]
    d = df[_names_match(df["arm"], op["arm"])]
    d = _apply_where(d, where, skip=pinned)
    for c in pinned:
        d = d[_sparsity_match(d[c], op[c])] if c == "sparsity" else d[d[c].astype(str) == str(op[c])]
    col = op.get("metric", metric)
    key = [c for c in SETTING if c not in pinned]
    if col not in d.columns:
        return pd.DataFrame(columns=key + ["mean", "std", "n"]), key
    vals = _transform(pd.to_numeric(d[col], errors="coerce"), op.get("transform"))
    d = d.assign(_v=vals).dropna(subset=["_v"])
    # the same cell listed twice (e.g. 'prospr' and 'prospr_m3' globbed together) counts once per seed
    d = d.drop_duplicates(subset=key + ["seed"])
    if d.empty:
        return pd.DataFrame(columns=key + ["mean", "std", "n"]), key
    t = d.groupby(key, sort=True)["_v"].agg(["mean", "std", "count"]).reset_index().rename(columns={"count": "n"})
    return t, key


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


def _decide(oks: list, quantifier: str) -> bool:
    n_ok = sum(oks)
    if quantifier == "all":
        return n_ok == len(oks)
    if quantifier == "majority":
        return 2 * n_ok > len(oks)
    return n_ok >= 1


def _verdict(claim, rows, desc, absent, metric) -> Verdict:
    q = claim.get("quantifier", "all")
    if not rows:
        why = f"no results for {', '.join(absent)}" if absent else "no setting where every operand has results"
        flt = _where_text(claim.get("where", {}))
        return Verdict(claim["id"], "not run", [], f"{desc} — {why}{' (where ' + flt + ')' if flt else ''}.", metric)
    oks = [r["ok"] for r in rows]
    holds = _decide(oks, q)
    need = {"all": "all", "majority": "a majority", "any": "at least one"}[q]
    expl = f"{desc}: true in {sum(oks)} of {len(oks)} setting(s); {need} required."
    if absent:
        expl += f" Not run here: {', '.join(absent)}."
    return Verdict(claim["id"], "holds" if holds else "does not hold", rows, expl, metric)


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
    rows = []
    for _, r in j.sort_values([c for c in SETTING if c in j.columns]).iterrows() if len(j) else []:
        a, b = float(r["mean_l"]), float(r["mean_r"])
        if kind == "greater":
            margin = float(claim.get("margin", 0.0))
            ok = (a - b > margin) if claim.get("op", ">") == ">" else (a - b >= margin - _EPS)
        else:  # close
            ok = abs(a - b) <= float(claim["tolerance"]) + _EPS
        values = {la: _val(a, r["std_l"], r["n_l"], lhs, metric),
                  _rhs_key(ra, la): _val(b, r["std_r"], r["n_r"], rhs, metric)}
        rows.append(dict(_setting(r, j.columns), values=values,
                         diff=a - b, ok=bool(ok)))
    on_txt = _on(metric, lhs, rhs)
    if kind == "greater":
        op = claim.get("op", ">")
        m = float(claim.get("margin", 0.0))
        desc = f"{la} {op} {ra}{f' + {m:g}' if m else ''}{on_txt}"
    else:
        desc = f"|{la} − {ra}| ≤ {claim['tolerance']:g}{on_txt}"
    return rows, desc, _absent(df, [lhs["arm"], rhs["arm"]])


def _on(metric, *ops) -> str:
    used = sorted({op.get("metric", metric) for op in ops})
    return "" if all("metric" in op for op in ops) else f" on {', '.join(used)}"


def _rhs_key(ra: str, la: str) -> str:
    return ra if ra != la else ra + " (rhs)"


def _val(mean, std, n, op: dict, metric: str) -> dict:
    """One operand's numbers; `metric`/`transform` tell the report how to print them."""
    return {"mean": float(mean), "std": _nan(std), "n": int(n), "metric": op.get("metric", metric),
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
        a = float(r["mean"])
        ok = abs(a - claim["value"]) <= claim["tolerance"] + _EPS
        rows.append(dict(_setting(r, t.columns), values={la: _val(a, r["std"], r["n"], op, metric)},
                         diff=a - claim["value"], ok=bool(ok)))
    desc = f"|{la} − {claim['value']:g}| ≤ {claim['tolerance']:g}{_on(metric, op)}"
    return rows, desc, _absent(df, [op["arm"]])


def _check_best(claim, df, metric):
    where = claim.get("where", {})
    target, others = claim["arm"], list(claim["arms"])
    tabs = {}
    for a in [target] + others:
        t, _ = _operand_table(df, {"arm": a}, where, metric)
        if len(t):
            tabs[a] = t.set_index(list(SETTING))
    rows = []
    if target in tabs:
        for idx, r in tabs[target].iterrows():
            comp = {a: tabs[a].loc[idx] for a in others if a in tabs and idx in tabs[a].index}
            if not comp:
                continue
            vals = {target: _val(r["mean"], r["std"], r["n"], {}, metric)}
            vals.update({a: _val(c["mean"], c["std"], c["n"], {}, metric) for a, c in comp.items()})
            best_other = max(float(c["mean"]) for c in comp.values())
            margin = float(claim.get("margin", 0.0))
            ok = (r["mean"] - best_other > margin) if claim.get("op", ">") == ">" else \
                (r["mean"] - best_other >= margin - _EPS)
            rows.append(dict(dict(zip(SETTING, (idx[0], idx[1], float(idx[2]), idx[3]))), values=vals,
                             diff=float(r["mean"]) - best_other, ok=bool(ok)))
        if rows:
            j = _apply_top(pd.DataFrame(rows), where)
            rows = [rows[i] for i in j.index]
    desc = f"{target} {claim.get('op', '>')} best of ({', '.join(others)}) on {metric}"
    return rows, desc, _absent(df, [target] + others)


_DIGITS = re.compile(r"_m(\d+)$")


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
                parsed = d["arm"].astype(str).str.extract(_DIGITS)[0].astype(float)
                x = x.where(x.notna(), parsed)
        parts.append(d.assign(_x=x))
    d = pd.concat(parts) if parts else df.iloc[:0].assign(_x=np.nan)
    d = d.assign(_v=pd.to_numeric(d[metric], errors="coerce") if metric in d.columns else np.nan)
    d = d.dropna(subset=["_x", "_v"]).drop_duplicates(subset=list(SETTING) + ["_x", "seed"])
    rows = []
    inc = claim.get("direction", "increasing") == "increasing"
    mode = claim.get("mode", "pairwise")
    tol = float(claim.get("tolerance", 0.0))
    if len(d):
        g = d.groupby(list(SETTING) + ["_x"], sort=True)["_v"].agg(["mean", "std", "count"]).reset_index()
        for key, s in g.groupby(list(SETTING), sort=True):
            if len(s) < 2:
                continue
            s = s.sort_values("_x")
            y = s["mean"].to_numpy() * (1 if inc else -1)
            if mode == "endpoints":
                ok = y[-1] > y[0]
            else:
                ok = bool(np.all(np.diff(y) >= -tol - _EPS))
            vals = {f"x={x:g}": _val(m, sd, n, {}, metric)
                    for x, m, sd, n in zip(s["_x"], s["mean"], s["std"], s["count"])}
            rows.append(dict(dict(zip(SETTING, (key[0], key[1], float(key[2]), key[3]))), values=vals,
                             diff=float(s["mean"].iloc[-1] - s["mean"].iloc[0]), ok=bool(ok)))
        if rows:
            j = _apply_top(pd.DataFrame(rows), where)
            rows = [rows[i] for i in j.index]
    series = ", ".join(f"{p['arm']}(x={p['x']:g})" if "x" in p else f"{p['arm']}(x={p['x_column']})"
                       for p in claim["series"])
    what = "last > first" if mode == "endpoints" else f"non-{'de' if inc else 'in'}creasing within {tol:g}"
    desc = f"{metric} {'increasing' if inc else 'decreasing'} in x along {series} ({what})"
    return rows, desc, _absent(df, [p["arm"] for p in claim["series"]])


_KINDS = {"greater": _check_pair, "close": _check_pair, "near": _check_near, "best": _check_best,
          "monotone": _check_monotone}


def check(claim: dict, summary: pd.DataFrame) -> Verdict:
    """Verdict of one (validated) claim on a summary table, using the mean over seeds per setting."""
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


def check_all(papers: list[PaperClaims], summary: pd.DataFrame) -> dict:
    return {c["id"]: check(c, summary) for p in papers for c in p.claims}
