"""Verify, provenance: each output's recorded provenance key against the one this checkout computes.

Where Snakemake's metadata is present (`.snakemake/metadata`, written by the run that made the outputs; not
versioned by DVC), a difference means Snakemake would rerun that job, because the preset changed (the key
computed from the resolved config the run saved matches the recorded one) or the code a job runs changed
(it does not). Also the list of every output a preset declares (`expected_outputs`), with its key function.
"""
from __future__ import annotations

import base64
from pathlib import Path

from prunebench.library import artifacts as io
from prunebench.library import methods as M
from prunebench.library.errors import PrunebenchError
from prunebench.pipeline import grid as G
from prunebench.pipeline import paths as P
from prunebench.pipeline import provenance as V
from prunebench.pipeline.verify.findings import Findings

# Outputs that may legitimately be absent (written only by some cells or kept only while a run resumes).
OPTIONAL = set(P.TRAIN_EXTRA)


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
    return {G.cell_hash(c): c for c in G.expand(cfg)}


def _key(fn, cfg, cell):
    return None if cell is None else fn(cfg, cell)


def expected_outputs(cfg: dict) -> dict:
    """Every output path of the preset -> a function computing its provenance key for a config. A cell's key
    under another config is that of the cell with the same config hash there (None if it has none)."""
    pre = cfg["preset"]
    out = {}
    for ds in sorted({c["dataset"] for c in G.expand(cfg)}):
        out[P.data_manifest(pre, ds)] = per_config(lambda k, ds=ds: V.data_key(k, ds))
    for c in G.expand(cfg):
        cid = G.cell_hash(c)
        for concern in ("init", "reinit") if c.get("reinit") else ("init",):
            ic = {"dataset": c["dataset"], "model": c["model"], "init": c["init"], "seeds": {"init": c["seeds"][concern]}}
            out[P.init_path(c, concern=concern)] = per_config(lambda k, ic=ic: V.init_key(k, ic))
        d = P.cell_dir(c)
        steps = [(P.TRAIN_FILES + P.TRAIN_EXTRA, V.train_key)] if c.get("trained", True) else []  # sweep: no train
        steps += [(P.PRUNE_FILES, V.prune_key)] if M.method_info(c["method"]).at_init else []
        steps += [(P.ISOMETRY_FILES, V.isometry_key)] if c["isometry"] else []
        for files, key in steps:
            fn = per_config(lambda k, key=key, cid=cid: _key(key, k, cells_by_hash(k).get(cid)))
            for f in files:
                out[f"{d}/{f}"] = fn
    tables, report = per_config(V.tables_key), per_config(V.report_key)
    for t in P.TABLE_FILES + (P.RESOLVED_CONFIG, P.RUN_RECORD):
        out[P.table_path(pre, t)] = tables
    for name in cfg.get("figures", []):
        fig = per_config(lambda k, name=name: V.figure_key(k, name))
        for ext in ("pdf", "png"):
            out[P.figure_path(pre, name, ext)] = fig
        out[P.report_figure_path(pre, name)] = report
    out[P.report_path(pre)] = report
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
            found[path] = {str(p) for p in io.read_json(f).get("params") or []}
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
