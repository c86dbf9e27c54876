"""prunebench.data: sources, verification, the uint8 cache, loading, seeded device-side batches.

Fast: synthetic image trees and archives are built in tmp_path; the real MNIST copy is prepared once per
module. Preparing the real CIFAR-10 JPEG copy (60k decodes) is the one `e2e` test.
"""
from __future__ import annotations

import gzip
import hashlib
import io
import os
import pickle
import shutil
import struct
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from prunebench import data as D
from prunebench.errors import PrunebenchError
from prunebench.specs import dataset_spec

CIFAR_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def files_under(path: Path) -> list:
    return sorted(p for p in Path(path).rglob("*") if p.is_file()) if Path(path).exists() else []


@pytest.fixture(autouse=True)
def no_env_sources(monkeypatch):
    """Tests never pick up the developer's $PRUNEBENCH_DATA_SOURCES unless they set it."""
    monkeypatch.delenv(D.ENV_SOURCES, raising=False)


# ------------------------------------------------------------------------------------------------------
# Synthetic sources
# ------------------------------------------------------------------------------------------------------
def make_tree(root: Path, classes=CIFAR_CLASSES, n_train=3, n_test=2, size=32, mode="RGB", fmt="PNG",
              test_dir="test", seed=0, **save) -> dict:
    """An ImageFolder tree of random images; returns the expected arrays in prunebench order."""
    rng = np.random.default_rng(seed)
    channels = 1 if mode == "L" else 3
    expected = {}
    # files are written in shuffled order, with names whose sorted order is not their creation order
    names = {"train": ["b", "a", "10", "2", "c", "d"][:n_train], test_dir: ["z", "y", "x"][:n_test]}
    for split in ("train", test_dir):
        xs, ys = [], []
        for c in classes:  # creation order != sorted order for the shuffled class list below
            (root / split / c).mkdir(parents=True, exist_ok=True)
        for label, c in enumerate(sorted(classes)):
            for stem in sorted(names[split]):
                arr = rng.integers(0, 256, (size, size, channels), dtype=np.uint8)
                img = Image.fromarray(arr[..., 0] if mode == "L" else arr, mode)
                ext = ".jpg" if fmt == "JPEG" else ".png"
                img.save(root / split / c / f"{stem}{ext}", fmt, **save)
                if fmt == "JPEG":  # expected = what a decoder gives back
                    with Image.open(root / split / c / f"{stem}{ext}") as back:
                        arr = np.asarray(back.convert(mode)).reshape(size, size, channels)
                xs.append(arr.transpose(2, 0, 1))
                ys.append(label)
        key = "train" if split == "train" else "test"
        expected[f"{key}_x"] = np.stack(xs)
        expected[f"{key}_y"] = np.array(ys)
    return expected


def make_tar(src: Path, out: Path, arcname: str, mode: str) -> Path:
    with tarfile.open(out, mode) as tf:
        tf.add(src, arcname=arcname)
    return out


@pytest.fixture(scope="module")
def png_tree(tmp_path_factory):
    root = tmp_path_factory.mktemp("trees") / "cifar10"
    shuffled = CIFAR_CLASSES[5:] + CIFAR_CLASSES[:5]
    return root, make_tree(root, classes=shuffled)


def _py2_str(b: bytes) -> bytes:
    return (b"U" + bytes([len(b)]) + b) if len(b) < 256 else (b"T" + struct.pack("<i", len(b)) + b)


def _py2_int(v: int) -> bytes:
    return b"K" + bytes([v]) if 0 <= v < 256 else b"J" + struct.pack("<i", v)


def py2_pickle(d: dict) -> bytes:
    """A dict pickled the way the official CIFAR batches were (Python 2 cPickle, protocol 2): str keys and
    array bytes are Python 2 `str` (SHORT_BINSTRING/BINSTRING), arrays via numpy.core.multiarray._reconstruct."""
    s, i = _py2_str, _py2_int

    def array(a):
        shape = b"(" + b"".join(i(n) for n in a.shape) + b"t"
        dtype = (b"cnumpy\ndtype\n" + s(b"u1") + i(0) + i(1) + b"\x87R(" + i(3) + s(b"|") + b"NNN" + i(-1)
                 + i(-1) + i(0) + b"tb")
        return (b"cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\n" + i(0) + b"\x85" + s(b"b") + b"\x87R("
                + i(1) + shape + dtype + b"\x89" + s(np.ascontiguousarray(a).tobytes()) + b"tb")

    out = b"\x80\x02}("
    for k, v in d.items():
        out += s(k.encode())
        if isinstance(v, np.ndarray):
            out += array(v)
        elif isinstance(v, list):
            out += b"](" + b"".join(i(x) if isinstance(x, int) else s(x.encode()) for x in v) + b"e"
        else:
            out += s(v.encode())
    return out + b"u."


def py3_bytes_keys_pickle(d: dict) -> bytes:
    return pickle.dumps({k.encode(): v for k, v in d.items()}, protocol=2)


def make_cifar_tarball(path: Path, dataset="cifar10", n=2, seed=0, dumps=py2_pickle) -> dict:
    """A miniature official CIFAR python tarball (same member names and pickle format, n images per file)."""
    rng = np.random.default_rng(seed)
    classes = CIFAR_CLASSES if dataset == "cifar10" else [f"class{c:03d}" for c in range(100)]
    if dataset == "cifar10":
        folder, label_key, files = "cifar-10-batches-py", "labels", [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
        meta_name, meta = "batches.meta", {"label_names": classes, "num_vis": "3072"}
    else:
        folder, label_key, files = "cifar-100-python", "fine_labels", ["train", "test"]
        meta_name, meta = "meta", {"fine_label_names": classes, "coarse_label_names": ["c"] * 20}
    members, xs, ys = {}, {"train": [], "test": []}, {"train": [], "test": []}
    for name in files:
        x = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
        y = [int(v) for v in rng.integers(0, len(classes), n)]
        members[name] = dumps({"batch_label": name, label_key: y, "data": x})
        split = "test" if "test" in name else "train"
        xs[split].append(x.reshape(-1, 3, 32, 32))
        ys[split] += y
    members[meta_name] = dumps(meta)
    with tarfile.open(path, "w:gz") as tf:
        for name, payload in members.items():
            info = tarfile.TarInfo(f"{folder}/{name}")
            info.size = len(payload)
            tf.addfile(info, io.BytesIO(payload))
    return {"train_x": np.concatenate(xs["train"]), "train_y": np.array(ys["train"]),
            "test_x": np.concatenate(xs["test"]), "test_y": np.array(ys["test"])}


def md5(path) -> str:
    return hashlib.md5(Path(path).read_bytes()).hexdigest()


def with_official(monkeypatch, dataset, path=None, urls=()):
    """Point the official-file registry of `dataset` at a synthetic file (its md5) and/or URLs."""
    old = D.OFFICIAL_FILES[dataset][0]
    new = D.OfficialFile(old.name, tuple(urls) or old.urls, md5(path) if path else old.md5)
    monkeypatch.setitem(D.OFFICIAL_FILES, dataset, (new,))


def assert_cache_equals(path, expected):
    cache = D.load(path.stem, path)
    for k, v in expected.items():
        assert torch.equal(getattr(cache, k), torch.as_tensor(v, dtype=getattr(cache, k).dtype)), k
    return cache


# ------------------------------------------------------------------------------------------------------
# MNIST from the local copy
# ------------------------------------------------------------------------------------------------------
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


def test_prepare_is_byte_identical_and_idempotent(shared_data, mnist_cache, tmp_path, monkeypatch, capsys):
    again = D.prepare("mnist", tmp_path, source=shared_data / "mnist")
    assert again.read_bytes() == mnist_cache.read_bytes()
    stat = mnist_cache.stat()

    def no_work(*a, **k):
        raise AssertionError("prepare redid the work")

    monkeypatch.setattr(D, "_read_source", no_work)
    capsys.readouterr()
    assert D.prepare("mnist", mnist_cache.parent, source=shared_data / "mnist") == mnist_cache
    assert mnist_cache.stat().st_mtime_ns == stat.st_mtime_ns and capsys.readouterr().err == ""
    # an explicit source of another name does not silently reuse the cache
    other = tmp_path / "elsewhere"
    shutil.copytree(shared_data / "mnist", other)
    with pytest.raises(PrunebenchError, match="elsewhere"):
        D.prepare("mnist", mnist_cache.parent, source=other)


def test_mnist_validation_split(mnist_cache):
    d = D.load("mnist", mnist_cache, val_fraction=0.1, val_seed=1)
    assert len(d.train_y) == 54000 and len(d.val_y) == 6000 and len(d.test_y) == 10000
    assert d.metadata["val"] == {"fraction": 0.1, "seed": 1, "count": 6000}
    train_idx, val_idx = D.split_indices(60000, 0.1, 1)
    full = D.load("mnist", mnist_cache)
    assert torch.equal(d.val_x, full.train_x[val_idx]) and torch.equal(d.train_y, full.train_y[train_idx])


def test_mnist_corrupt_files(shared_data, tmp_path):
    src = tmp_path / "mnist"
    src.mkdir()
    for f in (shared_data / "mnist").iterdir():
        os.symlink(f, src / f.name)
    labels = bytearray(gzip.decompress((shared_data / "mnist" / "train-labels-idx1-ubyte.gz").read_bytes()))
    labels[8] = (labels[8] + 1) % 10  # one wrong label: valid gzip, wrong content
    (src / "train-labels-idx1-ubyte.gz").unlink()
    (src / "train-labels-idx1-ubyte.gz").write_bytes(gzip.compress(bytes(labels)))
    cache = tmp_path / "cache"
    with pytest.raises(PrunebenchError, match=r"checksum mismatch for .*train-labels-idx1-ubyte\.gz") as e:
        D.prepare("mnist", cache, source=src)
    assert "\n" not in str(e.value)
    (src / "train-labels-idx1-ubyte.gz").write_bytes(gzip.compress(bytes(labels))[:-100])  # truncated
    with pytest.raises(PrunebenchError, match="train-labels-idx1-ubyte.gz"):
        D.prepare("mnist", cache, source=src)
    assert files_under(cache) == []


# ------------------------------------------------------------------------------------------------------
# Image trees and archives of them
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


@pytest.mark.parametrize("mode,suffix", [("w", ".tar"), ("w:gz", ".tar.gz"), ("w:xz", ".tar.xz"), ("zip", ".zip")])
def test_image_archives(png_tree, tmp_path, mode, suffix):
    root, expected = png_tree
    archive = tmp_path / f"copy{suffix}"
    if mode == "zip":
        with zipfile.ZipFile(archive, "w") as zf:
            for f in files_under(root):
                zf.write(f, f"nested/cifar10/{f.relative_to(root).as_posix()}")
    else:
        make_tar(root, archive, "nested/cifar10", mode)
    path = D.prepare("cifar10", tmp_path / "cache", source=archive, progress=False)
    d = assert_cache_equals(path, expected)
    assert d.metadata["source"]["name"] == archive.name
    assert d.metadata["source"]["sha256"] == hashlib.sha256(archive.read_bytes()).hexdigest()
    # the same images in a folder give the same content key
    folder = D.load("cifar10", D.prepare("cifar10", tmp_path / "c2", source=root, progress=False))
    assert folder.metadata["content_sha256"] == d.metadata["content_sha256"]


def test_val_dir_and_grayscale_tree(tmp_path):
    expected = make_tree(tmp_path / "digits", classes=[str(i) for i in range(10)], size=28, mode="L",
                         n_train=2, n_test=1, test_dir="val")
    d = assert_cache_equals(D.prepare("mnist", tmp_path / "cache", source=tmp_path / "digits"), expected)
    assert d.metadata["source_note"] == "MNIST (PNG image-folder copy)"


def test_jpeg_tree_is_labelled_lossy(tmp_path):
    make_tree(tmp_path / "jpg", fmt="JPEG", quality=75, n_train=1, n_test=1)
    archive = make_tar(tmp_path / "jpg", tmp_path / "cifar10-jpeg.tar.xz", "cifar10", "w:xz")
    d = D.load("cifar10", D.prepare("cifar10", tmp_path / "cache", source=archive))
    assert d.metadata["lossy"] is True and d.source_note == "CIFAR-10 (JPEG q75 copy)"


def test_env_sources_and_precedence(shared_data, png_tree, tmp_path, monkeypatch):
    root, expected = png_tree
    monkeypatch.setenv(D.ENV_SOURCES, os.pathsep.join([str(tmp_path / "absent"), str(root.parent), str(shared_data)]))
    assert D.resolve_source("mnist") == shared_data / "mnist"
    assert D.resolve_source("cifar10") == root  # `cifar10/` in the first folder that has an entry
    assert D.resolve_source("cifar10", source=tmp_path) == tmp_path  # explicit wins
    assert D.resolve_source("cifar10", source="download") == "download"
    monkeypatch.setenv(D.ENV_SOURCES, str(shared_data))
    assert D.resolve_source("cifar10") == shared_data / "cifar10-jpeg.tar.xz"
    monkeypatch.setenv(D.ENV_SOURCES, str(root.parent))
    assert_cache_equals(D.prepare("cifar10", tmp_path / "cache", download=False), expected)
    monkeypatch.delenv(D.ENV_SOURCES)
    with pytest.raises(PrunebenchError, match="no local source for cifar100"):
        D.prepare("cifar100", tmp_path / "cache", download=False)


# ------------------------------------------------------------------------------------------------------
# Official archives: verification, parsing, download path (file:// URLs stand in for the network)
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
    # the extracted folder works too (nothing to verify it against)
    with tarfile.open(tarball) as tf:
        for m in tf:
            (tmp_path / "x" / m.name).parent.mkdir(parents=True, exist_ok=True)
            (tmp_path / "x" / m.name).write_bytes(tf.extractfile(m).read())
    d = assert_cache_equals(D.prepare("cifar10", tmp_path / "c3", source=tmp_path / "x" / "cifar-10-batches-py"), expected)
    assert d.metadata["source"]["verified"] == "none"


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


def test_download_path(tmp_path, monkeypatch):
    served = tmp_path / "served" / "cifar-10-python.tar.gz"
    served.parent.mkdir()
    expected = make_cifar_tarball(served)
    missing = (tmp_path / "served" / "gone.tar.gz").as_uri()
    with_official(monkeypatch, "cifar10", served, urls=(missing, served.as_uri()))  # first mirror fails
    cache = tmp_path / "cache"
    d = assert_cache_equals(D.prepare("cifar10", cache), expected)
    assert d.metadata["source"]["origin"] == "download" and d.metadata["source"]["verified"] == "md5"
    assert files_under(cache) == [cache / "cifar10.safetensors", cache / "downloads" / "cifar-10-python.tar.gz"]


def test_corrupt_download_leaves_nothing(tmp_path, monkeypatch):
    served = tmp_path / "served" / "cifar-10-python.tar.gz"
    served.parent.mkdir()
    make_cifar_tarball(served)
    good_md5 = md5(served)
    served.write_bytes(served.read_bytes()[:500])  # truncated transfer
    monkeypatch.setitem(D.OFFICIAL_FILES, "cifar10", (D.OfficialFile(served.name, (served.as_uri(),), good_md5),))
    cache = tmp_path / "cache"
    with pytest.raises(PrunebenchError, match="could not download cifar-10-python.tar.gz.*checksum mismatch") as e:
        D.prepare("cifar10", cache)
    assert "\n" not in str(e.value) and files_under(cache) == []
    with pytest.raises(PrunebenchError, match="download is off"):
        D.prepare("cifar10", cache, download=False)


def test_mnist_download_verifies_content(shared_data, tmp_path, monkeypatch):
    # the offline copy's .gz wrappers are not the official bytes: the download is accepted on content md5
    files = tuple(D.OfficialFile(f.name, ((tmp_path / "gone" / f.name).as_uri(), (shared_data / "mnist" / f.name).as_uri()),
                                 f.md5, f.content_md5) for f in D.OFFICIAL_FILES["mnist"])
    monkeypatch.setitem(D.OFFICIAL_FILES, "mnist", files)
    d = D.load("mnist", D.prepare("mnist", tmp_path / "cache"))
    assert d.metadata["source"]["origin"] == "download" and d.metadata["source"]["verified"] == "content-md5"
    assert len(files_under(tmp_path / "cache" / "downloads" / "mnist")) == 4


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
    assert torch.equal(d.train_x[7, 0], d.train_x[7, 2])  # grayscale replicated to RGB
    folder = D.load("tiny-imagenet", D.prepare("tiny-imagenet", tmp_path / "c2", source=root))
    assert folder.metadata["content_sha256"] == d.metadata["content_sha256"]


# ------------------------------------------------------------------------------------------------------
# Bad input: one-line errors naming the bad value, nothing half-written
# ------------------------------------------------------------------------------------------------------
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
    with pytest.raises(PrunebenchError, match="unknown split 'dev'"):
        synthetic().split("dev")


def test_bad_trees(tmp_path):
    make_tree(tmp_path / "small", size=16, n_train=1, n_test=1)
    with pytest.raises(PrunebenchError, match=r"small/train/airplane/b\.png is 16x16, cifar10 needs 32x32"):
        D.prepare("cifar10", tmp_path / "cache", source=tmp_path / "small")
    make_tree(tmp_path / "three", classes=["a", "b", "c"], n_train=1, n_test=1)
    with pytest.raises(PrunebenchError, match="3 classes, expected 10"):
        D.prepare("cifar10", tmp_path / "cache", source=tmp_path / "three")
    (tmp_path / "empty").mkdir()
    with pytest.raises(PrunebenchError, match="no CIFAR-10 data found in .*empty"):
        D.prepare("cifar10", tmp_path / "cache", source=tmp_path / "empty")
    (tmp_path / "junk.tar.xz").write_bytes(b"not an archive at all")
    with pytest.raises(PrunebenchError, match=r"corrupt archive .*junk\.tar\.xz"):
        D.prepare("cifar10", tmp_path / "cache", source=tmp_path / "junk.tar.xz")
    assert files_under(tmp_path / "cache") == []


def test_truncated_and_damaged_cache(png_tree, tmp_path, capsys):
    root, _ = png_tree
    good = D.prepare("cifar10", tmp_path / "good", source=root)
    bad = tmp_path / "bad" / "cifar10.safetensors"
    bad.parent.mkdir()
    bad.write_bytes(good.read_bytes()[:-1000])
    with pytest.raises(PrunebenchError, match=r"corrupt data cache .*bad/cifar10\.safetensors") as e:
        D.load("cifar10", bad)
    assert "\n" not in str(e.value)
    flipped = bytearray(good.read_bytes())
    flipped[-10] ^= 0xFF  # inside test_x/test_y: the header still parses
    bad.write_bytes(bytes(flipped))
    with pytest.raises(PrunebenchError, match="does not match its content_sha256"):
        D.load("cifar10", bad)
    with pytest.raises(PrunebenchError, match="holds 'cifar10', not 'cifar100'"):
        D.load("cifar100", good)
    if not torch.cuda.is_available():
        with pytest.raises(PrunebenchError, match="cannot use device 'cuda'"):
            D.load("cifar10", good, device="cuda")
    # prepare replaces a truncated cache instead of trusting it
    bad.write_bytes(good.read_bytes()[:-1000])
    assert D.prepare("cifar10", bad.parent, source=root).read_bytes() == good.read_bytes()
    assert "rebuilding" in capsys.readouterr().err
    assert files_under(bad.parent) == [bad]


# ------------------------------------------------------------------------------------------------------
# Normalisation, augmentation, batches
# ------------------------------------------------------------------------------------------------------
def synthetic(dataset="cifar10", n=300, seed=0, labels=None) -> D.Data:
    spec = dataset_spec(dataset)
    g = torch.Generator().manual_seed(seed)
    shape = (spec.channels, spec.size, spec.size)
    x = torch.randint(0, 256, (n, *shape), generator=g, dtype=torch.uint8)
    y = torch.arange(n) if labels is None else labels
    return D.Data(spec, x, y, x[:50].clone(), y[:50].clone())


def test_normalize_matches_spec():
    for name in ("mnist", "cifar10", "cifar100", "tiny-imagenet"):
        spec = dataset_spec(name)
        x = torch.randint(0, 256, (4, spec.channels, 5, 5), dtype=torch.uint8)
        out = D.normalize(x, spec)
        assert out.dtype == torch.float32 and out.shape == x.shape
        for c in range(spec.channels):
            ref = (x[:, c].double() / 255 - spec.mean[c]) / spec.std[c]
            torch.testing.assert_close(out[:, c].double(), ref, atol=1e-5, rtol=0)
    spec = dataset_spec("cifar10")
    full = torch.full((1, 3, 1, 1), 255, dtype=torch.uint8)
    assert D.normalize(full, spec)[0, 0, 0, 0].item() == pytest.approx((1 - 0.4914) / 0.2470, rel=1e-6)
    f = torch.zeros(1, 3, 2, 2)
    D.normalize(f, spec)
    assert torch.equal(f, torch.zeros(1, 3, 2, 2))  # never modifies its input


def test_crop_shifts_content_and_flip_mirrors():
    x = (torch.arange(2 * 3 * 8 * 8) % 251 + 1).to(torch.uint8).reshape(2, 3, 8, 8)  # no zero pixels
    pad = 4
    centre = torch.tensor([[pad, pad], [pad, pad]])
    assert torch.equal(D.crop_flip(x, centre, torch.tensor([False, False])), x)
    assert torch.equal(D.crop_flip(x, centre, torch.tensor([True, False])), torch.stack([x[0].flip(-1), x[1]]))
    dy, dx = 1, -2  # content moves up by 1 row and right by 2 columns
    out = D.crop_flip(x, torch.tensor([[pad + dy, pad + dx]] * 2), torch.tensor([False, False]))
    assert out.shape == x.shape
    for i in range(8):
        for j in range(8):
            si, sj = i + dy, j + dx
            want = x[:, :, si, sj] if 0 <= si < 8 and 0 <= sj < 8 else torch.zeros(2, 3, dtype=torch.uint8)
            assert torch.equal(out[:, :, i, j], want), (i, j)
    # flip after crop: the mirror of the shifted image
    both = D.crop_flip(x, torch.tensor([[pad + dy, pad + dx]] * 2), torch.tensor([True, True]))
    assert torch.equal(both, out.flip(-1))


def test_random_augmentation_is_a_shifted_or_mirrored_copy():
    x = synthetic(n=16).train_x
    out = D.random_crop_flip(x, torch.Generator().manual_seed(0))
    assert out.shape == x.shape and out.dtype == torch.uint8 and not torch.equal(out, x)
    for b in range(len(x)):  # each output is one of the 81 shifts x 2 flips of its own input
        candidates = [D.crop_flip(x[b:b + 1], torch.tensor([[i, j]]), torch.tensor([f]))
                      for i in range(9) for j in range(9) for f in (False, True)]
        assert any(torch.equal(out[b:b + 1], c) for c in candidates)


def test_train_batches_seeded():
    d = synthetic()
    a = list(D.train_batches(d, 64, epoch=0, seed=7))
    b = list(D.train_batches(d, 64, epoch=0, seed=7))
    assert len(a) == len(D.train_batches(d, 64, 0, 7)) == D.num_batches(d, 64) == 5
    assert [len(y) for _, y in a] == [64, 64, 64, 64, 44]
    assert all(torch.equal(xa, xb) and torch.equal(ya, yb) for (xa, ya), (xb, yb) in zip(a, b))
    order0 = torch.cat([y for _, y in a])
    assert sorted(order0.tolist()) == list(range(300))  # a permutation: each example once per epoch
    order1 = torch.cat([y for _, y in D.train_batches(d, 64, epoch=1, seed=7)])
    order_s = torch.cat([y for _, y in D.train_batches(d, 64, epoch=0, seed=8)])
    assert not torch.equal(order0, order1) and not torch.equal(order0, order_s)
    # augmentation has its own stream: switching it off does not change the order
    plain = list(D.train_batches(d, 64, epoch=0, seed=7, augment=False))
    assert torch.equal(torch.cat([y for _, y in plain]), order0)
    assert torch.equal(plain[0][0], D.normalize(d.train_x[plain[0][1]], d.spec))
    assert not torch.equal(plain[0][0], a[0][0])
    assert [len(y) for _, y in D.train_batches(d, 64, 0, 7, drop_last=True)] == [64] * 4
    assert a[0][0].dtype == torch.float32 and a[0][0].shape == (64, 3, 32, 32)


def test_mnist_has_no_augmentation():
    d = synthetic("mnist", n=40)
    x, y = next(iter(D.train_batches(d, 40, epoch=0, seed=0)))
    assert torch.equal(x, D.normalize(d.train_x[y], d.spec))
    x, y = next(D.pruning_batches(d, 40, seed=0, augment=True))
    assert torch.equal(x, D.normalize(d.train_x[y], d.spec))


def test_eval_batches_in_order():
    d = synthetic()
    batches = D.eval_batches(d, batch_size=20)
    assert len(batches) == 3
    assert torch.equal(torch.cat([x for x, _ in batches]), D.normalize(d.test_x, d.spec))
    assert torch.equal(torch.cat([y for _, y in batches]), d.test_y)
    with pytest.raises(PrunebenchError, match="no 'val' split"):
        D.eval_batches(d, split="val")


def test_pruning_batches_infinite_and_seeded():
    d = synthetic(n=100)
    it = D.pruning_batches(d, 32, seed=3)
    first = [next(it) for _ in range(10)]  # 320 examples from a 100-example split: keeps going
    again = D.pruning_batches(d, 32, seed=3)
    for (xa, ya), (xb, yb) in zip(first, (next(again) for _ in range(10))):
        assert torch.equal(xa, xb) and torch.equal(ya, yb)
    ids = torch.cat([y for _, y in first]).tolist()
    assert all(len(y) == 32 for _, y in first) and sorted(ids[:96]) == sorted(set(ids[:96]))
    assert sorted(ids[:100]) == list(range(100))  # one full pass before any repeat
    assert not torch.equal(first[0][1], next(D.pruning_batches(d, 32, seed=4))[1])


def test_pruning_batches_class_balanced():
    labels = torch.arange(300) % 10
    d = synthetic(n=300, labels=labels)
    it = D.pruning_batches(d, None, seed=0, class_balanced_per_class=3)
    x, y = next(it)
    assert x.shape == (30, 3, 32, 32)
    assert y.tolist() == [c for c in range(10) for _ in range(3)]  # concatenated class by class
    assert set(y[:15].tolist()).isdisjoint(y[15:].tolist())  # GraSP's halves are class-disjoint
    ys = [next(it)[1] for _ in range(20)]
    assert all(torch.equal(v, y) for v in ys)
    with pytest.raises(PrunebenchError, match="batch_size 128"):
        D.pruning_batches(d, 128, seed=0, class_balanced_per_class=3)
    with pytest.raises(PrunebenchError, match="class_balanced_per_class 31"):
        D.pruning_batches(d, None, seed=0, class_balanced_per_class=31)


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


def test_bad_batch_arguments():
    d = synthetic()
    for bad in (0, -1, 2.5, True):
        with pytest.raises(PrunebenchError, match="batch_size"):
            D.train_batches(d, bad, epoch=0, seed=0)
    with pytest.raises(PrunebenchError, match="invalid seed -1"):
        D.train_batches(d, 8, epoch=0, seed=-1)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_batches_identical_on_gpu():
    d = synthetic()
    cpu = list(D.train_batches(d, 64, epoch=2, seed=5))
    gpu = list(D.train_batches(d.to("cuda"), 64, epoch=2, seed=5))
    for (xc, yc), (xg, yg) in zip(cpu, gpu):
        assert xg.is_cuda and torch.equal(yc, yg.cpu())
        torch.testing.assert_close(xc, xg.cpu(), atol=1e-6, rtol=0)


# ------------------------------------------------------------------------------------------------------
# End to end on the real CIFAR-10 JPEG copy (60k decodes, ~10 s)
# ------------------------------------------------------------------------------------------------------
@pytest.mark.e2e
def test_cifar10_jpeg_copy(shared_data, tmp_path):
    source = shared_data / "cifar10-jpeg.tar.xz"
    path = D.prepare("cifar10", tmp_path, source=source)
    d = D.load("cifar10", path, val_fraction=0.1, val_seed=1)
    assert len(d.train_y) == 45000 and len(d.val_y) == 5000 and len(d.test_y) == 10000
    m = d.metadata
    assert m["counts"] == {"train": 50000, "test": 10000} and m["classes"] == CIFAR_CLASSES
    assert m["class_counts"] == {"train": [5000] * 10, "test": [1000] * 10}
    assert m["source_note"] == "CIFAR-10 (JPEG q75 copy)" and m["lossy"] is True
    assert m["source"]["sha256"] == "a3ef6a880db97cf6045e416e786c1e5e3186105885c6649bc5c25f5ead8b37ca"
    mean = d.test_x.float().div(255).mean((0, 2, 3))
    torch.testing.assert_close(mean, torch.tensor(d.spec.mean), atol=5e-3, rtol=0)
    x, y = next(iter(D.train_batches(d, 128, epoch=0, seed=0)))
    assert x.shape == (128, 3, 32, 32) and y.shape == (128,)
