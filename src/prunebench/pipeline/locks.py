"""Recovery after a crash: the Snakemake locks of a dead run of this working directory are removed.

Snakemake locks the working directory with files under .snakemake/locks and removes them on exit; a killed
run leaves them, and the next run refuses to start ("Directory cannot be locked") until the user runs
`snakemake --unlock`. The Snakefile registers every pipeline run (`register_run`) and, before it, removes
the locks that no registered run can still hold (`clear_stale_locks`), so that "run the same command
again" is the whole recovery. A run is identified by its host, the host's boot and its process id: only a
run of this host can be found dead; a run of another host (a second login node over a shared file system)
keeps its locks, and releasing them is left to `snakemake --unlock`.
"""
from __future__ import annotations

import atexit
import json
import os
import shutil
import socket
from pathlib import Path

RUNS = "prunebench-runs"  # under .snakemake/: one registration per pipeline run of this working directory


def this_host() -> dict:
    """Where this process runs: the host name and, where the system tells it, the boot (a process id means
    nothing on another host, nor after a reboot)."""
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        boot = ""
    return {"host": socket.gethostname(), "boot": boot}


def _registration(f: Path, me: dict) -> dict | None:
    if f.name.isdigit():  # written by an earlier version: a process id of this host
        return {**me, "pid": int(f.name)}
    try:
        run = json.loads(f.read_text())
    except (OSError, ValueError):
        return None
    ok = isinstance(run, dict) and isinstance(run.get("pid"), int) and isinstance(run.get("host"), str)
    return run if ok else None


def clear_stale_locks(root=".", host: dict | None = None, log=None) -> bool:
    """Remove the locks under `root`/.snakemake that no registered run can still hold (after a crash:
    SIGKILL, power loss). Every pipeline run registers itself (`register_run`: host, boot, process id) under
    .snakemake/prunebench-runs/ and removes its registration when it exits normally. Here:
    - a registered run of this host and boot that is no longer alive is dead for sure: its registration goes;
    - a run registered from another host (a second login node on a shared file system) cannot be checked
      from here: it counts as alive, and its registration stays;
    - the locks are removed only when no registered run is alive. Otherwise they stay and Snakemake refuses
      a second run as usual; where only another host's run holds them, `log` is told how to release them by
      hand (`snakemake --unlock`, once that run has ended).
    Returns whether locks were removed.
    """
    me = host or this_host()
    snake = Path(root) / ".snakemake"
    runs = snake / RUNS
    alive, elsewhere = False, []
    for f in sorted(runs.iterdir()) if runs.is_dir() else ():
        run = _registration(f, me)
        if run is None:
            f.unlink(missing_ok=True)
        elif run["host"] != me["host"]:
            elsewhere.append(f"pid {run['pid']} on {run['host']}")
        elif run.get("boot") == me["boot"] and _alive(run["pid"]):
            alive = True
        else:
            f.unlink(missing_ok=True)
    locks = snake / "locks"
    if alive or not (locks.is_dir() and any(locks.iterdir())):
        return False
    if elsewhere:
        if log is not None:
            log(f"prunebench: {locks} may belong to a run registered from another host ({', '.join(elsewhere)}), "
                f"which cannot be checked from here; if it has ended, run `snakemake --unlock` and remove its "
                f"registration from {runs}")
        return False
    shutil.rmtree(locks)
    return True


def register_run(root=".", pid: int | None = None, host: dict | None = None) -> Path:
    """Register a pipeline run (this process, unless `pid` says otherwise) for `clear_stale_locks`; the
    registration is removed when this process exits normally (a killed run leaves it behind, and the next
    run of this host finds it dead)."""
    me = host or this_host()
    pid = pid or os.getpid()
    runs = Path(root).resolve() / ".snakemake" / RUNS
    runs.mkdir(parents=True, exist_ok=True)
    mine = runs / f"{me['host']}.{pid}.json"
    mine.write_text(json.dumps({**me, "pid": pid}, sort_keys=True))
    atexit.register(mine.unlink, missing_ok=True)
    return mine


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    cmdline = Path(f"/proc/{pid}/cmdline")
    try:  # a recycled process id: alive only if it is still a snakemake process
        return not cmdline.exists() or b"snakemake" in cmdline.read_bytes()
    except OSError:
        return True
