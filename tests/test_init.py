"""Initialization schemes: seeded, and SPP's block-orthogonal convolutions (docs/methods.md A.7)."""
import pytest
import torch
import torch.nn.functional as F

from prunebench.library.errors import PrunebenchError
from prunebench.library.init import SCHEMES, conv_orthogonal, initialize, load_init, save_init
from prunebench.library.models import build_model, prunable_modules, prunable_parameters


def _periodic_conv(w, x):
    k = w.shape[-1]
    pad = (k // 2,) * 4 if k % 2 else (0, k - 1, 0, k - 1)
    return F.conv2d(F.pad(x, pad, mode="circular"), w)


@pytest.mark.parametrize("cin,cout,k", [(3, 8, 3), (8, 8, 3), (4, 4, 5), (2, 6, 1), (5, 7, 2)])
def test_conv_orthogonal_is_an_isometry_on_periodic_inputs(cin, cout, k):
    """The defining property: the convolution operator preserves the norm of every periodic input."""
    w = conv_orthogonal(cout, cin, k, torch.Generator().manual_seed(0)).double()
    assert w.shape == (cout, cin, k, k)
    x = torch.randn(6, cin, 10, 10, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    ratio = _periodic_conv(w, x).pow(2).sum((1, 2, 3)) / x.pow(2).sum((1, 2, 3))
    torch.testing.assert_close(ratio, torch.ones(6, dtype=torch.float64), rtol=2e-6, atol=0)
    # and it is not trivially so: the kernel spreads over the taps (not a delta)
    if k > 1:
        assert (w[:, :, 0, 0].abs().sum() > 0) and (w[:, :, -1, -1].abs().sum() > 0)


def test_spp_orthogonal_on_a_model_and_its_limits():
    net = build_model("conv4", "cifar10")
    convs = [m for m in prunable_modules(net).values() if isinstance(m, torch.nn.Conv2d)]
    assert all(m.in_channels <= m.out_channels for m in convs)
    initialize(net, "spp_orthogonal", 0)
    a = [m.weight.clone() for m in convs]
    initialize(net, "spp_orthogonal", 0)
    assert all(torch.equal(x, m.weight) for x, m in zip(a, convs))      # seeded
    lin = build_model("mlp-3-tanh", "mnist")
    initialize(lin, "spp_orthogonal", 0)
    for m in prunable_modules(lin).values():            # matrices: orthonormal rows or columns
        w = m.weight.double()
        g = w @ w.T if w.shape[0] <= w.shape[1] else w.T @ w
        torch.testing.assert_close(g, torch.eye(g.shape[0], dtype=torch.float64), atol=1e-5, rtol=0)
    bottleneck = build_model("resnet50", "cifar10")      # 1x1 reductions have cin > cout
    with pytest.raises(PrunebenchError, match=r"cannot initialise .* cin <= cout"):
        initialize(bottleneck, "spp_orthogonal", 0)


@pytest.mark.parametrize("scheme", SCHEMES)
def test_init_is_seeded_and_saved_bytes_stable(scheme, tmp_path):
    a = initialize(build_model("conv4", "mnist"), scheme, 3)
    b = initialize(build_model("conv4", "mnist"), scheme, 3)
    c = initialize(build_model("conv4", "mnist"), scheme, 4)
    save_init(tmp_path / "a.safetensors", a, scheme=scheme)
    save_init(tmp_path / "b.safetensors", b, scheme=scheme)
    assert (tmp_path / "a.safetensors").read_bytes() == (tmp_path / "b.safetensors").read_bytes()
    assert any(not torch.equal(p, q) for p, q in zip(a.parameters(), c.parameters()))
    fresh = build_model("conv4", "mnist")
    load_init(tmp_path / "a.safetensors", fresh)
    assert all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), fresh.state_dict().values()))


def test_init_variances_and_orthogonality():
    torch.manual_seed(0)
    m = build_model("lenet300", "mnist")
    w = prunable_parameters(initialize(m, "kaiming_normal", 0))["net.0.weight"].detach()
    assert float(w.var()) == pytest.approx(2 / 784, rel=0.05)
    w = prunable_parameters(initialize(m, "lecun_normal", 0))["net.2.weight"].detach()
    assert float(w.var()) == pytest.approx(1 / 300, rel=0.1)
    w = prunable_parameters(initialize(m, "orthogonal", 0))["net.2.weight"].detach()  # 100 x 300: orthonormal rows
    assert torch.allclose(w @ w.T, torch.eye(100), atol=1e-5)
    conv = prunable_parameters(initialize(build_model("conv4", "mnist"), "delta_orthogonal", 0))["features.3.weight"].detach()
    centre = conv[:, :, 1, 1]
    assert torch.allclose(centre @ centre.T, torch.eye(32), atol=1e-5)
    assert float(conv.abs().sum()) == pytest.approx(float(centre.abs().sum()))  # zeros off the centre tap


def test_init_file_for_another_model_is_a_clear_error(tmp_path):
    save_init(tmp_path / "i.safetensors", build_model("lenet300", "mnist"))
    with pytest.raises(PrunebenchError, match="does not fit"):
        load_init(tmp_path / "i.safetensors", build_model("conv4", "mnist"))


def test_unknown_init_scheme():
    with pytest.raises(PrunebenchError, match="he_uniform"):
        initialize(build_model("lenet300", "mnist"), "he_uniform", 0)
