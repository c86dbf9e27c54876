"""The pipeline outside the rules (imports no torch): per-cell argument lists, and stale-lock recovery.

`argv_builders` executes the text of `jarg`, `prune_argv`, `isometry_argv` and `train_argv` from
rules/common.smk, so whatever runs a cell without Snakemake (`prunebench verify --reproduce`, the GPU
check in benchmarks/) runs exactly the commands the DAG runs. Needs a checkout (the rules are not part of
an installed wheel).
"""
from __future__ import annotations

import json
import os
import re
from pathlib import Path

from prunebench.pipeline import grid as G
from prunebench.library import methods as M
from prunebench.pipeline import paths as P
from prunebench.library.errors import PrunebenchError

FUNCTIONS = ("jarg", "prune_argv", "isometry_argv", "train_argv")
COMMON_SMK = Path(__file__).resolve().parents[3] / "rules" / "common.smk"


def argv_builders(config: dict, device: str, path=COMMON_SMK) -> dict:
    """The argument builders of rules/common.smk, executed from its text with the names they use."""
    path = Path(path)
    if not path.is_file():
        raise PrunebenchError(f"missing {str(path)!r}: reproducing pipeline steps needs a checkout of the repository")
    text = path.read_text()
    chunks = []
    for name in FUNCTIONS:
        m = re.search(rf"^def {name}\(.*?(?=^\S|\Z)", text, re.M | re.S)
        if m is None:
            raise RuntimeError(f"{path}: function {name!r} not found (the pipeline's rules changed: update "
                               f"prunebench/workflow.py)")
        chunks.append(m.group(0))
    ns = {"json": json, "P": P, "G": G, "M": M, "config": config, "DEVICE": device}
    exec(compile("\n\n".join(chunks), str(path), "exec"), ns)
    return {n: ns[n] for n in FUNCTIONS}


def clear_stale_locks(root=".", pid: int | None = None) -> bool:
    """Make "run the same command again" the whole recovery after a crash (SIGKILL, power loss).

    Snakemake locks the working directory with files under .snakemake/locks and removes them on exit; a
    killed run leaves them, and the next run refuses to start ("Directory cannot be locked") until the user
    runs `snakemake --unlock`. Every pipeline run registers its process id under .snakemake/prunebench-runs/;
    when locks exist but none of the registered runs is alive, they are stale and are removed here (a live
    run keeps its locks, and Snakemake then refuses a second run as usual). Returns whether locks were removed.
    """
    import shutil

    snake = Path(root) / ".snakemake"
    runs = snake / "prunebench-runs"
    runs.mkdir(parents=True, exist_ok=True)
    alive = False
    for f in runs.iterdir():
        if f.name.isdigit() and _alive(int(f.name)):
            alive = True
        else:
            f.unlink(missing_ok=True)
    removed = False
    locks = snake / "locks"
    if not alive and locks.is_dir() and any(locks.iterdir()):
        shutil.rmtree(locks)
        removed = True
    (runs / str(pid or os.getpid())).touch()
    return removed


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
