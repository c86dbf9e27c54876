"""FGGP by hand: gradient first, then magnitude; global ranking; clamping (docs/methods.md A.9)."""
import pytest
import torch

from prunebench.errors import PrunebenchError
from prunebench.masks import Mask
from during_toys import Row, one_event, removed, set_row


def test_fggp_gradient_first_then_magnitude_by_hand():
    m = Row(8)
    w = [0.01, 0.02, 1.0, 2.0, 3.0, 4.0, -0.5, 0.6]
    g = [9.0, 9.0, -0.1, 0.2, 0.3, 0.5, 0.4, 8.0]
    set_row(m, [w], [g])
    # 8 weights, remove 2. Candidates: the 4 smallest |g| = {2, 3, 4, 6}; among them the 2 smallest |w| = {6, 2}.
    # Pure magnitude would remove {0, 1}; pure gradient {2, 3}.
    p, mask = one_event("fggp", 0.25, m)
    assert removed(mask) == [2, 6]
    assert p.history[-1]["candidates"] == 4 and p.history[-1]["removed"] == 2
    # Magnitude pruning on the same tensors takes the smallest |w|.
    _, mask_gmp = one_event("gmp", 0.25, m)
    assert removed(mask_gmp) == [0, 1]
    # select_ratio 0.25: only 2 candidates ({2, 3}), both go.
    _, mask_q = one_event("fggp", 0.25, m, select_ratio=0.25)
    assert removed(mask_q) == [2, 3]


def test_fggp_ranks_globally_over_layers_and_skips_pruned():
    m = Row(4, 4)
    # layer 0 has the small gradients, layer 1 the small weights; weight 0 of layer 0 is already pruned.
    set_row(m, [[0.0, 5.0, 6.0, 7.0], [0.1, 0.2, 0.3, 0.4]], [[0.0, 0.1, 0.2, 0.3], [1.0, 2.0, 3.0, 4.0]])
    start = Mask({"layers.0.weight": torch.tensor([[False, True, True, True]]),
                  "layers.1.weight": torch.ones(1, 4, dtype=torch.bool)})
    # 8 weights, 7 active, target density 5/8 -> remove 2. Candidates int(0.5 * 7) = 3 smallest |g| among
    # active: layer 0 {1, 2, 3}; remove the 2 smallest |w| of those: {1, 2}. (GMP would take layer 1's.)
    p, mask = one_event("fggp", 3 / 8, m, start)
    assert removed(mask, "layers.0.weight") == [0, 1, 2]
    assert removed(mask, "layers.1.weight") == []
    _, mask_gmp = one_event("gmp", 3 / 8, m, start)
    assert removed(mask_gmp, "layers.0.weight") == [0] and removed(mask_gmp, "layers.1.weight") == [0, 1]


def test_fggp_clamps_when_target_exceeds_candidates():
    m = Row(8)
    set_row(m, [[float(i + 1) for i in range(8)]], [[float(8 - i) for i in range(8)]])
    p, mask = one_event("fggp", 0.75, m)  # wants 6, only int(0.5 * 8) = 4 candidates
    assert mask.kept == 4 and removed(mask) == [4, 5, 6, 7]
    assert p.history[-1]["clamped"] is True and p.history[-1]["wanted"] == 6


def test_fggp_needs_gradients():
    m = Row(8)
    with pytest.raises(PrunebenchError, match="no .grad"):
        one_event("fggp", 0.5, m)
