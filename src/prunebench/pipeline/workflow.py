"""How the pipeline runs its steps, outside the rules (imports no torch).

- Each step's command line (`data_argv` ... `report_argv`): plain functions of what a job knows (the
  preset's config, the cell, its file paths, the device, the threads). The Snakemake rules call them, and
  so does whatever runs a cell without Snakemake (`prunebench verify --reproduce`, the GPU check in
  benchmarks/), so both run exactly the same commands.
- The config Snakemake runs (`resolve_config`): without a preset, the default one, under the `--config`
  overrides; `write_resolved_config` saves it next to the tables.
"""
from __future__ import annotations

import copy
import json

import yaml

from prunebench.library.artifacts import atomic_path
from prunebench.library.methods import method_info
from prunebench.pipeline.grid import cell_hash, load_config
from prunebench.pipeline.paths import (RESULTS, cell_dir, figures_dir, fmt_sparsity, preset_dir, report_data_dir,
                                       report_figures_dir)


def jarg(obj) -> str:
    """A JSON command-line value (canonical: sorted keys)."""
    return json.dumps(obj, sort_keys=True)


# ------------------------------------------------------------------------------------------------------
# The command line of each step (a list of arguments after `prunebench`).

def data_argv(config: dict, dataset: str, manifest: str) -> list:
    source = config.get("data_sources", {}).get(dataset)
    return (["data", "--dataset", dataset, "--cache-dir", config.get("data_dir", "data"), "--manifest", manifest]
            + (["--source", source] if source is not None else []))


def init_argv(model: str, dataset: str, scheme: str, seed, out: str, threads) -> list:
    return ["init", "--model", model, "--dataset", dataset, "--scheme", scheme, "--seed", seed,
            "--threads", threads, "--out", out]


def prune_argv(config: dict, cell: dict, *, init: str, data: str, mask: str, report: str, timing: str,
               device: str, threads) -> list:
    p = cell["pruning"]
    flags = ["--jsv"] if cell["jsv"] else []
    flags += ["--jsv-examples", p["jsv_examples"]] if "jsv_examples" in p else []
    flags += ["--allow-collapse"] if p.get("allow_collapse") else []
    flags += ["--no-augment"] if p.get("augment") is False else []
    flags += ["--scope", p["scope"]] if "scope" in p else []
    flags += ["--samples-per-class", p["samples_per_class"]] if "samples_per_class" in p else []
    flags += ["--epoch"] if p.get("epoch") else []
    flags += ["--val-fraction", config["val_fraction"]] if config.get("val_fraction") else []
    return ["prune", "--method", cell["method"], "--sparsity", fmt_sparsity(cell["sparsity"]), "--init", init,
            "--data", data, "--batch-size", p.get("batch_size", 128), "--seed", cell["seeds"]["prune"],
            "--options", jarg(cell["options"]), *flags, "--cell-hash", cell_hash(cell), "--threads", threads,
            "--device", device, "--out", mask, "--report", report, "--timing", timing]


def isometry_argv(config: dict, cell: dict, *, init: str, mask: str, data: str, weights: str, report: str,
                  device: str, threads) -> list:
    iso = cell["isometry"]
    jsv = ["--jsv"] if cell["jsv"] else []
    if cell["jsv"] and "jsv_examples" in cell["pruning"]:
        jsv += ["--jsv-examples", cell["pruning"]["jsv_examples"]]
    return ["isometry", "--init", init, "--mask", mask, "--steps", iso.get("steps", 10000), "--lr",
            iso.get("lr", 0.1), "--data", data, *jsv, "--threads", threads,
            "--device", device, "--out", weights, "--report", report]


def train_argv(config: dict, cell: dict, *, init: str, data: str, device: str, threads) -> list:
    """Trains into the cell's folder; an at-init cell's mask is the one its prune job wrote there."""
    info = method_info(cell["method"])
    flags = []
    if info.at_init:
        flags += ["--mask", f"{cell_dir(cell)}/mask.safetensors"]
    if info.during:
        flags += ["--during", cell["method"], "--target-sparsity", cell["sparsity"], "--during-options",
                  jarg(cell["options"])]
    if config.get("val_fraction"):
        flags += ["--val-fraction", config["val_fraction"]]
    return ["train", "--init", init, "--data", data, *flags, "--config",
            jarg({**cell["train"], "seed": cell["seeds"]["data"]}), "--cell-hash", cell_hash(cell),
            "--threads", threads, "--device", device, "--no-progress", "--out-dir", cell_dir(cell)]


def aggregate_argv(config_file: str) -> list:
    return ["aggregate", "--config", config_file, "--results-root", RESULTS]


def figure_argv(preset: str, name: str) -> list:
    return ["figure", "--name", name, "--results-dir", preset_dir(preset), "--out-stem",
            f"{figures_dir(preset)}/{name}", "--preset", preset]


def report_argv(preset: str, claims, out: str) -> list:
    return ["report", "--results-dir", preset_dir(preset), "--claims", *claims, "--out", out, "--preset", preset,
            "--figures-dir", figures_dir(preset), "--embed-dir", report_figures_dir(preset),
            "--data-dir", report_data_dir(preset)]


FUNCTIONS = ("jarg", "prune_argv", "isometry_argv", "train_argv")


def argv_builders(config: dict, device: str) -> dict:
    """The per-cell builders bound to one preset and device, called as `fn(cell, input, output, threads)`
    with `input` / `output` objects naming the files as the rules do (.init, .data, .mask, .report, .timing,
    .weights). Kept for the callers written against that form (`prunebench verify --reproduce`,
    benchmarks/gpu_pipeline.py); new code calls `prune_argv` and the others directly."""
    return {
        "jarg": jarg,
        "prune_argv": lambda c, input, output, threads: prune_argv(
            config, c, init=input.init, data=input.data, mask=output.mask, report=output.report,
            timing=output.timing, device=device, threads=threads),
        "isometry_argv": lambda c, input, output, threads: isometry_argv(
            config, c, init=input.init, mask=input.mask, data=input.data, weights=output.weights,
            report=output.report, device=device, threads=threads),
        "train_argv": lambda c, input, threads: train_argv(config, c, init=input.init, data=input.data,
                                                          device=device, threads=threads),
    }


# ------------------------------------------------------------------------------------------------------
# The config a run uses.

def _merged(base: dict, overrides: dict) -> dict:
    """`base` updated by `overrides`, nested mappings key by key (as Snakemake applies --config over
    --configfile)."""
    out = copy.deepcopy(base)
    for k, v in overrides.items():
        out[k] = _merged(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else copy.deepcopy(v)
    return out


def resolve_config(config: dict, default) -> dict:
    """The config a run uses: `config` itself when it names a preset (a --configfile was given), otherwise
    the preset file `default` with `config` (the --config overrides) over it, so an override is never lost."""
    if "preset" in config:
        return config
    return _merged(load_config(default), config)


def write_resolved_config(config: dict, path) -> None:
    """The preset as Snakemake resolved it, next to the tables (the aggregator reads it)."""
    with atomic_path(path) as tmp:
        tmp.write_text(yaml.safe_dump(config, sort_keys=True))
