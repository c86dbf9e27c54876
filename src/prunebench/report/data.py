"""Per-seed data in git: `paper/data/<preset>/`, from which the replication report and its PNGs regenerate
byte-identically without any results/ folder or DVC remote.

    paper/data/<preset>/summary.csv, layers.csv, history.csv, timing.csv   the tables, each with its .sha256
    paper/data/<preset>/config.yaml      the preset as the pipeline resolved it
    paper/data/<preset>/run.json         the commits that made the cells, the command, the run's wall time
    paper/data/<preset>/SHA256SUMS       `sha256sum -c` list of every file above

    export(results_dir, data_dir)        copy a preset's tables into data_dir (the report command does it)
    verify(data_dir)                     every file of SHA256SUMS present and unchanged, else a one-line error
    record_run(data_dir, **fields)       add what only the person who ran it knows (wall time, alone or not)
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

from prunebench.library.artifacts import atomic_path, checksum_path, sha256_file
from prunebench.library.errors import PrunebenchError
from prunebench.report.tables import CONFIG_FILE

TABLES = ("summary.csv", "layers.csv", "history.csv", "timing.csv")
RUN_FILE = "run.json"
SUMS = "SHA256SUMS"
REQUIRED = ("summary.csv", CONFIG_FILE)
RUN_FIELDS = ("wall_time_s", "machine", "alone", "recorded_by")


def _files(folder: Path) -> list:
    names = [n for t in TABLES for n in (t, checksum_path(Path(t)).name)] + [CONFIG_FILE, RUN_FILE]
    return [n for n in names if (folder / n).is_file()]


def _write_sums(data_dir: Path) -> None:
    lines = [f"{sha256_file(data_dir / n)}  {n}\n" for n in sorted(_files(data_dir))]
    with atomic_path(data_dir / SUMS) as tmp:
        tmp.write_text("".join(lines))


def export(results_dir, data_dir) -> list:
    """Copy the tables, their checksums, config.yaml and run.json of `results_dir` into `data_dir`; keep the
    wall-time fields a person recorded in an earlier copy of run.json. Returns the files written."""
    src, dst = Path(results_dir), Path(data_dir)
    for n in REQUIRED:
        if not (src / n).is_file():
            raise PrunebenchError(f"cannot export {str(src)!r}: {n} missing (run the aggregate step first)")
    kept = read_run(dst) if (dst / RUN_FILE).is_file() else {}
    dst.mkdir(parents=True, exist_ok=True)
    for stale in set(_files(dst)) - set(_files(src)):
        (dst / stale).unlink()
    written = []
    for n in _files(src):
        with atomic_path(dst / n) as tmp:
            shutil.copyfile(src / n, tmp)
        written.append(dst / n)
    run = read_run(dst) if (dst / RUN_FILE).is_file() else {}
    same_cells = run.get("commits") == kept.get("commits") and run.get("cells") == kept.get("cells")
    extra = {k: kept[k] for k in RUN_FIELDS if k in kept and same_cells}
    if extra:
        _write_run(dst, {**run, **extra})
    _write_sums(dst)
    return written + [dst / SUMS]


def verify(data_dir) -> Path:
    """Check `data_dir` against its SHA256SUMS (one-line error naming the first bad file)."""
    d = Path(data_dir)
    if not d.is_dir():
        raise PrunebenchError(f"missing data folder {str(d)!r}")
    sums = d / SUMS
    if not sums.is_file():
        raise PrunebenchError(f"data folder {str(d)!r} has no {SUMS}: not an export of `prunebench report`")
    for line in sums.read_text().splitlines():
        digest, _, name = line.partition("  ")
        f = d / name
        if not f.is_file():
            raise PrunebenchError(f"data folder {str(d)!r}: {name} listed in {SUMS} is missing")
        if sha256_file(f) != digest:
            raise PrunebenchError(f"checksum mismatch in {str(f)!r}: changed after it was exported")
    for n in REQUIRED:
        if not (d / n).is_file():
            raise PrunebenchError(f"data folder {str(d)!r} lacks {n}")
    return d


def read_run(data_dir) -> dict:
    p = Path(data_dir) / RUN_FILE
    if not p.is_file():
        return {}
    try:
        return json.loads(p.read_text())
    except json.JSONDecodeError as e:
        raise PrunebenchError(f"corrupt {str(p)!r}: {e}") from None


def _write_run(data_dir: Path, run: dict) -> None:
    with atomic_path(Path(data_dir) / RUN_FILE) as tmp:
        tmp.write_text(json.dumps(run, sort_keys=True, indent=2, allow_nan=True) + "\n")


def record_run(data_dir, **fields) -> dict:
    """Add the run's measured wall time (and on what machine, whether alone) to run.json; re-checksummed."""
    d = verify(data_dir)
    bad = [k for k in fields if k not in RUN_FIELDS]
    if bad:
        raise PrunebenchError(f"unknown run field {bad[0]!r}; known: {', '.join(RUN_FIELDS)}")
    run = {**read_run(d), **{k: v for k, v in fields.items() if v is not None}}
    _write_run(d, run)
    _write_sums(d)
    return run
