"""`prunebench` command line: one module per subcommand (prunebench/cli/<command>.py).

COMMANDS (below) is the one place a command is listed, with its one-line help; each command module defines
`add_arguments(parser)` and `run(args)` (and may define `parse(argv)`, for arguments it passes on). The
dispatcher imports only the module of the command being run (by name), so `prunebench --help` imports no
command module, a command pays only for its own imports, and a pipeline step runs only its own command's code
(the modules each step declares in prunebench.pipeline.provenance): editing the `report` command reruns no
training.

Every subcommand validates all its inputs before it reads data or builds a model, prints a one-line error
and exits 2 on bad input, and writes its outputs atomically, so a failure leaves no partial file.
"""
from __future__ import annotations

import argparse
import concurrent.futures as cf
import importlib
import multiprocessing as mp
import os
import sys
import threading
import time
import traceback

from prunebench.library.errors import PrunebenchError
from prunebench.library.extras import missing_extra

# command -> its one-line help (the top-level help and the description of the command's own --help)
COMMANDS = {
    "data": "download or read a data set and prepare its uint8 cache",
    "init": "build a model and save a seeded initialization (safetensors)",
    "prune": "compute a pruning mask at initialization",
    "isometry": "enforce approximate isometry on the kept weights (SPP, data-free)",
    "train": "train a (masked) model; checkpoints every epoch and resumes",
    "grid": "validate a preset and count (or list) its cells",
    "aggregate": "collect every run of a preset into tidy CSV tables",
    "figure": "draw one paper figure from results/<preset>/summary.csv",
    "report": "write the replication report (claims with verdicts), from results or from paper/data/<preset>",
    "verify": ("check a preset's results: checksums, each artifact's identity, tables, provenance keys, and "
               "(--reproduce K) K cells rerun byte for byte"),
    "bench": "run benchmarks/run.py (speed and memory; see benchmarks/README.md)",
    "methods": "list the pruning methods",
    "plan": "estimate a preset's cost: cells, device-hours per rule, wall time, SLURM resources",
}


def command_module(cmd: str):
    """The module of one command, imported on first use (see the module docstring)."""
    return importlib.import_module(f"prunebench.cli.{cmd.replace('-', '_')}")


def command_parser(cmd: str) -> argparse.ArgumentParser:
    mod = command_module(cmd)
    p = argparse.ArgumentParser(prog=f"prunebench {cmd}", description=COMMANDS[cmd],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    mod.add_arguments(p)
    return p


def _join_option_values(parser: argparse.ArgumentParser, argv) -> list:
    """`--opt -inf` -> `--opt=-inf` for options that take one value: argparse takes any word starting with '-'
    that is not a plain negative number ('-1', '-0.5') for an option, and would say "expected one argument"
    for `--target-sparsity -inf` or `--lr -1e-3` instead of naming the bad value."""
    out, argv, i = [], list(argv), 0
    while i < len(argv):
        a = argv[i]
        if a == "--":
            return out + argv[i:]
        act = parser._option_string_actions.get(a)
        nxt = argv[i + 1] if i + 1 < len(argv) else None
        if (act is not None and act.nargs is None and act.option_strings and nxt is not None and nxt.startswith("-")
                and nxt not in parser._option_string_actions and not nxt.startswith("--")):
            out.append(f"{a}={nxt}")
            i += 2
            continue
        out.append(a)
        i += 1
    return out


def parse_args(cmd: str, argv):
    """Parse `prunebench <cmd>`'s arguments; a usage error (unknown option, missing or ill-typed value) is one
    line, "prunebench <cmd>: error: ...", and exit status 2, like every other bad input (no usage block)."""
    p = command_parser(cmd)

    def error(message):
        p.exit(2, f"{p.prog}: error: {message} (see {p.prog} --help)\n")

    p.error = error
    return p.parse_args(_join_option_values(p, argv))


def _top_help() -> str:
    lines = ["usage: prunebench COMMAND [options]   (prunebench COMMAND --help for its options)", "", "commands:"]
    for c, text in COMMANDS.items():
        lines.append(f"  {c:<10} {text}")
    return "\n".join(lines)


def _missing_extra(cmd: str, e: ModuleNotFoundError) -> int:
    """An optional dependency of a lean install missing (prunebench.library.extras): one line naming the extra
    to install, exit status 2; any other missing module is a genuine error and is raised again."""
    if missing_extra(e.name) is None:
        raise e
    print(f"prunebench {cmd}: error: {missing_extra(e.name)}", file=sys.stderr)
    return 2


def main(argv=None) -> int:
    os.environ.setdefault("DVC_NO_ANALYTICS", "1")
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(_top_help())
        return 0 if argv else 2
    cmd = argv[0]
    if cmd not in COMMANDS:
        print(f"prunebench: error: unknown command {cmd!r}; choose one of: {', '.join(COMMANDS)}", file=sys.stderr)
        return 2
    try:
        mod = command_module(cmd)  # its imports: a lean install may lack one (`prunebench report` without pandas)
    except ModuleNotFoundError as e:
        return _missing_extra(cmd, e)
    if hasattr(mod, "parse"):  # a command with its own parsing (bench passes its arguments on)
        args = mod.parse(argv[1:])
    else:
        args = parse_args(cmd, argv[1:])  # one-line usage errors, exit 2
    args.cmd = cmd
    try:
        status = mod.run(args)  # None: success; an int: the command's own status (verify: 1 on a mismatch)
    except PrunebenchError as e:
        print(f"prunebench {cmd}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"prunebench {cmd}: interrupted", file=sys.stderr)
        return 130
    except ModuleNotFoundError as e:  # an optional dependency of a lean install (prunebench.library.extras)
        return _missing_extra(cmd, e)
    return status if isinstance(status, int) else 0


# ---------------------------------------------------------------------------------------------------
# In-process runs (the Snakemake rules): torch is imported once per pipeline instead of once per job.

class _ThreadStream:
    """sys.stdout / sys.stderr stand-in that writes to the current thread's log file when one is set."""

    def __init__(self, default, local):
        self._default, self._local = default, local

    def _target(self):
        return getattr(self._local, "stream", None) or self._default

    def write(self, text):
        return self._target().write(text)

    def flush(self):
        return self._target().flush()

    def isatty(self):
        return getattr(self._local, "stream", None) is None and self._default.isatty()

    def __getattr__(self, name):
        return getattr(self._target(), name)


_LOCAL = None


def _install_thread_streams():
    global _LOCAL
    if _LOCAL is None:
        _LOCAL = threading.local()
        sys.stdout = _ThreadStream(sys.stdout, _LOCAL)
        sys.stderr = _ThreadStream(sys.stderr, _LOCAL)


def run_logged(argv, log_path) -> int:
    """Run one command in this process with its stdout and stderr (tracebacks included) written to `log_path`,
    and return its exit status. Safe to call from several threads at once (each has its own log), which is
    how the pipeline's rules run their steps: the same code path as `python -m prunebench ...`, without a
    new interpreter and torch import per job."""
    _install_thread_streams()
    with open(log_path, "w") as f:
        _LOCAL.stream = f
        try:
            return main([str(a) for a in argv])
        except SystemExit as e:  # argparse errors
            return e.code if isinstance(e.code, int) else 2
        except Exception:
            traceback.print_exc()
            return 1
        finally:
            f.flush()
            _LOCAL.stream = None


# A pool of worker processes, each importing torch once and then running job after job: the pipeline's jobs
# get a process each (no shared interpreter lock between concurrent jobs, and global torch settings are
# per process, as with `python -m prunebench`), without an interpreter start and a torch import per job.

_POOL = None
_POOL_LOCK = None


def _worker_init(parent: int) -> None:
    def watch():  # a worker never outlives the pipeline that started it (e.g. a SIGKILLed Snakemake)
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=watch, daemon=True).start()
    # Imported here, in the worker, not at the top: the dispatcher, the Snakefile and the report import this
    # package without torch; a worker imports it once, before its first job (the reason the pool exists).
    import torch  # noqa: F401


def run_pooled(argv, log_path, workers: int) -> int:
    """`run_logged(argv, log_path)` in one of `workers` long-lived worker processes; returns its status."""
    global _POOL, _POOL_LOCK
    if _POOL_LOCK is None:
        _POOL_LOCK = threading.Lock()
    with _POOL_LOCK:
        if _POOL is None:
            _POOL = cf.ProcessPoolExecutor(max_workers=max(1, int(workers)), mp_context=mp.get_context("spawn"),
                                           initializer=_worker_init, initargs=(os.getpid(),))
        pool = _POOL
    try:
        return pool.submit(run_logged, [str(a) for a in argv], str(log_path)).result()
    except cf.process.BrokenProcessPool:
        with _POOL_LOCK:
            if _POOL is pool:
                _POOL = None
        raise
