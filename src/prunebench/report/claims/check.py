"""Check one claim on the results: per-setting comparisons, Holm over the settings, the quantifier, the
pooled random-effects estimate (`prunebench.report.stats` says how each is computed).

    check(claim, summary, history=None, protocol=None) -> Verdict

Kinds (paper/README.md): greater (lhs − rhs > margin; `op: ">="`: non-inferiority, lhs − rhs > −margin),
close (|lhs − rhs| < tolerance), near (|lhs − value| < tolerance), best (arm beats each competitor),
monotone (the metric grows (or falls) along a series of arms placed at x, e.g. ProsPr's meta-steps, or along
the sparsity), beats_ablation (an arm beats its own sanity-check ablation, found by the summary's `ablation`
and `ablation_of` columns).

Designs: two arms of the same setting are compared **paired by seed** (same initialization draw and data
order; SNIP and SNIP + AI also the same mask) unless the claim says `paired: false`; operands pinned to
different settings (e.g. two init schemes) are compared with Welch's t; an operand against a number with a
one-sample t. `best` and `monotone` settings are conjunctions of comparisons: a setting's p-value for the
claim is the largest of its comparisons' (intersection–union), against it the smallest times their number.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import pandas as pd

from prunebench.library.errors import PrunebenchError
from prunebench.report import stats
from prunebench.report.arms import ablation_of, catalog
from prunebench.report.claims.samples import (SETTING, Sample, apply_where, compare, names_match, operand,
                                              prepare, setting_dict)
from prunebench.report.outcomes import with_metrics

NOT_RUN = "not run"
STATUSES = stats.STATUSES + (NOT_RUN,)


@dataclass
class Verdict:
    claim_id: str
    status: str
    rows: list              # one dict per setting (see `_row`)
    explanation: str
    metric: str = "final_acc"
    role: str = "claim"
    quantifier: str = "all"
    pooled: dict = field(default_factory=dict)   # stats.Pooled as a dict (empty: nothing to pool)
    pooled_mde: float | None = None
    bar: str = ""           # what each setting is tested against, in words

    def to_dict(self) -> dict:
        return asdict(self)


def _label(op: dict, metric: str, arms: dict) -> str:
    if op.get("label"):
        return op["label"]
    lab = "any arm" if op["arm"] == "*" else arms[op["arm"]].label if op["arm"] in arms else op["arm"]
    m = op.get("metric", metric)
    if m != metric:
        lab += f" {m}"
    if op.get("transform") not in (None, "none"):
        lab = f"{op['transform']}({lab})"
    pins = [f"{c}={op[c]:g}" if c == "sparsity" else f"{c}={op[c]}" for c in SETTING if c in op]
    return lab + (f" [{', '.join(pins)}]" if pins else "")


def _p(comp, kind, op, margin, tolerance) -> tuple:
    return stats.p_values(comp.estimate, kind, op, margin, tolerance)


def _few(comp) -> bool:
    e = comp.estimate
    return e.n_a < stats.MIN_SEEDS or (e.n_b is not None and e.n_b < stats.MIN_SEEDS)


def _row(setting: dict, values: dict, comp, p_h: float, p_c: float, few: bool, extra=None) -> dict:
    e = comp.estimate
    return dict(setting, values=values, estimate=e.to_dict(), diff=e.diff, design=e.design, pairs=comp.pairs,
                unpaired=comp.unpaired, p_holds=p_h, p_contra=p_c, few=few, mde=e.mde(), **(extra or {}))


# ------------------------------------------------------------------------------------------------ kinds
def _pair_rows(claim, df, metric, arms):
    where = claim.get("where", {})
    lhs, rhs = claim["lhs"], claim["rhs"]
    lo = operand(df, lhs, where, metric)
    ro = operand(df, rhs, where, metric)
    on = [c for c in SETTING if c in lo.key and c in ro.key]
    pinned = len(lo.key) < len(SETTING) or len(ro.key) < len(SETTING)
    paired = claim.get("paired", True) and not pinned
    la, ra = _label(lhs, metric, arms), _label(rhs, metric, arms)
    if ra == la:
        ra += " (rhs)"
    kind = "greater" if claim["kind"] in ("greater", "beats_ablation") else claim["kind"]
    margin, tol, opr = float(claim.get("margin", 0.0)), float(claim.get("tolerance", 0.0)), claim.get("op", ">")
    rows = []
    for lk, ls in lo.samples.items():
        ld = dict(zip(lo.key, lk))
        for rk, rs in ro.samples.items():
            rd = dict(zip(ro.key, rk))
            if any(ld[c] != rd[c] for c in on):
                continue
            comp = compare(ls, rs, paired)
            if comp is None:
                continue
            setting = setting_dict(SETTING, tuple({**rd, **ld}[c] for c in SETTING))
            p_h, p_c = _p(comp, kind, opr, margin, tol)
            rows.append(_row(setting, {la: ls.summary(), ra: rs.summary()}, comp, p_h, p_c, _few(comp)))
    if kind == "greater":
        bar = (f"{la} − {ra} > −{margin:g} (non-inferiority margin {margin:g})" if opr == ">=" else
               f"{la} − {ra} > {margin:g}")
    else:
        bar = f"|{la} − {ra}| < {tol:g}"
    return rows, bar, dict(kind=kind, op=opr, margin=margin, tolerance=tol)


def _check_pair(claim, df, metric, arms):
    return _pair_rows(claim, df, metric, arms)


def _check_ablation(claim, df, metric, arms):
    """The arm beats its own sanity-check ablation (Frankle et al. 2021), found by the summary's columns."""
    arm = claim["arm"]
    abl = ablation_of(arms, arm, claim["ablation"])
    pair = dict(claim, kind="greater", lhs={"arm": arm}, rhs={"arm": abl or f"({claim['ablation']} of {arm})"})
    if abl is None:
        return [], f"{arm} > its {claim['ablation']} ablation", dict(kind="greater", op=">", margin=0.0,
                                                                      tolerance=0.0)
    return _pair_rows(pair, df, metric, arms)


def _check_near(claim, df, metric, arms):
    op = claim["lhs"]
    lo = operand(df, op, claim.get("where", {}), metric)
    la = _label(op, metric, arms)
    tol = float(claim["tolerance"])
    rows = []
    for k, s in lo.samples.items():
        comp = compare(s, float(claim["value"]), False)
        if comp is None:
            continue
        p_h, p_c = _p(comp, "near", ">", 0.0, tol)
        rows.append(_row(setting_dict(lo.key, k), {la: s.summary()}, comp, p_h, p_c, _few(comp)))
    return rows, f"|{la} − {claim['value']:g}| < {tol:g}", dict(kind="near", op=">", margin=0.0, tolerance=tol)


def _conjunction(setting, values, comps, kind_args) -> dict:
    """A setting whose claim is the conjunction of several comparisons (intersection–union test)."""
    judged = [(c, *_p(c, "greater", kind_args["op"], kind_args["margin"], 0.0)) for c in comps]
    undefined = any(math.isnan(j[1]) for j in judged)
    weakest = judged[0] if undefined else max(judged, key=lambda j: j[1])
    p_h = math.nan if undefined else weakest[1]
    p_c = math.nan if undefined else min(1.0, len(judged) * min(j[2] for j in judged))
    return _row(setting, values, weakest[0], p_h, p_c, any(_few(j[0]) for j in judged))


def _check_best(claim, df, metric, arms):
    where = claim.get("where", {})
    target, others = claim["arm"], list(claim["arms"])
    args = dict(kind="greater", op=claim.get("op", ">"), margin=float(claim.get("margin", 0.0)), tolerance=0.0)
    ops = {a: operand(df, {"arm": a}, where, metric) for a in [target] + others}
    paired = claim.get("paired", True)
    rows = []
    for k, ts in ops[target].samples.items():
        comps, values = [], {_label({"arm": target}, metric, arms): ts.summary()}
        for a in others:
            s = ops[a].samples.get(k)
            c = compare(ts, s, paired) if s is not None else None
            if c is not None:
                comps.append(c)
                values[_label({"arm": a}, metric, arms)] = s.summary()
        if comps:
            rows.append(_conjunction(setting_dict(SETTING, k), values, comps, args))
    return rows, f"{target} − each of ({', '.join(others)}) > {args['margin']:g}", args


def _series_points(claim, df, metric):
    """Rows of every series point, with its x (a constant, or a column such as meta_steps or sparsity)."""
    where = claim.get("where", {})
    xcol = next((p["x_column"] for p in claim["series"] if "x_column" in p), None)
    parts = []
    for p in claim["series"]:
        d = apply_where(df[names_match(df["arm"], p["arm"])], where)
        x = pd.Series(float(p["x"]), index=d.index) if "x" in p else pd.to_numeric(d[p["x_column"]], errors="coerce") \
            if p["x_column"] in d.columns else pd.Series(float("nan"), index=d.index)
        parts.append(d.assign(_x=x))
    d = pd.concat(parts) if parts else df.iloc[:0].assign(_x=float("nan"))
    return d.dropna(subset=["_x"]), xcol


def _check_monotone(claim, df, metric, arms):
    d, xcol = _series_points(claim, df, metric)
    key = [c for c in SETTING if c != xcol]
    sign = 1.0 if claim.get("direction", "increasing") == "increasing" else -1.0
    mode = claim.get("mode", "pairwise")
    tol = float(claim.get("tolerance", 0.0))
    args = dict(kind="greater", op=">", margin=0.0 if mode == "endpoints" else -tol, tolerance=0.0)
    spec = {"arm": "*", "metric": claim.get("metric", metric), "transform": claim.get("transform", "none")}
    paired = claim.get("paired", True)
    rows = []
    for k, g in d.groupby(key, sort=True) if len(d) else []:
        k = k if isinstance(k, tuple) else (k,)
        samples = {}
        for x, gx in g.groupby("_x", sort=True):
            op = operand(gx.drop(columns=["_x"]), spec, {}, metric, rows=gx.drop(columns=["_x"]))
            merged = {}
            for s in op.samples.values():
                merged.update(s.values)
            first = next(iter(op.samples.values()), None)
            if first is not None:
                samples[float(x)] = Sample(merged, first.collapsed, first.diverged, first.metric, first.transform)
        xs = sorted(samples)
        if len(xs) < 2:
            continue
        pairs = [(xs[-1], xs[0])] if mode == "endpoints" else list(zip(xs[1:], xs[:-1]))
        comps = []
        for hi, lo in pairs:
            a, b = samples[hi], samples[lo]
            if sign < 0:
                a = Sample({s: -v for s, v in a.values.items()}, a.collapsed, a.diverged, a.metric, a.transform)
                b = Sample({s: -v for s, v in b.values.items()}, b.collapsed, b.diverged, b.metric, b.transform)
            c = compare(a, b, paired)
            if c is not None:
                comps.append(c)
        if comps:
            values = {f"x={x:g}": samples[x].summary() for x in xs}
            rows.append(_conjunction(setting_dict(key, k), values, comps, args))
    series = ", ".join(f"{p['arm']}(x={p['x']:g})" if "x" in p else f"{p['arm']}(x={p['x_column']})"
                       for p in claim["series"])
    what = "last − first > 0" if mode == "endpoints" else f"each step > −{tol:g}"
    m = spec["metric"] if spec["transform"] == "none" else f"{spec['transform']}({spec['metric']})"
    return rows, f"{m} {'increasing' if sign > 0 else 'decreasing'} in x along {series} ({what})", args


KINDS = {"greater": _check_pair, "close": _check_pair, "near": _check_near, "best": _check_best,
         "monotone": _check_monotone, "beats_ablation": _check_ablation}


# ------------------------------------------------------------------------------------------------ verdict
def _top(rows: list, where: dict) -> list:
    """`sparsity: {top: k}`: per dataset × model × init, the k highest sparsities where the claim has a setting."""
    spec = where.get("sparsity")
    if not (isinstance(spec, dict) and "top" in spec):
        return rows
    groups = {}
    for r in rows:
        groups.setdefault((r.get("dataset"), r.get("model"), r.get("init")), set()).add(r.get("sparsity"))
    keep = {k: sorted(v, reverse=True)[:spec["top"]] for k, v in groups.items()}
    return [r for r in rows if r.get("sparsity") in keep[(r.get("dataset"), r.get("model"), r.get("init"))]]


def _judge(rows: list) -> None:
    """Holm over the claim's settings, then each setting's status (in place)."""
    ph = stats.holm([r["p_holds"] for r in rows])
    pc = stats.holm([r["p_contra"] for r in rows])
    for r, a, b in zip(rows, ph, pc):
        r["p_holds_holm"], r["p_contra_holm"] = a, b
        r["status"], r["reason"] = stats.decide(a, b, r["few"])


def _text(claim, rows, bar) -> str:
    q = claim["quantifier"]
    st = [r["status"] for r in rows]
    counts = ", ".join(f"{st.count(x)} {x}" for x in stats.STATUSES if st.count(x))
    need = {"all": "every setting must hold", "majority": "a majority of settings must hold",
            "any": "one setting must hold", "pooled": "the pooled estimate decides"}[q]
    out = (f"{bar}: {len(rows)} setting(s): {counts} (one-sided tests at {stats.ALPHA:g}, Holm-adjusted over the "
           f"{len(rows)} settings, at least {stats.MIN_SEEDS} seeds a side); {need}.")
    failed = sum(v.get("failed", 0) for r in rows for v in r["values"].values())
    if failed:
        out += f" {failed} seed value(s) missing (diverged or undefined; see the trainability table)."
    unpaired = sum(r.get("unpaired", 0) for r in rows)
    if unpaired:
        out += f" {unpaired} seed(s) without a partner left out of the pairs."
    return out


def check(claim: dict, summary: pd.DataFrame, history: pd.DataFrame | None = None, protocol=None) -> Verdict:
    """The verdict of one (validated) claim. `history` and `protocol` let it read derived metrics
    (`official_acc`, `train_loss@1000`, ...; prunebench.report.outcomes) that summary.csv lacks."""
    metric = claim.get("metric", "final_acc")
    if claim.get("kind") not in KINDS:
        raise PrunebenchError(f"claim {claim.get('id')!r}: unknown kind {claim.get('kind')!r}")
    needed = {metric} | {claim[k].get("metric", metric) for k in ("lhs", "rhs") if k in claim}
    df = prepare(with_metrics(summary, history, needed - set(summary.columns), protocol))
    rows, bar, args = KINDS[claim["kind"]](claim, df, metric, catalog(df))
    rows = _top(rows, claim.get("where", {}))
    rows.sort(key=lambda r: tuple(str(r.get(c, "")) if c != "sparsity" else f"{r.get(c, 0):012.6f}"
                                  for c in SETTING))
    q = claim.get("quantifier", "all")
    base = dict(metric=metric, role=claim.get("role", "claim"), quantifier=q, bar=bar)
    if not rows:
        return Verdict(claim["id"], NOT_RUN, [], f"{bar}: no setting where every operand has results.", **base)
    _judge(rows)
    pool = stats.random_effects([r["diff"] for r in rows], [r["estimate"]["se"] for r in rows],
                                [r["estimate"]["df"] for r in rows])
    if q == "pooled":
        status, _ = stats.pooled_status(pool, args["kind"], args["op"], args["margin"], args["tolerance"])
    else:
        status = stats.combine([r["status"] for r in rows], q)
    pooled_mde = pool.as_estimate().mde() if pool.defined else None
    for r in rows:  # JSON-friendly, deterministic
        for k in ("diff", "p_holds", "p_contra", "p_holds_holm", "p_contra_holm", "mde"):
            if isinstance(r.get(k), float) and math.isnan(r[k]):
                r[k] = None
    return Verdict(claim["id"], status, rows, _text(claim, rows, bar),
                   pooled=pool.to_dict() if pool.k else {}, pooled_mde=pooled_mde, **base)


__all__ = ["KINDS", "NOT_RUN", "STATUSES", "Verdict", "check"]
