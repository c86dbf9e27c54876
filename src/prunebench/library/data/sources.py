"""Where data come from: the official files and their published checksums, the official download, and the
search of local sources.

Sources, in order of precedence (`resolve_source`):

1. an explicit ``source``: a path, or the word ``"download"``;
2. the folders listed in the environment variable ``PRUNEBENCH_DATA_SOURCES`` (``os.pathsep``-separated),
   each searched for the names in ``SOURCE_NAMES[dataset]`` (official archives before image copies);
3. the official download (``download=True``), into ``<cache_dir>/downloads/``.

Verification: a file that carries an official name (``OFFICIAL_FILES``) must match the published MD5, for
local copies as for downloads. MNIST is special: the official ``.gz`` MD5s are published, and so are the
MD5s of the *decompressed* IDX files. A ``.gz`` whose own MD5 differs (another gzip wrapper, as in the
offline copy this project is tested with) is accepted when its decompressed content matches the published
content MD5; the method used is recorded in the cache metadata (``source.verified``).

The network modules (urllib, http.client) are imported only when a download needs them.
"""
from __future__ import annotations

import gzip
import hashlib
import os
from pathlib import Path

from tqdm import tqdm

from prunebench.library.errors import PrunebenchError
from prunebench.library.artifacts import atomic_path
from prunebench.library.datasets import DATASETS, DatasetSpec, OfficialFile, dataset_spec

from prunebench.library.data.basics import progress_enabled

ENV_SOURCES = "PRUNEBENCH_DATA_SOURCES"


# The official files and the local names of every data set, from the data-set table (tests patch these dicts).
OFFICIAL_FILES: dict[str, tuple] = {name: spec.official_files for name, spec in DATASETS.items()}
SOURCE_NAMES: dict[str, tuple] = {name: spec.source_names for name, spec in DATASETS.items()}

# The four MNIST IDX files (official names without ".gz"), in the order train images, train labels, test
# images, test labels.
MNIST_STEMS = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


def official_file(dataset: str, name: str) -> OfficialFile | None:
    """The official file of `dataset` called `name`, or None."""
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


def _mismatch(shown: str, what: str, got: str, want: str, official_name: str) -> PrunebenchError:
    return PrunebenchError(f"checksum mismatch for {shown!r}: {what} {got}, expected {want} "
                           f"(corrupt, truncated or not the official {official_name})")


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
    verified_content(Path(path).read_bytes(), official, shown, compressed=True)
    return "content-md5"


def verified_content(data: bytes, official: OfficialFile, shown: str, compressed: bool) -> tuple:
    """(decompressed content, how verified) of an MNIST member given as .gz (compressed) or raw IDX bytes."""
    if compressed and _md5_bytes(data) == official.md5:
        return gunzip(data, shown), "md5"
    content = gunzip(data, shown) if compressed else data
    got = _md5_bytes(content)
    if got != official.content_md5:
        raise _mismatch(shown, "decompressed md5" if compressed else "md5", got, official.content_md5,
                        official.name)
    return content, "content-md5"


def gunzip(data: bytes, shown: str) -> bytes:
    """The decompressed bytes of a gzip file; a corrupt one is a one-line `PrunebenchError` naming it."""
    try:
        return gzip.decompress(data)
    except (OSError, EOFError, gzip.BadGzipFile) as e:
        raise PrunebenchError(f"corrupt gzip file {shown!r}: {e}") from None


def _fetch_url(url: str, dest: Path, progress: bool, timeout: float = 60.0) -> None:
    """Copy `url` (http, https or file) into `dest`."""
    import urllib.request  # the network: only for a download (tens of ms for every job that reads data)

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
    # the network: only for a download (tens of ms for every job that reads data)
    import http.client
    import urllib.error

    spec = dataset_spec(dataset)
    progress = progress_enabled(progress)
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
# Local sources
# ---------------------------------------------------------------------------------------------------------
def env_source_dirs() -> list:
    """The folders listed in $PRUNEBENCH_DATA_SOURCES (os.pathsep-separated), in order."""
    return [Path(p).expanduser() for p in os.environ.get(ENV_SOURCES, "").split(os.pathsep) if p.strip()]


def _mnist_files_in(folder: Path) -> bool:
    return all((folder / (s + ".gz")).is_file() or (folder / s).is_file() for s in MNIST_STEMS)


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


def official_entry(spec: DatasetSpec, path: Path) -> Path:
    """A folder holding an official archive of this data set -> that archive; otherwise `path` itself."""
    if path.is_dir():
        for f in OFFICIAL_FILES[spec.name]:
            if spec.name != "mnist" and (path / f.name).is_file():
                return path / f.name
    return path
