"""The shared exact top-k: counts and ties broken by position (docs/methods.md A.0)."""
import torch
import torch.nn as nn

from prunebench.pruners import prune


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
