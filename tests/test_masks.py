"""Mask: density, per-layer report, collapse detection, apply, bit-packed save/load with validation."""
import pytest
import torch

from prunebench.library.errors import PrunebenchError
from prunebench.library.masks import Mask
from prunebench.library.models import build_model, prunable_parameters


def random_mask(model, density=0.3, seed=0):
    g = torch.Generator().manual_seed(seed)
    return Mask({n: torch.rand(p.shape, generator=g) < density for n, p in prunable_parameters(model).items()})


def test_density_and_report():
    m = Mask({"a": torch.tensor([True, False, True, True]), "b": torch.zeros(2, 3, dtype=torch.bool)})
    assert (m.kept, m.total) == (3, 10) and m.density == pytest.approx(0.3) and m.sparsity == pytest.approx(0.7)
    rep = m.layer_report()
    assert rep[0] == {"name": "a", "shape": [4], "numel": 4, "kept": 3, "density": 0.75}
    assert m.collapsed() == ["b"]
    with pytest.raises(PrunebenchError, match="layer collapse.*b"):
        m.check_collapse()
    assert m.check_collapse(allow=True) == ["b"]


def test_round_trip_is_exact_and_bit_packed(tmp_path):
    model = build_model("lenet300", "mnist")
    m = random_mask(model)
    m.save(tmp_path / "m.safetensors", method="random", sparsity=0.7, seed=0)
    back = Mask.load(tmp_path / "m.safetensors", model)
    assert back == m
    assert back.metadata["method"] == "random" and back.metadata["kept"] == m.kept
    size = (tmp_path / "m.safetensors").stat().st_size
    assert size < m.total / 8 + 4096  # one bit per weight plus the header
    m.save(tmp_path / "m2.safetensors", method="random", sparsity=0.7, seed=0)
    assert (tmp_path / "m.safetensors").read_bytes() == (tmp_path / "m2.safetensors").read_bytes()


def test_apply_zeroes_pruned_weights():
    model = build_model("lenet300", "mnist")
    m = random_mask(model)
    m.apply(model)
    for n, p in prunable_parameters(model).items():
        assert torch.all(p[~m[n]] == 0) and torch.all(p[m[n]] != 0)


def test_mask_for_another_model_is_a_clear_error(tmp_path):
    m = random_mask(build_model("lenet300", "mnist"))
    m.save(tmp_path / "m.safetensors")
    with pytest.raises(PrunebenchError, match="does not fit"):
        Mask.load(tmp_path / "m.safetensors", build_model("conv4", "mnist"))
    with pytest.raises(PrunebenchError, match="shape"):
        Mask.load(tmp_path / "m.safetensors", build_model("lenet300", "cifar10"))


@pytest.mark.parametrize("damage", ["truncate", "garbage", "missing"])
def test_corrupt_mask_file(tmp_path, damage):
    p = tmp_path / "m.safetensors"
    random_mask(build_model("lenet300", "mnist")).save(p)
    if damage == "truncate":
        p.write_bytes(p.read_bytes()[: p.stat().st_size // 2])
    elif damage == "garbage":
        p.write_bytes(b"not a safetensors file at all")
    else:
        p.unlink()
    with pytest.raises(PrunebenchError, match="mask file"):
        Mask.load(p)


def test_failed_save_leaves_no_file(tmp_path, monkeypatch):
    """A write that fails (a full disk) is a one-line error naming the file, and leaves no temporary file."""
    import errno

    import safetensors.torch

    from prunebench.library.errors import PrunebenchError

    def boom(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(safetensors.torch, "save_file", boom)
    with pytest.raises(PrunebenchError, match="cannot write mask file .*m.safetensors.*No space left on device"):
        random_mask(build_model("lenet300", "mnist")).save(tmp_path / "m.safetensors")
    assert list(tmp_path.iterdir()) == []


def test_bias_entries_fit_apply_and_do_not_count_as_collapse():
    # SNIP's official `prune_bias` option ranks biases too: their masks must fit and apply.
    from prunebench.library.pruners import prune

    model = build_model("lenet300", "mnist")
    x, y = torch.randn(8, 1, 28, 28), torch.randint(0, 10, (8,))
    m = prune(model, "snip", 0.9, [(x, y)], prune_bias=True)
    assert any(n.endswith("bias") for n in m)
    m.apply(model)
    assert torch.all(model.net[0].bias[~m["net.0.bias"]] == 0)
    zero_bias = Mask({"net.0.weight": torch.ones(300, 784, dtype=torch.bool), "net.0.bias": torch.zeros(300, dtype=torch.bool)})
    assert zero_bias.collapsed() == []
