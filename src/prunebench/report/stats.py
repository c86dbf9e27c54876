"""Verdicts with uncertainty: confidence intervals over seeds and the holds / contradicted / inconclusive rule.

Per setting, a claim compares arms through the difference of their mean accuracies over seeds, with a
two-sided confidence interval from **Welch's t** (unequal variances, Welch–Satterthwaite degrees of
freedom). Why Welch and not a bootstrap over seeds: the grids run 2–5 seeds per arm, where a bootstrap has
only a handful of distinct resamples and its percentile interval is far too narrow (it cannot see that
three seeds say little); Welch's interval widens with few seeds as it should, and does not assume the arms
have equal spread (a collapsing method's seeds scatter much more than a healthy one's). Seeds are not
paired across arms: arms share initializations but not training noise, and pairing is not guaranteed.

    interval(a, b)            mean(a) - mean(b) with its Welch interval (b may be a number: one-sample t)
    verdict(interval, ...)    holds / contradicted / inconclusive for "greater", "close" and "near" claims
    combine(statuses, q)      a claim's verdict over its settings by its quantifier (all / majority / any)

The t quantile is computed here (regularised incomplete beta function, inverted by bisection) so that no
statistics library is needed; tests pin it against published table values.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

HOLDS, CONTRADICTED, INCONCLUSIVE = "holds", "contradicted", "inconclusive"
STATUSES = (HOLDS, CONTRADICTED, INCONCLUSIVE)
LEVEL = 0.95         # two-sided confidence level of every interval
MIN_SEEDS = 3        # fewer seeds on either side: inconclusive, whatever the interval


def _betacf(a: float, b: float, x: float) -> float:
    """Continued fraction of the incomplete beta function (modified Lentz)."""
    tiny, qab, qap, qam = 1e-300, a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 400):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c if abs(1.0 + aa / c) > tiny else tiny
        h *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c if abs(1.0 + aa / c) > tiny else tiny
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < 1e-15:
            break
    return h


def _betainc(a: float, b: float, x: float) -> float:
    """Regularised incomplete beta function I_x(a, b)."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    front = math.exp(math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x))
    if x < (a + 1.0) / (a + b + 2.0):
        return front * _betacf(a, b, x) / a
    return 1.0 - front * _betacf(b, a, 1.0 - x) / b


def t_cdf(t: float, df: float) -> float:
    """P(T <= t) for Student's t with `df` (real, > 0) degrees of freedom."""
    x = df / (df + t * t)
    tail = 0.5 * _betainc(df / 2.0, 0.5, x)
    return 1.0 - tail if t > 0 else tail


def t_quantile(p: float, df: float) -> float:
    """The p-quantile of Student's t with `df` degrees of freedom (bisection on t_cdf, to 1e-12)."""
    if not 0.0 < p < 1.0 or not df > 0:
        raise ValueError(f"t_quantile needs 0 < p < 1 and df > 0, got p={p}, df={df}")
    if p < 0.5:
        return -t_quantile(1.0 - p, df)
    lo, hi = 0.0, 1.0
    while t_cdf(hi, df) < p:
        hi *= 2.0
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if t_cdf(mid, df) < p:
            lo = mid
        else:
            hi = mid
        if hi - lo < 1e-12:
            break
    return 0.5 * (lo + hi)


def _mean_var(xs) -> tuple:
    n = len(xs)
    m = sum(xs) / n
    v = sum((x - m) ** 2 for x in xs) / (n - 1) if n > 1 else float("nan")
    return m, v


@dataclass(frozen=True)
class Interval:
    """mean(a) - reference with a two-sided `level` confidence interval [lo, hi]."""

    diff: float
    lo: float
    hi: float
    n_a: int
    n_b: int | None      # None: the reference is a number (a paper's value), not a sample
    df: float
    level: float = LEVEL

    def to_dict(self) -> dict:
        return asdict(self)

    def text(self, scale: float = 100.0, unit: str = " pp") -> str:
        """e.g. '+1.23 pp [-0.40, +2.86]'."""
        if math.isnan(self.lo):
            return f"{self.diff * scale:+.2f}{unit} [no interval: too few seeds]"
        return f"{self.diff * scale:+.2f}{unit} [{self.lo * scale:+.2f}, {self.hi * scale:+.2f}]"


def interval(a, b, level: float = LEVEL) -> Interval:
    """Welch's interval for mean(a) - mean(b) (b a sample), or the one-sample t interval for mean(a) - b
    (b a number). With fewer than two values on a side the interval is undefined (NaN bounds); with zero
    spread on every side it is the point difference."""
    a = [float(x) for x in a]
    if not a:
        raise ValueError("interval needs at least one value of a")
    ma, va = _mean_var(a)
    if isinstance(b, (int, float)):
        return summary_interval(ma, math.sqrt(va) if len(a) > 1 else float("nan"), len(a), float(b), level=level)
    b = [float(x) for x in b]
    if not b:
        raise ValueError("interval needs at least one value of b")
    mb, vb = _mean_var(b)
    return summary_interval(ma, math.sqrt(va) if len(a) > 1 else float("nan"), len(a),
                            mb, math.sqrt(vb) if len(b) > 1 else float("nan"), len(b), level)


def summary_interval(mean_a: float, sd_a: float, n_a: int, mean_b: float, sd_b: float | None = None,
                     n_b: int | None = None, level: float = LEVEL) -> Interval:
    """`interval` from summary statistics: mean, sample standard deviation and count of a, and of b (or b
    a number: `sd_b` and `n_b` None)."""
    diff = float(mean_a) - float(mean_b)
    nan = float("nan")
    if n_a < 2 or (n_b is not None and n_b < 2):
        return Interval(diff, nan, nan, int(n_a), None if n_b is None else int(n_b), nan, level)
    sa = float(sd_a) ** 2 / n_a
    if n_b is None:
        se2, df = sa, n_a - 1
    else:
        sb = float(sd_b) ** 2 / n_b
        se2 = sa + sb
        den = (sa ** 2 / (n_a - 1) if sa else 0.0) + (sb ** 2 / (n_b - 1) if sb else 0.0)
        df = se2 ** 2 / den if den else math.inf
    if se2 == 0.0:
        return Interval(diff, diff, diff, int(n_a), None if n_b is None else int(n_b), math.inf, level)
    half = t_quantile(0.5 + level / 2.0, df) * math.sqrt(se2)
    return Interval(diff, diff - half, diff + half, int(n_a), None if n_b is None else int(n_b), df, level)


def verdict(iv: Interval, kind: str = "greater", margin: float = 0.0, tolerance: float = 0.0,
            min_seeds: int = MIN_SEEDS) -> tuple:
    """(status, reason) of one setting.

    greater: the claim is diff > margin. holds: the interval lies above the margin; contradicted: below it.
    close / near: the claim is |diff| <= tolerance. holds: the interval lies inside [-tol, tol];
        contradicted: it lies entirely outside; otherwise inconclusive.
    Fewer than `min_seeds` seeds on a sampled side is inconclusive whatever the interval says.
    """
    few = [n for n in (iv.n_a, iv.n_b) if n is not None and n < min_seeds]
    if few or math.isnan(iv.lo):
        return INCONCLUSIVE, f"fewer than {min_seeds} seeds on a side (n = {iv.n_a}" + (
            f" vs {iv.n_b})" if iv.n_b is not None else ")")
    if kind == "greater":
        if iv.lo > margin:
            return HOLDS, "interval above the margin"
        if iv.hi < margin:
            return CONTRADICTED, "interval below the margin"
        return INCONCLUSIVE, "interval contains the margin"
    if kind in ("close", "near"):
        if -tolerance <= iv.lo and iv.hi <= tolerance:
            return HOLDS, "interval inside the tolerance"
        if iv.lo > tolerance or iv.hi < -tolerance:
            return CONTRADICTED, "interval outside the tolerance"
        return INCONCLUSIVE, "interval overlaps the tolerance's edge"
    raise ValueError(f"unknown claim kind {kind!r}")


def combine(statuses, quantifier: str = "all") -> str:
    """A claim's verdict over its settings: all (holds iff every setting holds; contradicted if any is),
    majority (holds / contradicted iff more than half the settings are), any (holds if one holds;
    contradicted iff all are). No setting: inconclusive."""
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
