"""Model zoo: prunable-weight counts pinned against docs/methods.md B.1; forward shapes; init schemes."""
import pytest
import torch

from prunebench.library.errors import PrunebenchError
from prunebench.library.models import build_model, count_prunable

# docs/methods.md B.1 (and hand counts for the MNIST nets)
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
    from prunebench.library.datasets import dataset_spec

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


