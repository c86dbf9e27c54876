"""The uint8 cache: one-time preparation (`prepare`), its content hash, and loading it into memory (`load`).

The cache ``<cache_dir>/<dataset>.safetensors`` holds ``train_x``/``test_x`` (N, C, H, W) uint8 and
``train_y``/``test_y`` int64, plus JSON metadata: the source (kind, basename, sha256, how it was verified),
``source_note`` (how results on it must be labelled, e.g. "CIFAR-10 (JPEG q75 copy)"), ``lossy``, the
class names and counts, and ``content_sha256`` (`content_sha256`), the key the pipeline uses for the
data. It is written atomically; the same inputs give the same bytes. Every `load` verifies the file's
checksum (`prunebench.library.artifacts`), so a damaged cache (one flipped bit) is an error, never data.

The readers (`prunebench.library.data.formats`, which import tarfile, zipfile, pickle and PIL) are imported only
when a cache is prepared.
"""
from __future__ import annotations

import hashlib
import json
import math
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Mapping

import numpy as np
import torch

from prunebench.library.errors import PrunebenchError
from prunebench.library.artifacts import (CHECKSUM_KEY, hash_tensors, load_tensors, remove_stale_temporaries,
                                          save_tensors)
from prunebench.library.datasets import DatasetSpec, dataset_spec

from prunebench.library.data.basics import DISPLAY_NAMES, check_seed, progress_enabled, say
from prunebench.library.data.sources import download_official, resolve_source

CACHE_FORMAT = "prunebench-data/1"
TENSOR_NAMES = ("train_x", "train_y", "test_x", "test_y")


def cache_path(dataset: str, cache_dir) -> Path:
    """`<cache_dir>/<dataset>.safetensors`."""
    return Path(cache_dir) / f"{dataset_spec(dataset).name}.safetensors"


def content_sha256(tensors: Mapping[str, torch.Tensor]) -> str:
    """SHA-256 over train_x, train_y, test_x, test_y, in that order.

    Each contributes the line "<name>:<dtype>:<shape>\\n" then its bytes (`io.hash_tensors`). Two
    caches with the same arrays share this key whatever their source or metadata.
    """
    h = hashlib.sha256()
    hash_tensors(h, tensors, TENSOR_NAMES)
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
    if meta.get("format") != CACHE_FORMAT or not all(k in header for k in TENSOR_NAMES) \
            or meta.pop(CHECKSUM_KEY, None) is None:  # an older cache without checksum: rebuilt
        return None
    return meta


# ---------------------------------------------------------------------------------------------------------
# Preparation
# ---------------------------------------------------------------------------------------------------------
def _check_raw(raw, spec: DatasetSpec, label: str) -> None:
    """Shapes, label range and class count of a reader's result (`prunebench.library.data.basics.Raw`)."""
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

    source: a local path (see `prunebench.library.data.sources` and `prunebench.library.data.formats`), "download", or None
        to search $PRUNEBENCH_DATA_SOURCES and then download (when `download` is true).
    progress: a tqdm bar while decoding images; None shows it only on a terminal. One summary line goes to
        stderr whenever work is done.

    A complete cache already there is returned without any work. With an explicit `source`, the cache must
    have been prepared from a source of the same name, else a `PrunebenchError` (delete it to rebuild).
    The file is written atomically; nothing partial is left behind on any error.
    """
    spec = dataset_spec(dataset)
    out = cache_path(spec.name, cache_dir)
    resolved = resolve_source(spec.name, source, download)
    remove_stale_temporaries(out)  # what a killed preparation left (SIGKILL), even when the cache is complete
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
        say(f"rebuilding incomplete or foreign cache {out}")

    from prunebench.library.data import formats  # the readers (tarfile, zipfile, pickle, PIL): only to prepare

    start = time.perf_counter()
    progress = progress_enabled(progress)
    origin = "local"
    if resolved == "download":
        resolved = download_official(spec.name, Path(cache_dir) / "downloads", progress)
        origin = "download"
    raw, source_meta = formats.read_source(spec, Path(resolved), progress)
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
    save_tensors(out, tensors, metadata, what="data cache")
    say(f"prepared {spec.name} from {Path(resolved).name} ({metadata['counts']['train']} train, "
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

    The held-out set is the one of FORCE's loader (docs/methods.md B.2: "45k/5k (seed 1)"): indices 0..n-1
    shuffled by numpy's RandomState(val_seed), the first floor(fraction * n) held out; used with the
    official order it gives the same validation images as `np.random.seed(1); np.random.shuffle(...)`.
    """
    if not isinstance(val_fraction, (int, float)) or isinstance(val_fraction, bool) or not 0 <= val_fraction < 1:
        raise PrunebenchError(f"invalid val_fraction {val_fraction!r}: must be a number in [0, 1)")
    k = int(math.floor(val_fraction * n))
    order = np.arange(n)
    np.random.RandomState(check_seed(val_seed, "val_seed")).shuffle(order)
    return torch.from_numpy(np.sort(order[k:])), torch.from_numpy(np.sort(order[:k]))


def load(dataset: str, cache, device="cpu", *, val_fraction: float = 0.0, val_seed: int = 1) -> Data:
    """Read a prepared cache fully into memory on `device`, after checking its content hash.

    cache: the cache folder (holding `<dataset>.safetensors`) or the file itself.
    val_fraction, val_seed: hold out a deterministic validation split from train (`split_indices`);
        FORCE uses 0.1 with seed 1, SPP 0.1 (docs/methods.md B.2). Train is reduced accordingly.
    Every load verifies the file's checksum (`io.load_tensors`: catches silent corruption, one flipped bit).
    A missing, truncated or corrupt cache is a one-line `PrunebenchError` naming the file.
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
