"""ProsPr: M = 0 is SNIP, full vs first order, finite-difference meta-gradients (docs/methods.md A.8)."""
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from prunebench.library.pruners import scores


def prospr_net():
    torch.manual_seed(4)
    return nn.Sequential(nn.Linear(5, 6), nn.Tanh(), nn.Linear(6, 3)).double()


def prospr_batches(n=2):
    g = torch.Generator().manual_seed(5)
    return [(torch.randn(7, 5, generator=g, dtype=torch.float64), torch.randint(0, 3, (7,), generator=g))
            for _ in range(n)]


def test_prospr_zero_inner_steps_is_snip():
    from prunebench.library.models import build_model

    torch.manual_seed(0)
    net = build_model("conv4", "mnist")
    g = torch.Generator().manual_seed(1)
    b = [(torch.randn(8, 1, 28, 28, generator=g), torch.randint(0, 10, (8,), generator=g))]
    p = scores(net, "prospr", b, inner_steps=0)
    s = scores(net, "snip", b, bn_mode="train")
    for n in s:
        torch.testing.assert_close(p[n], s[n], rtol=1e-6, atol=1e-12)


def test_prospr_first_order_vs_full():
    net, b = prospr_net(), prospr_batches()
    full = scores(net, "prospr", b, inner_steps=2, inner_lr=0.5, mode="full")
    fo = scores(net, "prospr", b, inner_steps=2, inner_lr=0.5, mode="first_order")
    assert not torch.allclose(full["0.weight"], fo["0.weight"], rtol=1e-3)  # second-order terms matter
    # with a zero inner learning rate the inner steps are the identity: both are SNIP (train mode)
    full0 = scores(net, "prospr", b, inner_steps=2, inner_lr=0.0, mode="full")
    fo0 = scores(net, "prospr", b, inner_steps=2, inner_lr=0.0, mode="first_order")
    s = scores(net, "snip", b, bn_mode="train")
    for n in s:
        torch.testing.assert_close(full0[n], fo0[n])
        torch.testing.assert_close(full0[n], s[n])


def _meta_loss(net, c, batches, steps, lr, momentum, new_data):
    """Independent reference: L_M as a function of the mask c (plain loops, no functional_call)."""
    w1, b1, w2, b2 = (p.detach().clone().requires_grad_() for p in net.parameters())
    fast = [w1 * c[0], b1, w2 * c[1], b2]
    it = iter(batches * 10)
    x, y = next(it)
    bufs = [None] * 4

    def f(p, x):
        return F.linear(torch.tanh(F.linear(x, p[0], p[1])), p[2], p[3])

    for _ in range(steps):
        gs = torch.autograd.grad(F.cross_entropy(f(fast, x), y), fast, create_graph=True)
        new = []
        for j, (p, g) in enumerate(zip(fast, gs)):
            bufs[j] = g if bufs[j] is None else momentum * bufs[j] + g
            new.append(p - lr * bufs[j])
        fast = new
        if new_data:
            x, y = next(it)
    return F.cross_entropy(f(fast, x), y)


@pytest.mark.parametrize("new_data", [False, True])
def test_prospr_full_matches_finite_difference_meta_gradient(new_data):
    net, b = prospr_net(), prospr_batches(3)
    kw = dict(inner_steps=2, inner_lr=0.3, inner_momentum=0.5)
    got = scores(net, "prospr", b, mode="full", new_data_in_inner=new_data, **kw)
    c = [torch.ones(6, 5, dtype=torch.float64, requires_grad=True),
         torch.ones(3, 6, dtype=torch.float64, requires_grad=True)]
    eps = 1e-6
    for li, name in enumerate(["0.weight", "2.weight"]):
        for idx in [(0, 0), (1, 2), (2, 4)]:
            with torch.no_grad():
                c[li][idx] += eps
            up = _meta_loss(net, c, b, 2, 0.3, 0.5, new_data)
            with torch.no_grad():
                c[li][idx] -= 2 * eps
            down = _meta_loss(net, c, b, 2, 0.3, 0.5, new_data)
            with torch.no_grad():
                c[li][idx] += eps
            fd = abs(float((up - down).detach()) / (2 * eps))
            assert got[name][idx].item() == pytest.approx(fd, rel=1e-5, abs=1e-9)
