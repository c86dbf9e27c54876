"""The statistics behind the verdicts (prunebench.report.stats), each against hand computations or constructed data."""
import math

import numpy as np
import pytest
from scipy import stats as sps

from prunebench.report.stats import (ALPHA, CONTRADICTED, HOLDS, INCONCLUSIVE, combine, decide, holm, one_sample,
                                     p_values, paired, planned_mde, pooled_status, random_effects, welch)


def test_welch_interval_by_hand():
    a, b = [0.90, 0.92, 0.94], [0.80, 0.83, 0.86, 0.89]
    e = welch(a, b)
    va, vb = 0.0004, 0.0015          # sample variances
    se2 = va / 3 + vb / 4
    df = se2 ** 2 / ((va / 3) ** 2 / 2 + (vb / 4) ** 2 / 3)
    half = sps.t(df).ppf(0.975) * math.sqrt(se2)
    assert e.diff == pytest.approx(0.92 - 0.845) and e.design == "welch"
    assert (e.lo, e.hi) == (pytest.approx(e.diff - half), pytest.approx(e.diff + half))
    assert e.df == pytest.approx(df) and (e.n_a, e.n_b) == (3, 4)
    # the t quantile is scipy's: 12.7062 at one degree of freedom
    assert sps.t(1).ppf(0.975) == pytest.approx(12.7062, abs=1e-4)


def test_pairing_removes_the_shared_seed_effect():
    """Two arms that share each seed's initialization: the seed effect (±1 point) swamps a 0.2-point gain in
    Welch's interval, and cancels in the paired one."""
    seed_effect = np.array([0.01, -0.012, 0.004, -0.006, 0.009, -0.003, 0.011, -0.008])
    snip = 0.90 + seed_effect
    snip_ai = snip + 0.002 + np.array([0.0002, -0.0001, 0.0001, -0.0002, 0.0, 0.0001, -0.0001, 0.0])
    p = paired(snip_ai, snip)
    w = welch(snip_ai, snip)
    assert p.design == "paired" and p.n_a == 8 and p.df == 7
    assert p.diff == pytest.approx(w.diff)
    assert p.lo > 0 and w.lo < 0 < w.hi                 # only the paired design sees the gain
    d = snip_ai - snip
    assert p.sd == pytest.approx(d.std(ddof=1)) and p.se == pytest.approx(d.std(ddof=1) / math.sqrt(8))
    with pytest.raises(ValueError, match="differ in length"):
        paired([1.0, 2.0], [1.0])


def test_one_sample_and_degenerate_estimates():
    e = one_sample([0.901, 0.899, 0.900, 0.902], 0.90)
    assert e.design == "one-sample" and e.n_b is None and e.df == 3
    assert math.isnan(welch([0.9], [0.8, 0.7]).lo)                   # one seed: no interval
    flat = paired([0.9, 0.9, 0.9], [0.8, 0.8, 0.8])                  # no spread: the point
    assert (flat.lo, flat.hi) == (pytest.approx(0.1), pytest.approx(0.1))
    assert flat.p_above(0.0) == 0.0 and flat.p_below(0.0) == 1.0


def test_p_values_for_superiority_non_inferiority_and_equivalence():
    e = paired([0.896, 0.897, 0.898, 0.899, 0.8965, 0.8975], [0.90] * 6)   # about 0.25 points worse
    sup_h, sup_c = p_values(e, "greater", ">", 0.0)
    assert sup_c < ALPHA and sup_h > 0.5                         # superiority: refuted
    ni_h, ni_c = p_values(e, "greater", ">=", 0.005)             # not worse by more than 0.5 points: holds
    assert ni_h < ALPHA
    tight_h, tight_c = p_values(e, "greater", ">=", 0.001)       # a 0.1-point margin: inferior
    assert tight_c < ALPHA
    eq_h, _ = p_values(e, "close", tolerance=0.005)              # within ±0.5 points: equivalent (TOST)
    assert eq_h < ALPHA
    _, out = p_values(e, "close", tolerance=0.0005)              # outside ±0.05 points
    assert out < ALPHA
    with pytest.raises(ValueError):
        p_values(e, "bigger")


def test_holm_by_hand():
    adj = holm([0.01, 0.04, 0.03, float("nan")])
    # sorted 0.01, 0.03, 0.04 over a family of 3: 0.03, 0.06, 0.06 (monotone); NaN stays out
    assert adj[:3] == [pytest.approx(0.03), pytest.approx(0.06), pytest.approx(0.06)] and math.isnan(adj[3])
    assert holm([]) == []


def test_the_three_verdicts_of_a_setting():
    assert decide(0.001, 0.9, False)[0] == HOLDS
    assert decide(0.9, 0.001, False)[0] == CONTRADICTED
    assert decide(0.2, 0.2, False)[0] == INCONCLUSIVE
    assert decide(0.001, 0.9, True) == (INCONCLUSIVE, "fewer than 3 seeds on a side")


@pytest.mark.parametrize("statuses, q, expected", [
    ([HOLDS, HOLDS], "all", HOLDS), ([HOLDS, INCONCLUSIVE], "all", INCONCLUSIVE),
    ([HOLDS, CONTRADICTED], "all", CONTRADICTED), ([HOLDS, HOLDS, CONTRADICTED], "majority", HOLDS),
    ([HOLDS, INCONCLUSIVE, CONTRADICTED], "majority", INCONCLUSIVE), ([INCONCLUSIVE, HOLDS], "any", HOLDS),
    ([CONTRADICTED, CONTRADICTED], "any", CONTRADICTED), ([], "all", INCONCLUSIVE)])
def test_combining_settings_by_quantifier(statuses, q, expected):
    assert combine(statuses, q) == expected


def test_random_effects_by_hand():
    y, se = np.array([0.2, 0.3, 0.1, 0.25]), np.array([0.05, 0.1, 0.08, 0.06])
    pool = random_effects(y, se)
    w = 1 / se ** 2
    mu_fe = (w * y).sum() / w.sum()
    q = (w * (y - mu_fe) ** 2).sum()
    tau2 = max(0.0, (q - 3) / (w.sum() - (w ** 2).sum() / w.sum()))
    ws = 1 / (se ** 2 + tau2)
    mu = (ws * y).sum() / ws.sum()
    q_hk = (ws * (y - mu) ** 2).sum() / 3
    se_hk = math.sqrt(max(1.0, q_hk) / ws.sum())
    assert pool.estimate == pytest.approx(mu) and pool.tau2 == pytest.approx(tau2) and pool.k == 4
    assert (pool.lo, pool.hi) == (pytest.approx(mu - sps.t(3).ppf(0.975) * se_hk),
                                  pytest.approx(mu + sps.t(3).ppf(0.975) * se_hk))
    # heterogeneous settings widen the pooled interval (tau^2 > 0)
    het = random_effects([0.5, -0.3, 0.4, -0.2], [0.05] * 4)
    assert het.tau2 > 0 and het.lo < 0 < het.hi
    one = random_effects([0.2], [0.05], [7])
    assert one.k == 1 and one.hi - one.estimate == pytest.approx(sps.t(7).ppf(0.975) * 0.05)
    assert random_effects([], []).k == 0 and not random_effects([], []).defined


def test_pooled_decides_where_single_settings_cannot():
    """Seven of eight settings a little positive, none significant alone: the pooled estimate is."""
    diffs = [0.0025, 0.002, 0.003, 0.0015, 0.0028, 0.0022, -0.0005, 0.0024]
    ses = [0.0015] * 8
    settings = [decide(*holm_pair, False)[0] for holm_pair in zip(
        holm([1 - sps.t(2).cdf(d / s) for d, s in zip(diffs, ses)]), [1.0] * 8)]
    assert set(settings) == {INCONCLUSIVE}
    status, _ = pooled_status(random_effects(diffs, ses))
    assert status == HOLDS


def test_minimum_detectable_effect():
    e = paired([0.9 + 0.001 * i for i in range(8)], [0.9] * 8)
    t = sps.t(7)
    assert e.mde() == pytest.approx((t.ppf(1 - ALPHA) + t.ppf(0.8)) * e.se)
    # planning: more seeds, smaller MDE; pairing beats two independent arms with the same spread
    assert planned_mde(0.003, 8) > planned_mde(0.003, 16)
    assert planned_mde(0.003, 8, paired_design=True) < planned_mde(0.003, 8, paired_design=False)
    assert math.isnan(planned_mde(0.003, 1))
