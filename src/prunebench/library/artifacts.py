"""File helpers: atomic writes (temp name + rename), canonical JSON, checksummed safetensors and tables.

Every artifact the project writes carries a content checksum that every read verifies, so a damaged or
edited file (one flipped bit) is a one-line error naming the file, never silently different data:
- safetensors files (masks, inits, checkpoints, data caches, AI weights): the field `_sha256` of the
  `prunebench` metadata entry hashes the rest of that metadata (canonical JSON) and every tensor's name,
  dtype, shape and bytes (one entry: safetensors writes several metadata entries in no fixed order);
- results tables (CSV): a sidecar `<name>.sha256` in `sha256sum` format (`sha256sum -c` checks it too).
"""
from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import re
import socket
import tempfile
from pathlib import Path

from safetensors import safe_open

from prunebench.library.errors import PrunebenchError

_UMASK = os.umask(0o022)
os.umask(_UMASK)


# OSErrors of a write that mean "this file cannot be written here" (as opposed to an error of the data).
WRITE_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EFBIG, errno.EACCES, errno.EPERM)
_HOST = re.sub(r"[^A-Za-z0-9_-]", "_", socket.gethostname() or "host")


def write_error(path, e: BaseException, what: str = "file") -> PrunebenchError:
    """A one-line error for a failure to write `path` (a full disk, a read-only folder, a quota)."""
    if isinstance(e, OSError) and e.errno:
        why = os.strerror(e.errno) + ("; free some space and rerun" if e.errno in (errno.ENOSPC, errno.EDQUOT) else "")
    else:
        why = (str(e).splitlines() or [type(e).__name__])[0]
    return PrunebenchError(f"cannot write {what} {str(path)!r}: {why}")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, ValueError):
        return True
    return True


def remove_stale_temporaries(path) -> int:
    """Remove the temporary files that writers of `path` on this host left when they were killed (SIGKILL,
    power loss): `.<name>.<host>-<pid>.*.tmp` whose process is gone. Files of a live process, or of another
    host (a shared file system), stay. Returns how many were removed."""
    path = Path(path)
    prefix = f".{path.name}.{_HOST}-"
    n = 0
    try:
        entries = list(os.scandir(path.parent))
    except OSError:
        return 0
    for entry in entries:
        name = entry.name
        if not (name.startswith(prefix) and name.endswith(".tmp")):
            continue
        pid = name[len(prefix):].split(".", 1)[0]
        if pid.isdigit() and int(pid) != os.getpid() and not _alive(int(pid)):
            with contextlib.suppress(OSError):
                os.unlink(entry.path)
                n += 1
    return n


@contextlib.contextmanager
def atomic_path(path, what: str = "file"):
    """Yield a temporary path beside `path`; rename it onto `path` only if the block succeeds.

    The folders `path` needs are created. The temporary name carries this host and process id, so the
    temporaries of a killed writer are recognised and removed by the next write of the same file. A write
    that fails for lack of space or permission is a one-line `PrunebenchError` naming `path`, and leaves no
    temporary file."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_temporaries(path)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{_HOST}-{os.getpid()}.", suffix=".tmp", dir=path.parent)
        os.close(fd)
    except OSError as e:
        raise write_error(path, e, what) from None
    try:
        try:
            yield Path(tmp)
            os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600 files; results are shared (cluster, DVC)
            os.replace(tmp, path)
        except OSError as e:
            if e.errno in WRITE_ERRNOS or e.filename in (tmp, str(path)):
                raise write_error(path, e, what) from None
            raise
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def canonical_json(obj) -> str:
    """Sorted keys, fixed separators, no NaN surprises: the same object always gives the same text."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=True)


def write_json(path, obj, what: str = "file") -> None:
    with atomic_path(path, what) as tmp:
        tmp.write_text(json.dumps(obj, sort_keys=True, indent=2, allow_nan=True) + "\n")


def check_readable(path, what: str = "file") -> Path:
    """`path` if it is a readable file; else a one-line error that says what it is instead: missing, a
    folder, a dangling link, a symlink loop, unreadable."""
    path = Path(path)
    try:
        path.stat()
    except FileNotFoundError:
        if path.is_symlink():
            raise PrunebenchError(f"{what} {str(path)!r} is a symbolic link to nothing") from None
        raise PrunebenchError(f"missing {what} {str(path)!r}") from None
    except OSError as e:  # ELOOP (a symlink loop), ENAMETOOLONG, EACCES on a folder above it
        raise PrunebenchError(f"cannot read {what} {str(path)!r}: {e.strerror or e}") from None
    if path.is_dir():
        raise PrunebenchError(f"{what} {str(path)!r} is a folder, not a file")
    if not os.access(path, os.R_OK):
        raise PrunebenchError(f"cannot read {what} {str(path)!r}: permission denied")
    return path


def read_json(path, what: str = "file"):
    path = check_readable(path, what)
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise PrunebenchError(f"corrupt JSON file {str(path)!r}: {e}") from None
    except OSError as e:
        raise PrunebenchError(f"cannot read {what} {str(path)!r}: {e.strerror or e}") from None


def sha256_file(path, chunk=1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


CHECKSUM_KEY = "_sha256"


def hash_tensors(h, tensors, names) -> None:
    """Feed `h` each of `names` in order: the line "<name>:<dtype>:<shape>\\n", then the tensor's bytes (C
    order, the machine's byte order: little-endian on every platform torch supports for the pipeline)."""
    import torch  # torch: the Snakefile, the command line and the report wing import this module without it

    for name in names:
        t = tensors[name].detach().cpu().contiguous()
        h.update(f"{name}:{str(t.dtype).replace('torch.', '')}:{tuple(t.shape)}\n".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())


def tensors_sha256(tensors: dict, metadata_text: str = "") -> str:
    """SHA-256 of a metadata text and then every tensor by name (`hash_tensors`)."""
    h = hashlib.sha256(metadata_text.encode() + b"\n")
    hash_tensors(h, tensors, sorted(tensors))
    return h.hexdigest()


def save_tensors(path, tensors: dict, metadata: dict, what: str = "file") -> None:
    """Safetensors file with the JSON metadata entry `prunebench` and its checksum; written atomically."""
    from safetensors.torch import save_file  # imports torch (see hash_tensors)

    tensors = {k: v.detach().contiguous().cpu() for k, v in tensors.items()}
    if CHECKSUM_KEY in metadata:
        raise ValueError(f"metadata key {CHECKSUM_KEY!r} is reserved for the checksum")
    header = {**metadata, CHECKSUM_KEY: tensors_sha256(tensors, canonical_json(metadata))}
    with atomic_path(path, what) as tmp:
        try:
            save_file(tensors, str(tmp), metadata={"prunebench": canonical_json(header)})
        except Exception as e:  # safetensors reports a failed write (full disk) as its own error type
            raise write_error(path, e, what) from None


def read_metadata(path, what="file") -> dict:
    """The prunebench metadata of a safetensors file, reading only its header (a cheap check before work)."""
    path = check_readable(path, what)
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = json.loads((f.metadata() or {}).get("prunebench", "{}"))
        if not isinstance(meta, dict):
            raise ValueError("its prunebench metadata is not a mapping")
        meta.pop(CHECKSUM_KEY, None)  # verified when the tensors are loaded
        return meta
    except Exception as e:  # safetensors raises several types for truncated/corrupt headers
        raise PrunebenchError(f"corrupt {what} {str(path)!r}: {str(e).splitlines()[0] if str(e) else type(e).__name__}") from None


def recorded_checksum(path, what="file") -> str:
    """The content checksum recorded in a safetensors file written by `save_tensors` (its header only; the
    tensors are checked against it by `load_tensors`): the file's identity in keys and manifests."""
    path = check_readable(path, what)
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = json.loads((f.metadata() or {}).get("prunebench", "{}"))
    except Exception as e:  # safetensors raises several types for truncated/corrupt headers
        raise PrunebenchError(f"corrupt {what} {str(path)!r}: {str(e).splitlines()[0] if str(e) else type(e).__name__}") from None
    recorded = meta.get(CHECKSUM_KEY) if isinstance(meta, dict) else None
    if not isinstance(recorded, str):
        raise PrunebenchError(f"{what} {str(path)!r} has no content checksum (not written by this version of "
                              f"prunebench); delete it and rerun the step that makes it")
    return recorded


def load_tensors(path, what="file"):
    """Return (tensors, metadata) from a safetensors file written by `save_tensors`."""
    path = check_readable(path, what)
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = json.loads((f.metadata() or {}).get("prunebench", "{}"))
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as e:  # safetensors raises several types for truncated/corrupt headers
        raise PrunebenchError(f"corrupt {what} {str(path)!r}: {str(e).splitlines()[0] if str(e) else type(e).__name__}") from None
    recorded = meta.pop(CHECKSUM_KEY, None) if isinstance(meta, dict) else None
    if recorded is None:
        raise PrunebenchError(f"{what} {str(path)!r} has no content checksum (not written by this version of "
                              f"prunebench); delete it and rerun the step that makes it")
    if tensors_sha256(tensors, canonical_json(meta)) != recorded:
        raise PrunebenchError(f"checksum mismatch in {what} {str(path)!r}: it was changed or damaged after it was "
                              f"written; delete it and rerun the step that makes it")
    return tensors, meta


def checksum_path(path) -> Path:
    """The `sha256sum`-format sidecar of a results table: `<name>.sha256`."""
    path = Path(path)
    return path.with_name(path.name + ".sha256")


def write_checked_text(path, text: str) -> None:
    """Write `text` to `path` and its checksum sidecar (both atomically; the sidecar last)."""
    path = Path(path)
    data = text.encode()
    with atomic_path(path, "results table") as tmp:
        tmp.write_bytes(data)
    with atomic_path(checksum_path(path), "checksum file") as tmp:
        tmp.write_text(f"{hashlib.sha256(data).hexdigest()}  {path.name}\n")


def verify_checked_file(path, what="results table") -> None:
    """Raise a one-line error unless `path` matches its `<name>.sha256` sidecar."""
    path, side = check_readable(path, what), checksum_path(path)
    if not side.is_file():
        raise PrunebenchError(f"{what} {str(path)!r} has no checksum file {side.name!r}; rerun the step that makes it")
    recorded = side.read_text(errors="replace").split()
    if not recorded or recorded[0] != sha256_file(path):
        raise PrunebenchError(f"checksum mismatch in {what} {str(path)!r}: it was changed or damaged after it was "
                              f"written; delete it and rerun the step that makes it")
