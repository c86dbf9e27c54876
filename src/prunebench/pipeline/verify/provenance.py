"""Verify, provenance: each output's recorded provenance key against the one this checkout computes.

Where Snakemake's metadata is present (`.snakemake/metadata`, written by the run that made the outputs; not
versioned by DVC), a difference means Snakemake would rerun that job, because the preset changed (the key
computed from the resolved config the run saved matches the recorded one) or the code a job runs changed
(it does not). Also the list of every output a preset declares (`expected_outputs`), with its key function.
"""
from __future__ import annotations

import base64
from pathlib import Path

from prunebench.library import artifacts
from prunebench.library import methods
from prunebench.library.errors import PrunebenchError
from prunebench.pipeline import grid
from prunebench.pipeline import paths
from prunebench.pipeline import provenance
from prunebench.pipeline.verify.findings import Findings

# Outputs that may legitimately be absent (written only by some cells or kept only while a run resumes).
OPTIONAL = set(paths.TRAIN_EXTRA)


def per_config(fn):
    """`fn(cfg)` computed once per config object (a preset has ~10 outputs per cell sharing a few keys, and
    each key hashes its upstream keys: computing it once per output would take a minute on a large preset)."""
    seen = {}

    def once(cfg):
        hit = seen.get(id(cfg))
        if hit is None or hit[0] is not cfg:
            hit = seen[id(cfg)] = (cfg, fn(cfg))
        return hit[1]

    return once


@per_config
def cells_by_hash(cfg: dict) -> dict:
    return {grid.cell_hash(c): c for c in grid.expand(cfg)}


def _key(fn, cfg, cell):
    return None if cell is None else fn(cfg, cell)


def expected_outputs(cfg: dict) -> dict:
    """Every output path of the preset -> a function computing its provenance key for a config. A cell's key
    under another config is that of the cell with the same config hash there (None if it has none)."""
    pre = cfg["preset"]
    out = {}
    for ds in sorted({c["dataset"] for c in grid.expand(cfg)}):
        out[paths.data_manifest(pre, ds)] = per_config(lambda k, ds=ds: provenance.data_key(k, ds))
    for c in grid.expand(cfg):
        cid = grid.cell_hash(c)
        for concern in ("init", "reinit") if c.get("reinit") else ("init",):
            ic = {"dataset": c["dataset"], "model": c["model"], "init": c["init"], "seeds": {"init": c["seeds"][concern]}}
            out[paths.init_path(c, concern=concern)] = per_config(lambda k, ic=ic: provenance.init_key(k, ic))
        d = paths.cell_dir(c)
        # a sweep cell is not trained
        steps = [(paths.TRAIN_FILES + paths.TRAIN_EXTRA, provenance.train_key)] if c.get("trained", True) else []
        steps += [(paths.PRUNE_FILES, provenance.prune_key)] if methods.method_info(c["method"]).at_init else []
        steps += [(paths.ISOMETRY_FILES, provenance.isometry_key)] if c["isometry"] else []
        for files, key in steps:
            fn = per_config(lambda k, key=key, cid=cid: _key(key, k, cells_by_hash(k).get(cid)))
            for f in files:
                out[f"{d}/{f}"] = fn
    tables, report = per_config(provenance.tables_key), per_config(provenance.report_key)
    for t in paths.TABLE_FILES + (paths.RESOLVED_CONFIG, paths.RUN_RECORD):
        out[paths.table_path(pre, t)] = tables
    for name in cfg.get("figures", []):
        fig = per_config(lambda k, name=name: provenance.figure_key(k, name))
        for ext in ("pdf", "png"):
            out[paths.figure_path(pre, name, ext)] = fig
        out[paths.report_figure_path(pre, name)] = report
    out[paths.report_path(pre)] = report
    return out


def recorded_keys(root: Path) -> dict:
    """Output path -> the params Snakemake recorded for the job that wrote it (a sorted list of their
    reprs, one of which is the provenance key)."""
    meta = root / ".snakemake" / "metadata"
    found = {}
    if not meta.is_dir():
        return found
    for f in meta.rglob("*"):
        if not f.is_file():
            continue
        name = "".join(f.relative_to(meta).parts)  # Snakemake splits long names into folders
        try:
            path = base64.urlsafe_b64decode(name.encode()).decode()
            found[path] = {str(p) for p in artifacts.read_json(f).get("params") or []}
        except (ValueError, UnicodeDecodeError, PrunebenchError, AttributeError, TypeError):
            continue
    return found


def check_provenance(cfg: dict, resolved: dict | None, root: Path, found: Findings) -> None:
    recorded = recorded_keys(root)
    for rel, key_of in sorted(expected_outputs(cfg).items()):
        if not (root / rel).exists() or Path(rel).name in OPTIONAL:  # not declared outputs: no metadata
            continue
        if rel not in recorded:
            found.unrecorded += 1
            continue
        if repr(key_of(cfg)) in recorded[rel]:
            continue
        if resolved is not None and repr(key_of(resolved)) in recorded[rel]:
            why = "the preset changed since this output was made"
        else:
            why = "the code this job runs (or an upstream job's code or options) changed since it was made"
        found.stale.append((rel, why))
