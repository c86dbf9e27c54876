"""Random pruning: seeded, uniform global, given per-layer densities (docs/methods.md A.6)."""
import pytest

from prunebench.library.errors import PrunebenchError
from prunebench.library.models import build_model, prunable_parameters
from prunebench.library.pruners import prune
from prunebench.library.pruners.topk import keep_count
from toys import small


def test_random_seed_and_uniform_global_density():
    net = build_model("lenet300", "mnist")
    a, b = prune(net, "random", 0.9, seed=0), prune(net, "random", 0.9, seed=1)
    assert a != b
    assert a == prune(net, "random", 0.9, seed=0)
    for r in a.layer_report():  # uniform global: each layer ~ the target density (1000+ weights each)
        assert abs(r["density"] - 0.1) < 0.04
    # the random mask depends on the seed and shapes only, not on the weights
    other = build_model("lenet300", "mnist")
    assert prune(other, "random", 0.9, seed=0) == a


def test_random_given_layer_densities():
    net = small()
    dens = {"conv1.weight": 0.5, "conv2.weight": 0.1, "fc.weight": 1.0}
    n = {k: v.numel() for k, v in prunable_parameters(net).items()}
    total_kept = sum(keep_count(n[k], d) for k, d in dens.items())
    sparsity = 1 - total_kept / sum(n.values())
    mask = prune(net, "random", sparsity, densities=dens)
    assert {r["name"]: r["kept"] for r in mask.layer_report()} == {k: keep_count(n[k], d) for k, d in dens.items()}
    assert mask.metadata["scope"] == "layerwise"
    with pytest.raises(PrunebenchError, match="missing 'fc.weight'"):
        prune(net, "random", sparsity, densities={"conv1.weight": 0.5, "conv2.weight": 0.1})
    with pytest.raises(PrunebenchError, match="sparsity asks"):
        prune(net, "random", 0.01, densities=dens)
