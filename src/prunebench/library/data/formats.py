"""Format readers: MNIST IDX files and the CIFAR python batches, layout detection for every format
(`read_tree`; the image layouts are in `prunebench.library.data.images`) and reading a whole local source
(`read_source`). Each reader turns a `Tree` into NCHW uint8 arrays and int64 labels (`Raw`).

Layouts:

* ``mnist-idx``: the four MNIST IDX files (``.gz`` or not) under their official names, checked against the
  published checksums (`prunebench.library.data.sources.verified_content`); or a *named set* of IDX files
  ``<name>-train-images-idx3-ubyte[.gz]``, ``<name>-train-labels-idx1-ubyte[.gz]``,
  ``<name>-t10k-images-idx3-ubyte[.gz]``, ``<name>-t10k-labels-idx1-ubyte[.gz]`` (the naming EMNIST
  uses), read without verification: nothing is published to check them against. Official names win when
  both are present, and official names that fail their checksums are an error, never a fallback.
* ``cifar-python``: the pickled batches of the official CIFAR-10/100 python archives (anywhere in the
  tree), read with a restricted unpickler (plain containers and numpy arrays only).
* ``tiny-imagenet`` and ``image-folder``: see `prunebench.library.data.images`.

Official layouts keep the official order.

Labels (``source_note``): the plain data-set name ("MNIST", "CIFAR-10") only for official files verified
against their published checksums; an image copy says so ("CIFAR-10 (JPEG q75 copy)"); data in an official
layout that nothing verified (an extracted folder, a re-packed archive, a named IDX set, synthetic test
data) is labelled ``<Name>-format data "<set>" (unverified; not the official <Name> files)``, where <set>
is the IDX set name, the folder holding the batches, or the source's name.
"""
from __future__ import annotations

import codecs
import io
import math
import pickle
import re
from pathlib import Path

import numpy as np

try:
    from numpy._core.multiarray import _reconstruct
except ImportError:  # numpy < 2
    from numpy.core.multiarray import _reconstruct

from prunebench.library.errors import PrunebenchError
from prunebench.library.datasets import CIFAR_PYTHON, IDX, TINY_IMAGENET, DatasetSpec

from prunebench.library.data import images
from prunebench.library.data.archives import Tree, ZipTree, open_tree
from prunebench.library.data.basics import DISPLAY_NAMES, Raw, folder_name
from prunebench.library.data.sources import MNIST_STEMS, gunzip, official_entry, official_file, verified_content, verify_file

# Layouts of official distributions: unverified data in them get an "unverified" source note.
OFFICIAL_LAYOUTS = ("mnist-idx", "cifar-python", "tiny-imagenet")


def unverified_note(spec: DatasetSpec, label: str) -> str:
    """The source note of data in an official layout that could not be verified against official checksums."""
    display = DISPLAY_NAMES[spec.name]
    return f'{display}-format data "{label}" (unverified; not the official {display} files)'


# ---------------------------------------------------------------------------------------------------------
# MNIST: IDX files
# ---------------------------------------------------------------------------------------------------------
def parse_idx(data: bytes, ndim: int, shown: str) -> np.ndarray:
    """IDX format (MNIST): magic 0x0000 08 <ndim>, big-endian int32 dims, then unsigned bytes."""
    if len(data) < 4 + 4 * ndim or data[:3] != b"\x00\x00\x08" or data[3] != ndim:
        raise PrunebenchError(f"corrupt IDX file {shown!r}: bad header")
    dims = [int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    start = 4 + 4 * ndim
    if len(data) != start + math.prod(dims):
        raise PrunebenchError(f"corrupt IDX file {shown!r}: {len(data) - start} bytes for shape {dims}")
    return np.frombuffer(data, dtype=np.uint8, offset=start).reshape(dims).copy()


def read_mnist(tree: Tree, prefix: str, set_name: str | None = None) -> Raw:
    """The four IDX files at `prefix` + official stem (+ ".gz"): verified against the published checksums,
    or, for a named set (`set_name`, files `<prefix><stem>` with prefix ending in "<set_name>-"), unverified."""
    arrays, how = {}, set()
    for stem in MNIST_STEMS:
        gz, raw = prefix + stem + ".gz", prefix + stem
        name = gz if gz in tree.names else raw
        if set_name is None:
            content, verified = verified_content(tree.read(name), official_file("mnist", stem + ".gz"),
                                                 tree.show(name), name == gz)
        else:
            data = tree.read(name)
            content, verified = (gunzip(data, tree.show(name)) if name == gz else data), "none"
        how.add(verified)
        arrays[stem] = parse_idx(content, 3 if "images" in stem else 1, tree.show(name))
    train_x, train_y, test_x, test_y = (arrays[s] for s in MNIST_STEMS)
    return Raw(train_x[:, None], train_y.astype(np.int64), test_x[:, None], test_y.astype(np.int64),
               [str(i) for i in range(10)], "mnist-idx", verified="+".join(sorted(how)), label=set_name or "")


_NAMED_IDX = re.compile(r"(?P<dir>(?:.*/)?)(?P<name>[^/]+)-train-images-idx3-ubyte(?:\.gz)?")


def _find_named_mnist(tree: Tree):
    """(prefix, set name) of the shallowest complete named IDX set `<name>-<stem>[.gz]`, or None."""
    names, found = set(tree.names), []
    for n in tree.names:
        m = _NAMED_IDX.fullmatch(n)
        if m:
            prefix = f"{m['dir']}{m['name']}-"
            if all(prefix + s + ".gz" in names or prefix + s in names for s in MNIST_STEMS):
                found.append((prefix.count("/"), prefix, m["name"]))
    return min(found)[1:] if found else None


# ---------------------------------------------------------------------------------------------------------
# CIFAR: pickled python batches, restricted unpickler
# ---------------------------------------------------------------------------------------------------------
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
            return codecs.encode
        if name == "_reconstruct":
            return _reconstruct
        return getattr(np, name)


def unpickle(data: bytes, shown: str) -> dict:
    """A CIFAR batch (a pickled dict) read with the restricted unpickler; keys decoded to str."""
    try:
        obj = _ArrayUnpickler(io.BytesIO(data), encoding="latin1").load()
    except Exception as e:  # any failure to decode is a corrupt file
        raise PrunebenchError(f"corrupt CIFAR batch {shown!r}: {e}") from None
    if not isinstance(obj, dict):
        raise PrunebenchError(f"corrupt CIFAR batch {shown!r}: not a dict")
    return {(k.decode("latin1") if isinstance(k, bytes) else k): v for k, v in obj.items()}


def read_cifar_python(tree: Tree, prefix: str, spec: DatasetSpec) -> Raw:
    """The batches at `prefix` (data_batch_1..5, test_batch, batches.meta; or train, test, meta for CIFAR-100)."""
    if spec.name == "cifar10":
        train_files = [f"data_batch_{i}" for i in range(1, 6)]
        test_files, meta_file, label_key, names_key = ["test_batch"], "batches.meta", "labels", "label_names"
    else:
        train_files, test_files, meta_file, label_key, names_key = ["train"], ["test"], "meta", "fine_labels", "fine_label_names"

    def batch(names):
        xs, ys = [], []
        for n in names:
            shown = tree.show(prefix + n)
            d = unpickle(tree.read(prefix + n), shown)
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

    meta = unpickle(tree.read(prefix + meta_file), tree.show(prefix + meta_file))
    classes = [c.decode() if isinstance(c, bytes) else str(c) for c in meta.get(names_key, [])]
    train_x, train_y = batch(train_files)
    test_x, test_y = batch(test_files)
    return Raw(train_x, train_y, test_x, test_y, classes, "cifar-python", label=folder_name(prefix))


# ---------------------------------------------------------------------------------------------------------
# Layout detection and the whole source
# ---------------------------------------------------------------------------------------------------------
def read_tree(tree: Tree, spec: DatasetSpec, progress: bool) -> Raw:
    """Detect the layout of `tree` for `spec` and read it (official layouts first, then image trees)."""
    names = set(tree.names)
    if spec.layout == IDX:
        for prefix in ("", "raw/", "MNIST/raw/", "mnist/"):
            if all(prefix + s + ".gz" in names or prefix + s in names for s in MNIST_STEMS):
                return read_mnist(tree, prefix)
        named = _find_named_mnist(tree)
        if named is not None:
            return read_mnist(tree, *named)
    if spec.layout == CIFAR_PYTHON:
        marker = "data_batch_1" if spec.name == "cifar10" else "meta"
        needed = ("data_batch_1", "test_batch", "batches.meta") if spec.name == "cifar10" else ("train", "test", "meta")
        for n in tree.names:
            if n == marker or n.endswith("/" + marker):
                prefix = n[: -len(marker)]
                if all(prefix + m in names for m in needed):
                    return read_cifar_python(tree, prefix, spec)
    if spec.layout == TINY_IMAGENET:
        prefix = images.find_tiny_imagenet(tree)
        if prefix is not None:
            return images.read_tiny_imagenet(tree, prefix, spec, progress)
    found = images.find_image_folder(tree)
    if found is not None:
        return images.read_image_folder(tree, *found, spec, progress)
    raise PrunebenchError(f"no {DISPLAY_NAMES[spec.name]} data found in {tree.label!r}: expected the official files "
                          f"or an image tree train/<class>/... with test/<class>/... (or val/)")


def read_source(spec: DatasetSpec, path: Path, progress: bool) -> tuple:
    """(raw arrays, source metadata) for a local source path: verify an official file, open, read.

    Data in an official layout that nothing verified get the "unverified" source note (`unverified_note`).
    """
    path = official_entry(spec, path)
    verified = "none"
    official = official_file(spec.name, path.name) if path.is_file() else None
    if official is not None:
        verified = verify_file(path, official)
    tree = open_tree(path)
    try:
        raw = read_tree(tree, spec, progress)
        sha, of = tree.fingerprint()
    finally:
        tree.close()
    if raw.verified != "none":
        verified = raw.verified
    if raw.layout in OFFICIAL_LAYOUTS and verified == "none" and not raw.note:
        raw.note = unverified_note(spec, raw.label or path.name)
    kind = "folder" if path.is_dir() else ("zip" if isinstance(tree, ZipTree) else "tar")
    return raw, {"kind": kind, "name": path.name, "layout": raw.layout, "sha256": sha, "sha256_of": of,
                 "verified": verified}
