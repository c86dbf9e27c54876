"""Data sets: where they come from, one-time preparation into a uint8 cache, loading, seeded batches.

Four data sets (`specs.DATASETS`): mnist, cifar10, cifar100, tiny-imagenet (methods.md B.3).

Sources, in order of precedence (`resolve_source`):

1. an explicit ``source``: a path, or the word ``"download"``;
2. the folders listed in the environment variable ``PRUNEBENCH_DATA_SOURCES`` (``os.pathsep``-separated),
   each searched for the names in ``SOURCE_NAMES[dataset]`` (official archives before image copies);
3. the official download (``download=True``), into ``<cache_dir>/downloads/``.

A local path may be

* a folder holding the official files (the four MNIST IDX files, ``.gz`` or not; ``cifar-10-python.tar.gz``;
  ``cifar-100-python.tar.gz``; ``tiny-imagenet-200.zip``), or the extracted official folder
  (``cifar-10-batches-py/``, ``cifar-100-python/``, ``tiny-imagenet-200/``);
* an ImageFolder tree ``<root>/train/<class>/**/<image>`` and ``<root>/test/<class>/**`` (or ``val/``);
* a ``.tar``, ``.tar.gz``/``.tgz``, ``.tar.xz``, ``.tar.bz2`` or ``.zip`` of any of those trees (read in
  memory, never extracted to disk).

Classes are sorted alphabetically (label = position); within a class, files are sorted by their path
(deterministic on every platform). Official layouts keep the official order.

Verification: a file that carries an official name (``OFFICIAL_FILES``) must match the published MD5, for
local copies as for downloads. MNIST is special: the official ``.gz`` MD5s are published, and so are the
MD5s of the *decompressed* IDX files. A ``.gz`` whose own MD5 differs (another gzip wrapper, as in the
offline copy this project is tested with) is accepted when its decompressed content matches the published
content MD5; the method used is recorded in the cache metadata (``source.verified``).

The cache ``<cache_dir>/<dataset>.safetensors`` holds ``train_x``/``test_x`` (N, C, H, W) uint8 and
``train_y``/``test_y`` int64, plus JSON metadata: the source (kind, basename, sha256, how it was verified),
``source_note`` (how results on it must be labelled, e.g. "CIFAR-10 (JPEG q75 copy)"), ``lossy``, the
class names and counts, and ``content_sha256`` (`content_sha256`), the key the pipeline uses for the
data. It is written atomically; the same inputs give the same bytes.

Batches are built on the tensors' device from explicit, seeded ``torch.Generator``s (never the global
RNG); random numbers are always drawn on the CPU, so the batches are the same on every device.
"""
from __future__ import annotations

import functools
import gzip
import hashlib
import http.client
import io
import json
import lzma
import math
import os
import pickle
import sys
import tarfile
import time
import urllib.error
import urllib.request
import zipfile
import zlib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Iterator, Mapping

import numpy as np
import torch

from prunebench.errors import PrunebenchError
from prunebench.io import atomic_path, load_tensors, save_tensors, sha256_file
from prunebench.specs import DatasetSpec, dataset_spec

CACHE_FORMAT = "prunebench-data/1"
ENV_SOURCES = "PRUNEBENCH_DATA_SOURCES"
TENSOR_NAMES = ("train_x", "train_y", "test_x", "test_y")
DISPLAY_NAMES = {"mnist": "MNIST", "cifar10": "CIFAR-10", "cifar100": "CIFAR-100", "tiny-imagenet": "Tiny-ImageNet"}
# Data sets whose official distribution is already JPEG: a JPEG copy of them is not a lossy re-encoding.
NATIVE_JPEG = {"tiny-imagenet"}
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".ppm", ".pgm", ".pbm", ".tif", ".tiff", ".webp")
ARCHIVE_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".tar.xz", ".txz", ".tar.bz2", ".tbz2", ".zip")
AUGMENT_PADDING = 4  # random crop with 4-pixel zero padding + horizontal flip (methods.md B.2)


# ---------------------------------------------------------------------------------------------------------
# Official files
# ---------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class OfficialFile:
    """One file of an official distribution, with its mirrors (tried in order) and published MD5s."""

    name: str
    urls: tuple
    md5: str
    content_md5: str | None = None  # MD5 of the decompressed content, for .gz files (MNIST)


_MNIST_MIRRORS = ("https://ossci-datasets.s3.amazonaws.com/mnist/", "http://yann.lecun.com/exdb/mnist/")


def _mnist_file(name, md5, content_md5):
    return OfficialFile(name, tuple(m + name for m in _MNIST_MIRRORS), md5, content_md5)


OFFICIAL_FILES: dict[str, tuple] = {
    "mnist": (
        _mnist_file("train-images-idx3-ubyte.gz", "f68b3c2dcbeaaa9fbdd348bbdeb94873", "6bbc9ace898e44ae57da46a324031adb"),
        _mnist_file("train-labels-idx1-ubyte.gz", "d53e105ee54ea40749a09fcbcd1e9432", "a25bea736e30d166cdddb491f175f624"),
        _mnist_file("t10k-images-idx3-ubyte.gz", "9fb629c4189551a2d022fa330f9573f3", "2646ac647ad5339dbf082846283269ea"),
        _mnist_file("t10k-labels-idx1-ubyte.gz", "ec29112dd5afa0611ce80d1b7f02629c", "27ae3e4e09519cfbb04c329615203637"),
    ),
    "cifar10": (OfficialFile("cifar-10-python.tar.gz", ("https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",),
                             "c58f30108f718f92721af3b95e74349a"),),
    "cifar100": (OfficialFile("cifar-100-python.tar.gz", ("https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",),
                              "eb9058c3a382ffc7106e4002c42a8d85"),),
    "tiny-imagenet": (OfficialFile("tiny-imagenet-200.zip", ("http://cs231n.stanford.edu/tiny-imagenet-200.zip",),
                                   "90528d7ca1a48142e341f4ef8d21d0de"),),
}

# Names searched in each PRUNEBENCH_DATA_SOURCES folder, in order: lossless official files first.
SOURCE_NAMES: dict[str, tuple] = {
    "mnist": ("mnist", "MNIST/raw", "."),
    "cifar10": ("cifar-10-python.tar.gz", "cifar-10-batches-py", "cifar10", "cifar10.tar", "cifar10.tar.gz",
                "cifar10.tar.xz", "cifar10.zip", "cifar10-jpeg.tar.xz", "cifar10-jpeg"),
    "cifar100": ("cifar-100-python.tar.gz", "cifar-100-python", "cifar100", "cifar100.tar", "cifar100.tar.gz",
                 "cifar100.tar.xz", "cifar100.zip", "cifar100-jpeg.tar.xz", "cifar100-jpeg"),
    "tiny-imagenet": ("tiny-imagenet-200.zip", "tiny-imagenet-200", "tiny-imagenet", "tiny-imagenet.tar",
                      "tiny-imagenet.tar.gz", "tiny-imagenet.tar.xz", "tiny-imagenet.zip"),
}

_MNIST_STEMS = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


def _official(dataset: str, name: str) -> OfficialFile | None:
    for f in OFFICIAL_FILES.get(dataset, ()):
        if f.name == name:
            return f
    return None


def _md5_bytes(data) -> str:
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


def _md5_file(path, chunk=1 << 20) -> str:
    h = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def _mismatch(shown: str, what: str, got: str, want: str, official: str) -> PrunebenchError:
    return PrunebenchError(f"checksum mismatch for {shown!r}: {what} {got}, expected {want} "
                           f"(corrupt, truncated or not the official {official})")


def verify_file(path, official: OfficialFile, shown: str | None = None) -> str:
    """Check `path` against the published checksums of `official`; return how ("md5" or "content-md5").

    A file matching the published MD5 passes. A gzip file with a published content MD5 (MNIST) also passes
    when its decompressed bytes match that MD5. Anything else is a one-line `PrunebenchError` naming the
    file: corrupt, truncated or not the official file.
    """
    shown = shown or str(path)
    got = _md5_file(path)
    if got == official.md5:
        return "md5"
    if official.content_md5 is None:
        raise _mismatch(shown, "md5", got, official.md5, official.name)
    _verified_content(Path(path).read_bytes(), official, shown, compressed=True)
    return "content-md5"


def _verified_content(data: bytes, official: OfficialFile, shown: str, compressed: bool) -> tuple:
    """(decompressed content, how verified) of an MNIST member given as .gz (compressed) or raw IDX bytes."""
    if compressed and _md5_bytes(data) == official.md5:
        return _gunzip(data, shown), "md5"
    content = _gunzip(data, shown) if compressed else data
    got = _md5_bytes(content)
    if got != official.content_md5:
        raise _mismatch(shown, "decompressed md5" if compressed else "md5", got, official.content_md5,
                        official.name)
    return content, "content-md5"


def _gunzip(data: bytes, shown: str) -> bytes:
    try:
        return gzip.decompress(data)
    except (OSError, EOFError, gzip.BadGzipFile) as e:
        raise PrunebenchError(f"corrupt gzip file {shown!r}: {e}") from None


def _fetch_url(url: str, dest: Path, progress: bool, timeout: float = 60.0) -> None:
    """Copy `url` (http, https or file) into `dest`."""
    from tqdm import tqdm

    req = urllib.request.Request(url, headers={"User-Agent": "prunebench"})
    with urllib.request.urlopen(req, timeout=timeout) as resp, open(dest, "wb") as out:
        total = resp.headers.get("Content-Length")
        with tqdm(total=int(total) if total else None, unit="B", unit_scale=True, desc=Path(url).name,
                  disable=not progress, leave=False) as bar:
            for block in iter(lambda: resp.read(1 << 20), b""):
                out.write(block)
                bar.update(len(block))


def download_official(dataset: str, dest_dir, progress: bool | None = None) -> Path:
    """Download the official files of `dataset` into `dest_dir` and verify them; return the source path.

    Each file goes to a temporary name, is verified (`verify_file`), then renamed; a failed or corrupt
    download leaves nothing behind. Mirrors are tried in order. A verified file already in `dest_dir`
    is reused. MNIST returns the folder `dest_dir/mnist`, the others the archive.
    """
    spec = dataset_spec(dataset)
    progress = _progress_enabled(progress)
    dest_dir = Path(dest_dir) / "mnist" if spec.name == "mnist" else Path(dest_dir)
    for f in OFFICIAL_FILES[spec.name]:
        target = dest_dir / f.name
        if target.is_file():
            try:
                verify_file(target, f)
                continue
            except PrunebenchError:
                pass  # stale or damaged earlier download: fetch it again (atomically replaced)
        errors = []
        for url in f.urls:
            try:
                with atomic_path(target) as tmp:
                    _fetch_url(url, tmp, progress)
                    verify_file(tmp, f, shown=url)
                break
            except PrunebenchError as e:
                errors.append(str(e))
            except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as e:
                errors.append(f"{url}: {getattr(e, 'reason', None) or e}")
        else:
            raise PrunebenchError(f"could not download {f.name} for {spec.name}: " + "; ".join(errors))
    return dest_dir if spec.name == "mnist" else dest_dir / OFFICIAL_FILES[spec.name][0].name


# ---------------------------------------------------------------------------------------------------------
# File trees: a folder, a tar archive or a zip archive, seen as sorted relative POSIX paths
# ---------------------------------------------------------------------------------------------------------
def _hidden(name: str) -> bool:
    return any(part.startswith(".") and part not in (".", "..") for part in name.split("/"))


class _Tree:
    names: list  # sorted relative POSIX paths of the regular files
    label: str  # what to show in messages

    def read(self, name: str) -> bytes:
        raise NotImplementedError

    def show(self, name: str) -> str:
        """How to name one member in a message: folder/member or archive:member."""
        return f"{self.label}:{name}"

    def fingerprint(self) -> tuple:
        """(sha256, of) of the source: of='file' for an archive, 'manifest' for a folder (files read)."""
        raise NotImplementedError

    def close(self) -> None:
        pass


class _DirTree(_Tree):
    def __init__(self, root: Path):
        self.root = root
        self.label = str(root)
        names = []
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames[:] = [d for d in dirnames if not d.startswith(".")]
            rel = Path(dirpath).relative_to(root).as_posix()
            for fn in filenames:
                if not fn.startswith("."):
                    names.append(fn if rel == "." else f"{rel}/{fn}")
        self.names = sorted(names)
        self._hashes: dict = {}

    def show(self, name: str) -> str:
        return str(self.root / name)

    def read(self, name: str) -> bytes:
        data = (self.root / name).read_bytes()
        self._hashes[name] = hashlib.sha256(data).hexdigest()
        return data

    def fingerprint(self):
        manifest = "".join(f"{self._hashes[n]}  {n}\n" for n in sorted(self._hashes))
        return hashlib.sha256(manifest.encode()).hexdigest(), "manifest"


class _TarTree(_Tree):
    """A tar archive (any compression), streamed once; the regular files are held in memory."""

    def __init__(self, path: Path):
        self.path = path
        self.label = str(path)
        files = {}
        try:
            with tarfile.open(path, "r|*") as tf:
                for m in tf:
                    name = m.name
                    while name.startswith("./"):
                        name = name[2:]
                    if m.isfile() and not _hidden(name):
                        files[name] = tf.extractfile(m).read()
        except (tarfile.TarError, OSError, EOFError, zlib.error, lzma.LZMAError) as e:
            raise PrunebenchError(f"corrupt archive {str(path)!r}: {e}") from None
        self._files = files
        self.names = sorted(files)

    def read(self, name):
        return self._files[name]

    def fingerprint(self):
        return sha256_file(self.path), "file"


class _ZipTree(_Tree):
    def __init__(self, path: Path):
        self.path = path
        self.label = str(path)
        try:
            self._zip = zipfile.ZipFile(path)
            self.names = sorted(i.filename for i in self._zip.infolist()
                                if not i.is_dir() and not _hidden(i.filename))
        except (zipfile.BadZipFile, OSError) as e:
            raise PrunebenchError(f"corrupt archive {str(path)!r}: {e}") from None

    def close(self):
        self._zip.close()

    def read(self, name):
        try:
            return self._zip.read(name)
        except (zipfile.BadZipFile, OSError, EOFError, zlib.error) as e:
            raise PrunebenchError(f"corrupt archive member {self.show(name)!r}: {e}") from None

    def fingerprint(self):
        return sha256_file(self.path), "file"


def _is_archive(path: Path) -> bool:
    return path.name.lower().endswith(ARCHIVE_SUFFIXES)


def _open_tree(path: Path) -> _Tree:
    if path.is_dir():
        return _DirTree(path)
    if path.name.lower().endswith(".zip"):
        return _ZipTree(path)
    if _is_archive(path) or tarfile.is_tarfile(path):
        return _TarTree(path)
    raise PrunebenchError(f"unsupported data source {str(path)!r}: expected a folder, a tar or a zip archive")


# ---------------------------------------------------------------------------------------------------------
# Readers: one per layout; each returns a _Raw with NCHW uint8 arrays and int64 labels
# ---------------------------------------------------------------------------------------------------------
@dataclass
class _Raw:
    train_x: np.ndarray
    train_y: np.ndarray
    test_x: np.ndarray
    test_y: np.ndarray
    classes: list
    layout: str
    lossy: bool = False
    note: str = ""
    verified: str = "none"


def _parse_idx(data: bytes, ndim: int, shown: str) -> np.ndarray:
    """IDX format (MNIST): magic 0x0000 08 <ndim>, big-endian int32 dims, then unsigned bytes."""
    if len(data) < 4 + 4 * ndim or data[:3] != b"\x00\x00\x08" or data[3] != ndim:
        raise PrunebenchError(f"corrupt IDX file {shown!r}: bad header")
    dims = [int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    start = 4 + 4 * ndim
    if len(data) != start + math.prod(dims):
        raise PrunebenchError(f"corrupt IDX file {shown!r}: {len(data) - start} bytes for shape {dims}")
    return np.frombuffer(data, dtype=np.uint8, offset=start).reshape(dims).copy()


def _read_mnist(tree: _Tree, prefix: str) -> _Raw:
    arrays, how = {}, set()
    for stem in _MNIST_STEMS:
        gz, raw = prefix + stem + ".gz", prefix + stem
        official = _official("mnist", stem + ".gz")
        name = gz if gz in tree.names else raw
        content, verified = _verified_content(tree.read(name), official, tree.show(name), name == gz)
        how.add(verified)
        arrays[stem] = _parse_idx(content, 3 if "images" in stem else 1, tree.show(name))
    train_x, train_y, test_x, test_y = (arrays[s] for s in _MNIST_STEMS)
    return _Raw(train_x[:, None], train_y.astype(np.int64), test_x[:, None], test_y.astype(np.int64),
                [str(i) for i in range(10)], "mnist-idx", verified="+".join(sorted(how)))


_NUMPY_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode"),
}


class _ArrayUnpickler(pickle.Unpickler):
    """The CIFAR python batches are pickles; allow only what builds plain containers and numpy arrays."""

    def find_class(self, module, name):
        if (module, name) not in _NUMPY_GLOBALS:
            raise pickle.UnpicklingError(f"refusing to load global {module}.{name}")
        if module == "_codecs":
            import codecs

            return codecs.encode
        if name == "_reconstruct":
            try:
                from numpy._core.multiarray import _reconstruct
            except ImportError:  # numpy < 2
                from numpy.core.multiarray import _reconstruct
            return _reconstruct
        return getattr(np, name)


def _unpickle(data: bytes, shown: str) -> dict:
    try:
        obj = _ArrayUnpickler(io.BytesIO(data), encoding="latin1").load()
    except Exception as e:  # any failure to decode is a corrupt file
        raise PrunebenchError(f"corrupt CIFAR batch {shown!r}: {e}") from None
    if not isinstance(obj, dict):
        raise PrunebenchError(f"corrupt CIFAR batch {shown!r}: not a dict")
    return {(k.decode("latin1") if isinstance(k, bytes) else k): v for k, v in obj.items()}


def _read_cifar_python(tree: _Tree, prefix: str, spec: DatasetSpec) -> _Raw:
    if spec.name == "cifar10":
        train_files = [f"data_batch_{i}" for i in range(1, 6)]
        test_files, meta_file, label_key, names_key = ["test_batch"], "batches.meta", "labels", "label_names"
    else:
        train_files, test_files, meta_file, label_key, names_key = ["train"], ["test"], "meta", "fine_labels", "fine_label_names"

    def batch(names):
        xs, ys = [], []
        for n in names:
            shown = tree.show(prefix + n)
            d = _unpickle(tree.read(prefix + n), shown)
            try:
                x = np.asarray(d["data"], dtype=np.uint8).reshape(-1, 3, 32, 32)
                y = np.asarray(d[label_key], dtype=np.int64).reshape(-1)
            except (KeyError, ValueError) as e:
                raise PrunebenchError(f"corrupt CIFAR batch {shown!r}: {e}") from None
            if len(x) != len(y):
                raise PrunebenchError(f"corrupt CIFAR batch {shown!r}: {len(x)} images, {len(y)} labels")
            xs.append(x)
            ys.append(y)
        return np.concatenate(xs), np.concatenate(ys)

    meta = _unpickle(tree.read(prefix + meta_file), tree.show(prefix + meta_file))
    classes = [c.decode() if isinstance(c, bytes) else str(c) for c in meta.get(names_key, [])]
    train_x, train_y = batch(train_files)
    test_x, test_y = batch(test_files)
    return _Raw(train_x, train_y, test_x, test_y, classes, "cifar-python")


def _standard_quant_tables() -> dict:
    """Sorted IJG luminance quantisation table for quality 1..100 -> quality (libjpeg's scaling)."""
    base = [16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55, 14, 13, 16, 24, 40, 57, 69, 56,
            14, 17, 22, 29, 51, 87, 80, 62, 18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113, 92,
            49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99]
    out = {}
    for q in range(1, 101):
        scale = 5000 // q if q < 50 else 200 - 2 * q
        out.setdefault(tuple(sorted(min(255, max(1, (b * scale + 50) // 100)) for b in base)), q)
    return out


_QUANT_TABLES: dict | None = None


def _jpeg_quality(img) -> int | None:
    """Estimated libjpeg quality of a JPEG (exact for IJG-encoded files), or None when unknown."""
    global _QUANT_TABLES
    tables = getattr(img, "quantization", None) or {}
    if 0 not in tables:
        return None
    if _QUANT_TABLES is None:
        _QUANT_TABLES = _standard_quant_tables()
    return _QUANT_TABLES.get(tuple(sorted(tables[0])))


def _progress_enabled(progress: bool | None) -> bool:
    if progress is not None:
        return bool(progress)
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


def _decode_images(tree: _Tree, names: list, spec: DatasetSpec, progress: bool, desc: str):
    """Decode images into (N, C, H, W) uint8; also return the set of image formats and JPEG qualities."""
    from PIL import Image, UnidentifiedImageError
    from tqdm import tqdm

    mode = "L" if spec.channels == 1 else "RGB"
    out = np.empty((len(names), spec.size, spec.size, spec.channels), dtype=np.uint8)
    formats, qualities = set(), set()
    for i, name in enumerate(tqdm(names, desc=desc, unit="img", disable=not progress, mininterval=0.5,
                                  leave=False)):
        try:
            with Image.open(io.BytesIO(tree.read(name))) as img:
                formats.add(img.format)
                if img.format == "JPEG":
                    qualities.add(_jpeg_quality(img))
                if img.size != (spec.size, spec.size):
                    raise PrunebenchError(f"image {tree.show(name)} is {img.size[0]}x{img.size[1]}, "
                                          f"{spec.name} needs {spec.size}x{spec.size}")
                arr = np.asarray(img.convert(mode))
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
            raise PrunebenchError(f"corrupt image {tree.show(name)}: {e}") from None
        out[i] = arr.reshape(spec.size, spec.size, spec.channels)
    return np.ascontiguousarray(out.transpose(0, 3, 1, 2)), formats, qualities


def _is_image(name: str) -> bool:
    return name.lower().endswith(IMAGE_EXTENSIONS)


def _class_files(tree: _Tree, base: str) -> dict:
    """class -> sorted image paths under `base/<class>/` (any depth)."""
    out: dict = {}
    for n in tree.names:
        if n.startswith(base) and _is_image(n):
            rest = n[len(base):].split("/")
            if len(rest) >= 2:
                out.setdefault(rest[0], []).append(n)
    return {c: sorted(v) for c, v in sorted(out.items())}


def _find_image_folder(tree: _Tree):
    """(prefix, test dir name) of the shallowest `<prefix>train/<class>/<image>` with a labelled test/val."""
    prefixes = set()
    for n in tree.names:
        parts = n.split("/")
        for i, p in enumerate(parts[:-2]):
            if p == "train" and _is_image(n):
                prefixes.add("".join(q + "/" for q in parts[:i]))
    for prefix in sorted(prefixes, key=lambda p: (p.count("/"), p)):
        train = _class_files(tree, prefix + "train/")
        for test_dir in ("test", "val"):
            test = _class_files(tree, f"{prefix}{test_dir}/")
            if test and set(test) <= set(train):
                return prefix, test_dir
    return None


def _image_note(spec: DatasetSpec, formats: set, qualities: set) -> tuple:
    """(lossy, source_note) for an image-tree copy."""
    display = DISPLAY_NAMES[spec.name]
    if "JPEG" in formats and spec.name not in NATIVE_JPEG:
        known = sorted(q for q in qualities if q is not None)
        if len(known) == 1 and None not in qualities:
            quality = f" q{known[0]}"
        elif known:
            quality = f" q{known[0]}-q{known[-1]}"
        else:
            quality = ""
        return True, f"{display} (JPEG{quality} copy)"
    fmt = "/".join(sorted(f for f in formats if f)) or "image"
    return False, f"{display} ({fmt} image-folder copy)"


def _read_image_folder(tree: _Tree, prefix: str, test_dir: str, spec: DatasetSpec, progress: bool) -> _Raw:
    train = _class_files(tree, prefix + "train/")
    test = _class_files(tree, f"{prefix}{test_dir}/")
    classes = sorted(train)
    index = {c: i for i, c in enumerate(classes)}
    splits, formats, qualities = [], set(), set()
    for split, files in (("train", train), ("test", test)):
        names = [n for c in sorted(files) for n in files[c]]
        labels = np.array([index[c] for c in sorted(files) for _ in files[c]], dtype=np.int64)
        x, f, q = _decode_images(tree, names, spec, progress, f"{spec.name} {split}")
        formats |= f
        qualities |= q
        splits += [x, labels]
    lossy, note = _image_note(spec, formats, qualities)
    return _Raw(*splits, classes, "image-folder", lossy=lossy, note=note)


def _find_tiny_imagenet(tree: _Tree):
    for n in tree.names:
        if n == "wnids.txt" or n.endswith("/wnids.txt"):
            prefix = n[: -len("wnids.txt")]
            if prefix + "val/val_annotations.txt" in tree.names:
                return prefix
    return None


def _read_tiny_imagenet(tree: _Tree, prefix: str, spec: DatasetSpec, progress: bool) -> _Raw:
    """Official layout: train/<wnid>/images/*.JPEG; val/images/* labelled by val/val_annotations.txt.

    The labelled val split is the test set (as in FORCE/GraSP, which read val/ as an ImageFolder); it is
    ordered by class, then file name, like an ImageFolder tree of the same images.
    """
    classes = sorted({w.strip() for w in tree.read(prefix + "wnids.txt").decode().split() if w.strip()})
    index = {c: i for i, c in enumerate(classes)}
    train = _class_files(tree, prefix + "train/")
    unknown = sorted(set(train) - set(classes))
    if unknown:
        raise PrunebenchError(f"corrupt Tiny-ImageNet source {tree.label!r}: train class {unknown[0]!r} not in wnids.txt")
    train_names = [n for c in classes for n in train.get(c, [])]
    train_y = np.array([index[c] for c in classes for _ in train.get(c, [])], dtype=np.int64)
    names, test = set(tree.names), []
    for line in tree.read(prefix + "val/val_annotations.txt").decode().splitlines():
        fields = line.split("\t")
        if len(fields) < 2:
            continue
        name, wnid = prefix + "val/images/" + fields[0], fields[1]
        if wnid not in index or name not in names:
            raise PrunebenchError(f"corrupt Tiny-ImageNet source {tree.label!r}: bad val annotation {line.strip()!r}")
        test.append((index[wnid], name))
    test.sort()
    train_x, *_ = _decode_images(tree, train_names, spec, progress, f"{spec.name} train")
    test_x, *_ = _decode_images(tree, [n for _, n in test], spec, progress, f"{spec.name} test")
    return _Raw(train_x, train_y, test_x, np.array([y for y, _ in test], dtype=np.int64), classes, "tiny-imagenet")


def _read_tree(tree: _Tree, spec: DatasetSpec, progress: bool) -> _Raw:
    """Detect the layout of `tree` for `spec` and read it."""
    names = set(tree.names)
    if spec.name == "mnist":
        for prefix in ("", "raw/", "MNIST/raw/", "mnist/"):
            if all(prefix + s + ".gz" in names or prefix + s in names for s in _MNIST_STEMS):
                return _read_mnist(tree, prefix)
    if spec.name in ("cifar10", "cifar100"):
        marker = "data_batch_1" if spec.name == "cifar10" else "meta"
        needed = ("data_batch_1", "test_batch", "batches.meta") if spec.name == "cifar10" else ("train", "test", "meta")
        for n in tree.names:
            if n == marker or n.endswith("/" + marker):
                prefix = n[: -len(marker)]
                if all(prefix + m in names for m in needed):
                    return _read_cifar_python(tree, prefix, spec)
    if spec.name == "tiny-imagenet":
        prefix = _find_tiny_imagenet(tree)
        if prefix is not None:
            return _read_tiny_imagenet(tree, prefix, spec, progress)
    found = _find_image_folder(tree)
    if found is not None:
        return _read_image_folder(tree, *found, spec, progress)
    raise PrunebenchError(f"no {DISPLAY_NAMES[spec.name]} data found in {tree.label!r}: expected the official files "
                          f"or an image tree train/<class>/... with test/<class>/... (or val/)")


# ---------------------------------------------------------------------------------------------------------
# Source resolution
# ---------------------------------------------------------------------------------------------------------
def env_source_dirs() -> list:
    """The folders listed in $PRUNEBENCH_DATA_SOURCES (os.pathsep-separated), in order."""
    return [Path(p).expanduser() for p in os.environ.get(ENV_SOURCES, "").split(os.pathsep) if p.strip()]


def _mnist_files_in(folder: Path) -> bool:
    return all((folder / (s + ".gz")).is_file() or (folder / s).is_file() for s in _MNIST_STEMS)


def find_source(dataset: str) -> Path | None:
    """The first entry of `SOURCE_NAMES[dataset]` present in a $PRUNEBENCH_DATA_SOURCES folder, else None."""
    spec = dataset_spec(dataset)
    for folder in env_source_dirs():
        for name in SOURCE_NAMES[spec.name]:
            candidate = folder / name
            if name == ".":
                if spec.name == "mnist" and _mnist_files_in(folder):
                    return folder
            elif candidate.exists():
                return candidate
    return None


def resolve_source(dataset: str, source=None, download: bool = True):
    """Path of the local source to use, or the string "download". See the module docstring for the order."""
    spec = dataset_spec(dataset)
    if source is not None:
        if str(source) == "download":
            return "download"
        path = Path(source).expanduser()
        if not path.exists():
            raise PrunebenchError(f"data source {str(path)!r} does not exist")
        return path
    found = find_source(spec.name)
    if found is not None:
        return found
    if download:
        return "download"
    searched = ", ".join(str(p) for p in env_source_dirs()) or f"(${ENV_SOURCES} is not set)"
    raise PrunebenchError(f"no local source for {spec.name} (searched {searched} for "
                          f"{', '.join(SOURCE_NAMES[spec.name])}) and download is off")


def _official_entry(spec: DatasetSpec, path: Path) -> Path:
    """A folder holding an official archive of this data set -> that archive; otherwise `path` itself."""
    if path.is_dir():
        for f in OFFICIAL_FILES[spec.name]:
            if spec.name != "mnist" and (path / f.name).is_file():
                return path / f.name
    return path


def _read_source(spec: DatasetSpec, path: Path, progress: bool) -> tuple:
    """(raw arrays, source metadata) for a local source path."""
    path = _official_entry(spec, path)
    verified = "none"
    official = _official(spec.name, path.name) if path.is_file() else None
    if official is not None:
        verified = verify_file(path, official)
    tree = _open_tree(path)
    try:
        raw = _read_tree(tree, spec, progress)
        sha, of = tree.fingerprint()
    finally:
        tree.close()
    if raw.verified != "none":
        verified = raw.verified
    kind = "folder" if path.is_dir() else ("zip" if isinstance(tree, _ZipTree) else "tar")
    return raw, {"kind": kind, "name": path.name, "layout": raw.layout, "sha256": sha, "sha256_of": of,
                 "verified": verified}


# ---------------------------------------------------------------------------------------------------------
# Preparation
# ---------------------------------------------------------------------------------------------------------
def cache_path(dataset: str, cache_dir) -> Path:
    """`<cache_dir>/<dataset>.safetensors`."""
    return Path(cache_dir) / f"{dataset_spec(dataset).name}.safetensors"


def content_sha256(tensors: Mapping[str, torch.Tensor]) -> str:
    """SHA-256 over train_x, train_y, test_x, test_y, in that order.

    Each contributes the line "<name>:<dtype>:<shape>\\n" then its bytes (C order, little-endian). Two
    caches with the same arrays share this key whatever their source or metadata.
    """
    h = hashlib.sha256()
    for name in TENSOR_NAMES:
        t = tensors[name].detach().cpu().contiguous()
        h.update(f"{name}:{str(t.dtype).replace('torch.', '')}:{tuple(t.shape)}\n".encode())
        arr = t.numpy()
        h.update(np.ascontiguousarray(arr, dtype=arr.dtype.newbyteorder("<")).data)
    return h.hexdigest()


def _read_header(path: Path):
    """Parse a safetensors header without reading the tensors; None unless complete and consistent."""
    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            n = int.from_bytes(f.read(8), "little")
            if n <= 0 or 8 + n > size:
                return None
            header = json.loads(f.read(n))
        end = max((v["data_offsets"][1] for k, v in header.items() if k != "__metadata__"), default=0)
        if 8 + n + end != size:
            return None
        return header
    except (OSError, ValueError, KeyError, TypeError, IndexError):
        return None


def cached_metadata(path) -> dict | None:
    """The metadata of a complete cache file at `path`, or None (missing, truncated, not a data cache)."""
    path = Path(path)
    if not path.is_file():
        return None
    header = _read_header(path)
    if header is None:
        return None
    try:
        meta = json.loads(header.get("__metadata__", {}).get("prunebench", "{}"))
    except (ValueError, AttributeError):
        return None
    if meta.get("format") != CACHE_FORMAT or not all(k in header for k in TENSOR_NAMES):
        return None
    return meta


def _say(msg: str) -> None:
    print(f"prunebench data: {msg}", file=sys.stderr, flush=True)


def _check_raw(raw: _Raw, spec: DatasetSpec, label: str) -> None:
    shape = (spec.channels, spec.size, spec.size)
    for split in ("train", "test"):
        x, y = getattr(raw, f"{split}_x"), getattr(raw, f"{split}_y")
        if x.ndim != 4 or tuple(x.shape[1:]) != shape or len(x) != len(y) or len(x) == 0:
            raise PrunebenchError(f"bad {spec.name} data in {label!r}: {split} images {tuple(x.shape)}, "
                                  f"{len(y)} labels, expected (N, {', '.join(map(str, shape))})")
        if len(y) and (y.min() < 0 or y.max() >= spec.num_classes):
            raise PrunebenchError(f"bad {spec.name} data in {label!r}: {split} label {int(y.max())} "
                                  f"outside 0..{spec.num_classes - 1}")
    if len(raw.classes) != spec.num_classes:
        raise PrunebenchError(f"bad {spec.name} data in {label!r}: {len(raw.classes)} classes, "
                              f"expected {spec.num_classes}")


def prepare(dataset: str, cache_dir, source=None, download: bool = True, *, progress: bool | None = None) -> Path:
    """Prepare `dataset` once into `<cache_dir>/<dataset>.safetensors` and return that path.

    source: a local path (see the module docstring), "download", or None to search
        $PRUNEBENCH_DATA_SOURCES and then download (when `download` is true).
    progress: a tqdm bar while decoding images; None shows it only on a terminal. One summary line goes to
        stderr whenever work is done.

    A complete cache already there is returned without any work. With an explicit `source`, the cache must
    have been prepared from a source of the same name, else a `PrunebenchError` (delete it to rebuild).
    The file is written atomically; nothing partial is left behind on any error.
    """
    spec = dataset_spec(dataset)
    out = cache_path(spec.name, cache_dir)
    resolved = resolve_source(spec.name, source, download)
    meta = cached_metadata(out)
    if meta is not None and meta.get("dataset") == spec.name:
        wanted = "download" if resolved == "download" else Path(resolved).name
        had = meta.get("source", {})
        had_names = {had.get("name")} | ({"download"} if had.get("origin") == "download" else set())
        if source is not None and wanted not in had_names:
            raise PrunebenchError(f"data cache {str(out)!r} was prepared from {had.get('name')!r}, not {wanted!r}; "
                                  f"delete it or use another cache folder")
        return out
    if out.exists():
        _say(f"rebuilding incomplete or foreign cache {out}")

    start = time.perf_counter()
    progress = _progress_enabled(progress)
    origin = "local"
    if resolved == "download":
        resolved = download_official(spec.name, Path(cache_dir) / "downloads", progress)
        origin = "download"
    raw, source_meta = _read_source(spec, Path(resolved), progress)
    _check_raw(raw, spec, str(resolved))
    tensors = {"train_x": torch.from_numpy(raw.train_x), "train_y": torch.from_numpy(raw.train_y),
               "test_x": torch.from_numpy(raw.test_x), "test_y": torch.from_numpy(raw.test_y)}
    note = raw.note or DISPLAY_NAMES[spec.name]
    metadata = {
        "format": CACHE_FORMAT,
        "dataset": spec.name,
        "source": {**source_meta, "origin": origin},
        "source_note": note,
        "lossy": raw.lossy,
        "content_sha256": content_sha256(tensors),
        "classes": list(raw.classes),
        "counts": {"train": int(len(raw.train_y)), "test": int(len(raw.test_y))},
        "class_counts": {"train": np.bincount(raw.train_y, minlength=spec.num_classes).tolist(),
                         "test": np.bincount(raw.test_y, minlength=spec.num_classes).tolist()},
        "shape": [spec.channels, spec.size, spec.size],
    }
    save_tensors(out, tensors, metadata)
    _say(f"prepared {spec.name} from {Path(resolved).name} ({metadata['counts']['train']} train, "
         f"{metadata['counts']['test']} test; {note}) in {time.perf_counter() - start:.1f} s -> {out}")
    return out


# ---------------------------------------------------------------------------------------------------------
# Loading
# ---------------------------------------------------------------------------------------------------------
@dataclass
class Data:
    """A prepared data set in memory: uint8 images (N, C, H, W) and int64 labels, all on one device."""

    spec: DatasetSpec
    train_x: torch.Tensor
    train_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    val_x: torch.Tensor | None = None
    val_y: torch.Tensor | None = None
    metadata: dict = field(default_factory=dict)

    @property
    def device(self) -> torch.device:
        return self.train_x.device

    @property
    def classes(self) -> list:
        return list(self.metadata.get("classes", []))

    @property
    def source_note(self) -> str:
        """How results on this data must be labelled, e.g. "CIFAR-10 (JPEG q75 copy)"."""
        return self.metadata.get("source_note", DISPLAY_NAMES[self.spec.name])

    def split(self, name: str) -> tuple:
        """(images, labels) of "train", "val" or "test"."""
        if name not in ("train", "val", "test"):
            raise PrunebenchError(f"unknown split {name!r}; choose one of: test, train, val")
        x, y = getattr(self, f"{name}_x"), getattr(self, f"{name}_y")
        if x is None:
            raise PrunebenchError(f"no {name!r} split: load with val_fraction > 0 to hold out a validation set")
        return x, y

    def to(self, device) -> "Data":
        def move(t):
            return None if t is None else t.to(device)

        return replace(self, train_x=move(self.train_x), train_y=move(self.train_y), test_x=move(self.test_x),
                       test_y=move(self.test_y), val_x=move(self.val_x), val_y=move(self.val_y))


def split_indices(n: int, val_fraction: float, val_seed: int) -> tuple:
    """(train indices, val indices), each sorted, holding out floor(val_fraction * n) examples.

    The held-out set is the one of FORCE's loader (methods.md B.2: "45k/5k (seed 1)"): indices 0..n-1
    shuffled by numpy's RandomState(val_seed), the first floor(fraction * n) held out; used with the
    official order it gives the same validation images as `np.random.seed(1); np.random.shuffle(...)`.
    """
    if not isinstance(val_fraction, (int, float)) or isinstance(val_fraction, bool) or not 0 <= val_fraction < 1:
        raise PrunebenchError(f"invalid val_fraction {val_fraction!r}: must be a number in [0, 1)")
    k = int(math.floor(val_fraction * n))
    order = np.arange(n)
    np.random.RandomState(_check_seed(val_seed, "val_seed")).shuffle(order)
    return torch.from_numpy(np.sort(order[k:])), torch.from_numpy(np.sort(order[:k]))


def load(dataset: str, cache, device="cpu", *, val_fraction: float = 0.0, val_seed: int = 1,
         verify: bool = True) -> Data:
    """Read a prepared cache fully into memory on `device`.

    cache: the cache folder (holding `<dataset>.safetensors`) or the file itself.
    val_fraction, val_seed: hold out a deterministic validation split from train (`split_indices`);
        FORCE uses 0.1 with seed 1, SPP 0.1 (methods.md B.2). Train is reduced accordingly.
    verify: recompute `content_sha256` and compare with the metadata (catches silent corruption).
    A missing, truncated or corrupt cache is a one-line `PrunebenchError`.
    """
    spec = dataset_spec(dataset)
    path = Path(cache)
    if path.is_dir() or not path.suffix:
        path = cache_path(spec.name, path)
    if not path.exists():
        raise PrunebenchError(f"missing data cache {str(path)!r}: prepare it first (prunebench data {spec.name})")
    tensors, meta = load_tensors(path, what="data cache")
    if meta.get("format") != CACHE_FORMAT:
        raise PrunebenchError(f"corrupt data cache {str(path)!r}: not a prunebench data cache")
    if meta.get("dataset") != spec.name:
        raise PrunebenchError(f"data cache {str(path)!r} holds {meta.get('dataset')!r}, not {spec.name!r}")
    shape = (spec.channels, spec.size, spec.size)
    for name in TENSOR_NAMES:
        t = tensors.get(name)
        want = torch.uint8 if name.endswith("_x") else torch.int64
        if t is None or t.dtype != want or (name.endswith("_x") and tuple(t.shape[1:]) != shape):
            raise PrunebenchError(f"corrupt data cache {str(path)!r}: bad tensor {name}")
    if verify and content_sha256(tensors) != meta.get("content_sha256"):
        raise PrunebenchError(f"corrupt data cache {str(path)!r}: content does not match its content_sha256")
    meta = dict(meta)
    train_x, train_y = tensors["train_x"], tensors["train_y"]
    val_x = val_y = None
    if val_fraction:
        train_idx, val_idx = split_indices(len(train_y), val_fraction, val_seed)
        train_x, train_y, val_x, val_y = train_x[train_idx], train_y[train_idx], train_x[val_idx], train_y[val_idx]
        meta["val"] = {"fraction": val_fraction, "seed": val_seed, "count": len(val_idx)}
    data = Data(spec, train_x, train_y, tensors["test_x"], tensors["test_y"], val_x, val_y, meta)
    try:
        return data.to(device)
    except (RuntimeError, AssertionError, ValueError) as e:
        raise PrunebenchError(f"cannot use device {str(device)!r}: {str(e).splitlines()[0]}") from None


# ---------------------------------------------------------------------------------------------------------
# Normalisation, augmentation, batches
# ---------------------------------------------------------------------------------------------------------
def normalize(x: torch.Tensor, spec: DatasetSpec) -> torch.Tensor:
    """uint8 images (..., C, H, W) -> float32 (x / 255 - mean) / std, with the spec's per-channel constants.

    Same arithmetic as torchvision's ToTensor + Normalize (divide by 255, subtract, divide).
    """
    mean, std = _channel_stats(spec, x.device)
    return x.to(torch.float32).div(255).sub_(mean).div_(std)


@functools.lru_cache(maxsize=32)
def _channel_stats(spec: DatasetSpec, device: torch.device) -> tuple:
    def column(values):
        return torch.tensor(values, dtype=torch.float32, device=device).view(-1, 1, 1)

    return column(spec.mean), column(spec.std)


def _check_seed(seed, what="seed") -> int:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise PrunebenchError(f"invalid {what} {seed!r}: must be a non-negative integer")
    return int(seed)


def derive_seed(seed: int, *tags) -> int:
    """A 63-bit seed for one stream, from a user seed and tags (e.g. "train-order", epoch); platform-stable."""
    text = "/".join(str(t) for t in (_check_seed(seed), *tags))
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little") & ((1 << 63) - 1)


def _generator(seed: int, *tags) -> torch.Generator:
    return torch.Generator(device="cpu").manual_seed(derive_seed(seed, *tags))


def crop_flip(x: torch.Tensor, offsets: torch.Tensor, flips: torch.Tensor, pad: int = AUGMENT_PADDING) -> torch.Tensor:
    """Batched crop-with-zero-padding and horizontal flip, on x's device, without a per-image loop.

    x: (B, C, H, W); offsets: (B, 2) integer (row, column) offsets in [0, 2*pad] into the padded image
    (pad, pad = unchanged); flips: (B,) bool. out[b] = flip_b(pad(x[b])[:, dy:dy+H, dx:dx+W]).
    """
    b, c, h, w = x.shape
    dev = x.device
    offsets, flips = offsets.to(dev), flips.to(dev)
    padded = torch.nn.functional.pad(x, (pad, pad, pad, pad))
    rows = offsets[:, 0:1] + torch.arange(h, device=dev)  # (B, H)
    ar = torch.arange(w, device=dev)
    cols = offsets[:, 1:2] + torch.where(flips[:, None], (w - 1) - ar, ar)  # (B, W)
    return padded[torch.arange(b, device=dev)[:, None, None, None], torch.arange(c, device=dev)[None, :, None, None],
                  rows[:, None, :, None], cols[:, None, None, :]]


def random_crop_flip(x: torch.Tensor, generator: torch.Generator, pad: int = AUGMENT_PADDING) -> torch.Tensor:
    """Random crop (zero padding `pad`) + horizontal flip with p=0.5, parameters drawn on the CPU generator."""
    offsets = torch.randint(0, 2 * pad + 1, (len(x), 2), generator=generator)
    flips = torch.randint(0, 2, (len(x),), generator=generator).bool()
    return crop_flip(x, offsets, flips, pad)


class Batches:
    """A sized, re-iterable sequence of (x, y) batches; each iteration yields exactly the same batches."""

    def __init__(self, make: Callable[[], Iterator], length: int):
        self._make, self._length = make, length

    def __iter__(self):
        return self._make()

    def __len__(self):
        return self._length


def _check_batch_size(batch_size) -> int:
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise PrunebenchError(f"invalid batch_size {batch_size!r}: must be a positive integer")
    return int(batch_size)


def num_batches(n, batch_size: int, drop_last: bool = False, split: str = "train") -> int:
    """Batches per epoch for `n` examples (an int or a `Data`, whose `split` is counted)."""
    if isinstance(n, Data):
        n = len(n.split(split)[1])
    batch_size = _check_batch_size(batch_size)
    return n // batch_size if drop_last else -(-n // batch_size)


def _use_augment(spec: DatasetSpec, augment) -> bool:
    return spec.augment and augment is not False


def train_batches(data: Data, batch_size: int, epoch: int, seed: int, augment: bool | None = None,
                  drop_last: bool = False, *, split: str = "train", augment_seed: int | None = None) -> Batches:
    """One epoch of shuffled, augmented, normalised training batches (x float32, y int64) on data's device.

    Order: a permutation drawn from (seed, epoch). Augmentation (methods.md B.2: crop 4 + flip) applies when
    the data set has one (spec.augment; MNIST has none) unless `augment` is False; its random parameters
    come from (augment_seed or seed, epoch), a separate stream, so changing one never shifts the other.
    The same arguments always give the same batches, on any device.
    """
    x, y = data.split(split)
    batch_size = _check_batch_size(batch_size)
    epoch = _check_seed(epoch, "epoch")
    n, length = len(y), num_batches(len(y), batch_size, drop_last)
    aug = _use_augment(data.spec, augment)
    aug_seed = seed if augment_seed is None else augment_seed
    _check_seed(seed)
    _check_seed(aug_seed, "augment_seed")

    def batches():
        perm = torch.randperm(n, generator=_generator(seed, "train-order", epoch)).to(x.device)
        g_aug = _generator(aug_seed, "train-augment", epoch)
        for i in range(length):
            idx = perm[i * batch_size:(i + 1) * batch_size]
            xb = x[idx]
            if aug:
                xb = random_crop_flip(xb, g_aug)
            yield normalize(xb, data.spec), y[idx]

    return Batches(batches, length)


def eval_batches(data: Data, split: str = "test", batch_size: int = 1000) -> Batches:
    """Normalised batches of `split` in stored order, no augmentation."""
    x, y = data.split(split)
    batch_size = _check_batch_size(batch_size)
    length = num_batches(len(y), batch_size)

    def batches():
        for i in range(length):
            sl = slice(i * batch_size, (i + 1) * batch_size)
            yield normalize(x[sl], data.spec), y[sl]

    return Batches(batches, length)


class _IndexStream:
    """Endless indices: successive seeded permutations of `pool`, consumed in order."""

    def __init__(self, pool: torch.Tensor, generator: torch.Generator):
        self.pool, self.g, self.buf = pool, generator, pool[:0]

    def take(self, k: int) -> torch.Tensor:
        while len(self.buf) < k:
            self.buf = torch.cat([self.buf, self.pool[torch.randperm(len(self.pool), generator=self.g)]])
        out, self.buf = self.buf[:k], self.buf[k:]
        return out


def pruning_batches(data: Data, batch_size: int | None, seed: int, augment: bool = True,
                    class_balanced_per_class: int | None = None, *, split: str = "train") -> Iterator:
    """An infinite, seeded iterator of fresh normalised batches for pruning-time scoring.

    Plain mode (FORCE / Iter SNIP draw a fresh batch per step or per averaged gradient, methods.md A.2/A.3):
    every batch has `batch_size` examples taken in turn from successive seeded permutations of the split,
    so each example is used once per pass and batches span pass boundaries.

    Class-balanced mode (GraSP's `GraSP_fetch_data`, methods.md A.4): `class_balanced_per_class=k` gives
    batches of k examples of every class, CONCATENATED CLASS BY CLASS (labels 0,..,0,1,..,1,...), so the
    two halves of a batch are class-disjoint as in the official code. The batch size is k * num_classes
    (`batch_size` must be None or equal to it). Within a class, examples come from seeded permutations.

    augment: apply the data set's training augmentation (crop + flip; none for MNIST), as the official
    codes draw pruning data through the training transform. All randomness comes from `seed` (the
    "pruning batches" seed), in streams separate from training.
    """
    x, y = data.split(split)
    seed = _check_seed(seed)
    aug = _use_augment(data.spec, augment)
    g_idx = _generator(seed, "pruning-order")
    g_aug = _generator(seed, "pruning-augment")
    if class_balanced_per_class is not None:
        k = _check_batch_size(class_balanced_per_class)
        classes = data.spec.num_classes
        if batch_size is not None and batch_size != k * classes:
            raise PrunebenchError(f"invalid batch_size {batch_size!r}: class-balanced batches hold "
                                  f"{k} x {classes} = {k * classes} examples (pass batch_size=None)")
        labels = y.cpu()
        pools = [torch.nonzero(labels == c).flatten() for c in range(classes)]
        small = [c for c, p in enumerate(pools) if len(p) < k]
        if small:
            raise PrunebenchError(f"invalid class_balanced_per_class {k}: class {small[0]} has only "
                                  f"{len(pools[small[0]])} examples in {split!r}")
        streams = [_IndexStream(p, g_idx) for p in pools]

        def next_indices():
            return torch.cat([s.take(k) for s in streams])
    else:
        batch_size = _check_batch_size(batch_size)
        stream = _IndexStream(torch.arange(len(y)), g_idx)

        def next_indices():
            return stream.take(batch_size)

    def batches():
        while True:
            idx = next_indices().to(x.device)
            xb = x[idx]
            if aug:
                xb = random_crop_flip(xb, g_aug)
            yield normalize(xb, data.spec), y[idx]

    return batches()


__all__ = [
    "CACHE_FORMAT", "ENV_SOURCES", "OFFICIAL_FILES", "SOURCE_NAMES", "OfficialFile", "Data", "Batches",
    "prepare", "load", "download_official", "verify_file", "resolve_source", "find_source", "env_source_dirs",
    "cache_path", "cached_metadata", "content_sha256", "split_indices", "normalize", "derive_seed",
    "crop_flip", "random_crop_flip", "num_batches", "train_batches", "eval_batches", "pruning_batches",
]
