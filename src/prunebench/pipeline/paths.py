"""Every artifact path of the pipeline, in one place (imports no torch).

Paths are readable, with no hashes in them (each cell's config hash is recorded inside its files):

    results/<preset>/data/<dataset>.json                                  data manifest
    results/<preset>/<dataset>/<model>/<init>/init/seed<init seed>.safetensors  initialization, shared by arms
    results/<preset>/<dataset>/<model>/<init>/<arm>/s<sparsity>/seed<seed>/<file>   one cell
    results/<preset>/{summary,timing,layers,history}.csv, metrics.json, config.yaml
    results/<preset>/logs/<step>/<job>.log
    figures/<preset>/<figure>.{pdf,png}
    paper/replication-<preset>.md, paper/figures/<preset>/<figure>.png   (git-tracked: readable without DVC)

The Snakemake rules use `CELL_PATTERN` (one wildcard pattern for every per-cell output).
"""
from __future__ import annotations

RESULTS = "results"
FIGURES = "figures"

# Files of one cell, by the step that writes them.
PRUNE_FILES = ("mask.safetensors", "prune.json", "prune_timing.json")
ISOMETRY_FILES = ("weights_ai.safetensors", "isometry.json")
TRAIN_FILES = ("metrics.json", "timing.json", "manifest.json")
TRAIN_EXTRA = ("checkpoint.safetensors", "final_mask.safetensors")  # not declared outputs
# Every file of a cell -> its depth in the DAG (prunebench.pipeline.provenance settles file times by it).
CELL_FILES = {**{f: 3 for f in PRUNE_FILES}, **{f: 4 for f in ISOMETRY_FILES}, **{f: 5 for f in TRAIN_FILES + TRAIN_EXTRA}}
TABLES_CSV = ("summary.csv", "timing.csv", "layers.csv", "history.csv")
# each CSV with its checksum sidecar (io.write_checked_text), then the aggregate metrics for DVC
TABLE_FILES = tuple(f for n in TABLES_CSV for f in (n, n + ".sha256")) + ("metrics.json",)
RESOLVED_CONFIG = "config.yaml"
RUN_RECORD = "run.json"  # the aggregate's record of the run: commits, command (not byte-stable)
# What the report copies into paper/data/<preset>/ (prunebench.report.data: the tables with their checksums,
# the resolved preset, the run record and one SHA256SUMS over them); tests/test_paths.py keeps the two in step.
REPORT_DATA_FILES = TABLE_FILES[:-1] + (RESOLVED_CONFIG, RUN_RECORD, "SHA256SUMS")

CELL_PATTERN = "{dataset}/{model}/{init}/{arm}/s{sparsity}/seed{seed}"
INIT_PATTERN = "{dataset}/{model}/{init}/init/seed{seed}.safetensors"


def fmt_sparsity(s: float) -> str:
    """The sparsity as it appears in paths: shortest repr ('0.9', '0.995', '0')."""
    return format(float(s), "g")


def preset_dir(preset: str, root: str = RESULTS) -> str:
    return f"{root}/{preset}"


def cell_dir(cell: dict, root: str = RESULTS) -> str:
    return f"{root}/{cell['preset']}/" + CELL_PATTERN.format(
        dataset=cell["dataset"], model=cell["model"], init=cell["init"], arm=cell["arm"],
        sparsity=fmt_sparsity(cell["sparsity"]), seed=cell["seed"])


def init_path(cell: dict, root: str = RESULTS, concern: str = "init") -> str:
    """An initialization of the cell's (dataset, model, init scheme), named by its own seed: the cell's
    `init` seed (pruned and, normally, trained), or its `reinit` seed (the reinitialisation ablation trains a
    fresh draw of the same scheme)."""
    return f"{root}/{cell['preset']}/" + INIT_PATTERN.format(
        dataset=cell["dataset"], model=cell["model"], init=cell["init"], seed=cell["seeds"][concern])


def train_init_path(cell: dict, root: str = RESULTS) -> str:
    """The initialization a cell trains from (before approximate isometry, if any)."""
    return init_path(cell, root, "reinit" if cell.get("reinit") else "init")


def data_manifest(preset: str, dataset: str, root: str = RESULTS) -> str:
    return f"{root}/{preset}/data/{dataset}.json"


def table_path(preset: str, name: str, root: str = RESULTS) -> str:
    return f"{root}/{preset}/{name}"


def figures_dir(preset: str, root: str = FIGURES) -> str:
    return f"{root}/{preset}"


def figure_path(preset: str, name: str, ext: str, root: str = FIGURES) -> str:
    return f"{figures_dir(preset, root)}/{name}.{ext}"


def report_path(preset: str) -> str:
    return f"paper/replication-{preset}.md"


def report_figures_dir(preset: str) -> str:
    """Where the report keeps git-tracked copies of the figures' PNGs (readable without any DVC remote)."""
    return f"paper/figures/{preset}"


def report_data_dir(preset: str) -> str:
    """Where the report keeps git-tracked copies of the per-seed tables it renders from (`prunebench report
    --data` regenerates the report from them alone)."""
    return f"paper/data/{preset}"


def report_figure_path(preset: str, name: str) -> str:
    return f"{report_figures_dir(preset)}/{name}.png"


def log_path(preset: str, step: str, job: str, root: str = RESULTS) -> str:
    return f"{root}/{preset}/logs/{step}/{job}.log"
