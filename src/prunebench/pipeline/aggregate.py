"""Collect every cell of a preset into tidy tables under results/<preset>/ (the input of the figures and the
report; the schema, column by column, is `prunebench.report.tables`).

summary.csv  one row per cell: config columns + final/best accuracy, realised density, collapse, divergence
             (`diverged`: training diverged, so the cell has no final accuracy), JSV stats and `jsv_examples`
layers.csv   one row per (cell, layer): per-layer density of the mask (at-init) or final mask (FGGP/GMP)
history.csv  one row per (cell, epoch): lr, losses, accuracies, mask density
timing.csv   one row per cell: pruning wall time / peak memory, training time, images/s. Timings are the
             only non-deterministic numbers, so they live apart: every other table is byte-stable.
metrics.json mean final accuracy per (dataset, model, init, arm, sparsity) over the seeds that did not diverge,
             and the number of diverged seeds per such setting, for `dvc metrics show/diff`.
"""
from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path

from prunebench.library.errors import PrunebenchError
from prunebench.pipeline.grid import cell_dir, expand, load_config
from prunebench.library.artifacts import read_json, write_checked_text, write_json
from prunebench.report.tables import HISTORY as _HISTORY
from prunebench.report.tables import KEYS as _KEYS
from prunebench.report.tables import LAYERS as _LAYERS
from prunebench.report.tables import SUMMARY as _SUMMARY
from prunebench.report.tables import TIMING as _TIMING

KEYS, SUMMARY, TIMING, LAYERS, HISTORY = list(_KEYS), list(_SUMMARY), list(_TIMING), list(_LAYERS), list(_HISTORY)
JSV_EXAMPLES_DEFAULT = 10  # `prunebench prune --jsv-examples` default


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


def _start(cell):
    if cell["method"] in ("fggp", "gmp", "mfgn_annealed"):
        d = cell["options"].get("initial_density", 1.0)
        return "dense" if d >= 1.0 else f"sparse{round((1 - d) * 100)}"
    return "init"


def cell_rows(cell, root: Path, data_notes: dict):
    d = Path(cell_dir(cell, str(root)))
    metrics = read_json(d / "metrics.json")
    prune = _opt(d / "prune.json")
    iso = _opt(d / "isometry.json")
    timing_p = _opt(d / "prune_timing.json")
    timing_t = _opt(d / "timing.json")
    manifest = _opt(d / "manifest.json")
    keys = {k: cell[k] for k in KEYS}
    jsv = {}
    for stage, src in (("init", prune.get("jsv_init")), ("prune", prune.get("jsv_prune")), ("isometry", iso.get("jsv_isometry"))):
        for s in ("mean", "std", "min", "max"):
            jsv[f"jsv_{stage}_{s}"] = float(src[s]) if src else float("nan")
    labels = cell["options"].get("labels", "true")
    layers = prune.get("layers")
    if layers is None and (d / "final_mask.safetensors").exists():
        from prunebench.library.masks import Mask

        layers = Mask.load(d / "final_mask.safetensors").layer_report()
    summary = {**keys, "preset": cell["preset"], "init": cell["init"], "density": metrics.get("density"),
               "epochs": metrics.get("epochs"), "final_acc": metrics.get("final_acc"), "best_acc": metrics.get("best_acc"),
               "final_loss": metrics.get("final_loss"), "collapsed": metrics.get("collapsed", 0),
               "diverged": bool(metrics.get("diverged")),
               "layers": len(layers) if layers else "", "isometry": bool(cell.get("isometry")),
               "supervision": "unsupervised" if labels == "uniform" else "supervised",
               "meta_steps": cell["options"].get("inner_steps", 3) if cell["method"] == "prospr" else "",
               "start": _start(cell), "options": cell["options"], **jsv,
               "jsv_examples": cell.get("pruning", {}).get("jsv_examples", JSV_EXAMPLES_DEFAULT) if cell.get("jsv") else "",
               "source_note": data_notes.get(cell["dataset"], cell["dataset"]),
               "device": manifest.get("device", ""), "cell_hash": prune.get("cell_hash") or manifest.get("config", {}).get("cell_hash", "")}
    timing = {**keys, "init": cell["init"], "prune_time_s": timing_p.get("scoring_s", timing_p.get("wall_s")),
              "prune_peak_mb": timing_p.get("peak_mb"), "train_time_s": timing_t.get("train_s"),
              "images_per_s": timing_t.get("images_per_s")}
    lrows = [{**keys, "init": cell["init"], "layer_index": i, "layer": r["name"], "numel": r["numel"],
              "kept": r["kept"], "density": r["density"]} for i, r in enumerate(layers or [])]
    hrows = [{**keys, "init": cell["init"], **{k: h.get(k) for k in HISTORY if k in h}} for h in metrics["history"]]
    return summary, timing, lrows, hrows


def aggregate(config_path, results_root: Path = Path("results")) -> list:
    cfg = load_config(config_path)
    root = Path(results_root)
    out = root / cfg["preset"]
    data_notes = {}
    for ds in {b["dataset"] for b in cfg["grid"]}:
        man = out / "data" / f"{ds}.json"
        if man.exists():
            data_notes[ds] = read_json(man).get("source_note", ds)
    summary, timing, layers, history = [], [], [], []
    for cell in expand(cfg):
        d = Path(cell_dir(cell, str(root)))
        if not (d / "metrics.json").exists():
            raise PrunebenchError(f"missing results of cell {d} (run the pipeline first)")
        s, t, l, h = cell_rows(cell, root, data_notes)
        summary.append(s)
        timing.append(t)
        layers += l
        history += h
    write_csv(out / "summary.csv", SUMMARY, summary)
    write_csv(out / "timing.csv", TIMING, timing)
    write_csv(out / "layers.csv", LAYERS, layers)
    write_csv(out / "history.csv", HISTORY, history)
    write_json(out / "metrics.json", {"preset": cfg["preset"], "cells": len(summary), **final_acc_means(summary)})
    return [out / n for n in ("summary.csv", "timing.csv", "layers.csv", "history.csv", "metrics.json")]


def setting_key(row: dict) -> str:
    """metrics.json key of a setting: dataset/model/init/arm/s<sparsity> (cells differing only by init differ)."""
    return f"{row['dataset']}/{row['model']}/{row['init']}/{row['arm']}/s{float(row['sparsity']):g}"


def final_acc_means(summary: list) -> dict:
    """{"final_acc_mean": {setting: mean over the seeds with a final accuracy, or None when every seed
    diverged}, "diverged": {setting: number of diverged seeds} (settings with any)}."""
    groups, diverged = {}, {}
    for r in summary:
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
