"""prunebench.library.data.cache: preparing the uint8 cache, its content hash (checked on every load), loading."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

from prunebench.library import data as D
from prunebench.library.data import formats
from prunebench.library.data.basics import Raw
from prunebench.library.errors import PrunebenchError
from prunebench.library.datasets import dataset_spec
from synthetic import files_under, image_tree, mnist_like

MNIST_NOTE = 'MNIST-format data "synthetic" (unverified; not the official MNIST files)'


@pytest.fixture(scope="module")
def mnist_cache(data_sources, tmp_path_factory):
    return D.prepare("mnist", tmp_path_factory.mktemp("mnist-cache"), source=data_sources / "mnist")


@pytest.fixture(scope="module")
def png_tree(tmp_path_factory):
    root = tmp_path_factory.mktemp("trees") / "cifar10"
    image_tree(root, n_train=2, n_test=1)
    return root


def test_synthetic_mnist_cache(mnist_cache):
    d = D.load("mnist", mnist_cache.parent)
    expected = mnist_like()
    assert d.train_x.shape == (2000, 1, 28, 28) and d.test_x.shape == (500, 1, 28, 28)
    assert d.train_x.dtype == torch.uint8 and d.train_y.dtype == torch.int64
    assert torch.equal(d.train_x[:, 0], torch.from_numpy(expected["train_x"]))
    assert torch.equal(d.test_y, torch.from_numpy(expected["test_y"]))
    m = d.metadata
    assert m["counts"] == {"train": 2000, "test": 500} and m["classes"] == [str(i) for i in range(10)]
    assert m["class_counts"] == {"train": [200] * 10, "test": [50] * 10}
    assert m["source"]["verified"] == "none" and m["source"]["layout"] == "mnist-idx"
    assert m["source_note"] == d.source_note == MNIST_NOTE and m["lossy"] is False
    assert m["content_sha256"] == D.content_sha256({k: getattr(d, k) for k in D.TENSOR_NAMES})
    assert m["shape"] == [1, 28, 28] and m["format"] == D.CACHE_FORMAT


def test_prepare_is_byte_identical_and_idempotent(data_sources, mnist_cache, tmp_path, monkeypatch, capsys):
    again = D.prepare("mnist", tmp_path, source=data_sources / "mnist")
    assert again.read_bytes() == mnist_cache.read_bytes()
    stat = mnist_cache.stat()

    def no_work(*a, **k):
        raise AssertionError("prepare redid the work")

    monkeypatch.setattr(formats, "read_source", no_work)
    capsys.readouterr()
    assert D.prepare("mnist", mnist_cache.parent, source=data_sources / "mnist") == mnist_cache
    assert mnist_cache.stat().st_mtime_ns == stat.st_mtime_ns and capsys.readouterr().err == ""
    # an explicit source of another name does not silently reuse the cache
    other = tmp_path / "elsewhere"
    shutil.copytree(data_sources / "mnist", other)
    with pytest.raises(PrunebenchError, match="elsewhere"):
        D.prepare("mnist", mnist_cache.parent, source=other)


def test_validation_split(mnist_cache):
    d = D.load("mnist", mnist_cache, val_fraction=0.1, val_seed=1)
    assert len(d.train_y) == 1800 and len(d.val_y) == 200 and len(d.test_y) == 500
    assert d.metadata["val"] == {"fraction": 0.1, "seed": 1, "count": 200}
    train_idx, val_idx = D.split_indices(2000, 0.1, 1)
    full = D.load("mnist", mnist_cache)
    assert torch.equal(d.val_x, full.train_x[val_idx]) and torch.equal(d.train_y, full.train_y[train_idx])
    assert torch.equal(d.split("val")[0], d.val_x)


def _tensor_span(path, name):
    """(start, end) byte offsets of tensor `name` in a safetensors file."""
    raw = path.read_bytes()
    n = int.from_bytes(raw[:8], "little")
    begin, end = json.loads(raw[8:8 + n])[name]["data_offsets"]
    return 8 + n + begin, 8 + n + end


@pytest.mark.parametrize("tensor", ["train_x", "test_y"])
def test_one_flipped_bit_is_detected_on_load(mnist_cache, tmp_path, tensor):
    start, end = _tensor_span(mnist_cache, tensor)
    damaged = bytearray(mnist_cache.read_bytes())
    damaged[(start + end) // 2] ^= 0x01  # one bit of the tensor bytes: the header still parses
    bad = tmp_path / "mnist.safetensors"
    bad.write_bytes(bytes(damaged))
    with pytest.raises(PrunebenchError) as e:
        D.load("mnist", bad)
    msg = str(e.value)
    assert "\n" not in msg and str(bad) in msg and "checksum mismatch in data cache" in msg
    with pytest.raises(PrunebenchError, match="checksum mismatch in data cache"):
        D.open_data(bad)


def test_truncated_and_damaged_cache(png_tree, tmp_path, capsys):
    good = D.prepare("cifar10", tmp_path / "good", source=png_tree)
    bad = tmp_path / "bad" / "cifar10.safetensors"
    bad.parent.mkdir()
    bad.write_bytes(good.read_bytes()[:-1000])
    with pytest.raises(PrunebenchError, match=r"corrupt data cache .*bad/cifar10\.safetensors") as e:
        D.load("cifar10", bad)
    assert "\n" not in str(e.value)
    assert D.cached_metadata(bad) is None and D.cached_metadata(good)["dataset"] == "cifar10"
    flipped = bytearray(good.read_bytes())
    flipped[-10] ^= 0xFF  # inside test_x/test_y: the header still parses
    bad.write_bytes(bytes(flipped))
    with pytest.raises(PrunebenchError, match="checksum mismatch in data cache"):
        D.load("cifar10", bad)
    with pytest.raises(PrunebenchError, match="holds 'cifar10', not 'cifar100'"):
        D.load("cifar100", good)
    if not torch.cuda.is_available():
        with pytest.raises(PrunebenchError, match="cannot use device 'cuda'"):
            D.load("cifar10", good, device="cuda")
    # prepare replaces a truncated cache instead of trusting it
    bad.write_bytes(good.read_bytes()[:-1000])
    assert D.prepare("cifar10", bad.parent, source=png_tree).read_bytes() == good.read_bytes()
    assert "rebuilding" in capsys.readouterr().err
    assert files_under(bad.parent) == [bad]


def test_unknown_dataset_and_missing_source(tmp_path):
    with pytest.raises(PrunebenchError, match="unknown dataset 'imagenet-21k'"):
        D.prepare("imagenet-21k", tmp_path / "cache")
    with pytest.raises(PrunebenchError, match="unknown dataset 'imagenet-21k'"):
        D.load("imagenet-21k", tmp_path / "cache")
    missing = tmp_path / "no-such-folder"
    with pytest.raises(PrunebenchError, match="no-such-folder"):
        D.prepare("cifar10", tmp_path / "cache", source=missing)
    with pytest.raises(PrunebenchError, match=r"missing data cache .*cifar10\.safetensors"):
        D.load("cifar10", tmp_path / "cache")
    assert not (tmp_path / "cache").exists()
    spec = dataset_spec("cifar10")
    x = torch.zeros(2, 3, 32, 32, dtype=torch.uint8)
    with pytest.raises(PrunebenchError, match="unknown split 'dev'"):
        D.Data(spec, x, torch.zeros(2, dtype=torch.int64), x, torch.zeros(2, dtype=torch.int64)).split("dev")


def test_bad_arrays_are_refused(tmp_path, monkeypatch):
    """What a reader returns is checked before anything is written: shapes, label range, class count."""
    def fake(labels, classes=10):
        def read(spec, path, progress):
            x = np.zeros((2, 1, 28, 28), dtype=np.uint8)
            raw = Raw(x, np.array(labels), x, np.array(labels), [str(i) for i in range(classes)], "test")
            return raw, {}
        return read

    (tmp_path / "src").mkdir()
    monkeypatch.setattr(formats, "read_source", fake([0, 10]))
    with pytest.raises(PrunebenchError, match="train label 10 outside 0..9"):
        D.prepare("mnist", tmp_path / "cache", source=tmp_path / "src")
    monkeypatch.setattr(formats, "read_source", fake([0, 1], classes=3))
    with pytest.raises(PrunebenchError, match="3 classes, expected 10"):
        D.prepare("mnist", tmp_path / "cache", source=tmp_path / "src")
    assert files_under(tmp_path / "cache") == []


def test_split_indices_deterministic_and_disjoint():
    train, val = D.split_indices(50000, 0.1, 1)
    assert len(val) == 5000 and len(train) == 45000
    assert set(train.tolist()).isdisjoint(val.tolist()) and len(set(train.tolist()) | set(val.tolist())) == 50000
    t2, v2 = D.split_indices(50000, 0.1, 1)
    assert torch.equal(train, t2) and torch.equal(val, v2)
    assert not torch.equal(val, D.split_indices(50000, 0.1, 2)[1])
    # FORCE's loader: np.random.seed(1); np.random.shuffle(indices); valid = indices[:split]
    indices = list(range(50000))
    np.random.RandomState(1).shuffle(indices)
    assert sorted(indices[:5000]) == val.tolist()
    for bad in (1.0, -0.1, "0.1"):
        with pytest.raises(PrunebenchError, match="val_fraction"):
            D.split_indices(100, bad, 1)
