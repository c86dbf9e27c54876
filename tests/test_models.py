"""Model zoo: prunable-weight counts pinned against methods.md B.1; forward shapes; init schemes."""
import pytest
import torch

from prunebench.errors import PrunebenchError
from prunebench.init import SCHEMES, initialize, load_init, save_init
from prunebench.models import build_model, count_prunable, prunable_parameters

# methods.md B.1 (and hand counts for the MNIST nets)
COUNTS = [
    ("vgg19", "cifar10", 20_024_000), ("vgg19", "cifar100", 20_070_080), ("vgg19_bn_bias", "cifar10", 20_024_000),
    ("vgg16", "cifar100", 14_761_664), ("resnet50", "cifar10", 23_467_712), ("resnet32_grasp", "cifar10", 1_855_584),
    ("resnet32", "cifar10", 461_872), ("resnet20", "cifar10", 268_336), ("resnet18", "tiny-imagenet", 11_261_632),
    ("lenet300", "mnist", 784 * 300 + 300 * 100 + 100 * 10), ("lenet5", "mnist", 500 + 25_000 + 400_000 + 5_000),
    ("mlp-7-tanh", "mnist", 784 * 100 + 5 * 100 * 100 + 100 * 10),
]


@pytest.mark.parametrize("name, dataset, count", COUNTS)
def test_prunable_weight_counts(name, dataset, count):
    assert count_prunable(build_model(name, dataset)) == count


@pytest.mark.parametrize("name, dataset", [("lenet300", "mnist"), ("lenet5", "mnist"), ("conv4", "mnist"),
                                           ("mlp-3-linear", "mnist"), ("resnet20", "cifar10"),
                                           ("resnet32_grasp", "cifar100"), ("resnet18", "tiny-imagenet")])
def test_forward_shapes(name, dataset):
    from prunebench.specs import dataset_spec

    s = dataset_spec(dataset)
    out = build_model(name, dataset).eval()(torch.zeros(2, s.channels, s.size, s.size))
    assert out.shape == (2, s.num_classes)


def test_bias_variants():
    assert all(m.bias is None for n, m in build_model("vgg19").named_modules() if isinstance(m, torch.nn.Conv2d))
    assert all(m.bias is not None for n, m in build_model("vgg19_bn_bias").named_modules() if isinstance(m, torch.nn.Conv2d))


@pytest.mark.parametrize("bad", ["vgg18", "mlp-0-tanh", "mlp-3-sigmoid"])
def test_unknown_model(bad):
    with pytest.raises(PrunebenchError, match=bad.split("-")[0] if bad != "mlp-0-tanh" else "depth"):
        build_model(bad, "mnist")


def test_unknown_dataset():
    with pytest.raises(PrunebenchError, match="imagenet21k"):
        build_model("lenet300", "imagenet21k")


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
