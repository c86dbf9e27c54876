"""File helpers: atomic writes (temp name + rename), canonical JSON, safetensors with metadata."""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from pathlib import Path

from prunebench.errors import PrunebenchError

_UMASK = os.umask(0o022)
os.umask(_UMASK)


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary path beside `path`; rename it onto `path` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600 files; results are shared (cluster, DVC)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def canonical_json(obj) -> str:
    """Sorted keys, fixed separators, no NaN surprises: the same object always gives the same text."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=True)


def write_json(path, obj) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, sort_keys=True, indent=2, allow_nan=True) + "\n")


def read_json(path):
    path = Path(path)
    if not path.exists():
        raise PrunebenchError(f"missing file {str(path)!r}")
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise PrunebenchError(f"corrupt JSON file {str(path)!r}: {e}") from None


def sha256_file(path, chunk=1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def save_tensors(path, tensors: dict, metadata: dict) -> None:
    """Safetensors file with one JSON metadata entry `prunebench`; written atomically."""
    from safetensors.torch import save_file

    tensors = {k: v.detach().contiguous().cpu() for k, v in tensors.items()}
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata={"prunebench": canonical_json(metadata)})


def read_metadata(path, what="file") -> dict:
    """The prunebench metadata of a safetensors file, reading only its header (a cheap check before work)."""
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise PrunebenchError(f"missing {what} {str(path)!r}")
    try:
        with safe_open(str(path), framework="pt") as f:
            return json.loads((f.metadata() or {}).get("prunebench", "{}"))
    except Exception as e:  # safetensors raises several types for truncated/corrupt headers
        raise PrunebenchError(f"corrupt {what} {str(path)!r}: {str(e).splitlines()[0] if str(e) else type(e).__name__}") from None


def load_tensors(path, what="file"):
    """Return (tensors, metadata) from a safetensors file written by `save_tensors`."""
    from safetensors import safe_open

    path = Path(path)
    if not path.exists():
        raise PrunebenchError(f"missing {what} {str(path)!r}")
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = json.loads((f.metadata() or {}).get("prunebench", "{}"))
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as e:  # safetensors raises several types for truncated/corrupt headers
        raise PrunebenchError(f"corrupt {what} {str(path)!r}: {str(e).splitlines()[0] if str(e) else type(e).__name__}") from None
    return tensors, meta
