"""The selection core after the pruning-time work of issue 19: the same masks as the old one (cumulative-sum
ties, boolean pools, CPU only), from scores on any device, and NaN still refused."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

from prunebench.library.errors import PrunebenchError
from prunebench.library.pruners.topk import kth_largest, official_keep, select, select_official, top_mask

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from reference.old_pruners import topk as old  # noqa: E402


def tie_heavy(n, levels, seed):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, levels, (n,), generator=g).double() / levels


@pytest.mark.parametrize("levels", [3, 50, 10**9])
def test_top_mask_equals_the_old_definition(levels):
    for seed in range(6):
        x = tie_heavy(500, levels, seed)
        pool = torch.rand(500, generator=torch.Generator().manual_seed(seed + 9)) < 0.6
        for k in (0, 1, 7, 123, 250, 299, 499, 500, 900):
            assert torch.equal(top_mask(x, k), old.top_mask(x, k)), (seed, k)
            assert torch.equal(top_mask(x, k, pool), old.top_mask(x, k, pool)), (seed, k, "pool")


@pytest.mark.parametrize("how", ["select", "sort"])
def test_kth_largest_both_ways(how):
    x = tie_heavy(1000, 17, 3)
    for k in (1, 2, 500, 999, 1000):
        assert kth_largest(x, k, how) == torch.sort(x, descending=True).values[k - 1]


@pytest.mark.parametrize("rule", ["round", "ceil", "int_keep_ties", "int_prune_ties", "grasp"])
def test_official_rules_equal_the_old_ones(rule):
    for levels in (5, 10**9):
        x = tie_heavy(2000, levels, 1) - 0.3
        assert torch.equal(official_keep(x, rule, density=0.05, sparsity=0.95),
                           old.official_keep(x, rule, density=0.05, sparsity=0.95))


def test_select_on_mixed_devices_and_nan():
    g = torch.Generator().manual_seed(0)
    scores = {"a": torch.rand(30, 4, generator=g), "b": torch.rand(7, generator=g)}
    eligible = {n: torch.rand(s.shape, generator=g) < 0.5 for n, s in scores.items()}
    for scope in ("global", "layerwise"):
        assert select(scores, 0.3, scope, eligible) == old.select(scores, 0.3, scope, eligible)
        assert select_official(scores, "int_keep_ties", scope, density=0.3) == \
            old.select_official(scores, "int_keep_ties", scope, density=0.3)
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
