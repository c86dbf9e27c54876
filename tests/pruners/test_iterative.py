"""FORCE and Iterative SNIP: revival, nesting, one step = SNIP (docs/methods.md A.2, A.3)."""
import pytest
import torch
import torch.nn as nn

from prunebench.library.pruners import prune
from prunebench.library.pruners.iterative import Force, IterSnip


def revival_net():
    net = nn.Sequential(nn.Linear(2, 3, bias=False), nn.Linear(3, 1, bias=False))
    with torch.no_grad():
        net[0].weight.copy_(torch.tensor([[6.0, -5.8], [1.0, 1.0], [5.9, 0.0]]))
        net[1].weight.copy_(torch.tensor([[1.0, 4.0, 1.0]]))
    return net


def _trace(cls, net, **kw):
    masks = []
    cls(steps=2, loss="neg_logit", **kw).mask(net, [(torch.ones(1, 2), torch.zeros(1, dtype=torch.long))], 0.8,
                                            on_step=lambda t, m: masks.append({n: v.int().tolist() for n, v in m.items()}))
    return masks


def test_force_revives_a_pruned_weight():
    m1, m2 = _trace(Force, revival_net())
    assert m1 == {"0.weight": [[1, 0], [0, 0], [1, 0]], "1.weight": [[0, 1, 1]]}
    assert m2 == {"0.weight": [[0, 0], [0, 0], [1, 0]], "1.weight": [[1, 0, 0]]}  # W2_0 is back


def test_iter_snip_never_revives():
    m1, m2 = _trace(IterSnip, revival_net())
    assert m1 == {"0.weight": [[1, 0], [0, 0], [1, 0]], "1.weight": [[0, 1, 1]]}
    assert m2 == {"0.weight": [[0, 0], [0, 0], [1, 0]], "1.weight": [[0, 0, 1]]}
    # and on a random net with many steps the masks are nested
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(10, 20), nn.ReLU(), nn.Linear(20, 4))
    batches = [(torch.randn(16, 10), torch.randint(0, 4, (16,))) for _ in range(3)]
    masks = []
    IterSnip(steps=8).mask(net, batches, 0.95, on_step=lambda t, m: masks.append(m))
    assert len(masks) == 8
    for a, b in zip(masks, masks[1:]):
        assert all(not (b[n] & ~a[n]).any() for n in a)


@pytest.mark.parametrize("loss", ["ce", "neg_logit"])
def test_one_step_force_and_iter_snip_equal_snip(loss):
    from prunebench.library.models import build_model

    torch.manual_seed(0)
    net = build_model("conv4", "mnist")  # has BatchNorm: train-mode BN for all three
    g = torch.Generator().manual_seed(1)
    b = [(torch.randn(8, 1, 28, 28, generator=g), torch.randint(0, 10, (8,), generator=g))]
    ref = prune(net, "snip", 0.9, b, bn_mode="train", loss=loss)
    for method in ("force", "iter_snip"):
        assert prune(net, method, 0.9, b, steps=1, loss=loss) == ref
    # and the eval-mode SNIP (the paper default) is a different mask on this BN net
    assert prune(net, "snip", 0.9, b, loss=loss) != ref


def test_official_count_rule_truncates_at_every_step():
    # The revival net with FORCE's own rule: d_2 = 0.2 keeps int(9 * 0.2) = 1 weight (not round(1.8) = 2):
    # the largest step-2 score, W2_0 (6).
    m1, m2 = _trace(Force, revival_net(), count_rule="official")
    assert m1 == {"0.weight": [[1, 0], [0, 0], [1, 0]], "1.weight": [[0, 1, 1]]}   # int(9 * 0.447) = 4
    assert m2 == {"0.weight": [[0, 0], [0, 0], [0, 0]], "1.weight": [[1, 0, 0]]}


def test_official_iter_snip_gives_pruned_weights_the_minimum_and_keeps_ties():
    # Step 2 of Iter SNIP on the revival net: kept-weight scores W1_00 0, W1_20 5.9, W2_1 0, W2_2 5.9, pruned
    # weights get the minimum (0). int(9 * 0.2) = 1 -> threshold 5.9 -> both 5.9s are kept (ties).
    m1, m2 = _trace(IterSnip, revival_net(), count_rule="official")
    assert m2 == {"0.weight": [[0, 0], [0, 0], [1, 0]], "1.weight": [[0, 0, 1]]}
    # a threshold at the minimum brings pruned weights back into the mask (the code's overshoot)
    net = nn.Sequential(nn.Linear(2, 2, bias=False), nn.Linear(2, 1, bias=False))
    with torch.no_grad():
        net[0].weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 0.0]]))
        net[1].weight.copy_(torch.tensor([[1.0, 0.0]]))
    masks = []
    IterSnip(steps=2, loss="neg_logit", count_rule="official").mask(
        net, [(torch.ones(1, 2), torch.zeros(1, dtype=torch.long))], 0.5, on_step=lambda t, m: masks.append(m))
    assert masks[-1].kept == 6   # every score is 0 but W1_00 and W2_0: the zeros tie at the threshold
