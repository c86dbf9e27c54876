"""The shared exact top-k: counts and ties broken by position (docs/methods.md A.0)."""
import torch
import torch.nn as nn

from prunebench.library.pruners import prune


def test_ties_broken_by_position():
    net = nn.Sequential(nn.Linear(4, 3, bias=False), nn.Linear(3, 2, bias=False))
    with torch.no_grad():
        for p in net.parameters():
            p.fill_(0.5)
    mask = prune(net, "magnitude", 1 - 7 / 18, allow_collapse=True)  # keep 7 of 18 equal scores: the first 7 in layer order
    flat = torch.cat([mask[n].reshape(-1) for n in mask])
    assert flat.tolist() == [True] * 7 + [False] * 11
    lw = prune(net, "magnitude", 0.5, scope="layerwise")
    assert lw["0.weight"].reshape(-1).tolist() == [True] * 6 + [False] * 6
    assert lw["1.weight"].reshape(-1).tolist() == [True] * 3 + [False] * 3


# ---------------------------------------------------------------------------------------------------
# The official codes' keep rules on constructed scores: counts and ties (docs/methods.md A.0).

from prunebench.library.pruners.topk import official_density, official_keep, select_official  # noqa: E402

TIES = torch.tensor([5.0, 3.0, 3.0, 3.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0])   # N = 10


def kept(rule, **kw):
    return official_keep(TIES, rule, **kw).int().tolist()


def test_official_density_is_the_decimal_complement():
    assert official_density(0.99) == 0.01 != 1 - 0.99
    assert official_density(0.995) == 0.005 and official_density(0.0) == 1.0


def test_force_rule_truncates_and_keeps_ties():
    # int(10 * 0.25) = 2 -> threshold = 2nd largest = 3: every 3 is kept (4 kept, not 2)
    assert kept("int_keep_ties", density=0.25) == [1, 1, 1, 1, 0, 0, 0, 0, 0, 0]
    # int(10 * 0.59) = 5 -> threshold 1.0 -> 5 kept; int() truncates where round() would keep 6
    assert sum(kept("int_keep_ties", density=0.59)) == 5
    # threshold at the zeros: every zero is kept too (the code's overshoot)
    assert sum(kept("int_keep_ties", density=0.6)) == 10


def test_synflow_rule_prunes_int_of_the_complement_and_ties():
    # k = int((1 - 0.35) * 10) = 6 -> 6th smallest = 1.0; prune <= 1.0 -> only 5 and the three 3s survive
    assert kept("int_prune_ties", density=0.35) == [1, 1, 1, 1, 0, 0, 0, 0, 0, 0]
    # k = int((1 - 0.75) * 10) = 2 -> 2nd smallest = 0 -> all five zeros pruned (5 kept, not 8)
    assert sum(kept("int_prune_ties", density=0.75)) == 5
    assert sum(kept("int_prune_ties", density=1.0)) == 10


def test_grasp_rule_keeps_its_threshold_element():
    s = torch.tensor([-4.0, -3.0, -2.0, -1.0, 0.5, 1.0, 2.0, 3.0, 4.0, 5.0])  # importance = -S
    # S = -s (normalised); int(10 * 0.3) = 3 -> the 3rd largest S (s = -2) is the threshold and survives:
    # only the two largest S are removed, N - int(N s) + 1 = 8 kept
    assert official_keep(s, "grasp", sparsity=0.3).int().tolist() == [0, 0, 1, 1, 1, 1, 1, 1, 1, 1]


def test_round_and_ceil_rules():
    x = torch.arange(10.0)
    assert sum(official_keep(x, "round", sparsity=0.75).tolist()) == 2   # round(2.5) = 2 (half to even)
    assert sum(official_keep(x, "ceil", sparsity=0.75).tolist()) == 3    # ceil(2.5) = 3
    assert official_keep(x, "ceil", sparsity=0.75).tolist()[-3:] == [True, True, True]
    # ties go to the earlier position, as in the exact rule
    assert official_keep(torch.zeros(4), "ceil", sparsity=0.5).tolist() == [True, True, False, False]


def test_select_official_global_and_layerwise():
    scores = {"a": torch.tensor([[4.0, 0.0]]), "b": torch.tensor([3.0, 2.0, 1.0])}
    g = select_official(scores, "ceil", "global", sparsity=0.5)
    assert g["a"].tolist() == [[True, False]] and g["b"].tolist() == [True, True, False]
    per = select_official(scores, "ceil", "layerwise", sparsity=0.5)
    assert per["a"].tolist() == [[True, False]] and per["b"].tolist() == [True, True, False]


def test_count_rule_option_reaches_every_method():
    from prunebench.library.methods import at_init
    from prunebench.library.pruners import pruner_class

    for m in at_init():
        cls = pruner_class(m)
        assert cls.Options.defaults()["count_rule"] == "exact"
        assert cls.official_rule in ("round", "ceil", "int_keep_ties", "int_prune_ties", "grasp")
