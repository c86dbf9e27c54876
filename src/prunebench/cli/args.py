"""Helpers shared by the subcommands: argument checks (run before any work), outputs, device set-up.

Every check here runs before a command reads data, builds a model or writes anything, and fails with a
one-line `PrunebenchError` (exit status 2): names, numbers (finite, in range, within `prunebench.library.limits`),
input files (present, a file, readable), output paths (their folders exist or can be created) and that no
output is the same file as an input or as another output.
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import sys
from pathlib import Path

from prunebench.library import limits
from prunebench.library.artifacts import _HOST, write_error
from prunebench.library.errors import PrunebenchError


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def add_device(p, device=True) -> None:
    p.add_argument("--threads", type=int, default=1,
                   help=f"CPU threads, 1 to {limits.MAX_THREADS} (pinned: results depend on it)")
    if device:
        p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto")


def setup(args) -> str:
    """Pin threads, switch on deterministic algorithms, resolve the device."""
    # torch: the report and figure commands import this module and run no model (their steps import no torch)
    from prunebench.library.runtime import resolve_device, setup_determinism

    device = resolve_device(getattr(args, "device", "cpu"))
    setup_determinism(getattr(args, "threads", 1), device)
    return device


def json_arg(text: str, what: str) -> dict:
    if not text:
        return {}
    try:
        val = json.loads(text)
    except json.JSONDecodeError as e:
        raise PrunebenchError(f"{what} is not valid JSON: {e.msg} in {text!r}") from None
    if not isinstance(val, dict):
        raise PrunebenchError(f"{what} must be a JSON object, got {text!r}")
    return val


def check_int(value, what: str, lo: int = 0, hi: int = limits.MAX_SEED):
    """None, or an integer in [lo, hi] (the bounds are named in the error)."""
    return None if value is None else limits.integer(value, what, lo, hi)


def check_seed(value, what: str = "--seed"):
    return check_int(value, what, 0, limits.MAX_SEED)


def check_number(value, what: str, lo=float("-inf"), hi=float("inf"), lo_open=False, hi_open=False):
    """None, or a finite number in the given range (NaN and infinities are rejected up front)."""
    return None if value is None else limits.real(value, what, lo, hi, lo_open, hi_open)


def check_threads(args) -> None:
    check_int(getattr(args, "threads", 1), "--threads", 1, limits.MAX_THREADS)
    dev = getattr(args, "device", "cpu") or "cpu"
    if not (dev in ("cpu", "cuda", "auto") or (dev.startswith("cuda:") and dev[5:].isdigit())):
        raise PrunebenchError(f"invalid --device {dev!r}: choose cpu, cuda, cuda:N or auto")


# ---------------------------------------------------------------------------------------------------
# Files


def check_input(path, what: str) -> Path:
    """An input file that exists, is a file and can be opened (a folder, a dangling link or a symlink loop is
    named as such, not called "missing")."""
    p = Path(path)
    try:
        st = p.stat()
    except FileNotFoundError:
        if p.is_symlink():
            raise PrunebenchError(f"{what} {str(path)!r} is a symbolic link to nothing ({os.readlink(p)!r})") from None
        raise PrunebenchError(f"missing {what} {str(path)!r}") from None
    except OSError as e:  # ELOOP (a symlink loop), ENAMETOOLONG, EACCES on a parent folder, ...
        raise PrunebenchError(f"cannot read {what} {str(path)!r}: {e.strerror or e}") from None
    if os.path.isdir(p):
        raise PrunebenchError(f"{what} {str(path)!r} is a folder, not a file")
    if not os.path.isfile(p) or not os.access(p, os.R_OK):
        raise PrunebenchError(f"cannot read {what} {str(path)!r}: " + (
            "not a regular file" if not os.path.isfile(p) else "permission denied") + f" (mode {oct(st.st_mode)})")
    return p


def _nearest_existing(p: Path) -> Path:
    base = p
    while not os.path.lexists(base) and base.parent != base:
        base = base.parent
    return base


def check_output(path, what: str) -> Path:
    """An output file: not a folder, and in a folder that exists or that the command may create (its nearest
    existing ancestor is a writable folder). Checked before any work; nothing is created here: the folders
    are made when the file is written (`prunebench.library.artifacts.atomic_path`)."""
    p = Path(path)
    if p.is_dir():
        raise PrunebenchError(f"cannot write {what} {str(path)!r}: it is a folder")
    base = _nearest_existing(p.parent)
    if not base.is_dir() or not os.access(base, os.W_OK | os.X_OK):
        raise PrunebenchError(f"cannot write {what} {str(path)!r}: {str(base)!r} is not a writable folder")
    return p


check_creatable = check_output  # the name the report and figure commands use


def check_out_dir(path, what: str) -> Path:
    """An output folder that exists or can be created (its nearest existing ancestor is a writable folder)."""
    p = Path(path)
    if os.path.lexists(p) and not p.is_dir():
        raise PrunebenchError(f"{what} {str(path)!r} is a file")
    base = _nearest_existing(p)
    if not base.is_dir() or not os.access(base, os.W_OK | os.X_OK):
        raise PrunebenchError(f"cannot write {what} {str(path)!r}: {str(base)!r} is not a writable folder")
    return p


def _same_file(a: Path, b: Path) -> bool:
    try:
        if a.exists() and b.exists():
            return os.path.samefile(a, b)  # hard links too
    except OSError:
        pass
    return os.path.realpath(a) == os.path.realpath(b)


def check_distinct(inputs: dict, outputs: dict) -> None:
    """No output is the same file as an input (`prune --init i.st --out i.st` would replace the init by the
    mask) or as another output (`--report` equal to `--out`). `inputs`, `outputs`: {option name: path or
    None}. One line naming both options."""
    ins = [(k, Path(v)) for k, v in inputs.items() if v]
    outs = [(k, Path(v)) for k, v in outputs.items() if v]
    for i, (ko, po) in enumerate(outs):
        for ki, pi in ins:
            if _same_file(po, pi):
                raise PrunebenchError(f"{ko} {str(po)!r} is the same file as the input {ki}: refusing to overwrite "
                                      f"an input; choose another output path")
        for ko2, po2 in outs[:i]:
            if _same_file(po, po2):
                raise PrunebenchError(f"{ko2} and {ko} name the same file {str(po)!r}: choose two different paths")


@contextlib.contextmanager
def outputs_of_failed_run_removed(paths, folders=(), keep_on_interrupt: bool = False):
    """Run the block; if it fails, remove the outputs in `paths` that it created and every folder it created
    for them (or for `folders`), so a failure leaves nothing half-written (files are written atomically, but
    a command that writes three files can fail between them). Files and folders that existed before stay.
    `keep_on_interrupt`: an interrupted run (Ctrl-C) keeps what it wrote (training: its checkpoint, to resume)."""
    paths = [Path(p) for p in paths if p]
    existed = {p for p in paths if os.path.lexists(p)}
    created = set()
    for p in [q.parent for q in paths] + [Path(f) for f in folders]:
        top = None
        while not os.path.lexists(p) and p.parent != p:
            top, p = p, p.parent
        if top is not None:
            created.add(top)
    try:
        yield
    except BaseException as e:
        if keep_on_interrupt and not isinstance(e, Exception):
            raise
        for p in paths:
            if p not in existed:
                with contextlib.suppress(OSError):
                    p.unlink()
        for d in created:
            shutil.rmtree(d, ignore_errors=True)
        raise



@contextlib.contextmanager
def staged_outputs(outputs: dict):
    """Write several outputs all or none: yield {key: a temporary path beside each output (None stays None)};
    when the block succeeds the temporaries are renamed onto the outputs, when it fails they are removed, with
    the folders made for them. So a command that fails between two outputs (the report after the mask: a full
    disk) leaves the earlier files as they were, not a new mask beside an old report."""
    final = {k: Path(v) for k, v in outputs.items() if v}
    tmp = {k: p.with_name(f".{p.name}.{_HOST}-{os.getpid()}.staged.tmp") for k, p in final.items()}
    with outputs_of_failed_run_removed(list(tmp.values())):
        yield {k: tmp.get(k) for k in outputs}
        for k, p in final.items():
            try:
                os.replace(tmp[k], p)
            except OSError as e:
                raise write_error(p, e) from None
