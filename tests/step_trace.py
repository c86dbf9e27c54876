"""Run every job of a preset, one pipeline step after another, and record the project modules each imports.

    python tests/step_trace.py PRESET.yaml WORKDIR OUT.json

The jobs are the pipeline's own (the command lines of `prunebench.pipeline.workflow`, in DAG order: data,
init, prune, isometry, train, aggregate, every figure, report), run in this one process as
`python -m prunebench ...` runs them. Before each job every `prunebench` module is dropped from
`sys.modules`, so the job imports afresh all the project code it runs (torch and the other libraries stay
loaded: the run takes seconds, not a torch import per job). OUT.json lists, per job: its step, its method,
its command line, its exit status and the project modules it imported. tests/test_provenance.py holds them
against the declarations of `prunebench.pipeline.provenance`.
"""
from __future__ import annotations

import json
import os
import runpy
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from prunebench.library.methods import method_info  # noqa: E402  (after the path above)
from prunebench.pipeline import grid, paths  # noqa: E402
from prunebench.pipeline.workflow import (aggregate_argv, data_argv, figure_argv, init_argv,  # noqa: E402
                                          isometry_argv, prune_argv, report_argv, train_argv,
                                          write_resolved_config)


def jobs(cfg: dict) -> list:
    """(step, method, argv, before) of every job of the preset, in an order that respects the DAG; `before`,
    where not None, is what the rule does before its command (aggregate: write the resolved config)."""
    preset, cells = cfg["preset"], grid.expand(cfg)
    out = []
    for ds in sorted({c["dataset"] for c in cells}):
        out.append(("data", None, data_argv(cfg, ds, paths.data_manifest(preset, ds)), None))
    inits = {}
    for c in cells:
        for concern in ("init", "reinit") if c.get("reinit") else ("init",):
            inits.setdefault(paths.init_path(c, concern=concern),
                             (c["model"], c["dataset"], c["init"], c["seeds"][concern]))
    for path, (model, ds, scheme, seed) in inits.items():
        out.append(("init", None, init_argv(model, ds, scheme, seed, path, 1), None))
    for c in cells:
        d, data, init = paths.cell_dir(c), paths.data_manifest(preset, c["dataset"]), paths.init_path(c)
        if method_info(c["method"]).at_init:
            out.append(("prune", c["method"], prune_argv(cfg, c, init=init, data=data, mask=f"{d}/mask.safetensors",
                                                         report=f"{d}/prune.json", timing=f"{d}/prune_timing.json",
                                                         device="cpu", threads=1), None))
        if c["isometry"]:
            out.append(("isometry", c["method"], isometry_argv(cfg, c, init=init, mask=f"{d}/mask.safetensors",
                                                               data=data, weights=f"{d}/weights_ai.safetensors",
                                                               report=f"{d}/isometry.json", device="cpu", threads=1),
                        None))
        train_init = f"{d}/weights_ai.safetensors" if c["isometry"] else paths.train_init_path(c)
        out.append(("train", c["method"], train_argv(cfg, c, init=train_init, data=data, device="cpu", threads=1),
                    None))
    resolved = paths.table_path(preset, paths.RESOLVED_CONFIG)
    out.append(("aggregate", None, aggregate_argv(resolved), lambda: write_resolved_config(cfg, resolved)))
    for name in cfg.get("figures", []):
        out.append(("figure", None, figure_argv(preset, name), None))
    claims = [str(REPO / "paper" / "reference" / f"{c}.yaml") for c in cfg.get("claims", [])]
    out.append(("report", None, report_argv(preset, claims, paths.report_path(preset)), None))
    return out


def project_modules() -> list:
    return sorted(n for n in sys.modules if n == "prunebench" or n.startswith("prunebench."))


def run(argv: list) -> int:
    """One job as `python -m prunebench ARGV` runs it, with every project module imported afresh."""
    for name in project_modules():
        del sys.modules[name]
    sys.argv = ["prunebench", *map(str, argv)]
    try:
        runpy.run_module("prunebench", run_name="__main__")
    except SystemExit as e:
        return e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    return 0


def main(preset_file: str, workdir: str, out: str) -> int:
    cfg = grid.load_config(preset_file)
    preset = cfg["preset"]
    os.chdir(workdir)
    for c in grid.expand(cfg):  # the folders Snakemake would make for the jobs' outputs
        for folder in (paths.cell_dir(c), Path(paths.init_path(c)).parent,
                       Path(paths.data_manifest(preset, c["dataset"])).parent):
            Path(folder).mkdir(parents=True, exist_ok=True)
    for folder in (paths.figures_dir(preset), paths.report_figures_dir(preset)):
        Path(folder).mkdir(parents=True, exist_ok=True)
    records = []
    for step, method, argv, before in jobs(cfg):
        if before is not None:
            before()
        status = run(argv)
        records.append({"step": step, "method": method, "argv": [str(a) for a in argv], "status": status,
                        "modules": project_modules()})
        if status != 0:
            break
    Path(out).write_text(json.dumps(records, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
