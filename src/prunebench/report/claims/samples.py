"""A claim's operands as per-seed samples, per setting, and the comparison of two samples.

A *setting* is one (dataset, model, sparsity, init). An operand (`{arm, metric, transform, label}` plus
optional pinned setting columns) selects the rows of its arm that the claim's `where` admits and gives, per
setting, the value of every seed. A seed without a value (it diverged before the metric exists, or the
metric is undefined for it) is a *failure*: counted and shown, never averaged in. Sweep cells (`trained`
false) only count where they have a value (JSV statistics): they have no accuracy to fail on.
"""
from __future__ import annotations

import fnmatch
import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from prunebench.library.errors import PrunebenchError
from prunebench.report import stats
from prunebench.report.outcomes import untrained
from prunebench.report.tables import truthy

SETTING = ("dataset", "model", "sparsity", "init")
_EPS = 1e-9


def names_match(series: pd.Series, flt) -> pd.Series:
    if flt is None or flt == "any":
        return pd.Series(True, index=series.index)
    pats = [flt] if isinstance(flt, str) else list(flt)
    if "any" in pats:
        return pd.Series(True, index=series.index)
    return series.astype(str).map(lambda v: any(fnmatch.fnmatchcase(v, p) for p in pats)).astype(bool)


def sparsity_match(series: pd.Series, flt) -> pd.Series:
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


def apply_where(df: pd.DataFrame, where: dict, skip=()) -> pd.DataFrame:
    m = pd.Series(True, index=df.index)
    for col in ("dataset", "model", "init"):
        if col not in skip:
            m &= names_match(df[col], where.get(col, "any"))
    if "sparsity" not in skip:
        m &= sparsity_match(df["sparsity"], where.get("sparsity", "any"))
    return df[m]


def transform(v: pd.Series, how) -> pd.Series:
    if how in (None, "none"):
        return v
    if how == "error":
        return 1.0 - v
    if how == "neg":
        return -v
    if how == "abs_log":
        return np.abs(np.log(v.where(v > 0)))
    raise PrunebenchError(f"unknown transform {how!r}")


def prepare(summary: pd.DataFrame) -> pd.DataFrame:
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


@dataclass
class Sample:
    """One operand in one setting: the value of every seed (NaN = failed) and what the seeds went through."""

    values: dict                      # seed -> value (NaN: a failure)
    collapsed: int = 0
    diverged: int = 0
    metric: str = "final_acc"
    transform: str = "none"

    def finite(self) -> dict:
        return {s: v for s, v in self.values.items() if not math.isnan(v)}

    @property
    def failed(self) -> int:
        return len(self.values) - len(self.finite())

    def summary(self) -> dict:
        vals = np.array(list(self.finite().values()), dtype=float)
        mean = float(vals.mean()) if vals.size else None
        std = float(vals.std(ddof=1)) if vals.size > 1 else None
        return {"mean": mean, "std": std, "n": int(vals.size), "failed": self.failed, "diverged": self.diverged,
                "collapsed": self.collapsed, "metric": self.metric, "transform": self.transform}


@dataclass
class Operand:
    spec: dict
    key: list                         # the setting columns it is matched on (the unpinned ones)
    samples: dict = field(default_factory=dict)   # setting tuple (key order) -> Sample


def operand(df: pd.DataFrame, spec: dict, where: dict, metric: str, rows: pd.DataFrame | None = None) -> Operand:
    """The samples of one operand. `rows`: the rows to use instead of selecting `spec['arm']`."""
    pinned = [c for c in SETTING if c in spec]
    d = df[names_match(df["arm"], spec["arm"])] if rows is None else rows
    d = apply_where(d, where, skip=pinned)
    for c in pinned:
        d = d[sparsity_match(d[c], spec[c])] if c == "sparsity" else d[d[c].astype(str) == str(spec[c])]
    col = spec.get("metric", metric)
    key = [c for c in SETTING if c not in pinned]
    op = Operand(spec, key)
    if col not in d.columns or d.empty:
        return op
    vals = transform(pd.to_numeric(d[col], errors="coerce"), spec.get("transform"))
    d = d.assign(_v=vals)
    d = d[~(d.apply(untrained, axis=1) & d["_v"].isna())] if len(d) else d
    # the same cell listed twice (e.g. 'prospr' and 'prospr_m3' globbed together) counts once per seed
    d = d.drop_duplicates(subset=key + ["seed"])
    for k, g in d.groupby(key, sort=True):
        k = k if isinstance(k, tuple) else (k,)
        collapsed = int((pd.to_numeric(g["collapsed"], errors="coerce").fillna(0) > 0).sum()) \
            if "collapsed" in g.columns else 0
        diverged = int(g["diverged"].map(truthy).sum()) if "diverged" in g.columns else 0
        op.samples[tuple(k)] = Sample({int(s): float(v) for s, v in zip(g["seed"], g["_v"])}, collapsed, diverged,
                                      col, spec.get("transform", "none"))
    return op


@dataclass
class Comparison:
    """lhs vs rhs (or a number) in one setting."""

    estimate: stats.Estimate
    pairs: int = 0            # paired design: seeds with a value on both sides
    unpaired: int = 0         # paired design: seeds with a value on one side only (left out of the pairs)


def compare(lhs: Sample, rhs: Sample | float, paired: bool) -> Comparison | None:
    """The estimate of lhs − rhs: paired by seed, Welch, or one-sample against a number. None without data."""
    a = lhs.finite()
    if not a:
        return None
    if not isinstance(rhs, Sample):
        return Comparison(stats.one_sample(list(a.values()), float(rhs)))
    b = rhs.finite()
    if not b:
        return None
    if paired:
        common = sorted(set(a) & set(b))
        if not common:
            return None
        est = stats.paired([a[s] for s in common], [b[s] for s in common])
        return Comparison(est, pairs=len(common), unpaired=len(set(a) ^ set(b)))
    return Comparison(stats.welch(list(a.values()), list(b.values())))


def setting_dict(key: list, k: tuple) -> dict:
    out = {}
    for c, v in zip(key, k):
        out[c] = float(v) if c == "sparsity" else str(v)
    return out
