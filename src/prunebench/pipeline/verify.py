"""`prunebench verify`: what a reviewer runs after `dvc pull` (or after any run) to trust a preset's results.

1. Integrity: every declared output of the preset exists and reads back: safetensors files (masks, inits,
   AI weights, checkpoints) and results tables pass their content checksums (`prunebench.library.artifacts`), JSON files
   parse, and each cell's prune.json / manifest.json records the config hash of the cell this checkout's
   preset defines (`grid.cell_hash`).
   The tables are re-aggregated from the cells' files and must come out identical, so a per-cell file
   edited after aggregation (a changed number in a metrics.json) is caught and named.
2. Provenance: where Snakemake's metadata is present (`.snakemake/metadata`, written by the run that made
   the outputs; not versioned by DVC), each output's recorded provenance key is compared with the key this
   checkout computes (`prunebench.pipeline.provenance`): a difference means Snakemake would rerun that job, because
   the preset changed (the key computed from the resolved config the run saved matches the recorded one)
   or the code a job runs changed (it does not).
3. `--reproduce K`: K cells, chosen at random with a printed seed, are rerun from their recorded inputs
   (the same commands the rules run, `prunebench.pipeline.workflow`) in a temporary folder; their mask, prune
   report, AI weights and metrics must come out byte-identical. That holds on the CPU (the project's
   deterministic mode); results made on a GPU, or reproduced on one, are compared within a tolerance
   instead (masks agree on >= 99% of the weights, final accuracy within 1 point), because GPU kernels are
   not bit-reproducible across GPU models, drivers and library versions.
Exit status: 0 when everything matches, 1 on any mismatch, 2 on bad usage.
"""
from __future__ import annotations

import base64
import os
import random
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

import yaml

from prunebench.pipeline import grid as G
from prunebench.library import artifacts as io
from prunebench.library import methods as M
from prunebench.pipeline import paths as P
from prunebench.pipeline import provenance as V
from prunebench.library.errors import PrunebenchError
from prunebench.pipeline.resources import preset_file
from prunebench.pipeline.workflow import argv_builders

GPU_MASK_AGREEMENT = 0.99
GPU_ACC_TOLERANCE = 0.01
# Outputs that may legitimately be absent (written only by some cells or kept only while a run resumes).
OPTIONAL = set(P.TRAIN_EXTRA)
_KIND = {"mask.safetensors": "mask file", "weights_ai.safetensors": "init file", "checkpoint.safetensors": "checkpoint",
         "final_mask.safetensors": "mask file"}


@dataclass
class Findings:
    checked: int = 0
    problems: list = field(default_factory=list)      # (path, what): integrity failures
    stale: list = field(default_factory=list)         # (path, why): Snakemake would rerun this
    unrecorded: int = 0                               # outputs with no Snakemake metadata here
    reproduced: list = field(default_factory=list)    # (cell dir, [differences])

    @property
    def ok(self) -> bool:
        return not self.problems and not self.stale and not any(d for _, d in self.reproduced)


# ------------------------------------------------------------------------------------------------------
# What the preset declares, and the key each output's job records.

def _per_config(fn):
    """`fn(cfg)` computed once per config object (a preset has ~10 outputs per cell sharing a few keys, and
    each key hashes its upstream keys: computing it once per output would take a minute on a large preset)."""
    seen = {}

    def once(cfg):
        hit = seen.get(id(cfg))
        if hit is None or hit[0] is not cfg:
            hit = seen[id(cfg)] = (cfg, fn(cfg))
        return hit[1]

    return once


@_per_config
def _cells_by_hash(cfg: dict) -> dict:
    return {G.cell_hash(c): c for c in G.expand(cfg)}


def expected_outputs(cfg: dict) -> dict:
    """Every output path of the preset -> a function computing its provenance key for a config. A cell's key
    under another config is that of the cell with the same config hash there (None if it has none)."""
    pre = cfg["preset"]
    out = {}
    for ds in sorted({c["dataset"] for c in G.expand(cfg)}):
        out[P.data_manifest(pre, ds)] = _per_config(lambda k, ds=ds: V.data_key(k, ds))
    for c in G.expand(cfg):
        cid = G.cell_hash(c)
        for concern in ("init", "reinit") if c.get("reinit") else ("init",):
            ic = {"dataset": c["dataset"], "model": c["model"], "init": c["init"], "seeds": {"init": c["seeds"][concern]}}
            out[P.init_path(c, concern=concern)] = _per_config(lambda k, ic=ic: V.init_key(k, ic))
        d = P.cell_dir(c)
        steps = [(P.TRAIN_FILES + P.TRAIN_EXTRA, V.train_key)]
        steps += [(P.PRUNE_FILES, V.prune_key)] if M.method_info(c["method"]).at_init else []
        steps += [(P.ISOMETRY_FILES, V.isometry_key)] if c["isometry"] else []
        for files, key in steps:
            fn = _per_config(lambda k, key=key, cid=cid: _key(key, k, _cells_by_hash(k).get(cid)))
            for f in files:
                out[f"{d}/{f}"] = fn
    tables, report = _per_config(V.tables_key), _per_config(V.report_key)
    for t in P.TABLE_FILES:
        out[P.table_path(pre, t)] = tables
    for name in cfg.get("figures", []):
        fig = _per_config(lambda k, name=name: V.figure_key(k, name))
        for ext in ("pdf", "png"):
            out[P.figure_path(pre, name, ext)] = fig
        out[P.report_figure_path(pre, name)] = report
    out[P.report_path(pre)] = report
    return out


def _key(fn, cfg, cell):
    return None if cell is None else fn(cfg, cell)


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


# ------------------------------------------------------------------------------------------------------
# 1 and 2: integrity and provenance.

def check_file(path: Path) -> None:
    """Raise PrunebenchError unless `path` reads back: checksums for tensors and tables, JSON parses."""
    if path.name.endswith(".safetensors"):
        io.load_tensors(path, what=_KIND.get(path.name, "init file"))
    elif path.suffix == ".csv":
        io.verify_checked_file(path)
    elif path.suffix == ".json":
        io.read_json(path)
    elif not path.is_file():
        raise PrunebenchError(f"missing {str(path)!r}")


def check_integrity(cfg: dict, root: Path, found: Findings, log=print) -> None:
    outputs = expected_outputs(cfg)
    cells = {P.cell_dir(c): c for c in G.expand(cfg)}
    n = len(outputs)
    for i, rel in enumerate(sorted(outputs), 1):
        path = root / rel
        if i % 200 == 0:
            log(f"  checked {i}/{n} files")
        if not path.exists():
            if Path(rel).name not in OPTIONAL:
                found.problems.append((rel, "missing"))
            continue
        found.checked += 1
        try:
            check_file(path)
        except PrunebenchError as e:
            found.problems.append((rel, str(e)))
            continue
        name, d = Path(rel).name, str(Path(rel).parent)
        if name in ("prune.json", "manifest.json") and d in cells:
            doc = io.read_json(path)
            recorded = doc.get("cell_hash", (doc.get("config") or {}).get("cell_hash"))  # train: under config
            if recorded != G.cell_hash(cells[d]):
                found.problems.append((rel, f"made for another cell config (cell_hash {recorded}, this preset "
                                            f"defines {G.cell_hash(cells[d])})"))


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


def check_tables(preset: str, root: Path, found: Findings, log=print) -> None:
    """Re-aggregate the cells' files (in a temporary folder, the cells linked in) and compare the tables:
    a per-cell file edited after aggregation (a changed number in a metrics.json) shows up here, named."""
    res = root / P.preset_dir(preset)
    cfgfile = res / P.RESOLVED_CONFIG
    if not cfgfile.is_file() or not (res / "summary.csv").is_file():
        return
    with tempfile.TemporaryDirectory(prefix="prunebench-verify-") as tmp:
        mirror = Path(tmp) / P.RESULTS / preset
        mirror.mkdir(parents=True)
        for entry in res.iterdir():
            if entry.name not in P.TABLE_FILES and entry.name != "logs":
                (mirror / entry.name).symlink_to(entry.resolve())
        try:
            _run(["aggregate", "--config", str(cfgfile.resolve()), "--results-root", str(Path(tmp) / P.RESULTS)],
                 Path(tmp), log)
        except PrunebenchError as e:
            found.problems.append((str(cfgfile.relative_to(root)), f"re-aggregation failed: {e}"))
            return
        for name in ("summary.csv", "layers.csv", "history.csv"):
            a, b = res / name, mirror / name
            if a.read_bytes() != b.read_bytes():
                found.problems.append((str(a.relative_to(root)), _table_difference(a, b)))


def _table_difference(recorded: Path, fresh: Path) -> str:
    """Which cells' rows differ between a table and its re-aggregation from the cells' files."""
    import csv

    def rows(p):
        with open(p, newline="") as f:
            return list(csv.DictReader(f))

    a, b = rows(recorded), rows(fresh)
    if len(a) != len(b):
        return f"{len(a)} rows, the cells' files give {len(b)}"
    cells = []
    for ra, rb in zip(a, b):
        if ra != rb:
            cols = [k for k in ra if ra.get(k) != rb.get(k)]
            where = f"{ra.get('dataset')}/{ra.get('model')}/{ra.get('init')}/{ra.get('arm')}/s{ra.get('sparsity')}/seed{ra.get('seed')}"
            cells.append(f"{where} ({', '.join(cols[:3])}: table {ra.get(cols[0])!r}, files {rb.get(cols[0])!r})")
    return "disagrees with the cells' files, re-aggregated: " + "; ".join(cells[:3]) + (
        f"; ... {len(cells) - 3} more" if len(cells) > 3 else "")


# ------------------------------------------------------------------------------------------------------
# 3: reproduce cells.

def _on_gpu(cfg: dict, root: Path, cell: dict) -> bool:
    dev = str(cfg.get("device", "auto"))
    if dev.startswith("cuda"):
        return True
    man = root / P.cell_dir(cell) / "manifest.json"
    recorded = str(io.read_json(man).get("device", "")) if man.exists() else ""
    if "cuda" in recorded:
        return True
    if dev == "auto":
        try:
            import torch

            return torch.cuda.is_available()
        except ImportError:
            return False
    return False


def _run(argv: list, cwd: Path, log) -> None:
    env = dict(os.environ)
    src = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = src + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    r = subprocess.run([sys.executable, "-m", "prunebench", *map(str, argv)], cwd=cwd, env=env,
                       capture_output=True, text=True)
    if r.returncode != 0:
        tail = (r.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise PrunebenchError(f"prunebench {argv[0]} failed while reproducing: {tail}")


def _compare(a: Path, b: Path, gpu: bool) -> str | None:
    """None when `b` (reproduced) matches `a` (recorded), else what differs."""
    if not b.exists():
        return f"{a.name}: not reproduced"
    if a.read_bytes() == b.read_bytes():
        return None
    if not gpu:
        return f"{a.name}: bytes differ"
    if a.name.endswith("mask.safetensors"):
        from prunebench.library.masks import Mask

        ma, mb = Mask.load(a), Mask.load(b)
        same = sum(int((ma.masks[n] == mb.masks.get(n, ~ma.masks[n])).sum()) for n in ma.masks)
        total = sum(v.numel() for v in ma.masks.values())
        return None if same / total >= GPU_MASK_AGREEMENT else f"{a.name}: agrees on {same / total:.2%} of weights"
    if a.name == "metrics.json":
        fa, fb = io.read_json(a).get("final_acc"), io.read_json(b).get("final_acc")
        if fa is not None and fb is not None and abs(fa - fb) <= GPU_ACC_TOLERANCE:
            return None
        return f"{a.name}: final accuracy {fa} vs {fb}"
    return None  # reports and AI weights: judged through the mask and the metrics on a GPU


def reproduce_cell(cfg: dict, cell: dict, root: Path, log=print) -> list:
    """Rerun one cell's prune / isometry / train steps in a temporary folder; return what differs."""
    fn = argv_builders(cfg, cfg.get("device", "auto"))
    th = cfg.get("threads", 1)
    d = P.cell_dir(cell)
    info = M.method_info(cell["method"])
    data = str((root / P.data_manifest(cfg["preset"], cell["dataset"])).resolve())
    gpu = _on_gpu(cfg, root, cell)
    compared = []
    with tempfile.TemporaryDirectory(prefix="prunebench-verify-") as tmp:
        tmp = Path(tmp)
        (tmp / d).mkdir(parents=True)
        init = str((root / P.init_path(cell)).resolve())
        if info.at_init:
            out = SimpleNamespace(mask=f"{d}/mask.safetensors", report=f"{d}/prune.json", timing=f"{d}/prune_timing.json")
            _run(fn["prune_argv"](cell, SimpleNamespace(init=init, data=data), out, th), tmp, log)
            compared += ["mask.safetensors", "prune.json"]
        train_init = str((root / P.train_init_path(cell)).resolve())
        if cell["isometry"]:
            out = SimpleNamespace(weights=f"{d}/weights_ai.safetensors", report=f"{d}/isometry.json")
            _run(fn["isometry_argv"](cell, SimpleNamespace(init=init, mask=f"{d}/mask.safetensors", data=data), out, th),
                 tmp, log)
            compared += ["weights_ai.safetensors", "isometry.json"]
            train_init = out.weights
        _run(fn["train_argv"](cell, SimpleNamespace(init=train_init, data=data), th), tmp, log)
        compared.append("metrics.json")
        diffs = [x for x in (_compare(root / d / f, tmp / d / f, gpu) for f in compared) if x]
    return diffs


def choose_cells(cfg: dict, k: int, seed: int) -> list:
    cells = sorted(G.expand(cfg), key=P.cell_dir)
    return random.Random(seed).sample(cells, min(k, len(cells)))


# ------------------------------------------------------------------------------------------------------

def verify(preset: str, root=".", config=None, reproduce: int = 0, seed: int = 0, log=print) -> Findings:
    root = Path(root)
    cfg_path = Path(config) if config else preset_file(preset, root)  # the checkout's, else the shipped one
    cfg = G.load_config(cfg_path)
    if cfg["preset"] != preset:
        raise PrunebenchError(f"config {str(cfg_path)!r} is preset {cfg['preset']!r}, not {preset!r}")
    if not (root / P.preset_dir(preset)).is_dir():
        raise PrunebenchError(f"no results for preset {preset!r} under {str(root / P.preset_dir(preset))!r} "
                              f"(run the pipeline or `dvc pull {preset}` first)")
    resolved = None
    rc = root / P.table_path(preset, P.RESOLVED_CONFIG)
    if rc.is_file():
        try:
            resolved = G.validate(yaml.safe_load(rc.read_text()), where=str(rc))
        except (PrunebenchError, yaml.YAMLError):
            resolved = None
    found = Findings()
    log(f"verify {preset}: checking files and checksums")
    check_integrity(cfg, root, found, log)
    log(f"verify {preset}: re-aggregating the cells' files")
    check_tables(preset, root, found, log)
    log(f"verify {preset}: checking provenance keys")
    check_provenance(cfg, resolved, root, found)
    if reproduce:
        chosen = choose_cells(cfg, reproduce, seed)
        log(f"verify {preset}: reproducing {len(chosen)} cell(s) chosen with --seed {seed}:")
        for i, c in enumerate(chosen, 1):
            d = P.cell_dir(c)
            log(f"  [{i}/{len(chosen)}] {d}")
            try:
                diffs = reproduce_cell(cfg, c, root, log)
            except PrunebenchError as e:
                diffs = [str(e)]
            found.reproduced.append((d, diffs))
    return found


def summary(preset: str, found: Findings, limit: int = 8) -> str:
    L = [f"prunebench verify {preset}:"]
    L.append(f"  files:      {found.checked} read back; {len(found.problems)} problem(s)")
    for rel, what in found.problems[:limit]:
        L.append(f"    {rel}: {what}")
    if len(found.problems) > limit:
        L.append(f"    ... and {len(found.problems) - limit} more")
    rec = "" if not found.unrecorded else f"; {found.unrecorded} output(s) with no Snakemake metadata here (not checked)"
    L.append(f"  provenance: {len(found.stale)} output(s) would rerun{rec}")
    for rel, why in found.stale[:limit]:
        L.append(f"    {rel}: {why}")
    if len(found.stale) > limit:
        L.append(f"    ... and {len(found.stale) - limit} more")
    if found.reproduced:
        bad = [(d, x) for d, x in found.reproduced if x]
        L.append(f"  reproduced: {len(found.reproduced) - len(bad)} of {len(found.reproduced)} cell(s) identical")
        for d, x in bad:
            L.append(f"    {d}: {'; '.join(x)}")
    L.append("  result:     " + ("OK" if found.ok else "MISMATCH"))
    return "\n".join(L)
