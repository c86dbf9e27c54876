"""The annealed magnitude-first / gradient-next variant by hand (docs/methods.md A.9)."""

from during_toys import Row, one_event, removed, set_row


def test_annealed_unmarks_largest_gradients_by_hand():
    m = Row(10)
    w = [0.1, -0.2, 0.3, 0.4, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0]
    g = [5.0, -4.0, 0.1, 0.2, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]
    set_row(m, [w], [g])
    # remove 2 of 10; rate constant 0.3 -> to_add = int((10 - 2) * 0.3) = 2; mark the 4 smallest |w| {0..3},
    # un-mark the 2 with the largest |g| {0, 1}: {2, 3} go (pure magnitude would remove {0, 1}).
    p, mask = one_event("mfgn_annealed", 0.2, m, prune_rate=30, eta_min=0.3)
    assert removed(mask) == [2, 3]
    ev = p.history[-1]
    assert (ev["marked"], ev["re_added"], ev["removed"]) == (4, 2, 2)
