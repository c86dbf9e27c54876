"""Data manifests: the small JSON file the pipeline tracks for a prepared data set (`write_manifest`), and
opening a data set from a manifest or a cache file (`open_data`).

A manifest records the data set, the cache file, where it was prepared from (``source``, ``download``) and
the cache's ``content_sha256`` and ``source_note``. Paths in it are relative to the manifest's own folder
(``"paths": "relative to this file"``; an absolute source path given by the user stays absolute), so a
manifest means the same thing from any working directory and in any copy of the results tree. A cache
that is missing (caches are not versioned) is rebuilt from the recorded source, into the location the
manifest names. Manifests written before this format (no ``format`` key) recorded paths relative to the
working directory: those are still read, trying the manifest's folder first, then the working directory.
"""
from __future__ import annotations

import os
from pathlib import Path

from prunebench.library.artifacts import check_readable, read_json, write_json
from prunebench.library.datasets import DATASETS
from prunebench.library.errors import PrunebenchError

from prunebench.library.data.cache import Data, cache_path, cached_metadata, load, prepare
from prunebench.library.data.basics import say

MANIFEST_FORMAT = "prunebench-data-manifest/2"
_RELATIVE = "relative to this file"


def _relative_to(path: Path, folder: Path) -> str:
    """`path` relative to `folder` (POSIX separators), or absolute when no relative path exists."""
    try:
        return Path(os.path.relpath(os.path.abspath(path), os.path.abspath(folder))).as_posix()
    except ValueError:  # another drive (Windows)
        return str(Path(os.path.abspath(path)))


def write_manifest(path, dataset: str, cache, source=None, download: bool = True) -> dict:
    """Write the manifest of the prepared cache `cache` to `path` (atomically) and return it.

    source: what `prepare` was given: None (searched $PRUNEBENCH_DATA_SOURCES / download), "download", or a
        path; a relative path is taken relative to the working directory and recorded relative to the
        manifest's folder, an absolute one is recorded as it is.
    """
    path, cache = Path(path), Path(cache)
    meta = cached_metadata(cache)
    if meta is None:
        raise PrunebenchError(f"missing or incomplete data cache {str(cache)!r}: "
                              f"prepare it before writing a manifest")
    if meta.get("dataset") != dataset:
        raise PrunebenchError(f"data cache {str(cache)!r} holds {meta.get('dataset')!r}, not {dataset!r}")
    folder = path.parent
    if source is not None and str(source) != "download":
        source = str(source) if Path(source).is_absolute() else _relative_to(Path(source), folder)
    manifest = {"format": MANIFEST_FORMAT, "paths": _RELATIVE, "dataset": dataset,
                "cache": _relative_to(cache, folder), "source": source, "download": bool(download),
                "content_sha256": meta["content_sha256"], "source_note": meta.get("source_note", dataset)}
    write_json(path, manifest)
    return manifest


def _resolve(recorded: str, folder: Path, legacy: bool) -> Path:
    """A path recorded in a manifest: absolute as it is; relative against the manifest's folder. For a
    legacy manifest (paths relative to the working directory), the working-directory path when only it exists."""
    p = Path(recorded).expanduser()
    if p.is_absolute():
        return p
    here = folder / p
    if legacy and not here.exists() and p.exists():
        return p
    return here


def _read_manifest(path: Path) -> dict:
    man = read_json(path, "data manifest")
    if not isinstance(man, dict) or not all(k in man for k in ("dataset", "cache", "content_sha256")):
        raise PrunebenchError(f"corrupt data manifest {str(path)!r}: expected dataset, cache and content_sha256")
    if not isinstance(man["dataset"], str) or man["dataset"] not in DATASETS or not isinstance(man["cache"], str):
        raise PrunebenchError(f"corrupt data manifest {str(path)!r}: dataset {man['dataset']!r}, cache {man['cache']!r}")
    fmt = man.get("format")
    if fmt not in (None, MANIFEST_FORMAT):
        raise PrunebenchError(f"data manifest {str(path)!r} has format {fmt!r}; "
                              f"this version reads {MANIFEST_FORMAT!r}")
    return man


def data_dataset(path) -> str:
    """The data set a manifest (.json) or a cache file (.safetensors) holds, from the manifest or the cache's
    header alone (nothing is prepared or loaded): to check, before any work, that an init fits the data."""
    path = check_readable(path, "data manifest" if Path(path).suffix == ".json" else "data cache")
    if path.suffix == ".json":
        return _read_manifest(path)["dataset"]
    meta = cached_metadata(path)
    if meta is None or meta.get("dataset") not in DATASETS:
        raise PrunebenchError(f"corrupt data cache {str(path)!r}: not a complete prunebench data cache")
    return meta["dataset"]


def open_data(path, device="cpu", val_fraction: float = 0.0, val_seed: int = 0) -> Data:
    """Load a prepared data set from a data manifest (.json, `write_manifest`) or a cache file (.safetensors).

    From a manifest: the cache is resolved relative to the manifest's folder (see the module docstring); a
    missing cache is prepared again from the recorded source into that location; the loaded content must
    match the manifest's content_sha256. val_fraction, val_seed: as `prunebench.library.data.load`.
    """
    path = Path(path)
    if path.suffix == ".json":
        man = _read_manifest(path)
        legacy = "format" not in man
        folder = path.parent
        cache = _resolve(man["cache"], folder, legacy)
        if not cache.exists():  # caches are not versioned: rebuild from the recorded source
            if cache_path(man["dataset"], cache.parent) != cache:
                raise PrunebenchError(f"missing data cache {str(cache)!r} (named in {str(path)!r}); it cannot be "
                                      f"rebuilt under that name: caches are called <dataset>.safetensors")
            source = man.get("source")
            if source is not None and str(source) != "download":
                source = _resolve(str(source), folder, legacy)
            say(f"data cache {cache} missing; preparing {man['dataset']} again")
            prepare(man["dataset"], cache.parent, source=source, download=man.get("download", True))
        data = load(man["dataset"], cache, device=device, val_fraction=val_fraction, val_seed=val_seed)
        got = data.metadata.get("content_sha256")
        if got != man["content_sha256"]:
            raise PrunebenchError(f"data cache {str(cache)!r} has content {got}, "
                                  f"the manifest expects {man['content_sha256']}")
        return data
    if not path.exists():
        raise PrunebenchError(f"missing data cache {str(path)!r}")
    meta = cached_metadata(path)
    if meta is None:
        raise PrunebenchError(f"corrupt data cache {str(path)!r}: not a complete prunebench data cache")
    return load(meta.get("dataset"), path, device=device, val_fraction=val_fraction, val_seed=val_seed)
