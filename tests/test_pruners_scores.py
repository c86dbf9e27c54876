"""Raw saliencies of the at-initialization pruners against hand computations and finite differences
(reference/methods.md A.1-A.5, A.8)."""
import math

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from prunebench.pruners import grasp, iterative, magnitude, prospr, prune, snip, synflow
from prunebench.pruners.common import select

# ---------------------------------------------------------------------------------------------------
# The toy network: x (2) -> Linear(2, 2, no bias) -> ReLU -> Linear(2, 2, no bias) -> logits
#   W1 = [[1, 2], [1, -0.5]],  W2 = [[1, 2], [2, -2]],  x = [2, 1],  target class 0
#   pre = W1 x = [2 + 2, 2 - 0.5] = [4, 1.5] (both > 0, ReLU passes), h = [4, 1.5]
#   z = W2 h = [4 + 3, 8 - 3] = [7, 5]


def toy(act=nn.ReLU):
    net = nn.Sequential(nn.Linear(2, 2, bias=False), act(), nn.Linear(2, 2, bias=False))
    with torch.no_grad():
        net[0].weight.copy_(torch.tensor([[1.0, 2.0], [1.0, -0.5]]))
        net[2].weight.copy_(torch.tensor([[1.0, 2.0], [2.0, -2.0]]))
    return net


X = torch.tensor([[2.0, 1.0]])
Y = torch.tensor([0])


def close(scores, expected):
    for name, value in expected.items():
        torch.testing.assert_close(scores[name].double(), torch.tensor(value, dtype=torch.float64),
                                   rtol=1e-6, atol=1e-7)


def test_snip_hand_computed_cross_entropy():
    # p = softmax([7, 5]); dL/dz = p - onehot(0) = [-tau, tau] with tau = p1 = 1 / (1 + e^2).
    # dL/dW2 = dz h^T = [[-4tau, -1.5tau], [4tau, 1.5tau]]    -> |W2 * g| = [[4tau, 3tau], [8tau, 3tau]]
    # dL/dh  = W2^T dz = [-tau + 2tau, -2tau - 2tau] = [tau, -4tau]  (ReLU active on both units)
    # dL/dW1 = dh x^T  = [[2tau, tau], [-8tau, -4tau]]          -> |W1 * g| = [[2tau, 2tau], [8tau, 2tau]]
    tau = 1.0 / (1.0 + math.exp(2.0))
    s = snip.scores(toy(), [(X, Y)])
    close(s, {"0.weight": [[2 * tau, 2 * tau], [8 * tau, 2 * tau]],
              "2.weight": [[4 * tau, 3 * tau], [8 * tau, 3 * tau]]})


def test_snip_hand_computed_neg_logit_and_uniform_labels():
    # neg_logit: L = -z_0, dL/dz = [-1, 0]
    #   dL/dW2 = [[-4, -1.5], [0, 0]] -> [[4, 3], [0, 0]];  dL/dh = [-1, -2] -> dL/dW1 = [[-2, -1], [-4, -2]]
    #   |W1 * g| = [[2, 2], [4, 1]]
    s = snip.scores(toy(), [(X, Y)], loss="neg_logit")
    close(s, {"0.weight": [[2, 2], [4, 1]], "2.weight": [[4, 3], [0, 0]]})
    # uniform labels (SPP A.7): L = -mean_c log p_c, dL/dz = p - 1/2 = [u, -u] with u = 1/2 - tau:
    # the true-label pattern with tau -> u (dz is again proportional to [-1, 1], with the opposite sign).
    u = 0.5 - 1.0 / (1.0 + math.exp(2.0))
    s = snip.scores(toy(), [(X, Y)], labels="uniform")
    close(s, {"0.weight": [[2 * u, 2 * u], [8 * u, 2 * u]], "2.weight": [[4 * u, 3 * u], [8 * u, 3 * u]]})


def test_snip_averages_batches():
    # Two batches: the gradient is averaged, so the score is |theta * (g_a + g_b) / 2|.
    xb = torch.tensor([[1.0, 3.0]])
    a = snip.scores(toy(), [(X, Y)], loss="neg_logit")
    b = snip.scores(toy(), [(xb, Y)], loss="neg_logit")
    ab = snip.scores(toy(), [(X, Y), (xb, Y)], num_batches=2, loss="neg_logit")
    for n in ab:  # every gradient has the same sign in both batches here, so |mean| = mean of |.|
        torch.testing.assert_close(ab[n], (a[n] + b[n]) / 2)


def test_magnitude_hand_computed():
    close(magnitude.scores(toy()), {"0.weight": [[1, 2], [1, 0.5]], "2.weight": [[1, 2], [2, 2]]})


def test_synflow_hand_computed():
    # |W1| = [[1, 2], [1, 0.5]], |W2| = [[1, 2], [2, 2]], input 1 = [1, 1] (shape from the first Linear).
    # h = |W1| 1 = [3, 1.5]; out = |W2| h = [6, 9]; R = 15.
    # dR/dW2 = 1 h^T = [[3, 1.5], [3, 1.5]]  -> |W2| * . = [[3, 3], [6, 3]]
    # dR/dh = |W2|^T 1 = [3, 4]; dR/dW1 = [3, 4] 1^T = [[3, 3], [4, 4]] -> |W1| * . = [[3, 6], [4, 2]]
    s = synflow.scores(toy())
    close(s, {"0.weight": [[3, 6], [4, 2]], "2.weight": [[3, 3], [6, 3]]})
    # Conservation of synaptic flow: every layer's scores sum to R = 15.
    assert [float(v.sum()) for v in s.values()] == [15.0, 15.0]


def test_synflow_conserves_flow_and_keeps_pruned_weights_pruned():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(6, 8, bias=False), nn.ReLU(), nn.Linear(8, 5, bias=False), nn.ReLU(),
                        nn.Linear(5, 3, bias=False))
    s = synflow.scores(net)
    sums = [float(v.sum()) for v in s.values()]
    assert max(sums) - min(sums) < 1e-9 * max(sums)
    masks = []
    synflow.prune_mask(net, None, 0.2, "global", 0, iterations=5, on_step=lambda t, m: masks.append(m))
    for a, b in zip(masks, masks[1:]):
        for n in a:
            assert not (b[n] & ~a[n]).any()  # nested: pruned weights never return


def test_synflow_input_shape_needed_for_convs():
    from prunebench.errors import PrunebenchError

    net = nn.Sequential(nn.Conv2d(1, 2, 3), nn.Flatten(), nn.Linear(2 * 4 * 4, 2))
    with pytest.raises(PrunebenchError, match="input_shape"):
        synflow.scores(net)
    a = synflow.scores(net, input_shape=(1, 6, 6))
    b = synflow.scores(net, batches=[(torch.zeros(3, 1, 6, 6), torch.zeros(3, dtype=torch.long))])
    for n in a:
        torch.testing.assert_close(a[n], b[n])


# ---------------------------------------------------------------------------------------------------
# GraSP


def grasp_net():
    torch.manual_seed(1)
    return nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 3)).double()


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
    ws = [net[0].weight, net[2].weight]

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
    return {"0.weight": (plus[0] - minus[0]) / (2 * eps), "2.weight": (plus[1] - minus[1]) / (2 * eps)}


@pytest.mark.parametrize("chunks,temperature", [(1, 1.0), (2, 200.0)])
def test_grasp_hg_equals_finite_difference(chunks, temperature):
    net = grasp_net()
    x, y = grasp_batch()
    hg = grasp.hessian_gradient_product(net, [(x, y)], temperature=temperature, chunks=chunks)
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
    imp = grasp.scores(net, [(x, y)])
    flipped = select({n: -v for n, v in imp.items()}, 1 - 1.0 / n_total)
    removed_flipped = torch.cat([~flipped[n].reshape(-1) for n in imp]).nonzero().reshape(-1).tolist()
    assert removed_flipped == [int(flat.argmin())] != removed


def test_grasp_reinit_linear_uses_copy_weights():
    net = grasp_net()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    x, y = grasp_batch()
    a = grasp.scores(net, [(x, y)], reinit_linear=True, seed=3)
    b = grasp.scores(net, [(x, y)], reinit_linear=True, seed=3)
    c = grasp.scores(net, [(x, y)])
    assert all(torch.equal(a[n], b[n]) for n in a)
    assert not torch.allclose(a["2.weight"], c["2.weight"])
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())


# ---------------------------------------------------------------------------------------------------
# FORCE / Iterative SNIP
#
# Construction where FORCE revives a pruned weight. Linear(2, 3, no bias) -> Linear(3, 1, no bias),
# x = [1, 1], loss neg_logit (L = -out), steps 2, exp schedule to density 0.2 over N = 9 weights:
# d_1 = sqrt(0.2) keeps round(4.02) = 4, d_2 = 0.2 keeps round(1.8) = 2.
#   W1 = [[6, -5.8], [1, 1], [5.9, 0]], W2 = [[1, 4, 1]];  h = W1 x = [0.2, 2, 5.9]
#   step 1 (dense): |W1_ij * W2_i x_j| = [[6, 5.8], [4, 4], [5.9, 0]],  |W2_i h_i| = [0.2, 8, 5.9]
#     top 4: W2_1 (8), W1_00 (6), W1_20 (5.9), W2_2 (5.9); unit 0 loses W1_01 (its cancelling partner)
#     and W2_0 (score 0.2: h_0 = 6 - 5.8 is small).
#   step 2 at W = theta0 * m_1: h = [6, 0, 5.9], W2 = [0, 4, 1]
#     FORCE |theta0 * g|: W2 = [1*6, 4*0, 1*5.9] = [6, 0, 5.9]; W1 = [[0, 0], [4, 4], [5.9, 0]]
#       top 2: W2_0 (6) and W1_20 (5.9, earlier than W2_2): W2_0 comes back.
#     Iter SNIP |w * g| on eligible (kept) weights: W1_00 0, W1_20 5.9, W2_1 0, W2_2 5.9 -> W1_20, W2_2.


def revival_net():
    net = nn.Sequential(nn.Linear(2, 3, bias=False), nn.Linear(3, 1, bias=False))
    with torch.no_grad():
        net[0].weight.copy_(torch.tensor([[6.0, -5.8], [1.0, 1.0], [5.9, 0.0]]))
        net[1].weight.copy_(torch.tensor([[1.0, 4.0, 1.0]]))
    return net


def _trace(fn, net, **kw):
    masks = []
    fn(net, [(torch.ones(1, 2), torch.zeros(1, dtype=torch.long))], 0.2, steps=2, loss="neg_logit",
       on_step=lambda t, m: masks.append({n: v.int().tolist() for n, v in m.items()}), **kw)
    return masks


def test_force_revives_a_pruned_weight():
    m1, m2 = _trace(iterative.force_mask, revival_net())
    assert m1 == {"0.weight": [[1, 0], [0, 0], [1, 0]], "1.weight": [[0, 1, 1]]}
    assert m2 == {"0.weight": [[0, 0], [0, 0], [1, 0]], "1.weight": [[1, 0, 0]]}  # W2_0 is back


def test_iter_snip_never_revives():
    m1, m2 = _trace(iterative.iter_snip_mask, revival_net())
    assert m1 == {"0.weight": [[1, 0], [0, 0], [1, 0]], "1.weight": [[0, 1, 1]]}
    assert m2 == {"0.weight": [[0, 0], [0, 0], [1, 0]], "1.weight": [[0, 0, 1]]}
    # and on a random net with many steps the masks are nested
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(10, 20), nn.ReLU(), nn.Linear(20, 4))
    batches = [(torch.randn(16, 10), torch.randint(0, 4, (16,))) for _ in range(3)]
    masks = []
    iterative.iter_snip_mask(net, batches, 0.05, steps=8, on_step=lambda t, m: masks.append(m))
    assert len(masks) == 8
    for a, b in zip(masks, masks[1:]):
        assert all(not (b[n] & ~a[n]).any() for n in a)


@pytest.mark.parametrize("loss", ["ce", "neg_logit"])
def test_one_step_force_and_iter_snip_equal_snip(loss):
    from prunebench.models import build_model

    torch.manual_seed(0)
    net = build_model("conv4", "mnist")  # has BatchNorm: train-mode BN for all three
    g = torch.Generator().manual_seed(1)
    b = [(torch.randn(8, 1, 28, 28, generator=g), torch.randint(0, 10, (8,), generator=g))]
    ref = prune(net, "snip", 0.9, b, bn_mode="train", loss=loss)
    for method in ("force", "iter_snip"):
        assert prune(net, method, 0.9, b, steps=1, loss=loss) == ref
    # and the eval-mode SNIP (the paper default) is a different mask on this BN net
    assert prune(net, "snip", 0.9, b, loss=loss) != ref


# ---------------------------------------------------------------------------------------------------
# ProsPr


def prospr_net():
    torch.manual_seed(4)
    return nn.Sequential(nn.Linear(5, 6), nn.Tanh(), nn.Linear(6, 3)).double()


def prospr_batches(n=2):
    g = torch.Generator().manual_seed(5)
    return [(torch.randn(7, 5, generator=g, dtype=torch.float64), torch.randint(0, 3, (7,), generator=g))
            for _ in range(n)]


def test_prospr_zero_inner_steps_is_snip():
    from prunebench.models import build_model

    torch.manual_seed(0)
    net = build_model("conv4", "mnist")
    g = torch.Generator().manual_seed(1)
    b = [(torch.randn(8, 1, 28, 28, generator=g), torch.randint(0, 10, (8,), generator=g))]
    p = prospr.scores(net, b, inner_steps=0)
    s = snip.scores(net, b, bn_mode="train")
    for n in s:
        torch.testing.assert_close(p[n], s[n], rtol=1e-6, atol=1e-12)


def test_prospr_first_order_vs_full():
    net, b = prospr_net(), prospr_batches()
    full = prospr.scores(net, b, inner_steps=2, inner_lr=0.5, mode="full")
    fo = prospr.scores(net, b, inner_steps=2, inner_lr=0.5, mode="first_order")
    assert not torch.allclose(full["0.weight"], fo["0.weight"], rtol=1e-3)  # second-order terms matter
    # with a zero inner learning rate the inner steps are the identity: both are SNIP (train mode)
    full0 = prospr.scores(net, b, inner_steps=2, inner_lr=0.0, mode="full")
    fo0 = prospr.scores(net, b, inner_steps=2, inner_lr=0.0, mode="first_order")
    s = snip.scores(net, b, bn_mode="train")
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
    got = prospr.scores(net, b, mode="full", new_data_in_inner=new_data, **kw)
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
