"""Image sources: decoding (PIL), JPEG quality estimation, ImageFolder trees and the Tiny-ImageNet layout.

* ``image-folder``: ``<root>/train/<class>/**/<image>`` and ``<root>/test/<class>/**`` (or ``val/``); classes
  sorted alphabetically (label = position), files within a class sorted by path. A copy is labelled by its
  image format: "CIFAR-10 (PNG image-folder copy)", or "CIFAR-10 (JPEG q75 copy)" (lossy) when the images
  are JPEG re-encodings.
* ``tiny-imagenet``: the official folder (train/<wnid>/images/*.JPEG; val/images/* labelled by
  val/val_annotations.txt).

Like every reader, this module is imported only when a cache is prepared (`prunebench.library.data.cache`).
"""
from __future__ import annotations

import io

import numpy as np
from PIL import Image, UnidentifiedImageError
from tqdm import tqdm

from prunebench.library.errors import PrunebenchError
from prunebench.library.datasets import DatasetSpec

from prunebench.library.data.archives import Tree
from prunebench.library.data.basics import DISPLAY_NAMES, Raw, folder_name

# Data sets whose official distribution is already JPEG: a JPEG copy of them is not a lossy re-encoding.
NATIVE_JPEG = {"tiny-imagenet"}
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".ppm", ".pgm", ".pbm", ".tif", ".tiff", ".webp")


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


def jpeg_quality(img) -> int | None:
    """Estimated libjpeg quality of a JPEG (exact for IJG-encoded files), or None when unknown."""
    global _QUANT_TABLES
    tables = getattr(img, "quantization", None) or {}
    if 0 not in tables:
        return None
    if _QUANT_TABLES is None:
        _QUANT_TABLES = _standard_quant_tables()
    return _QUANT_TABLES.get(tuple(sorted(tables[0])))


def decode_images(tree: Tree, names: list, spec: DatasetSpec, progress: bool, desc: str):
    """Decode images into (N, C, H, W) uint8; also return the set of image formats and JPEG qualities."""
    mode = "L" if spec.channels == 1 else "RGB"
    out = np.empty((len(names), spec.size, spec.size, spec.channels), dtype=np.uint8)
    formats, qualities = set(), set()
    for i, name in enumerate(tqdm(names, desc=desc, unit="img", disable=not progress, mininterval=0.5,
                                  leave=False)):
        try:
            with Image.open(io.BytesIO(tree.read(name))) as img:
                formats.add(img.format)
                if img.format == "JPEG":
                    qualities.add(jpeg_quality(img))
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


def _class_files(tree: Tree, base: str) -> dict:
    """class -> sorted image paths under `base/<class>/` (any depth)."""
    out: dict = {}
    for n in tree.names:
        if n.startswith(base) and _is_image(n):
            rest = n[len(base):].split("/")
            if len(rest) >= 2:
                out.setdefault(rest[0], []).append(n)
    return {c: sorted(v) for c, v in sorted(out.items())}


def find_image_folder(tree: Tree):
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


def read_image_folder(tree: Tree, prefix: str, test_dir: str, spec: DatasetSpec, progress: bool) -> Raw:
    """An ImageFolder tree `<prefix>train/<class>/**` + `<prefix><test_dir>/<class>/**`."""
    train = _class_files(tree, prefix + "train/")
    test = _class_files(tree, f"{prefix}{test_dir}/")
    classes = sorted(train)
    index = {c: i for i, c in enumerate(classes)}
    splits, formats, qualities = [], set(), set()
    for split, files in (("train", train), ("test", test)):
        names = [n for c in sorted(files) for n in files[c]]
        labels = np.array([index[c] for c in sorted(files) for _ in files[c]], dtype=np.int64)
        x, f, q = decode_images(tree, names, spec, progress, f"{spec.name} {split}")
        formats |= f
        qualities |= q
        splits += [x, labels]
    lossy, note = _image_note(spec, formats, qualities)
    return Raw(*splits, classes, "image-folder", lossy=lossy, note=note)


def find_tiny_imagenet(tree: Tree):
    for n in tree.names:
        if n == "wnids.txt" or n.endswith("/wnids.txt"):
            prefix = n[: -len("wnids.txt")]
            if prefix + "val/val_annotations.txt" in tree.names:
                return prefix
    return None


def read_tiny_imagenet(tree: Tree, prefix: str, spec: DatasetSpec, progress: bool) -> Raw:
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
    train_x, *_ = decode_images(tree, train_names, spec, progress, f"{spec.name} train")
    test_x, *_ = decode_images(tree, [n for _, n in test], spec, progress, f"{spec.name} test")
    return Raw(train_x, train_y, test_x, np.array([y for y, _ in test], dtype=np.int64), classes, "tiny-imagenet",
               label=folder_name(prefix))
