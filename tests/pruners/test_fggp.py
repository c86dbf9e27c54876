"""FGGP by hand: gradient first, then magnitude; global ranking; clamping (docs/methods.md A.9)."""
import pytest
import torch

from prunebench.library.errors import PrunebenchError
from prunebench.library.masks import Mask
from prunebench.library.pruners.during import make_during_training
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


@pytest.mark.parametrize("method, pre_removed, post_removed", [
    ("fggp", [2, 6], [2, 3]),    # candidates {2, 3, 4, 6} by |g|, then the 2 smallest |w| among them
    ("gmp", [0, 1], [3, 7]),     # the 2 smallest |w| of all
])
def test_pre_step_magnitude_ranks_the_weights_of_the_forward_pass(method, pre_removed, post_removed):
    """The official code ranks |w| of this step's forward pass (before optimizer.step); post-step is ours."""
    m = Row(8)
    pre = [0.01, 0.02, 1.0, 2.0, 3.0, 4.0, -0.5, 0.6]
    post = [5.0, 5.0, 1.0, 0.05, 3.0, 4.0, 5.0, 0.6]     # the update moved weights 0, 1, 3 and 6
    g = [9.0, 9.0, -0.1, 0.2, 0.3, 0.5, 0.4, 8.0]
    got = {}
    for mode in ("pre_step", "post_step"):
        p = make_during_training(method, 0.25, update_interval=1, end_ratio=1.0, magnitude=mode)
        p.start(m, 1, torch.Generator().manual_seed(0))
        set_row(m, [pre], [g])
        p.before_step(1, m)
        set_row(m, [post], [g])
        got[mode] = removed(p.after_step(1, m, None))
    assert got == {"pre_step": pre_removed, "post_step": post_removed}


def test_pre_step_magnitude_needs_the_before_step_hook():
    p = make_during_training("gmp", 0.5, update_interval=1, end_ratio=1.0, magnitude="pre_step")
    m = Row(4)
    set_row(m, [[1.0, 2.0, 3.0, 4.0]], [[0.0] * 4])
    p.start(m, 1, torch.Generator().manual_seed(0))
    with pytest.raises(PrunebenchError, match="before_step"):
        p.after_step(1, m, None)
