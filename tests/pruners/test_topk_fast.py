"""The selection core after the pruning-time work of issue 19: the same masks as the old one (cumulative-sum
ties, boolean pools, CPU only; tests/golden/topk.json holds the sha256 of the masks of commit 7ba29fc), from
scores on any device, and NaN still refused."""
from __future__ import annotations

import pytest
import torch

from golden import cases
from golden.cases import tie_heavy
from prunebench.library.errors import PrunebenchError
from prunebench.library.pruners.topk import kth_largest, official_keep, select, select_official, top_mask


@pytest.fixture(scope="module")
def golden():
    return cases.golden("topk.json")


@pytest.mark.parametrize("levels", cases.TOP_MASK_LEVELS)
def test_top_mask_equals_the_old_definition(golden, levels):
    for seed in cases.TOP_MASK_SEEDS:  # every k of TOP_MASK_KS, without and with a pool
        assert cases.top_mask_digest(levels, seed) == golden["top_mask"][f"levels={levels}/seed={seed}"], seed


@pytest.mark.parametrize("how", ["select", "sort"])
def test_kth_largest_both_ways(how):
    x = tie_heavy(1000, 17, 3)
    for k in (1, 2, 500, 999, 1000):
        assert kth_largest(x, k, how) == torch.sort(x, descending=True).values[k - 1]


@pytest.mark.parametrize("rule", cases.OFFICIAL_RULES)
def test_official_rules_equal_the_old_ones(golden, rule):
    for levels in cases.OFFICIAL_LEVELS:
        assert cases.official_digest(rule, levels) == golden["official_keep"][f"{rule}/levels={levels}"], levels


def test_select_on_mixed_devices_and_nan(golden):
    scores, _ = cases.select_inputs()
    for scope in cases.SCOPES:
        assert cases.select_digests(scope) == golden["select"][scope], scope
    bad = {"a": scores["a"].clone(), "b": scores["b"]}
    bad["a"][3, 2] = float("nan")
    with pytest.raises(PrunebenchError, match="NaN"):
        select(bad, 0.3)
    with pytest.raises(PrunebenchError, match="NaN"):
        select_official(bad, "int_keep_ties", density=0.3)
    inf = {"a": torch.tensor([float("inf"), -float("inf"), 1.0])}  # infinities are scores, not NaN
    assert select(inf, 1 / 3).masks["a"].tolist() == [True, False, False]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_selection_on_cuda_gives_the_cpu_masks():
    x = tie_heavy(100_000, 1000, 2)
    pool = torch.rand(100_000, generator=torch.Generator().manual_seed(1)) < 0.3
    for k in (1, 1000, 29_000):
        assert torch.equal(top_mask(x.cuda(), k), top_mask(x, k))
        assert torch.equal(top_mask(x.cuda(), k, pool), top_mask(x, k, pool))
    for rule in ("round", "ceil", "int_keep_ties", "int_prune_ties", "grasp"):
        assert torch.equal(official_keep(x.cuda(), rule, density=0.01, sparsity=0.99),
                           official_keep(x, rule, density=0.01, sparsity=0.99))
