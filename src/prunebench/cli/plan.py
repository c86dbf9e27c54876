"""prunebench plan: what a preset costs before it runs (cells, device-hours per rule, wall time, SLURM resources)."""
from __future__ import annotations

import json
import os
from pathlib import Path

from prunebench.cli.args import check_input, check_int
from prunebench.library.errors import PrunebenchError
from prunebench.pipeline.grid import load_config
from prunebench.pipeline.plan import load_rates, plan, render

REPO = Path(__file__).resolve().parents[3]
CPU_RATES = REPO / "benchmarks" / "results" / "cpu.json"


def add_arguments(p) -> None:
    p.add_argument("--preset", required=True, help="a preset name (config/<name>.yaml) or a preset file")
    p.add_argument("--throughput", default=None,
                   help="measured rates, benchmarks/results/<device>.json (default: the CPU's, benchmarks/results/cpu.json)")
    p.add_argument("--workers", type=int, default=None,
                   help="parallel jobs (CPU default: this machine's cores; GPU: the measured best k per GPU x --gpus)")
    p.add_argument("--gpus", type=int, default=1, help="GPUs (with a GPU throughput file)")
    p.add_argument("--json", action="store_true", help="print the plan as JSON")


def preset_path(name: str) -> Path:
    p = Path(name)
    if p.suffix in (".yaml", ".yml") or p.exists():
        return Path(check_input(name, "preset"))
    candidate = REPO / "config" / f"{name}.yaml"
    if not candidate.exists():
        raise PrunebenchError(f"unknown preset {name!r}: no {candidate}; give a preset file")
    return candidate


def run(args) -> None:
    check_int(args.workers, "--workers", 1)
    check_int(args.gpus, "--gpus", 1)
    cfg = load_config(preset_path(args.preset))
    rates_file = args.throughput or CPU_RATES
    if args.throughput is None and not CPU_RATES.exists():
        raise PrunebenchError("no --throughput file and no benchmarks/results/cpu.json: run `prunebench bench` first")
    rates = load_rates(check_input(str(rates_file), "throughput file"))
    workers = args.workers or (None if rates.kind == "cuda" else (os.cpu_count() or 1))
    result = plan(cfg, rates, workers, args.gpus)
    if cfg.get("device") not in (None, "auto", rates.kind):
        result["note"] = f"the preset runs on {cfg.get('device')!r}; these rates are of {rates.device}"
    print(json.dumps(result, indent=2, sort_keys=True) if args.json else
          render(result) + (f"\nNote: {result['note']}\n" if result.get("note") else ""))
