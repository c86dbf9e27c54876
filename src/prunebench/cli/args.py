"""Helpers shared by the subcommands: argument checks (run before any work), device set-up, logging."""
from __future__ import annotations

import json
import math
import sys
from pathlib import Path

from prunebench.library.errors import PrunebenchError


def parse_args(cmd: str, argv):
    """Parse `prunebench <cmd>`'s arguments; a usage error (unknown option, missing or ill-typed value) is one
    line, "prunebench <cmd>: error: ...", and exit status 2, like every other bad input (no usage block)."""
    from prunebench.cli import command_parser

    p = command_parser(cmd)

    def error(message):
        p.exit(2, f"{p.prog}: error: {message} (see {p.prog} --help)\n")

    p.error = error
    return p.parse_args(argv)


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def add_device(p, device=True) -> None:
    p.add_argument("--threads", type=int, default=1, help="CPU threads (pinned: results depend on it)")
    if device:
        p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto")


def setup(args) -> str:
    """Pin threads, switch on deterministic algorithms, resolve the device."""
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


def check_int(value, what: str, lo: int = 0):
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < lo:
        raise PrunebenchError(f"invalid {what} {value!r}: must be an integer >= {lo}")
    return value


def check_number(value, what: str, lo=-math.inf, hi=math.inf, lo_open=False, hi_open=False):
    """A finite number in the given range (NaN and infinities are rejected up front)."""
    if value is None:
        return None
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if ok:
        ok = (value > lo if lo_open else value >= lo) and (value < hi if hi_open else value <= hi)
    if not ok:
        rng = f"{'(' if lo_open else '['}{lo}, {hi}{')' if hi_open else ']'}"
        raise PrunebenchError(f"invalid {what} {value!r}: must be a finite number in {rng}")
    return value


def check_threads(args) -> None:
    check_int(getattr(args, "threads", 1), "--threads", 1)
    dev = getattr(args, "device", "cpu") or "cpu"
    if not (dev in ("cpu", "cuda", "auto") or (dev.startswith("cuda:") and dev[5:].isdigit())):
        raise PrunebenchError(f"invalid --device {dev!r}: choose cpu, cuda, cuda:N or auto")


def check_input(path, what: str) -> Path:
    p = Path(path)
    if not p.is_file():
        raise PrunebenchError(f"missing {what} {str(path)!r}")
    return p


def check_output(path, what: str) -> Path:
    """An output file in an existing, writable folder (checked before any work; nothing is written here)."""
    import os

    p = Path(path)
    if p.is_dir():
        raise PrunebenchError(f"cannot write {what} {str(path)!r}: it is a folder")
    if not p.parent.is_dir():
        raise PrunebenchError(f"cannot write {what} {str(path)!r}: folder {str(p.parent)!r} does not exist")
    if not os.access(p.parent, os.W_OK):
        raise PrunebenchError(f"cannot write {what} {str(path)!r}: folder {str(p.parent)!r} is not writable")
    return p


def check_creatable(path, what: str) -> Path:
    """An output path whose missing folders the command may create: its nearest existing ancestor must be a
    writable folder (checked before any work; nothing is created here)."""
    import os

    p = Path(path)
    if p.is_dir():
        raise PrunebenchError(f"cannot write {what} {str(path)!r}: it is a folder")
    base = p.parent
    while not base.exists() and base.parent != base:
        base = base.parent
    if not base.is_dir() or not os.access(base, os.W_OK):
        raise PrunebenchError(f"cannot write {what} {str(path)!r}: {str(base)!r} is not a writable folder")
    return p
