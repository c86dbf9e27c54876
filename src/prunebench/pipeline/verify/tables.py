"""Verify, tables: every results table re-aggregated from the cells' files with this checkout's preset.

The aggregation runs in a temporary folder (the cells linked in) with the preset of the checkout being
verified, not with the `results/<preset>/config.yaml` the run saved (an arm removed from that file and the
tables aggregated again would otherwise look consistent). Every table must come out byte-identical:
summary.csv, layers.csv, history.csv, timing.csv and metrics.json. A per-cell file edited after aggregation
(a changed number in a metrics.json) and a table edited with its checksum sidecar regenerated (a timing.csv
row removed) both show up here, the cell named. The saved config.yaml must also be this preset.
"""
from __future__ import annotations

import csv
import tempfile
from pathlib import Path

import yaml

from prunebench.library.artifacts import canonical_json
from prunebench.library.errors import PrunebenchError
from prunebench.pipeline import paths
from prunebench.pipeline.aggregate import aggregate
from prunebench.pipeline.verify.findings import Findings

COMPARED = paths.TABLES_CSV + ("metrics.json",)


def check_tables(cfg: dict, cfg_path: Path, root: Path, found: Findings, log=print) -> None:
    preset = cfg["preset"]
    res = root / paths.preset_dir(preset)
    if not (res / "summary.csv").is_file():
        return  # missing: already a problem of the integrity check
    check_saved_config(cfg, res / paths.RESOLVED_CONFIG, root, found)
    with tempfile.TemporaryDirectory(prefix="prunebench-verify-") as tmp:
        mirror = Path(tmp) / paths.RESULTS / preset
        mirror.mkdir(parents=True)
        for entry in res.iterdir():
            if entry.name not in paths.TABLE_FILES + (paths.RESOLVED_CONFIG, paths.RUN_RECORD, "logs"):
                (mirror / entry.name).symlink_to(entry.resolve())
        try:
            aggregate(Path(cfg_path).resolve(), Path(tmp) / paths.RESULTS)
        except PrunebenchError as e:
            found.problem(paths.preset_dir(preset), f"re-aggregation with this checkout's preset failed: {e}")
            return
        for name in COMPARED:
            a, b = res / name, mirror / name
            if not a.is_file():
                continue  # missing: already a problem
            if a.read_bytes() != b.read_bytes():
                found.problem(a.relative_to(root), table_difference(a, b))


def check_saved_config(cfg: dict, saved: Path, root: Path, found: Findings) -> None:
    """The preset the run saved next to its tables must be this checkout's (same content)."""
    if not saved.is_file():
        return
    try:
        doc = yaml.safe_load(saved.read_text())
    except (yaml.YAMLError, UnicodeDecodeError, OSError) as e:
        found.problem(saved.relative_to(root), f"unreadable: {str(e).splitlines()[0]}")
        return
    if not isinstance(doc, dict) or canonical_json(doc) == canonical_json(cfg):
        return
    diff = sorted(k for k in set(doc) | set(cfg) if canonical_json(doc.get(k)) != canonical_json(cfg.get(k)))
    arms = sorted(set(cfg.get("arms", {})) - set(doc.get("arms") or {}))
    more = f" (arms missing there: {', '.join(arms)})" if arms else ""
    found.problem(saved.relative_to(root), f"is not this checkout's preset: {', '.join(diff)} differ{more}")


def table_difference(recorded: Path, fresh: Path) -> str:
    """Which cells' rows differ between a table and its re-aggregation from the cells' files."""
    if recorded.suffix != ".csv":
        return "disagrees with the cells' files, re-aggregated"

    def rows(p):
        with open(p, newline="") as f:
            return list(csv.DictReader(f))

    def where(r):
        return f"{r.get('dataset')}/{r.get('model')}/{r.get('init')}/{r.get('arm')}/s{r.get('sparsity')}/seed{r.get('seed')}"

    a, b = rows(recorded), rows(fresh)
    if len(a) != len(b):
        ka, kb = {where(r) for r in a}, {where(r) for r in b}
        gone, extra = sorted(kb - ka), sorted(ka - kb)
        named = (f"; not in the table: {', '.join(gone[:3])}" if gone else "") + \
                (f"; not in the cells: {', '.join(extra[:3])}" if extra else "")
        return f"{len(a)} rows, the cells' files give {len(b)}{named}"
    cells = []
    for ra, rb in zip(a, b):
        if ra != rb:
            cols = [k for k in ra if ra.get(k) != rb.get(k)]
            cells.append(f"{where(ra)} ({', '.join(cols[:3])}: table {ra.get(cols[0])!r}, files {rb.get(cols[0])!r})")
    return "disagrees with the cells' files, re-aggregated: " + "; ".join(cells[:3]) + (
        f"; ... {len(cells) - 3} more" if len(cells) > 3 else "")
