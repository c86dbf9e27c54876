"""Signal propagation: approximate isometry and Jacobian singular values (docs/methods.md A.7, E.7)."""
import pytest
import torch
import torch.nn as nn

from prunebench.library.errors import PrunebenchError
from prunebench.library.init import initialize
from prunebench.library.masks import Mask
from prunebench.library.models import MLP, build_model, prunable_parameters
from prunebench.library.signalprop import (_grouped, _objective, approximate_isometry, isometry_objective,
                                           jacobian_singular_values, objective_and_gradient)


def random_mask(model, density, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return Mask({n: torch.rand(p.shape, generator=gen) < density for n, p in prunable_parameters(model).items()})


def test_objective_is_frobenius_of_tf_layout():
    conv = nn.Conv2d(3, 5, (2, 3), bias=False)
    net = nn.Sequential(conv, nn.Flatten(), nn.Linear(7, 4))
    w = conv.weight.detach()
    # TF kernel [kh, kw, cin, cout] reshaped to [kh*kw*cin, cout]: A^T A is cout x cout.
    a = w.permute(2, 3, 1, 0).reshape(-1, w.shape[0])
    lin = net[2].weight.detach()  # TF dense kernel is [in, out] = our weight transposed
    b = lin.T
    want = (torch.linalg.norm(a.T @ a - torch.eye(5)) + torch.linalg.norm(b.T @ b - torch.eye(4))).item()
    assert isometry_objective(net) == pytest.approx(want, rel=1e-5)
    mask = random_mask(net, 0.5)
    a = (w * mask["0.weight"]).permute(2, 3, 1, 0).reshape(-1, w.shape[0])
    b = (lin * mask["2.weight"]).T
    want = (torch.linalg.norm(a.T @ a - torch.eye(5)) + torch.linalg.norm(b.T @ b - torch.eye(4))).item()
    assert isometry_objective(net, mask) == pytest.approx(want, rel=1e-5)


def test_approximate_isometry_lowers_objective_and_keeps_pruned_zero():
    model = build_model("mlp-5-relu", "mnist")
    initialize(model, "kaiming_normal", 0)
    mask = random_mask(model, 0.5)
    biases = [m.bias.detach().clone() for m in model.net if isinstance(m, nn.Linear)]
    hist = approximate_isometry(model, mask, steps=400, record_every=50)
    assert len(hist) == 9 and hist[0] > 10 * hist[-1]
    assert hist == sorted(hist, reverse=True)
    assert hist[-1] == pytest.approx(isometry_objective(model, mask), rel=1e-5)
    for n, p in prunable_parameters(model).items():
        assert bool((p[~mask[n]] == 0).all())
        assert p.grad is None and p.requires_grad
    assert all(torch.equal(a, m.bias) for a, m in zip(biases, [m for m in model.net if isinstance(m, nn.Linear)]))


def test_approximate_isometry_moves_jsv_towards_one():
    torch.manual_seed(0)
    model = build_model("mlp-7-linear", "mnist")
    initialize(model, "kaiming_normal", 0)
    mask = random_mask(model, 0.1)
    mask.apply(model)
    x = torch.randn(10, 1, 28, 28, generator=torch.Generator().manual_seed(1))
    before = jacobian_singular_values(model, x)
    approximate_isometry(model, mask, steps=1500)
    after = jacobian_singular_values(model, x)
    assert before["n"] == after["n"] == 100
    assert abs(after["mean"] - 1) < 0.1 < 0.9 < abs(before["mean"] - 1)
    # relative spread of the singular values shrinks (the raw std grows from a ~1e-5 scale)
    assert after["std"] / after["mean"] < 0.15 < 1.0 < before["std"] / before["mean"]
    assert after["max"] / after["min"] < before["max"] / before["min"]


def test_jsv_of_orthogonal_square_linear_mlp_is_one():
    model = MLP(32, 32, [32, 32], activation="linear")
    initialize(model, "orthogonal", 0)
    x = torch.randn(4, 32)
    stats = jacobian_singular_values(model, x)
    assert stats["n"] == 4 * 32
    assert stats["mean"] == pytest.approx(1.0, abs=1e-5) and stats["std"] < 1e-5
    assert stats["min"] == pytest.approx(1.0, abs=1e-5) and stats["max"] == pytest.approx(1.0, abs=1e-5)
    assert isometry_objective(model) < 1e-4


def finite_difference_jacobians(model, x, eps=1e-6):
    out = []
    with torch.no_grad():
        for xi in x:
            flat = xi.reshape(-1)
            cols = []
            for j in range(flat.numel()):
                d = torch.zeros_like(flat)
                d[j] = eps
                hi = model((flat + d).reshape(xi.shape).unsqueeze(0))[0]
                lo = model((flat - d).reshape(xi.shape).unsqueeze(0))[0]
                cols.append((hi - lo) / (2 * eps))
            out.append(torch.stack(cols, dim=1))
    return torch.stack(out)


@pytest.mark.parametrize("method", ["func", "loop"])
def test_jsv_matches_finite_differences_and_leaves_model_alone(method):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(2, 3, 3, padding=1), nn.BatchNorm2d(3), nn.Tanh(), nn.Flatten(),
                          nn.Linear(3 * 4 * 4, 5)).double()
    model.train()
    model(torch.randn(8, 2, 4, 4, dtype=torch.double))  # non-trivial running statistics
    state = {k: v.clone() for k, v in model.state_dict().items()}
    x = torch.randn(3, 2, 4, 4, dtype=torch.double)
    stats = jacobian_singular_values(model, x, method=method, return_values=True)
    assert model.training and all(m.training for m in model.modules())
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())
    assert all(p.grad is None for p in model.parameters())
    model.eval()
    fd = torch.linalg.svdvals(finite_difference_jacobians(model, x)).reshape(-1)
    assert torch.allclose(stats["values"], fd, atol=1e-6)
    assert stats["mean"] == pytest.approx(float(fd.mean()), abs=1e-7)
    assert stats["std"] == pytest.approx(float(fd.std(correction=0)), abs=1e-7)
    assert (stats["min"], stats["max"], stats["n"]) == pytest.approx((float(fd.min()), float(fd.max()), 15))


def test_jsv_func_and_loop_agree_on_a_bn_convnet():
    model = build_model("conv4", "cifar10")
    initialize(model, "kaiming_normal", 0)
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    a = jacobian_singular_values(model, x, method="func", return_values=True)
    b = jacobian_singular_values(model, x, method="loop", return_values=True)
    assert torch.allclose(a["values"], b["values"], rtol=1e-4, atol=1e-6)


def test_validation():
    model = build_model("mlp-3-linear", "mnist")
    with pytest.raises(PrunebenchError, match="steps"):
        approximate_isometry(model, None, steps=-1)
    with pytest.raises(PrunebenchError, match="lr"):
        approximate_isometry(model, None, steps=1, lr=0)
    with pytest.raises(PrunebenchError, match="JSV method"):
        jacobian_singular_values(model, torch.zeros(1, 1, 28, 28), method="svd")
    bad = Mask({"net.0.weight": torch.ones(3, 3, dtype=torch.bool)})
    with pytest.raises(PrunebenchError, match="does not fit"):
        approximate_isometry(model, bad, steps=1)


def test_isometry_gradient_in_closed_form_equals_autograd():
    g = torch.Generator().manual_seed(3)
    ws = [torch.randn(5, 12, generator=g, dtype=torch.float64), torch.randn(4, 3, 2, 2, generator=g, dtype=torch.float64)]
    cs = [(torch.rand(w.shape, generator=g) > 0.3).double() for w in ws]
    ws = [w * c for w, c in zip(ws, cs)]
    eyes = [torch.eye(w.shape[0], dtype=torch.float64) for w in ws]
    loss, grads = objective_and_gradient(ws, cs, eyes)
    leaves = [w.clone().requires_grad_(True) for w in ws]
    ref = _objective(leaves, cs)
    auto = torch.autograd.grad(ref, leaves)
    torch.testing.assert_close(loss, ref.detach())
    for a, b in zip(grads, auto):
        torch.testing.assert_close(a, b)


def test_stacked_layers_give_the_closed_form_gradient_of_each_layer():
    """Layers of one flattened shape are updated as one [g, rows, cols] stack (batched products): the objective
    is the sum over the stack and each slice's gradient is that layer's autograd gradient."""
    g = torch.Generator().manual_seed(4)
    ws = [torch.randn(6, 2, 3, 3, generator=g, dtype=torch.float64) for _ in range(3)] + \
        [torch.randn(6, 18, generator=g, dtype=torch.float64), torch.randn(4, 6, generator=g, dtype=torch.float64)]
    cs = [(torch.rand(w.shape, generator=g) > 0.4).double() for w in ws]
    ws = [w * c for w, c in zip(ws, cs)]
    groups = _grouped(ws, cs)
    assert [idx for idx, *_ in groups] == [[0, 1, 2, 3], [4]]  # conv 6x(2*3*3) and linear 6x18 share a shape
    loss, grads = objective_and_gradient([gr[1] for gr in groups], [gr[2] for gr in groups], [gr[3] for gr in groups])
    leaves = [w.clone().requires_grad_(True) for w in ws]
    ref = _objective(leaves, cs)
    auto = torch.autograd.grad(ref, leaves)
    torch.testing.assert_close(loss, ref.detach())
    stack = grads[0]
    for k in range(4):
        torch.testing.assert_close(stack[k].reshape(ws[k].shape), auto[k])
    torch.testing.assert_close(grads[1], auto[4])


def test_isometry_follows_plain_sgd_on_the_definition():
    """10 steps of the fast path = 10 steps of SGD with autograd on sum_l ||(C.W)(C.W)^T - I||_F, layer by layer
    (float64, so the comparison is tight); a VGG-like net with repeated conv shapes exercises the stacks."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 8, 3), nn.Conv2d(8, 8, 3), nn.Conv2d(8, 8, 3), nn.Flatten(), nn.Linear(8, 8),
                        nn.Linear(8, 4)).double()
    mask = random_mask(net, 0.6, seed=2)
    mask.apply(net)
    ref = [p.detach().clone() for p in prunable_parameters(net).values()]
    cs = [mask[n].double() for n in prunable_parameters(net)]
    for _ in range(10):
        leaves = [w.requires_grad_(True) for w in ref]
        grads = torch.autograd.grad(_objective(leaves, cs), leaves)
        ref = [(w - 0.05 * gr).detach() for w, gr in zip(leaves, grads)]
    approximate_isometry(net, mask, steps=10, lr=0.05)
    for w, p in zip(ref, prunable_parameters(net).values()):
        torch.testing.assert_close(p.detach(), w, rtol=1e-10, atol=1e-12)


def test_isometry_flushes_subnormal_weights_and_restores_the_mode():
    """A kept weight of 1e-39 (a float32 subnormal) is flushed to exactly 0 while isometry runs (subnormal
    arithmetic is about ten times slower on x86); afterwards PyTorch's default (no flushing) is back. The row
    [1e-39, 1] is at the isometry (B B^T = 1), so its gradient is 0: only the flushing moves the weight."""
    net = nn.Sequential(nn.Linear(2, 1, bias=False))
    with torch.no_grad():
        net[0].weight.copy_(torch.tensor([[1e-39, 1.0]]))
    if not torch.set_flush_denormal(False):
        pytest.skip("this CPU cannot flush subnormals (not x86 with SSE3)")
    approximate_isometry(net, None, steps=1, lr=0.1)
    assert net[0].weight[0, 0].item() == 0.0 and net[0].weight[0, 1].item() == 1.0
    tiny = torch.tensor([1e-39])
    assert (tiny * 1.0).item() != 0.0  # the mode was switched off again


def test_isometry_at_an_exact_isometry_stays_put():
    """||A||_F = 0 (an orthogonal layer, no mask): the gradient is 0, not 0/0."""
    net = nn.Sequential(nn.Linear(3, 3, bias=False))
    with torch.no_grad():
        net[0].weight.copy_(torch.eye(3))
    hist = approximate_isometry(net, None, steps=5)
    assert hist == [0.0] * 6 and torch.equal(net[0].weight.detach(), torch.eye(3))


class _BatchCentred(nn.Module):
    """Examples interact even in eval mode (half the batch mean is subtracted): the batched loop is wrong here."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(6, 3)

    def forward(self, x):
        return self.fc(torch.tanh(x - 0.5 * x.mean(0, keepdim=True)))


def test_jsv_auto_uses_the_batched_loop_unless_examples_interact():
    torch.manual_seed(0)
    x = torch.randn(5, 6)
    mlp = MLP(6, 3, [8, 8], activation="tanh")
    auto = jacobian_singular_values(mlp, x, return_values=True)
    assert torch.equal(auto["values"], jacobian_singular_values(mlp, x, method="loop", return_values=True)["values"])
    torch.testing.assert_close(auto["values"], jacobian_singular_values(mlp, x, method="func", return_values=True)["values"])
    centred = _BatchCentred()
    auto = jacobian_singular_values(centred, x, return_values=True)
    func = jacobian_singular_values(centred, x, method="func", return_values=True)
    loop = jacobian_singular_values(centred, x, method="loop", return_values=True)
    assert torch.equal(auto["values"], func["values"]) and not torch.allclose(loop["values"], func["values"])
