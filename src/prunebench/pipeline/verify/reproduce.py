"""Verify, reproduction (`--reproduce K`): K cells rerun from their recorded inputs and compared.

The cells are rerun with the commands the rules run (`prunebench.pipeline.workflow`) in a temporary folder;
their mask, prune report, AI weights and metrics must come out byte-identical. That holds on the CPU (the
project's deterministic mode); results made on a GPU, or reproduced on one, are compared within a tolerance
instead (masks agree on >= 99% of the weights, final accuracy within 1 point), because GPU kernels are not
bit-reproducible across GPU models, drivers and library versions.

Only reproduction catches a file forged consistently (its checksum and every identity field recomputed).
To make it cheap: `cheapest=True` takes the K cells whose recorded compute time is smallest instead of K at
random, and `train=False` reruns the steps before training only (prune, isometry) of at-init cells.
"""
from __future__ import annotations

import os
import random
import subprocess
import sys
import tempfile
from pathlib import Path
from types import SimpleNamespace

import torch

from prunebench.library import artifacts
from prunebench.library import methods
from prunebench.library.errors import PrunebenchError
from prunebench.library.masks import Mask
from prunebench.pipeline import grid
from prunebench.pipeline import paths
from prunebench.pipeline.workflow import argv_builders

GPU_MASK_AGREEMENT = 0.99
GPU_ACC_TOLERANCE = 0.01


def _on_gpu(cfg: dict, root: Path, cell: dict) -> bool:
    dev = str(cfg.get("device", "auto"))
    if dev.startswith("cuda"):
        return True
    man = root / paths.cell_dir(cell) / "manifest.json"
    recorded = ""
    if man.exists():
        try:
            recorded = str(artifacts.read_json(man).get("device", ""))
        except (PrunebenchError, AttributeError):
            recorded = ""
    if "cuda" in recorded:
        return True
    if dev == "auto":
        return torch.cuda.is_available()
    return False


def run_command(argv: list, cwd: Path) -> None:
    """`prunebench <argv>` in a fresh process with this checkout's code; a failure is a PrunebenchError."""
    env = dict(os.environ)
    src = str(Path(__file__).resolve().parents[3])
    env["PYTHONPATH"] = src + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    r = subprocess.run([sys.executable, "-m", "prunebench", *map(str, argv)], cwd=cwd, env=env,
                       capture_output=True, text=True)
    if r.returncode != 0:
        tail = (r.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise PrunebenchError(f"prunebench {argv[0]} failed while reproducing: {tail}")


def compare(a: Path, b: Path, gpu: bool) -> str | None:
    """None when `b` (reproduced) matches `a` (recorded), else what differs."""
    if not b.exists():
        return f"{a.name}: not reproduced"
    if not a.exists():
        return f"{a.name}: missing in the results"
    if a.read_bytes() == b.read_bytes():
        return None
    if not gpu:
        return f"{a.name}: bytes differ"
    if a.name.endswith("mask.safetensors"):
        ma, mb = Mask.load(a), Mask.load(b)
        same = sum(int((ma.masks[n] == mb.masks.get(n, ~ma.masks[n])).sum()) for n in ma.masks)
        total = sum(v.numel() for v in ma.masks.values())
        return None if same / total >= GPU_MASK_AGREEMENT else f"{a.name}: agrees on {same / total:.2%} of weights"
    if a.name == "metrics.json":
        fa, fb = artifacts.read_json(a).get("final_acc"), artifacts.read_json(b).get("final_acc")
        if fa is not None and fb is not None and abs(fa - fb) <= GPU_ACC_TOLERANCE:
            return None
        return f"{a.name}: final accuracy {fa} vs {fb}"
    return None  # reports and AI weights: judged through the mask and the metrics on a GPU


def reproduce_cell(cfg: dict, cell: dict, root: Path, train: bool = True) -> list:
    """Rerun one cell's prune / isometry (/ train) steps in a temporary folder; return what differs."""
    train = train and cell.get("trained", True)  # a sweep cell (prune + JSV only) has nothing trained
    fn = argv_builders(cfg, cfg.get("device", "auto"))
    th = cfg.get("threads", 1)
    d = paths.cell_dir(cell)
    info = methods.method_info(cell["method"])
    data = str((root / paths.data_manifest(cfg["preset"], cell["dataset"])).resolve())
    gpu = _on_gpu(cfg, root, cell)
    compared = []
    with tempfile.TemporaryDirectory(prefix="prunebench-verify-") as tmp:
        tmp = Path(tmp)
        (tmp / d).mkdir(parents=True)
        init = str((root / paths.init_path(cell)).resolve())
        if info.at_init:
            out = SimpleNamespace(mask=f"{d}/mask.safetensors", report=f"{d}/prune.json", timing=f"{d}/prune_timing.json")
            run_command(fn["prune_argv"](cell, SimpleNamespace(init=init, data=data), out, th), tmp)
            compared += ["mask.safetensors", "prune.json"]
        train_init = str((root / paths.train_init_path(cell)).resolve())
        if cell["isometry"]:
            out = SimpleNamespace(weights=f"{d}/weights_ai.safetensors", report=f"{d}/isometry.json")
            run_command(fn["isometry_argv"](cell, SimpleNamespace(init=init, mask=f"{d}/mask.safetensors", data=data),
                                            out, th), tmp)
            compared += ["weights_ai.safetensors", "isometry.json"]
            train_init = out.weights
        if train:
            run_command(fn["train_argv"](cell, SimpleNamespace(init=train_init, data=data), th), tmp)
            compared.append("metrics.json")
        diffs = [x for x in (compare(root / d / f, tmp / d / f, gpu) for f in compared) if x]
    return diffs


def recorded_cost(cfg: dict, cell: dict, root: Path, train: bool = True) -> float:
    """The seconds a cell's rerun is expected to take, from its own recorded timings (prune_timing.json's
    wall time, timing.json's training and evaluation time) plus approximate isometry estimated at one
    training step per isometry step. A cell with no timings recorded counts as infinitely expensive."""
    d = root / paths.cell_dir(cell)

    def read(name):
        try:
            doc = artifacts.read_json(d / name) if (d / name).is_file() else {}
        except PrunebenchError:
            doc = {}
        return doc if isinstance(doc, dict) else {}

    def num(v):
        return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None

    prune, timing, metrics = read("prune_timing.json"), read("timing.json"), read("metrics.json")
    cost = 0.0
    if methods.method_info(cell["method"]).at_init:
        wall = num(prune.get("wall_s"))
        if wall is None:
            return float("inf")
        cost += wall
    train_s = num(timing.get("train_s"))
    steps = num(metrics.get("steps"))
    if train or cell["isometry"]:
        if train_s is None:
            return float("inf")
        per_step = train_s / max(steps or 1.0, 1.0)
        if train:
            cost += train_s + (num(timing.get("eval_s")) or 0.0)
        if cell["isometry"]:
            cost += per_step * cell["isometry"].get("steps", 10000)
    return cost


def choose_cells(cfg: dict, k: int, seed: int, *, root: Path | None = None, cheapest: bool = False,
                 train: bool = True) -> list:
    """K cells to reproduce: chosen at random with `seed`, or (cheapest) the K with the smallest recorded
    cost (`recorded_cost`; ties by path). Without training, only cells that prune at initialization."""
    cells = sorted(grid.expand(cfg), key=paths.cell_dir)
    if not train:
        cells = [c for c in cells if methods.method_info(c["method"]).at_init]
    if cheapest:
        costs = {paths.cell_dir(c): recorded_cost(cfg, c, Path(root or "."), train) for c in cells}
        return sorted(cells, key=lambda c: (costs[paths.cell_dir(c)], paths.cell_dir(c)))[:k]
    return random.Random(seed).sample(cells, min(k, len(cells)))
