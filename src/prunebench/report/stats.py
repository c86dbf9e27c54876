"""The statistics behind every verdict (t distribution and quantiles from `scipy.stats`).

A claim compares two operands over seeds in each *setting* (one dataset, model, sparsity, init). Per setting:

- **paired** (`paired`): when both operands are arms of the same setting, seed s of one and seed s of the
  other share the initialization draw, the data order and, for SNIP vs SNIP + AI, the mask: the claim's
  difference is estimated from the per-seed differences (t interval, n_pairs − 1 degrees of freedom);
- **Welch** (`welch`): two independent samples (operands pinned to different settings, e.g. two init schemes),
  unequal variances, Welch–Satterthwaite degrees of freedom;
- **one-sample** (`one_sample`): a sample against a number (a paper's value, an identity's 1.0).

Every estimate carries a two-sided `LEVEL` (95%) interval, one-sided p-values against any bar, and its
**minimum detectable effect** (`Estimate.mde`: the true difference a one-sided test at `ALPHA` would detect with
probability `POWER`, at this run's seeds and spread).

Tests (`p_values`), by what the claim says:
    greater ">"   lhs − rhs > margin                  (superiority; margin 0 unless stated)
    greater ">="  lhs − rhs > −margin                 (non-inferiority: margin required, stated in the claim)
    close / near  −tolerance < Δ < tolerance          (equivalence: two one-sided tests, TOST)
Each gives p_holds (evidence for the claim) and p_contra (evidence against it: superiority / non-inferiority
refuted, or the difference outside the tolerance band).

Within a claim the settings form one family: `holm` adjusts both sets of p-values (Holm's step-down method,
family-wise error ≤ ALPHA); a setting **holds** when its adjusted p_holds < ALPHA, is **contradicted** when its
adjusted p_contra < ALPHA, and is **inconclusive** otherwise, or with fewer than `MIN_SEEDS` seeds (pairs) a
side. `combine` applies the claim's quantifier to the settings. `random_effects` pools the settings' differences
(DerSimonian–Laird between-setting variance τ², Hartung–Knapp–Sidik–Jonkman interval with the max(1, q)
modification, t with k − 1 degrees of freedom): the pooled estimate is printed beside every claim and decides a
claim whose quantifier is `pooled`.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
from scipy import stats as sps

HOLDS, CONTRADICTED, INCONCLUSIVE = "holds", "contradicted", "inconclusive"
STATUSES = (HOLDS, CONTRADICTED, INCONCLUSIVE)
LEVEL = 0.95                 # two-sided level of every interval
ALPHA = (1 - LEVEL) / 2      # one-sided level of every test: a 95% interval clear of the bar
POWER = 0.8                  # the power at which minimum detectable effects are stated
MIN_SEEDS = 3                # fewer seeds (pairs) on a side: inconclusive, whatever the interval
QUANTIFIERS = ("all", "majority", "any", "pooled")
DESIGNS = ("paired", "welch", "one-sample")
NAN = float("nan")


def _t(df: float):
    return sps.norm if math.isinf(df) else sps.t(df)


@dataclass(frozen=True)
class Estimate:
    """lhs − rhs (or lhs − a number) with its standard error, degrees of freedom and `level` interval."""

    diff: float
    se: float
    df: float
    lo: float
    hi: float
    n_a: int
    n_b: int | None          # None: the reference is a number; paired: the number of pairs, as n_a
    design: str              # paired | welch | one-sample
    sd: float = NAN          # paired: SD of the per-seed differences; welch/one-sample: SD of a
    level: float = LEVEL

    @property
    def defined(self) -> bool:
        return not math.isnan(self.se)

    def p_above(self, bar: float) -> float:
        """One-sided p-value of H1: true difference > bar."""
        if not self.defined:
            return NAN
        if self.se == 0.0:
            return 0.0 if self.diff > bar else 1.0
        return float(_t(self.df).sf((self.diff - bar) / self.se))

    def p_below(self, bar: float) -> float:
        """One-sided p-value of H1: true difference < bar."""
        if not self.defined:
            return NAN
        if self.se == 0.0:
            return 0.0 if self.diff < bar else 1.0
        return float(_t(self.df).cdf((self.diff - bar) / self.se))

    def mde(self, power: float = POWER, alpha: float = ALPHA) -> float:
        """The smallest true difference a one-sided test at `alpha` detects with probability `power`, at this
        estimate's standard error and degrees of freedom."""
        if not self.defined:
            return NAN
        t = _t(self.df)
        return float((t.ppf(1 - alpha) + t.ppf(power)) * self.se)

    def to_dict(self) -> dict:
        return asdict(self)

    def text(self, scale: float = 100.0, unit: str = " pts") -> str:
        """e.g. '+1.23 pts [-0.40, +2.86]'."""
        if not self.defined:
            return f"{self.diff * scale:+.2f}{unit} [no interval: too few seeds]"
        return f"{self.diff * scale:+.2f}{unit} [{self.lo * scale:+.2f}, {self.hi * scale:+.2f}]"


def _interval(diff: float, se: float, df: float, level: float) -> tuple:
    if math.isnan(se):
        return NAN, NAN
    if se == 0.0:
        return diff, diff
    half = float(_t(df).ppf(0.5 + level / 2)) * se
    return diff - half, diff + half


def _values(x) -> np.ndarray:
    a = np.asarray(list(x), dtype=float)
    if a.size == 0:
        raise ValueError("an estimate needs at least one value on each side")
    return a


def paired(a, b, level: float = LEVEL) -> Estimate:
    """mean(a − b) over pairs (a[i], b[i]: the same seed of two arms of one setting)."""
    a, b = _values(a), _values(b)
    if a.shape != b.shape:
        raise ValueError(f"paired samples differ in length ({a.size} vs {b.size})")
    d = a - b
    n = d.size
    diff = float(d.mean())
    sd = float(d.std(ddof=1)) if n > 1 else NAN
    se = sd / math.sqrt(n) if n > 1 else NAN
    df = float(n - 1) if n > 1 else NAN
    lo, hi = _interval(diff, se, df, level)
    return Estimate(diff, se, df, lo, hi, n, n, "paired", sd, level)


def welch(a, b, level: float = LEVEL) -> Estimate:
    """mean(a) − mean(b) of two independent samples (Welch's unequal-variance t)."""
    a, b = _values(a), _values(b)
    diff = float(a.mean() - b.mean())
    if a.size < 2 or b.size < 2:
        return Estimate(diff, NAN, NAN, NAN, NAN, a.size, b.size, "welch", NAN, level)
    va, vb = a.var(ddof=1) / a.size, b.var(ddof=1) / b.size
    se2 = float(va + vb)
    den = (va ** 2 / (a.size - 1) if va else 0.0) + (vb ** 2 / (b.size - 1) if vb else 0.0)
    df = se2 ** 2 / den if den else math.inf
    se = math.sqrt(se2)
    lo, hi = _interval(diff, se, df, level)
    return Estimate(diff, se, df, lo, hi, a.size, b.size, "welch", float(a.std(ddof=1)), level)


def one_sample(a, value: float, level: float = LEVEL) -> Estimate:
    """mean(a) − value."""
    a = _values(a)
    diff = float(a.mean() - float(value))
    if a.size < 2:
        return Estimate(diff, NAN, NAN, NAN, NAN, a.size, None, "one-sample", NAN, level)
    sd = float(a.std(ddof=1))
    se = sd / math.sqrt(a.size)
    df = float(a.size - 1)
    lo, hi = _interval(diff, se, df, level)
    return Estimate(diff, se, df, lo, hi, a.size, None, "one-sample", sd, level)


def p_values(est: Estimate, kind: str = "greater", op: str = ">", margin: float = 0.0,
             tolerance: float = 0.0) -> tuple:
    """(p_holds, p_contra) of one setting (see the module docstring); NaN without an interval."""
    if kind == "greater":
        bar = -margin if op == ">=" else margin
        return est.p_above(bar), est.p_below(bar)
    if kind in ("close", "near"):
        p_in = max(est.p_above(-tolerance), est.p_below(tolerance))
        p_out = min(1.0, 2 * min(est.p_above(tolerance), est.p_below(-tolerance)))
        return p_in, p_out
    raise ValueError(f"unknown claim kind {kind!r}")


def holm(pvalues) -> list:
    """Holm's step-down adjusted p-values (NaN stays NaN and is not counted in the family)."""
    p = [float(x) for x in pvalues]
    idx = sorted((i for i, x in enumerate(p) if not math.isnan(x)), key=lambda i: p[i])
    m = len(idx)
    out = [NAN] * len(p)
    running = 0.0
    for rank, i in enumerate(idx):
        running = max(running, min(1.0, (m - rank) * p[i]))
        out[i] = running
    return out


def decide(p_holds_adj: float, p_contra_adj: float, few: bool, alpha: float = ALPHA) -> tuple:
    """(status, reason) of one setting from its Holm-adjusted p-values."""
    if few or math.isnan(p_holds_adj):
        return INCONCLUSIVE, f"fewer than {MIN_SEEDS} seeds on a side"
    if p_holds_adj < alpha:
        return HOLDS, f"Holm p = {p_holds_adj:.2g}"
    if p_contra_adj < alpha:
        return CONTRADICTED, f"Holm p = {p_contra_adj:.2g} against"
    return INCONCLUSIVE, "neither test significant after Holm"


def combine(statuses, quantifier: str = "all") -> str:
    """A claim's verdict over its (Holm-judged) settings: all (holds iff every setting holds; contradicted if
    any is), majority (holds / contradicted iff more than half are), any (holds if one holds; contradicted iff
    all are). No setting: inconclusive. `pooled` claims are judged by `pooled_status`."""
    statuses = list(statuses)
    n = len(statuses)
    h, c = statuses.count(HOLDS), statuses.count(CONTRADICTED)
    if n == 0:
        return INCONCLUSIVE
    if quantifier == "all":
        return CONTRADICTED if c else (HOLDS if h == n else INCONCLUSIVE)
    if quantifier == "majority":
        return HOLDS if h > n / 2 else (CONTRADICTED if c > n / 2 else INCONCLUSIVE)
    if quantifier == "any":
        return HOLDS if h else (CONTRADICTED if c == n else INCONCLUSIVE)
    raise ValueError(f"unknown quantifier {quantifier!r}")


@dataclass(frozen=True)
class Pooled:
    """Random-effects estimate of the mean difference across settings."""

    estimate: float
    se: float
    df: float
    lo: float
    hi: float
    k: int                   # settings pooled
    tau2: float              # DerSimonian–Laird between-setting variance
    i2: float                # share of the variation due to heterogeneity (0..1)
    level: float = LEVEL
    method: str = "DerSimonian–Laird τ², Hartung–Knapp interval (max(1, q) modification)"

    @property
    def defined(self) -> bool:
        return not math.isnan(self.se)

    def as_estimate(self) -> Estimate:
        return Estimate(self.estimate, self.se, self.df, self.lo, self.hi, self.k, None, "pooled", NAN, self.level)

    def to_dict(self) -> dict:
        return asdict(self)


SE_FLOOR = 1e-12  # a setting without spread (an identity) weighs much, not infinitely


def random_effects(diffs, ses, dfs=None, level: float = LEVEL) -> Pooled:
    """Pool per-setting differences `diffs` with standard errors `ses` (settings without a standard error are
    left out). One setting: its own estimate and t interval (`dfs`: the settings' degrees of freedom)."""
    dfs = list(dfs) if dfs is not None else [math.inf] * len(list(diffs))
    pairs = [(float(d), max(float(s), SE_FLOOR), float(f)) for d, s, f in zip(diffs, ses, dfs)
             if not (d is None or s is None or math.isnan(float(d)) or math.isnan(float(s)))]
    k = len(pairs)
    if k == 0:
        return Pooled(NAN, NAN, NAN, NAN, NAN, 0, NAN, NAN, level)
    y = np.array([p[0] for p in pairs])
    v = np.array([p[1] for p in pairs]) ** 2
    if k == 1:
        se, df = math.sqrt(v[0]), pairs[0][2]
        lo, hi = _interval(float(y[0]), se, df, level)
        return Pooled(float(y[0]), se, df, lo, hi, 1, 0.0, 0.0, level)
    w = 1 / v
    mu_fe = float((w * y).sum() / w.sum())
    q = float((w * (y - mu_fe) ** 2).sum())
    c = float(w.sum() - (w ** 2).sum() / w.sum())
    tau2 = max(0.0, (q - (k - 1)) / c) if c > 0 else 0.0
    i2 = max(0.0, (q - (k - 1)) / q) if q > 0 else 0.0
    ws = 1 / (v + tau2)
    mu = float((ws * y).sum() / ws.sum())
    q_hk = float((ws * (y - mu) ** 2).sum() / (k - 1))
    se = math.sqrt(max(1.0, q_hk) / float(ws.sum()))
    df = float(k - 1)
    lo, hi = _interval(mu, se, df, level)
    return Pooled(mu, se, df, lo, hi, k, tau2, i2, level)


def pooled_status(pool: Pooled, kind: str = "greater", op: str = ">", margin: float = 0.0,
                  tolerance: float = 0.0, alpha: float = ALPHA) -> tuple:
    """(status, reason) of a claim judged by its pooled estimate (quantifier `pooled`; one test, no Holm)."""
    if not pool.defined:
        return INCONCLUSIVE, "no setting with an interval to pool"
    p_h, p_c = p_values(pool.as_estimate(), kind, op, margin, tolerance)
    if p_h < alpha:
        return HOLDS, f"pooled p = {p_h:.2g}"
    if p_c < alpha:
        return CONTRADICTED, f"pooled p = {p_c:.2g} against"
    return INCONCLUSIVE, "pooled interval contains the bar"


def planned_mde(sd: float, n: int, paired_design: bool = True, power: float = POWER, alpha: float = ALPHA) -> float:
    """The minimum detectable effect of a planned run with `n` seeds per arm, for a paired design with
    per-seed-difference SD `sd`, or two independent arms each with SD `sd` (Welch, equal n)."""
    if n < 2:
        return NAN
    se = sd / math.sqrt(n) if paired_design else sd * math.sqrt(2.0 / n)
    df = n - 1 if paired_design else 2 * (n - 1)
    t = sps.t(df)
    return float((t.ppf(1 - alpha) + t.ppf(power)) * se)
