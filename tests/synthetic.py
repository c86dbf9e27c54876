"""Synthetic data sets for the tests: small, deterministic, and written in the loaders' real file formats.

These are NOT MNIST or CIFAR-10. Each class is a fixed random template (blocky strokes for the MNIST-like
set, a colour and a pattern for the CIFAR-like set); an image is its class template, randomly shifted,
with random intensity and noise, so a small network learns something in a few dozen steps. Everything is
drawn from fixed numpy seeds, and the files are written byte-for-byte reproducibly (gzip and tar headers
carry no times), so the prepared caches and every result computed from them are the same on every run.

Formats (what `prunebench.library.data` reads; see `prunebench/data/formats.py`):

* MNIST-like: 28x28 grayscale, 10 classes, as a *named* IDX set ``synthetic-train-images-idx3-ubyte.gz``,
  ``synthetic-train-labels-idx1-ubyte.gz``, ``synthetic-t10k-images-idx3-ubyte.gz``,
  ``synthetic-t10k-labels-idx1-ubyte.gz`` (gzip'd IDX, the official format under non-official names);
* CIFAR-like: 32x32 RGB, 10 classes, as the python-pickle batches of the official CIFAR-10 archive
  (``data_batch_1`` .. ``data_batch_5``, ``test_batch``, ``batches.meta``; Python 2 protocol-2 pickles
  like the official ones) under ``synthetic/`` in ``cifar10.tar.gz``.

Neither carries an official file name, so nothing is checked against the published checksums and the
caches are labelled ``MNIST-format data "synthetic" (unverified; not the official MNIST files)`` and
``CIFAR-10-format data "synthetic" (unverified; not the official CIFAR-10 files)``.

`make_sources(root)` writes both into a folder laid out as $PRUNEBENCH_DATA_SOURCES expects (``mnist/``,
``cifar10.tar.gz``); the session fixture ``data_sources`` (tests/conftest.py) builds it once per run.
"""
from __future__ import annotations

import gzip
import io
import struct
import tarfile
from pathlib import Path

import numpy as np

SET_NAME = "synthetic"
MNIST_SIZES = (2000, 500)  # train, test: 20 batches of 100 per epoch, as the smoke preset trains
CIFAR_SIZES = (500, 100)
CIFAR_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
MNIST_SEED, CIFAR_SEED = 20260, 20261
README = """Synthetic test data written by tests/synthetic.py (fixed seeds). NOT MNIST or CIFAR-10.
mnist/           MNIST-like named IDX set "synthetic" (28x28 grayscale, 10 classes)
cifar10.tar.gz   CIFAR-like python batches under synthetic/ (32x32 RGB, 10 classes)
"""


# ------------------------------------------------------------------------------------------------------
# Images
# ------------------------------------------------------------------------------------------------------
def _balanced_labels(rng, n: int, classes: int = 10) -> np.ndarray:
    return rng.permutation(np.arange(n) % classes).astype(np.int64)


def _shifted(templates: np.ndarray, labels: np.ndarray, rng, max_shift: int) -> np.ndarray:
    """Each image = its class template rolled by a random (dy, dx) in [-max_shift, max_shift]."""
    shifts = rng.integers(-max_shift, max_shift + 1, (len(labels), 2))
    return np.stack([np.roll(templates[y], (int(dy), int(dx)), axis=(-2, -1)) for y, (dy, dx) in zip(labels, shifts)])


def mnist_like(n_train: int = MNIST_SIZES[0], n_test: int = MNIST_SIZES[1], seed: int = MNIST_SEED) -> dict:
    """{"train_x": (N, 28, 28) uint8, "train_y": (N,) int64, "test_x", "test_y"}: dark background, bright
    blocky strokes of the class template (a 7x7 random mask scaled to 20x20, centred), shifted by up to 3
    pixels, with per-pixel intensity 128..255, 30% of the stroke pixels dropped and 8% random pixels lit."""
    rng = np.random.default_rng(seed)
    masks = rng.random((10, 7, 7)) < 0.35
    templates = np.zeros((10, 28, 28), dtype=bool)
    templates[:, 4:24, 4:24] = np.kron(masks, np.ones((3, 3), dtype=bool))[:, :20, :20]
    out = {}
    for split, n in (("train", n_train), ("test", n_test)):
        y = _balanced_labels(rng, n)
        on = (_shifted(templates, y, rng, 3) & (rng.random((n, 28, 28)) > 0.3)) | (rng.random((n, 28, 28)) < 0.08)
        x = np.where(on, rng.integers(128, 256, (n, 28, 28)), 0).astype(np.uint8)
        out[f"{split}_x"], out[f"{split}_y"] = x, y
    return out


def cifar_like(n_train: int = CIFAR_SIZES[0], n_test: int = CIFAR_SIZES[1], seed: int = CIFAR_SEED) -> dict:
    """{"train_x": (N, 3, 32, 32) uint8, "train_y": (N,) int64, "test_x", "test_y"}: a class colour plus a
    class pattern (an 8x8 random mask scaled to 32x32), shifted by up to 4 pixels, plus Gaussian noise."""
    rng = np.random.default_rng(seed)
    colours = rng.integers(40, 216, (10, 3, 1, 1))
    patterns = np.kron(rng.random((10, 1, 8, 8)) < 0.5, np.ones((1, 1, 4, 4), dtype=bool))
    templates = colours + np.where(patterns, 40, -40)
    out = {}
    for split, n in (("train", n_train), ("test", n_test)):
        y = _balanced_labels(rng, n)
        x = _shifted(templates, y, rng, 4) + rng.normal(0, 20, (n, 3, 32, 32))
        out[f"{split}_x"], out[f"{split}_y"] = np.clip(np.rint(x), 0, 255).astype(np.uint8), y
    return out


# ------------------------------------------------------------------------------------------------------
# File formats
# ------------------------------------------------------------------------------------------------------
def gz(data: bytes) -> bytes:
    """gzip with no time or file name in the header: the same bytes on every run."""
    return gzip.compress(data, compresslevel=6, mtime=0)


def idx_bytes(a: np.ndarray) -> bytes:
    """The IDX encoding of a uint8 array: magic 0x0000 08 <ndim>, big-endian int32 dims, the bytes."""
    a = np.ascontiguousarray(a, dtype=np.uint8)
    return bytes([0, 0, 8, a.ndim]) + b"".join(struct.pack(">i", d) for d in a.shape) + a.tobytes()


def mnist_files(arrays: dict, prefix: str = f"{SET_NAME}-", compress: bool = True) -> dict:
    """{file name: bytes} of the four IDX files `<prefix><official stem>[.gz]`."""
    parts = {"train-images-idx3-ubyte": arrays["train_x"], "train-labels-idx1-ubyte": arrays["train_y"],
             "t10k-images-idx3-ubyte": arrays["test_x"], "t10k-labels-idx1-ubyte": arrays["test_y"]}
    return {prefix + stem + (".gz" if compress else ""): (gz if compress else bytes)(idx_bytes(a))
            for stem, a in parts.items()}


def write_files(folder: Path, files: dict) -> Path:
    """Write {relative name: bytes} under `folder`; return `folder`."""
    for name, payload in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(payload)
    return folder


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


def cifar_members(arrays: dict, dataset: str = "cifar10", classes=None, dumps=py2_pickle) -> dict:
    """{member name: pickled bytes} of the official CIFAR python batches holding `arrays` (train split into
    five data_batch_i for CIFAR-10, one `train` for CIFAR-100)."""
    classes = classes or (CIFAR_CLASSES if dataset == "cifar10" else [f"class{c:03d}" for c in range(100)])
    flat = {k: np.ascontiguousarray(v).reshape(len(v), -1) for k, v in arrays.items() if k.endswith("_x")}
    if dataset == "cifar10":
        label_key, meta_name, meta = "labels", "batches.meta", {"label_names": list(classes), "num_vis": "3072"}
        train_parts = [(f"data_batch_{i + 1}", idx) for i, idx in
                       enumerate(np.array_split(np.arange(len(arrays["train_y"])), 5))]
        test_name = "test_batch"
    else:
        label_key, meta_name = "fine_labels", "meta"
        meta = {"fine_label_names": list(classes), "coarse_label_names": ["c"] * 20}
        train_parts, test_name = [("train", np.arange(len(arrays["train_y"])))], "test"
    members = {}
    for name, idx in train_parts:
        members[name] = dumps({"batch_label": name, label_key: [int(v) for v in arrays["train_y"][idx]],
                               "data": flat["train_x"][idx]})
    members[test_name] = dumps({"batch_label": test_name, label_key: [int(v) for v in arrays["test_y"]],
                                "data": flat["test_x"]})
    members[meta_name] = dumps(meta)
    return members


def tar_bytes(members: dict, compression: str = "gz") -> bytes:
    """A tar archive of {name: bytes} with fixed headers (mtime 0, root, 0644); gzip'd without a time."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tf:
        for name, payload in members.items():
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = len(payload), 0, 0o644
            tf.addfile(info, io.BytesIO(payload))
    return gz(buf.getvalue()) if compression == "gz" else buf.getvalue()


def write_cifar_tarball(path: Path, arrays: dict, folder: str = SET_NAME, dataset: str = "cifar10",
                        dumps=py2_pickle) -> Path:
    members = cifar_members(arrays, dataset, dumps=dumps)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(tar_bytes({f"{folder}/{k}" if folder else k: v for k, v in members.items()}))
    return path


def make_sources(root: Path) -> Path:
    """Write the synthetic sources into `root` ($PRUNEBENCH_DATA_SOURCES layout) and return it."""
    root = Path(root)
    write_files(root / "mnist", mnist_files(mnist_like()))
    write_cifar_tarball(root / "cifar10.tar.gz", cifar_like())
    (root / "README.txt").write_text(README)
    return root


# ------------------------------------------------------------------------------------------------------
# Small builders and helpers for the data tests (tests/data/)
# ------------------------------------------------------------------------------------------------------
def random_arrays(n_train: int, n_test: int, shape: tuple, classes: int = 10, seed: int = 0) -> dict:
    """Uniform-noise uint8 images of `shape` (C, H, W) with random labels in 0..classes-1."""
    rng = np.random.default_rng(seed)
    out = {}
    for split, n in (("train", n_train), ("test", n_test)):
        out[f"{split}_x"] = rng.integers(0, 256, (n, *shape), dtype=np.uint8)
        out[f"{split}_y"] = rng.integers(0, classes, n).astype(np.int64)
    return out


def make_cifar_tarball(path: Path, dataset: str = "cifar10", n: int = 2, seed: int = 0, dumps=py2_pickle,
                       folder: str | None = None) -> dict:
    """A miniature CIFAR python tarball (official member names and pickle format, n images per batch file,
    inside the official folder unless `folder` is given); returns the arrays it holds."""
    n_train = 5 * n if dataset == "cifar10" else n
    arrays = random_arrays(n_train, n, (3, 32, 32), 10 if dataset == "cifar10" else 100, seed)
    if folder is None:
        folder = "cifar-10-batches-py" if dataset == "cifar10" else "cifar-100-python"
    write_cifar_tarball(path, arrays, folder, dataset, dumps)
    return arrays


def image_tree(root: Path, classes=CIFAR_CLASSES, n_train=3, n_test=2, size=32, mode="RGB", fmt="PNG",
               test_dir="test", seed=0, **save) -> dict:
    """An ImageFolder tree of random images; returns the expected arrays in prunebench order."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    channels = 1 if mode == "L" else 3
    expected = {}
    # files are written in shuffled order, with names whose sorted order is not their creation order
    names = {"train": ["b", "a", "10", "2", "c", "d"][:n_train], test_dir: ["z", "y", "x"][:n_test]}
    for split in ("train", test_dir):
        xs, ys = [], []
        for c in classes:  # creation order != sorted order for a shuffled class list
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


def files_under(path: Path) -> list:
    return sorted(p for p in Path(path).rglob("*") if p.is_file()) if Path(path).exists() else []


def md5(path) -> str:
    import hashlib

    return hashlib.md5(Path(path).read_bytes()).hexdigest()


def with_official(monkeypatch, dataset, path=None, urls=()):
    """Point the official-file registry of `dataset` at a synthetic file (its md5) and/or URLs."""
    from prunebench.library import data as D
    old = D.OFFICIAL_FILES[dataset][0]
    new = D.OfficialFile(old.name, tuple(urls) or old.urls, md5(path) if path else old.md5)
    monkeypatch.setitem(D.OFFICIAL_FILES, dataset, (new,))


def assert_cache_equals(path, expected):
    """Load the cache at `path` and check its arrays equal `expected`; return the loaded data."""
    import torch

    from prunebench.library import data as D
    cache = D.load(path.stem, path)
    for k, v in expected.items():
        assert torch.equal(getattr(cache, k), torch.as_tensor(v, dtype=getattr(cache, k).dtype)), k
    return cache
