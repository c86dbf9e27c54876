"""prunebench.library.data.formats and .images: MNIST IDX, CIFAR python batches, ImageFolder trees, Tiny-ImageNet;
which files are verified, and how each source is labelled."""
from __future__ import annotations

import gzip
import io
import os
import pickle
import tarfile
import zipfile

import numpy as np
import pytest
import torch
from PIL import Image

from prunebench.library import data as D
from prunebench.library.errors import PrunebenchError
from synthetic import (CIFAR_CLASSES, assert_cache_equals, files_under, gz, image_tree, make_cifar_tarball, make_tar,
                       mnist_files, random_arrays, with_official, write_files)


def py3_bytes_keys_pickle(d: dict) -> bytes:
    return pickle.dumps({k.encode(): v for k, v in d.items()}, protocol=2)


def mnist_expected(arrays):
    return {k: (v[:, None] if k.endswith("_x") else v) for k, v in arrays.items()}


@pytest.fixture(scope="module")
def png_tree(tmp_path_factory):
    root = tmp_path_factory.mktemp("trees") / "cifar10"
    shuffled = CIFAR_CLASSES[5:] + CIFAR_CLASSES[:5]
    return root, image_tree(root, classes=shuffled)


# ------------------------------------------------------------------------------------------------------
# MNIST IDX
# ------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("compress", [True, False])
def test_named_idx_set_is_read_unverified(tmp_path, compress):
    arrays = random_arrays(30, 10, (28, 28), seed=1)
    src = write_files(tmp_path / "digits", mnist_files(arrays, prefix="nested/emnist-like-", compress=compress))
    d = assert_cache_equals(D.prepare("mnist", tmp_path / "cache", source=src), mnist_expected(arrays))
    m = d.metadata
    assert m["source"]["layout"] == "mnist-idx" and m["source"]["verified"] == "none"
    assert d.source_note == 'MNIST-format data "emnist-like" (unverified; not the official MNIST files)'


def test_official_names_are_always_verified(tmp_path):
    """Official names with other content fail their checksums: never read, never a fallback to a named set."""
    arrays = random_arrays(30, 10, (28, 28), seed=2)
    src = write_files(tmp_path / "mnist", mnist_files(arrays, prefix=""))
    cache = tmp_path / "cache"
    with pytest.raises(PrunebenchError, match=r"checksum mismatch for .*train-images-idx3-ubyte\.gz.*decompressed md5") as e:
        D.prepare("mnist", cache, source=src)
    assert "\n" not in str(e.value)
    write_files(src, mnist_files(arrays))  # a named set beside them changes nothing
    with pytest.raises(PrunebenchError, match="checksum mismatch"):
        D.prepare("mnist", cache, source=src)
    for f in src.glob("*-ubyte.gz"):
        if not f.name.startswith("synthetic-"):
            f.write_bytes(gzip.decompress(f.read_bytes()))
            f.rename(f.with_suffix(""))  # uncompressed official names are checked too
    with pytest.raises(PrunebenchError, match=r"checksum mismatch for .*-ubyte': md5"):
        D.prepare("mnist", cache, source=src)
    assert files_under(cache) == []


def official_mnist(monkeypatch, arrays, served=None):
    """Make `arrays` the 'official' MNIST for this test: register their .gz and content MD5s."""
    import hashlib

    files = mnist_files(arrays, prefix="")
    entries = []
    for f in D.OFFICIAL_FILES["mnist"]:
        urls = (served / f.name).as_uri() if served else None
        entries.append(D.OfficialFile(f.name, (urls,) if urls else f.urls, hashlib.md5(files[f.name]).hexdigest(),
                                      hashlib.md5(gzip.decompress(files[f.name])).hexdigest()))
    monkeypatch.setitem(D.OFFICIAL_FILES, "mnist", tuple(entries))
    return files


def test_official_mnist_verified_by_md5_or_content_md5(tmp_path, monkeypatch):
    arrays = random_arrays(30, 10, (28, 28), seed=3)
    files = official_mnist(monkeypatch, arrays)
    src = write_files(tmp_path / "a" / "mnist", files)
    d = assert_cache_equals(D.prepare("mnist", tmp_path / "c1", source=src), mnist_expected(arrays))
    assert d.metadata["source"]["verified"] == "md5" and d.source_note == "MNIST"
    # another gzip wrapper of the same content (as in the project's offline copy): content MD5
    rewrapped = {k: gzip.compress(gzip.decompress(v), compresslevel=1, mtime=1) for k, v in files.items()}
    src = write_files(tmp_path / "b" / "MNIST" / "raw", rewrapped)
    d = assert_cache_equals(D.prepare("mnist", tmp_path / "c2", source=src.parent.parent), mnist_expected(arrays))
    assert d.metadata["source"]["verified"] == "content-md5" and d.source_note == "MNIST"
    # one wrong label: valid gzip, wrong content; then a truncated file
    labels = bytearray(gzip.decompress(files["train-labels-idx1-ubyte.gz"]))
    labels[8] = (labels[8] + 1) % 10
    (src / "train-labels-idx1-ubyte.gz").write_bytes(gzip.compress(bytes(labels)))
    with pytest.raises(PrunebenchError, match=r"checksum mismatch for .*train-labels-idx1-ubyte\.gz"):
        D.prepare("mnist", tmp_path / "c3", source=src)
    (src / "train-labels-idx1-ubyte.gz").write_bytes(files["train-labels-idx1-ubyte.gz"][:-10])
    with pytest.raises(PrunebenchError, match="train-labels-idx1-ubyte.gz"):
        D.prepare("mnist", tmp_path / "c3", source=src)
    assert files_under(tmp_path / "c3") == []


def test_corrupt_idx(tmp_path):
    arrays = random_arrays(3, 2, (28, 28))
    files = mnist_files(arrays)
    files["synthetic-t10k-labels-idx1-ubyte.gz"] = gz(b"\x00\x00\x08\x01\x00\x00\x00\x05\x01")  # 1 byte for 5
    with pytest.raises(PrunebenchError, match=r"corrupt IDX file .*t10k-labels.*1 bytes for shape \[5\]"):
        D.prepare("mnist", tmp_path / "cache", source=write_files(tmp_path / "m", files))


# ------------------------------------------------------------------------------------------------------
# CIFAR python batches
# ------------------------------------------------------------------------------------------------------
def test_cifar_python_archive(tmp_path, monkeypatch):
    folder = tmp_path / "archives"
    folder.mkdir()
    tarball = folder / "cifar-10-python.tar.gz"
    expected = make_cifar_tarball(tarball)
    with_official(monkeypatch, "cifar10", tarball)
    for source in (folder, tarball):  # a folder holding the archive, or the archive itself
        d = assert_cache_equals(D.prepare("cifar10", tmp_path / source.name, source=source), expected)
        assert d.metadata["source"]["verified"] == "md5" and d.metadata["source"]["layout"] == "cifar-python"
        assert d.metadata["classes"] == CIFAR_CLASSES and d.metadata["source_note"] == "CIFAR-10"
    # the extracted folder works too, but nothing verifies it: labelled as such
    with tarfile.open(tarball) as tf:
        for m in tf:
            (tmp_path / "x" / m.name).parent.mkdir(parents=True, exist_ok=True)
            (tmp_path / "x" / m.name).write_bytes(tf.extractfile(m).read())
    d = assert_cache_equals(D.prepare("cifar10", tmp_path / "c3", source=tmp_path / "x" / "cifar-10-batches-py"), expected)
    assert d.metadata["source"]["verified"] == "none"
    assert d.source_note == 'CIFAR-10-format data "cifar-10-batches-py" (unverified; not the official CIFAR-10 files)'
    # so is the official layout re-packed under another name
    other = tmp_path / "cifar10.tar.gz"
    make_cifar_tarball(other, folder="mine")
    d = D.load("cifar10", D.prepare("cifar10", tmp_path / "c4", source=other))
    assert d.source_note == 'CIFAR-10-format data "mine" (unverified; not the official CIFAR-10 files)'


def test_cifar100_python_archive(tmp_path, monkeypatch):
    tarball = tmp_path / "cifar-100-python.tar.gz"
    expected = make_cifar_tarball(tarball, "cifar100", n=3, dumps=py3_bytes_keys_pickle)
    with_official(monkeypatch, "cifar100", tarball)
    d = assert_cache_equals(D.prepare("cifar100", tmp_path / "cache", source=tarball), expected)
    assert d.metadata["classes"] == [f"class{c:03d}" for c in range(100)] and d.source_note == "CIFAR-100"


def test_corrupt_official_archive(tmp_path):
    folder = tmp_path / "archives"
    folder.mkdir()
    make_cifar_tarball(folder / "cifar-10-python.tar.gz")  # not the official bytes: real md5 expected
    cache = tmp_path / "cache"
    with pytest.raises(PrunebenchError, match=r"checksum mismatch for .*cifar-10-python\.tar\.gz.*md5") as e:
        D.prepare("cifar10", cache, source=folder)
    assert "\n" not in str(e.value) and files_under(cache) == []


def test_malicious_pickle_is_refused(tmp_path, monkeypatch):
    tarball = tmp_path / "cifar-10-python.tar.gz"
    make_cifar_tarball(tarball)
    with tarfile.open(tarball) as tf:
        members = {m.name: tf.extractfile(m).read() for m in tf}

    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    members["cifar-10-batches-py/data_batch_1"] = pickle.dumps({"data": Evil()}, protocol=2)
    with tarfile.open(tarball, "w:gz") as tf:
        for name, payload in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(payload)
            tf.addfile(info, io.BytesIO(payload))
    with_official(monkeypatch, "cifar10", tarball)
    with pytest.raises(PrunebenchError, match="refusing to load global"):
        D.prepare("cifar10", tmp_path / "cache", source=tarball)


# ------------------------------------------------------------------------------------------------------
# Image trees and Tiny-ImageNet
# ------------------------------------------------------------------------------------------------------
def test_image_folder_tree(png_tree, tmp_path):
    root, expected = png_tree
    path = D.prepare("cifar10", tmp_path, source=root, progress=False)
    d = assert_cache_equals(path, expected)
    assert d.metadata["classes"] == CIFAR_CLASSES  # sorted, whatever the creation order
    assert d.metadata["source"] | {"sha256": None} == {
        "kind": "folder", "name": "cifar10", "layout": "image-folder", "sha256": None, "sha256_of": "manifest",
        "verified": "none", "origin": "local"}
    assert d.metadata["lossy"] is False and d.metadata["source_note"] == "CIFAR-10 (PNG image-folder copy)"
    assert d.metadata["class_counts"] == {"train": [3] * 10, "test": [2] * 10}


def test_val_dir_and_grayscale_tree(tmp_path):
    expected = image_tree(tmp_path / "digits", classes=[str(i) for i in range(10)], size=28, mode="L",
                          n_train=2, n_test=1, test_dir="val")
    d = assert_cache_equals(D.prepare("mnist", tmp_path / "cache", source=tmp_path / "digits"), expected)
    assert d.metadata["source_note"] == "MNIST (PNG image-folder copy)"


def test_jpeg_tree_is_labelled_lossy(tmp_path):
    image_tree(tmp_path / "jpg", fmt="JPEG", quality=75, n_train=1, n_test=1)
    archive = make_tar(tmp_path / "jpg", tmp_path / "cifar10-jpeg.tar.xz", "cifar10", "w:xz")
    d = D.load("cifar10", D.prepare("cifar10", tmp_path / "cache", source=archive))
    assert d.metadata["lossy"] is True and d.source_note == "CIFAR-10 (JPEG q75 copy)"


def test_tiny_imagenet_official_layout(tmp_path, monkeypatch):
    rng = np.random.default_rng(3)
    wnids = [f"n{i:08d}" for i in range(200)]
    root = tmp_path / "tiny-imagenet-200"
    (root / "val" / "images").mkdir(parents=True)
    (root / "wnids.txt").write_text("\n".join(reversed(wnids)) + "\n")
    annotations = []
    for i, w in enumerate(wnids):
        (root / "train" / w / "images").mkdir(parents=True)
        (root / "train" / w / f"{w}_boxes.txt").write_text("")
        mode = "L" if i == 7 else "RGB"  # a few Tiny-ImageNet images are grayscale
        Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)).convert(mode).save(
            root / "train" / w / "images" / f"{w}_0.JPEG", "JPEG")
        Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(root / "val" / "images" / f"val_{i}.JPEG", "JPEG")
        annotations.append(f"val_{i}.JPEG\t{wnids[(i * 7) % 200]}\t0\t0\t63\t63")
    (root / "val" / "val_annotations.txt").write_text("\n".join(annotations) + "\n")
    archive = tmp_path / "tiny-imagenet-200.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for f in files_under(root):
            zf.write(f, f.relative_to(tmp_path).as_posix())
    with_official(monkeypatch, "tiny-imagenet", archive)
    d = D.load("tiny-imagenet", D.prepare("tiny-imagenet", tmp_path / "cache", source=archive))
    assert d.train_x.shape == (200, 3, 64, 64) and d.test_x.shape == (200, 3, 64, 64)
    assert d.train_y.tolist() == list(range(200)) and d.test_y.tolist() == list(range(200))  # class order
    assert d.metadata["classes"] == wnids and d.metadata["source"]["verified"] == "md5"
    assert d.source_note == "Tiny-ImageNet" and d.metadata["lossy"] is False
    assert torch.equal(d.train_x[7, 0], d.train_x[7, 2])  # grayscale replicated to RGB
    folder = D.load("tiny-imagenet", D.prepare("tiny-imagenet", tmp_path / "c2", source=root))
    assert folder.metadata["content_sha256"] == d.metadata["content_sha256"]
    assert folder.source_note.startswith('Tiny-ImageNet-format data "tiny-imagenet-200" (unverified;')


def test_bad_trees(tmp_path):
    image_tree(tmp_path / "small", size=16, n_train=1, n_test=1)
    with pytest.raises(PrunebenchError, match=r"small/train/airplane/b\.png is 16x16, cifar10 needs 32x32"):
        D.prepare("cifar10", tmp_path / "cache", source=tmp_path / "small")
    image_tree(tmp_path / "three", classes=["a", "b", "c"], n_train=1, n_test=1)
    with pytest.raises(PrunebenchError, match="3 classes, expected 10"):
        D.prepare("cifar10", tmp_path / "cache", source=tmp_path / "three")
    (tmp_path / "empty").mkdir()
    with pytest.raises(PrunebenchError, match="no CIFAR-10 data found in .*empty"):
        D.prepare("cifar10", tmp_path / "cache", source=tmp_path / "empty")
    (tmp_path / "broken" / "train" / "a").mkdir(parents=True)
    (tmp_path / "broken" / "test" / "a").mkdir(parents=True)
    (tmp_path / "broken" / "train" / "a" / "x.png").write_bytes(b"not a png")
    (tmp_path / "broken" / "test" / "a" / "y.png").write_bytes(b"not a png")
    with pytest.raises(PrunebenchError, match=r"corrupt image .*broken/train/a/x\.png"):
        D.prepare("cifar10", tmp_path / "cache", source=tmp_path / "broken")
    assert files_under(tmp_path / "cache") == []
