"""Verdicts with uncertainty (prunebench.report.stats): t quantiles, Welch intervals, the three verdicts."""
import math

import pytest

from prunebench.report.stats import (CONTRADICTED, HOLDS, INCONCLUSIVE, combine, interval, t_cdf, t_quantile,
                              verdict)


@pytest.mark.parametrize("df, q975", [(1, 12.7062), (2, 4.3027), (5, 2.5706), (10, 2.2281), (30, 2.0423),
                                      (1000, 1.9623)])
def test_t_quantiles_match_the_tables(df, q975):
    assert t_quantile(0.975, df) == pytest.approx(q975, abs=2e-4)
    assert t_cdf(t_quantile(0.9, df), df) == pytest.approx(0.9, abs=1e-10)
    assert t_quantile(0.025, df) == pytest.approx(-q975, abs=2e-4)


def test_welch_interval_by_hand():
    a, b = [0.90, 0.92, 0.94], [0.80, 0.83, 0.86, 0.89]
    iv = interval(a, b)
    va, vb = 0.0004, 0.0015          # sample variances
    se2 = va / 3 + vb / 4
    df = se2 ** 2 / ((va / 3) ** 2 / 2 + (vb / 4) ** 2 / 3)
    half = t_quantile(0.975, df) * math.sqrt(se2)
    assert iv.diff == pytest.approx(0.92 - 0.845)
    assert (iv.lo, iv.hi) == (pytest.approx(iv.diff - half), pytest.approx(iv.diff + half))
    assert iv.df == pytest.approx(df) and (iv.n_a, iv.n_b) == (3, 4)


def test_the_three_verdicts_on_constructed_results():
    better = [0.90, 0.91, 0.92, 0.905]
    worse = [0.80, 0.81, 0.79, 0.805]
    assert verdict(interval(better, worse))[0] == HOLDS                  # the claim "lhs > rhs" holds
    assert verdict(interval(worse, better))[0] == CONTRADICTED           # the opposite direction
    noisy = [0.95, 0.60, 0.90, 0.70]
    assert verdict(interval(noisy, worse))[0] == INCONCLUSIVE            # the interval contains 0
    # a margin moves the bar: lhs > rhs + 0.2 is contradicted by a 0.1 difference
    assert verdict(interval(better, worse), margin=0.2)[0] == CONTRADICTED


def test_two_seeds_with_that_spread_is_inconclusive():
    """The quick report's old FORCE verdict: 39.15 ± 26.24 % vs SNIP 84.28 ± 9.37 % over two seeds each
    'did not hold'; with two seeds and that spread, the honest verdict is inconclusive."""
    force = [0.3915 - 0.2624 / math.sqrt(2), 0.3915 + 0.2624 / math.sqrt(2)]   # two values, sample std 26.24 %
    snip = [0.8428 - 0.0937 / math.sqrt(2), 0.8428 + 0.0937 / math.sqrt(2)]
    iv = interval(force, snip)
    assert iv.lo < 0 < iv.hi                                  # even the interval alone says nothing
    status, why = verdict(iv)
    assert status == INCONCLUSIVE and "fewer than 3 seeds" in why
    assert verdict(iv, min_seeds=2)[0] == INCONCLUSIVE        # and not just because of the seed count


def test_close_and_near_claims():
    a = [0.901, 0.899, 0.900, 0.902]
    assert verdict(interval(a, 0.90), "near", tolerance=0.01)[0] == HOLDS
    assert verdict(interval(a, 0.95), "near", tolerance=0.01)[0] == CONTRADICTED
    assert verdict(interval([0.8, 0.95, 0.9], 0.90), "near", tolerance=0.01)[0] == INCONCLUSIVE
    assert verdict(interval(a, [0.90, 0.901, 0.899]), "close", tolerance=0.005)[0] == HOLDS


def test_degenerate_intervals():
    assert math.isnan(interval([0.9], [0.8, 0.7]).lo)                       # one seed: no interval
    iv = interval([0.9, 0.9, 0.9], [0.8, 0.8, 0.8])                         # no spread: the point
    assert (iv.lo, iv.hi) == (pytest.approx(0.1), pytest.approx(0.1)) and verdict(iv)[0] == HOLDS
    assert interval([0.9, 0.9, 0.9], [0.8, 0.8, 0.8]).text() == "+10.00 pp [+10.00, +10.00]"


@pytest.mark.parametrize("statuses, q, expected", [
    ([HOLDS, HOLDS], "all", HOLDS), ([HOLDS, INCONCLUSIVE], "all", INCONCLUSIVE),
    ([HOLDS, CONTRADICTED], "all", CONTRADICTED), ([HOLDS, HOLDS, CONTRADICTED], "majority", HOLDS),
    ([HOLDS, INCONCLUSIVE, CONTRADICTED], "majority", INCONCLUSIVE), ([INCONCLUSIVE, HOLDS], "any", HOLDS),
    ([CONTRADICTED, CONTRADICTED], "any", CONTRADICTED), ([], "all", INCONCLUSIVE)])
def test_combining_settings_by_quantifier(statuses, q, expected):
    assert combine(statuses, q) == expected
