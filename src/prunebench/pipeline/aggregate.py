"""Collect every cell of a preset into tidy tables under results/<preset>/ (the input of the figures and the
report; the schema, column by column, is `prunebench.report.tables`).

summary.csv  one row per cell: what the grid knows of the cell (its arm's method, ablation, isometry,
             supervision, meta-steps, start and resolved options; whether it is trained at all) and its outcome
             (final/best accuracy, realised density, collapse, divergence and its step, JSV statistics with the
             number of examples of each stage)
layers.csv   one row per (cell, layer): per-layer density of the mask (at-init) or final mask (FGGP/GMP)
history.csv  one row per (cell, evaluation): lr, losses, accuracies, mask density
timing.csv   one row per cell: pruning wall time / peak memory, training time, images/s. Timings are the
             only non-deterministic numbers, so they live apart: every other table is byte-stable.
metrics.json mean final accuracy per (dataset, model, init, arm, sparsity) over the seeds that did not diverge,
             and the number of diverged seeds per such setting, for `dvc metrics show/diff`.
run.json     run metadata, like the timings not byte-stable across runs: the git commits recorded in the cells' manifests (and how many cells record
             none: a sweep cell has no training manifest), the command that ran
             the pipeline (`--command`, or the environment variable PRUNEBENCH_COMMAND), and the paper-vs-code
             option notes of the methods the preset ran (so that the report needs no pruner code).

Cells of a grid block with `trained: false` (a prune + JSV sweep) have no training outputs: their rows carry
the pruning outcome and the JSV statistics, `trained` false and no accuracy.
"""
from __future__ import annotations

import csv
import io
import json
import math
import os
from pathlib import Path

from prunebench.library.artifacts import read_json, write_checked_text, write_json
from prunebench.library.datasets import dataset_spec
from prunebench.library.errors import PrunebenchError
from prunebench.library.masks import Mask
from prunebench.library.methods import method_info
from prunebench.library.pruners.during import during_class
from prunebench.library.pruners.during import paper_vs_code as during_paper_vs_code
from prunebench.library.pruners.registry import paper_vs_code as at_init_paper_vs_code
from prunebench.library.pruners.registry import resolve_options
from prunebench.pipeline.grid import cell_dir, expand, load_config
from prunebench.report.tables import HISTORY as _HISTORY
from prunebench.report.tables import JSV_STATS
from prunebench.report.tables import KEYS as _KEYS
from prunebench.report.tables import LAYERS as _LAYERS
from prunebench.report.tables import SUMMARY as _SUMMARY
from prunebench.report.tables import TIMING as _TIMING

KEYS, SUMMARY, TIMING, LAYERS, HISTORY = list(_KEYS), list(_SUMMARY), list(_TIMING), list(_LAYERS), list(_HISTORY)
JSV_EXAMPLES_DEFAULT = 10  # `prunebench prune --jsv-examples` default
RUN_FILE = "run.json"
COMMAND_ENV = "PRUNEBENCH_COMMAND"


def _fmt(v):
    if v is None:
        return ""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return "nan" if math.isnan(v) else repr(v)
    if isinstance(v, (dict, list)):
        return json.dumps(v, sort_keys=True, separators=(",", ":"))
    return str(v)


def write_csv(path, columns, rows):
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(columns)
    for r in rows:
        w.writerow([_fmt(r.get(c)) for c in columns])
    write_checked_text(path, buf.getvalue())


def _opt(path):
    p = Path(path)
    return read_json(p) if p.exists() else {}


def resolved_options(cell) -> dict:
    """Every option of the cell's method with its defaults filled in (the method's typed Options)."""
    info = method_info(cell["method"])
    if info.at_init:
        return resolve_options(cell["method"], cell["options"])
    if info.during:
        return during_class(cell["method"]).Options.from_dict(cell["options"]).to_dict()
    return dict(cell["options"])


def _start(cell, options: dict):
    if method_info(cell["method"]).during:
        d = options["initial_density"]
        return "dense" if d >= 1.0 else f"sparse{round((1 - d) * 100)}"
    return "init"


def _jsv_examples(dataset: str, stats: dict | None):
    """Examples a JSV measurement covered: its count of singular values over the per-example count,
    min(input dimension, classes)."""
    if not stats or "n" not in stats:
        return None
    spec = dataset_spec(dataset)
    per = min(spec.channels * spec.size * spec.size, spec.num_classes)
    return int(stats["n"]) // per


def cell_rows(cell, root: Path, data_notes: dict, arm_spec: dict | None = None):
    """The summary, timing, layers and history rows of one cell. `arm_spec`: the preset's definition of the
    cell's arm (an ablation names the arm it ablates: `{of: snip, ablation: shuffle}`)."""
    arm_spec = arm_spec or {}
    d = Path(cell_dir(cell, str(root)))
    trained = cell.get("trained", True)
    metrics = read_json(d / "metrics.json") if trained else {"history": []}
    prune = _opt(d / "prune.json")
    iso = _opt(d / "isometry.json")
    timing_p = _opt(d / "prune_timing.json")
    timing_t = _opt(d / "timing.json")
    manifest = _opt(d / "manifest.json")
    keys = {k: cell[k] for k in KEYS}
    options = resolved_options(cell)
    jsv = {}
    for stage, src in (("init", prune.get("jsv_init")), ("prune", prune.get("jsv_prune")),
                       ("isometry", iso.get("jsv_isometry"))):
        for s in JSV_STATS:
            jsv[f"jsv_{stage}_{s}"] = float(src[s]) if src else float("nan")
        jsv[f"jsv_{stage}_examples"] = _jsv_examples(cell["dataset"], src)
    layers = prune.get("layers")
    if layers is None and (d / "final_mask.safetensors").exists():
        layers = Mask.load(d / "final_mask.safetensors").layer_report()
    diverged = metrics.get("diverged")
    ablation = arm_spec.get("ablation")
    summary = {**keys, "preset": cell["preset"], "init": cell["init"], "ablation": ablation or "",
               "ablation_of": arm_spec.get("of", "") if ablation else "", "trained": trained,
               "density": metrics.get("density", prune.get("density")), "epochs": metrics.get("epochs"),
               "max_steps": cell["train"].get("max_steps") or "", "eval_every": cell["train"].get("eval_every") or "",
               "final_acc": metrics.get("final_acc"), "best_acc": metrics.get("best_acc"),
               "final_loss": metrics.get("final_loss"), "collapsed": metrics.get("collapsed", 0) if trained else "",
               "diverged": bool(diverged), "diverged_step": diverged.get("step") if diverged else "",
               "layers": len(layers) if layers else "", "isometry": bool(cell.get("isometry")),
               "supervision": "unsupervised" if options.get("labels") == "uniform" else "supervised",
               "meta_steps": options["inner_steps"] if "inner_steps" in options else "",
               "start": _start(cell, options), "options": options, **jsv,
               "jsv_examples": cell.get("pruning", {}).get("jsv_examples", JSV_EXAMPLES_DEFAULT) if cell.get("jsv") else "",
               "source_note": data_notes.get(cell["dataset"], cell["dataset"]),
               "device": manifest.get("device", ""),
               "cell_hash": prune.get("cell_hash") or manifest.get("config", {}).get("cell_hash", "")}
    timing = {**keys, "init": cell["init"], "prune_time_s": timing_p.get("scoring_s", timing_p.get("wall_s")),
              "prune_peak_mb": timing_p.get("peak_mb"), "train_time_s": timing_t.get("train_s"),
              "images_per_s": timing_t.get("images_per_s")}
    lrows = [{**keys, "init": cell["init"], "layer_index": i, "layer": r["name"], "numel": r["numel"],
              "kept": r["kept"], "density": r["density"]} for i, r in enumerate(layers or [])]
    hrows = [{**keys, "init": cell["init"], **{k: h.get(k) for k in HISTORY if k in h}} for h in metrics["history"]]
    return summary, timing, lrows, hrows, manifest.get("git_commit", "")


def paper_vs_code_rows(methods) -> list:
    """The documented paper-vs-code option differences of `methods` (the report prints them per paper)."""
    rows = at_init_paper_vs_code() + during_paper_vs_code()
    return [{k: r[k] for k in ("method", "option", "paper", "official", "default", "section", "note")}
            for r in rows if r["method"] in set(methods)]


def aggregate(config_path, results_root: Path = Path("results"), command: str | None = None) -> list:
    """Write the tables and run.json of a preset from its cells' files; returns the paths written."""
    cfg = load_config(config_path, report_names=False)  # validated in full at the pipeline's start
    root = Path(results_root)
    out = root / cfg["preset"]
    data_notes = {}
    for ds in {b["dataset"] for b in cfg["grid"]}:
        man = out / "data" / f"{ds}.json"
        if man.exists():
            data_notes[ds] = read_json(man).get("source_note", ds)
    summary, timing, layers, history, commits = [], [], [], [], []
    for cell in expand(cfg):
        d = Path(cell_dir(cell, str(root)))
        need = "metrics.json" if cell.get("trained", True) else "prune.json"
        if not (d / need).exists():
            raise PrunebenchError(f"missing results of cell {d} (run the pipeline first)")
        s, t, l, h, commit = cell_rows(cell, root, data_notes, cfg["arms"][cell["arm"]])
        commits.append(commit)
        summary.append(s)
        timing.append(t)
        layers += l
        history += h
    write_csv(out / "summary.csv", SUMMARY, summary)
    write_csv(out / "timing.csv", TIMING, timing)
    write_csv(out / "layers.csv", LAYERS, layers)
    write_csv(out / "history.csv", HISTORY, history)
    write_json(out / "metrics.json", {"preset": cfg["preset"], "cells": len(summary), **final_acc_means(summary)})
    run = {"preset": cfg["preset"], "cells": len(summary), "commits": sorted({c for c in commits if c}),
           "cells_without_commit": sum(1 for c in commits if not c),
           "command": command if command is not None else os.environ.get(COMMAND_ENV),
           "paper_vs_code": paper_vs_code_rows(sorted({r["method"] for r in summary}))}
    write_json(out / RUN_FILE, run)
    return [out / n for n in ("summary.csv", "timing.csv", "layers.csv", "history.csv", "metrics.json", RUN_FILE)]


def setting_key(row: dict) -> str:
    """metrics.json key of a setting: dataset/model/init/arm/s<sparsity> (cells differing only by init differ)."""
    return f"{row['dataset']}/{row['model']}/{row['init']}/{row['arm']}/s{float(row['sparsity']):g}"


def final_acc_means(summary: list) -> dict:
    """{"final_acc_mean": {setting: mean over the seeds with a final accuracy, or None when every seed
    diverged}, "diverged": {setting: number of diverged seeds} (settings with any)}. Untrained (sweep) cells
    have no accuracy and are left out."""
    groups, diverged = {}, {}
    for r in summary:
        if not r.get("trained", True):
            continue
        key = setting_key(r)
        acc = r.get("final_acc")
        ok = acc is not None and not (isinstance(acc, float) and math.isnan(acc)) and not r.get("diverged")
        groups.setdefault(key, [])
        if ok:
            groups[key].append(float(acc))
        else:
            diverged[key] = diverged.get(key, 0) + 1
    return {"final_acc_mean": {k: (sum(v) / len(v) if v else None) for k, v in sorted(groups.items())},
            "diverged": dict(sorted(diverged.items()))}
