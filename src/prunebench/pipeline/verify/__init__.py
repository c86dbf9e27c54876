"""`prunebench verify`: what a reviewer runs after `dvc pull` (or after any run) to trust a preset's results.

One concern per module:
- `integrity`: every declared output reads back (checksums, JSON), and each artifact's embedded identity
  (cell hash, seed, method, model, the checksums of its inputs) matches the cell folder it sits in;
- `tables`: every results table (summary, layers, history, timing, metrics.json) re-aggregated from the
  cells' files with this checkout's preset comes out identical; the saved config.yaml is this preset;
- `provenance`: each output's recorded provenance key (Snakemake's metadata) against this checkout's;
- `reproduce`: `--reproduce K` cells rerun from their recorded inputs, compared byte for byte (CPU).
What only reproduction can catch: a file forged consistently, its checksum and identity fields recomputed.
Exit status (the command): 0 when everything matches, 1 on any mismatch, 2 on bad usage.
"""
from __future__ import annotations

from pathlib import Path

import yaml

from prunebench.library.errors import PrunebenchError
from prunebench.pipeline.resources import preset_file
from prunebench.pipeline import grid
from prunebench.pipeline import paths
from prunebench.pipeline.verify.findings import Findings, summary
from prunebench.pipeline.verify.integrity import check_file, check_identities, check_integrity
from prunebench.pipeline.verify.provenance import OPTIONAL, check_provenance, expected_outputs, recorded_keys
from prunebench.pipeline.verify.reproduce import (GPU_ACC_TOLERANCE, GPU_MASK_AGREEMENT, choose_cells, compare,
                                                  recorded_cost, reproduce_cell)
from prunebench.pipeline.verify.tables import check_tables, table_difference

_table_difference = table_difference  # the name of earlier versions

__all__ = ["Findings", "summary", "verify", "check_file", "check_identities", "check_integrity", "check_tables",
           "check_provenance", "expected_outputs", "recorded_keys", "choose_cells", "reproduce_cell",
           "recorded_cost", "compare", "table_difference", "OPTIONAL", "GPU_ACC_TOLERANCE", "GPU_MASK_AGREEMENT"]


def verify(preset: str, root=".", config=None, reproduce: int = 0, seed: int = 0, log=print, *,
           cheapest: bool = False, train: bool = True) -> Findings:
    """Check a preset's results under `root` against this checkout's preset (`config`, default
    `<root>/config/<preset>.yaml`): integrity and identities, tables, provenance, and `reproduce` cells
    (chosen at random with `seed`, or the cheapest; `train=False`: the steps before training only)."""
    root = Path(root)
    cfg_path = Path(config) if config else preset_file(preset, root)  # the checkout's, else the shipped one
    cfg = grid.load_config(cfg_path)
    if cfg["preset"] != preset:
        raise PrunebenchError(f"config {str(cfg_path)!r} is preset {cfg['preset']!r}, not {preset!r}")
    if not (root / paths.preset_dir(preset)).is_dir():
        raise PrunebenchError(f"no results for preset {preset!r} under {str(root / paths.preset_dir(preset))!r} "
                              f"(run the pipeline or `dvc pull {preset}` first)")
    resolved = None
    rc = root / paths.table_path(preset, paths.RESOLVED_CONFIG)
    if rc.is_file():
        try:
            resolved = grid.validate(yaml.safe_load(rc.read_text()), where=str(rc))
        except (PrunebenchError, yaml.YAMLError, UnicodeDecodeError, TypeError, KeyError):
            resolved = None
    found = Findings()
    log(f"verify {preset}: checking files, checksums and each artifact's identity")
    check_integrity(cfg, root, found, log)
    log(f"verify {preset}: re-aggregating the cells' files with this checkout's preset")
    check_tables(cfg, cfg_path, root, found, log)
    log(f"verify {preset}: checking provenance keys")
    check_provenance(cfg, resolved, root, found)
    if reproduce:
        chosen = choose_cells(cfg, reproduce, seed, root=root, cheapest=cheapest, train=train)
        how = "the cheapest by recorded time" if cheapest else f"chosen with --seed {seed}"
        log(f"verify {preset}: reproducing {len(chosen)} cell(s), {how}{'' if train else ', without training'}:")
        for i, c in enumerate(chosen, 1):
            d = paths.cell_dir(c)
            log(f"  [{i}/{len(chosen)}] {d}")
            try:
                diffs = reproduce_cell(cfg, c, root, train=train)
            except PrunebenchError as e:
                diffs = [str(e)]
            found.reproduced.append((d, diffs))
    return found
