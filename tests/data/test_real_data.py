"""Real-data checks, in addition to the synthetic suite: they run where the offline copies of the real data
sets exist (../shared/data, or $PRUNEBENCH_SHARED_DATA) and skip, saying so, elsewhere."""
from __future__ import annotations

import hashlib

import pytest
import torch

from prunebench.library import data as D
from synthetic import CIFAR_CLASSES, files_under

pytestmark = pytest.mark.real_data


@pytest.fixture(scope="module")
def mnist_cache(shared_data, tmp_path_factory):
    return D.prepare("mnist", tmp_path_factory.mktemp("mnist-cache"), source=shared_data / "mnist")


def test_mnist_local_copy(mnist_cache):
    d = D.load("mnist", mnist_cache.parent)
    assert d.train_x.shape == (60000, 1, 28, 28) and d.test_x.shape == (10000, 1, 28, 28)
    assert d.train_x.dtype == torch.uint8 and d.train_y.dtype == torch.int64
    assert d.train_y[:10].tolist() == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]
    assert d.test_y[:10].tolist() == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]
    assert abs(d.train_x.float().div(255).mean().item() - 0.1307) < 1e-4
    m = d.metadata
    assert m["counts"] == {"train": 60000, "test": 10000} and m["classes"] == [str(i) for i in range(10)]
    # the local .gz wrappers differ from the official ones: verified through the decompressed content
    assert m["source"]["verified"] == "content-md5" and m["source"]["layout"] == "mnist-idx"
    assert m["source"]["name"] == "mnist" and m["source_note"] == "MNIST" and m["lossy"] is False
    assert m["content_sha256"] == D.content_sha256({k: getattr(d, k) for k in D.TENSOR_NAMES})
    val = D.load("mnist", mnist_cache, val_fraction=0.1, val_seed=1)
    assert len(val.train_y) == 54000 and len(val.val_y) == 6000


def test_env_sources_find_the_real_copies(shared_data, monkeypatch):
    monkeypatch.setenv(D.ENV_SOURCES, str(shared_data))
    assert D.resolve_source("mnist") == shared_data / "mnist"
    assert D.resolve_source("cifar10") == shared_data / "cifar10-jpeg.tar.xz"


def test_mnist_download_verifies_content(shared_data, tmp_path, monkeypatch):
    # the offline copy's .gz wrappers are not the official bytes: the download is accepted on content md5
    files = tuple(D.OfficialFile(f.name, ((tmp_path / "gone" / f.name).as_uri(), (shared_data / "mnist" / f.name).as_uri()),
                                 f.md5, f.content_md5) for f in D.OFFICIAL_FILES["mnist"])
    monkeypatch.setitem(D.OFFICIAL_FILES, "mnist", files)
    d = D.load("mnist", D.prepare("mnist", tmp_path / "cache"))
    assert d.metadata["source"]["origin"] == "download" and d.metadata["source"]["verified"] == "content-md5"
    assert len(files_under(tmp_path / "cache" / "downloads" / "mnist")) == 4


@pytest.mark.e2e
def test_cifar10_jpeg_copy(shared_data, tmp_path):
    """The real CIFAR-10 JPEG copy (60k decodes, ~10 s)."""
    source = shared_data / "cifar10-jpeg.tar.xz"
    path = D.prepare("cifar10", tmp_path, source=source)
    d = D.load("cifar10", path, val_fraction=0.1, val_seed=1)
    assert len(d.train_y) == 45000 and len(d.val_y) == 5000 and len(d.test_y) == 10000
    m = d.metadata
    assert m["counts"] == {"train": 50000, "test": 10000} and m["classes"] == CIFAR_CLASSES
    assert m["class_counts"] == {"train": [5000] * 10, "test": [1000] * 10}
    assert m["source_note"] == "CIFAR-10 (JPEG q75 copy)" and m["lossy"] is True
    assert m["source"]["sha256"] == "a3ef6a880db97cf6045e416e786c1e5e3186105885c6649bc5c25f5ead8b37ca"
    assert m["source"]["sha256"] == hashlib.sha256(source.read_bytes()).hexdigest()
    mean = d.test_x.float().div(255).mean((0, 2, 3))
    torch.testing.assert_close(mean, torch.tensor(d.spec.mean), atol=5e-3, rtol=0)
    x, y = next(iter(D.train_batches(d, 128, epoch=0, seed=0)))
    assert x.shape == (128, 3, 32, 32) and y.shape == (128,)
