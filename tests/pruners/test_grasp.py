"""GraSP: Hg against finite differences, the sign of the score, re-initialised linear layers
(docs/methods.md A.4)."""
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from prunebench.library.pruners import prune, scores
from prunebench.library.pruners.topk import select
from prunebench.library.pruners.grasp import Grasp


def grasp_net(bn=False):
    torch.manual_seed(1)
    mid = [nn.BatchNorm1d(4)] if bn else []
    return nn.Sequential(nn.Linear(3, 4), *mid, nn.Tanh(), nn.Linear(4, 3)).double()


def grasp_batch():
    g = torch.Generator().manual_seed(2)
    # 7 examples: the label-sorted chunks have sizes 4 and 3, so which examples share a chunk matters
    # (with equal sizes and no BN, sum_c mean_c CE is 2 x the batch mean whatever the split)
    return torch.randn(7, 3, generator=g, dtype=torch.float64), torch.tensor([1, 0, 2, 1, 0, 2, 1])


def fd_hessian_gradient(net, x, y, temperature, chunks, eps=1e-4):
    """Central-difference H v with v = grad of L_total = sum over label-sorted chunks of CE(f/T)."""
    import copy

    net = copy.deepcopy(net)  # perturbed in place below
    order = torch.sort(y, stable=True).indices
    parts = list(zip(torch.tensor_split(x[order], chunks), torch.tensor_split(y[order], chunks)))
    ws = [net[0].weight, net[-1].weight]

    def grad_total():
        loss = sum(F.cross_entropy(net(a) / temperature, b) for a, b in parts)
        return [g.detach() for g in torch.autograd.grad(loss, ws)]

    v = grad_total()
    with torch.no_grad():
        for w, d in zip(ws, v):
            w.add_(eps * d)
    plus = grad_total()
    with torch.no_grad():
        for w, d in zip(ws, v):
            w.sub_(2 * eps * d)
    minus = grad_total()
    with torch.no_grad():
        for w, d in zip(ws, v):
            w.add_(eps * d)
    last = f"{len(net) - 1}.weight"
    return {"0.weight": (plus[0] - minus[0]) / (2 * eps), last: (plus[1] - minus[1]) / (2 * eps)}


@pytest.mark.parametrize("chunks,temperature,bn", [(1, 1.0, False), (2, 200.0, False), (2, 200.0, True)])
def test_grasp_hg_equals_finite_difference(chunks, temperature, bn):
    """Hg of L_total = sum over the label-sorted chunks; with BN in train mode each class-disjoint half is
    normalised with its own batch statistics (the official two-halves computation), which the reference's
    per-chunk forward passes reproduce."""
    net = grasp_net(bn)
    x, y = grasp_batch()
    hg = Grasp(temperature=temperature, chunks=chunks).hessian_gradient_product(net, [(x, y)])[0]
    fd = fd_hessian_gradient(net, x, y, temperature, chunks, eps=1e-3 if temperature > 1 else 1e-4)
    for n in fd:
        scale = float(fd[n].abs().max())
        assert scale > 0
        torch.testing.assert_close(hg[n], fd[n], rtol=1e-5, atol=1e-6 * scale)


def test_grasp_removes_largest_minus_theta_hg():
    net = grasp_net()
    x, y = grasp_batch()
    fd = fd_hessian_gradient(net, x, y, 200.0, 1, eps=1e-3)
    big_s = {n: -p.detach() * fd[n] for n, p in [("0.weight", net[0].weight), ("2.weight", net[2].weight)]}
    flat = torch.cat([v.reshape(-1) for v in big_s.values()])
    n_total = flat.numel()
    mask = prune(net, "grasp", 1.0 / n_total, [(x, y)])  # remove exactly one weight
    removed = torch.cat([~mask[n].reshape(-1) for n in big_s]).nonzero().reshape(-1).tolist()
    assert removed == [int(flat.argmax())]
    # Flipping the sign of the score flips which weight is removed.
    imp = scores(net, "grasp", [(x, y)])
    flipped = select({n: -v for n, v in imp.items()}, 1 - 1.0 / n_total)
    removed_flipped = torch.cat([~flipped[n].reshape(-1) for n in imp]).nonzero().reshape(-1).tolist()
    assert removed_flipped == [int(flat.argmin())] != removed


def test_grasp_reinit_linear_uses_copy_weights():
    net = grasp_net()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    x, y = grasp_batch()
    a = scores(net, "grasp", [(x, y)], reinit_linear=True, seed=3)
    b = scores(net, "grasp", [(x, y)], reinit_linear=True, seed=3)
    c = scores(net, "grasp", [(x, y)])
    assert all(torch.equal(a[n], b[n]) for n in a)
    assert not torch.allclose(a["2.weight"], c["2.weight"])
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())


def test_grasp_halves_with_own_batch_statistics_differ_from_the_whole_batch():
    net, (x, y) = grasp_net(bn=True), grasp_batch()
    whole = Grasp(chunks=1).hessian_gradient_product(net, [(x, y)])[0]
    halves = Grasp(chunks=2).hessian_gradient_product(net, [(x, y)])[0]
    assert not torch.allclose(whole["0.weight"], halves["0.weight"], rtol=1e-3)
