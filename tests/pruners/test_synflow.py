"""SynFlow against hand computations; conservation; nested masks (docs/methods.md A.5)."""
import pytest
import torch
import torch.nn as nn

from prunebench.library.pruners import scores
from prunebench.library.pruners.synflow import SynFlow
from toys import close, toy


def test_synflow_hand_computed():
    # |W1| = [[1, 2], [1, 0.5]], |W2| = [[1, 2], [2, 2]], input 1 = [1, 1] (shape from the first Linear).
    # h = |W1| 1 = [3, 1.5]; out = |W2| h = [6, 9]; R = 15.
    # dR/dW2 = 1 h^T = [[3, 1.5], [3, 1.5]]  -> |W2| * . = [[3, 3], [6, 3]]
    # dR/dh = |W2|^T 1 = [3, 4]; dR/dW1 = [3, 4] 1^T = [[3, 3], [4, 4]] -> |W1| * . = [[3, 6], [4, 2]]
    s = scores(toy(), "synflow")
    close(s, {"0.weight": [[3, 6], [4, 2]], "2.weight": [[3, 3], [6, 3]]})
    # Conservation of synaptic flow: every layer's scores sum to R = 15.
    assert [float(v.sum()) for v in s.values()] == [15.0, 15.0]


def test_synflow_conserves_flow_and_keeps_pruned_weights_pruned():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(6, 8, bias=False), nn.ReLU(), nn.Linear(8, 5, bias=False), nn.ReLU(),
                        nn.Linear(5, 3, bias=False))
    s = scores(net, "synflow")
    sums = [float(v.sum()) for v in s.values()]
    assert max(sums) - min(sums) < 1e-9 * max(sums)
    masks = []
    SynFlow(iterations=5).mask(net, None, 0.8, on_step=lambda t, m: masks.append(m))
    for a, b in zip(masks, masks[1:]):
        for n in a:
            assert not (b[n] & ~a[n]).any()  # nested: pruned weights never return


def test_synflow_input_shape_needed_for_convs():
    from prunebench.library.errors import PrunebenchError

    net = nn.Sequential(nn.Conv2d(1, 2, 3), nn.Flatten(), nn.Linear(2 * 4 * 4, 2))
    with pytest.raises(PrunebenchError, match="input_shape"):
        scores(net, "synflow")
    a = scores(net, "synflow", input_shape=(1, 6, 6))
    b = scores(net, "synflow", [(torch.zeros(3, 1, 6, 6), torch.zeros(3, dtype=torch.long))])
    for n in a:
        torch.testing.assert_close(a[n], b[n])
