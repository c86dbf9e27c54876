"""The results tables' schema, and their loader: one source for the aggregator (which writes them) and
the figures / report (which read them).

results/<preset>/ (written by `prunebench aggregate`, each CSV with its checksum sidecar):

summary.csv  SUMMARY: one row per cell: what the grid knows of it (dataset, model, init, arm, the method it runs,
             `ablation` / `ablation_of` for a sanity-check ablation of another arm, `isometry`, `supervision`,
             ProsPr's `meta_steps`, the during-training `start`, every resolved method option as JSON in
             `options`, whether it is `trained` (false: a prune + JSV sweep cell), the planned `max_steps` and
             `eval_every`), its outcome (final/best accuracy, realised density, collapse, `diverged` and the
             step it was detected at), JSV statistics with the number of examples each stage measured (the
             commits that made the cells are run metadata: run.json, so that the tables stay byte-stable)
layers.csv   LAYERS: one row per (cell, layer): density of the mask (at-init) or final mask (FGGP/GMP)
history.csv  HISTORY: one row per (cell, epoch)
timing.csv   TIMING: one row per cell; timings are the only non-deterministic numbers, so they live apart
             and every other table is byte-stable. The loader merges TIMING_VALUES into the summary.

A cell is identified by CELL + init (cells differing only by init scheme are different cells).
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from prunebench.library.errors import PrunebenchError
from prunebench.library.artifacts import verify_checked_file
from prunebench.report.arms import catalog

CONFIG_FILE = "config.yaml"
KEYS = ("dataset", "model", "arm", "method", "sparsity", "seed")
CELL = ("dataset", "model", "arm", "sparsity", "seed", "init")
JSV_STAGES = ("init", "prune", "isometry")
JSV_STATS = ("mean", "std", "min", "max")
JSV_COLUMNS = tuple(f"jsv_{stage}_{s}" for stage in JSV_STAGES for s in JSV_STATS)
JSV_EXAMPLES = tuple(f"jsv_{stage}_examples" for stage in JSV_STAGES)
SUMMARY = (("preset",) + KEYS + ("init", "ablation", "ablation_of", "trained", "density", "epochs", "max_steps",
                                 "eval_every", "final_acc", "best_acc", "final_loss", "collapsed", "diverged",
                                 "diverged_step", "layers", "isometry", "supervision", "meta_steps", "start",
                                 "options")
           + JSV_COLUMNS + JSV_EXAMPLES + ("jsv_examples", "source_note", "device", "cell_hash"))
TIMING_VALUES = ("prune_time_s", "prune_peak_mb", "train_time_s", "images_per_s")
TIMING = KEYS + ("init",) + TIMING_VALUES
LAYERS = KEYS + ("init", "layer_index", "layer", "numel", "kept", "density")
HISTORY = KEYS + ("init", "epoch", "step", "lr", "train_loss", "train_acc", "test_loss", "test_acc", "density")

# the loader's view: summary.csv with the timing values merged in
SUMMARY_COLUMNS = SUMMARY + TIMING_VALUES
LAYERS_COLUMNS = LAYERS
HISTORY_COLUMNS = HISTORY
REQUIRED = {
    "summary.csv": ("dataset", "model", "arm", "sparsity", "seed", "final_acc"),
    "layers.csv": ("dataset", "model", "arm", "sparsity", "seed", "layer_index", "density"),
    "history.csv": ("dataset", "model", "arm", "sparsity", "seed", "epoch", "density"),
}
NUMERIC = {
    "sparsity", "seed", "density", "epochs", "max_steps", "eval_every", "final_acc", "best_acc", "final_loss",
    "diverged_step", "train_time_s", "prune_time_s", "prune_peak_mb", "images_per_s", "collapsed", "layers",
    "meta_steps", "layer_index", "numel", "kept", "epoch", "step", "lr", "train_loss", "train_acc", "test_loss",
    "test_acc", "jsv_examples",
} | set(JSV_COLUMNS) | set(JSV_EXAMPLES)
_TEXT = ("dataset", "model", "arm", "method", "init", "ablation", "ablation_of", "start", "supervision",
         "source_note", "device", "preset", "layer", "cell_hash", "options")
FLAGS = ("isometry", "diverged", "trained")


def truthy(v) -> bool:
    if isinstance(v, str):
        return v.strip().lower() in ("true", "1", "yes")
    try:
        return bool(v) and not (isinstance(v, float) and math.isnan(v))
    except (TypeError, ValueError):
        return False


def tidy(df: pd.DataFrame, columns) -> pd.DataFrame:
    """Every schema column present (NaN where absent), numbers numeric, flags boolean, text as objects."""
    df = df.copy()
    for c in columns:
        if c not in df.columns:
            df[c] = np.nan
    for c in df.columns:
        if c in NUMERIC:
            df[c] = pd.to_numeric(df[c], errors="coerce")
    if "sparsity" in df.columns:
        df["sparsity"] = df["sparsity"].round(6)
    for c in FLAGS:
        if c in df.columns:  # a table from before the column existed: every cell was trained
            df[c] = df[c].map(truthy) if c != "trained" else df[c].map(lambda v: v is None or v != v or truthy(v))
    for c in _TEXT:
        if c in df.columns:
            df[c] = df[c].astype(object).where(df[c].notna(), None)
    return df.reset_index(drop=True)


@dataclass
class Results:
    """The three tidy tables of one or more result folders (empty frames where a table is absent)."""
    summary: pd.DataFrame
    layers: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=list(LAYERS_COLUMNS)))
    history: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=list(HISTORY_COLUMNS)))
    preset: str | None = None
    config: dict = field(default_factory=dict)   # the resolved preset (config.yaml beside the tables), if any

    def __post_init__(self):
        self.summary = tidy(self.summary, SUMMARY_COLUMNS)
        self.layers = tidy(self.layers, LAYERS_COLUMNS)
        self.history = tidy(self.history, HISTORY_COLUMNS)

    @functools.cached_property
    def arms(self) -> dict:
        """{arm name: prunebench.report.arms.Arm}, from the summary's columns, in display order."""
        return catalog(self.summary)


def read_table(path: Path, columns, required: bool) -> pd.DataFrame:
    if not path.exists():
        if required:
            raise PrunebenchError(f"missing results table {str(path)!r}")
        return pd.DataFrame(columns=list(columns))
    verify_checked_file(path)
    try:
        df = pd.read_csv(path)
    except pd.errors.EmptyDataError:
        return pd.DataFrame(columns=list(columns))
    except (pd.errors.ParserError, UnicodeDecodeError) as e:
        raise PrunebenchError(f"corrupt results table {str(path)!r}: {str(e).splitlines()[0]}") from None
    missing = [c for c in REQUIRED[path.name] if c not in df.columns]
    if missing:
        raise PrunebenchError(f"results table {str(path)!r} lacks column(s) {', '.join(missing)}")
    return df


def merge_timing(summary: pd.DataFrame, path: Path) -> pd.DataFrame:
    """Add the timing columns from timing.csv to the summary."""
    if not path.exists() or not len(summary):
        return summary
    verify_checked_file(path)
    try:
        tim = pd.read_csv(path)
    except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError) as e:
        raise PrunebenchError(f"corrupt results table {str(path)!r}: {str(e).splitlines()[0]}") from None
    keys = [k for k in KEYS + ("init",) if k in tim.columns and k in summary.columns]
    cols = [c for c in TIMING_VALUES if c in tim.columns]
    if not keys or not cols:
        return summary
    tim = tim[keys + cols].drop_duplicates(subset=keys)
    return summary.drop(columns=[c for c in cols if c in summary.columns]).merge(tim, on=keys, how="left")


def _cells(df: pd.DataFrame, cells: pd.DataFrame) -> pd.DataFrame:
    """The rows of `df` (layers/history) of the given cells; init is matched where both tables have it."""
    on = [c for c in CELL if c in df.columns and c in cells.columns
          and (c != "init" or df[c].notna().any())]
    return df.merge(cells[on].drop_duplicates(), on=on)


def read_config(results_dir) -> dict:
    """The resolved preset the pipeline wrote beside the tables (config.yaml), or {}."""
    p = Path(results_dir) / CONFIG_FILE
    if not p.is_file():
        return {}
    try:
        doc = yaml.safe_load(p.read_text())
    except yaml.YAMLError as e:
        raise PrunebenchError(f"corrupt preset copy {str(p)!r}: {str(e).splitlines()[0]}") from None
    return doc if isinstance(doc, dict) else {}


def load_results(results_dir, preset: str | None = None) -> Results:
    """Read summary.csv (required), layers.csv and history.csv (optional) from one folder or a list.

    With `preset`, rows whose `preset` column names another preset are dropped (summary only; the
    other tables are kept for the cells that remain)."""
    if isinstance(results_dir, Results):
        res = results_dir
    else:
        dirs = [results_dir] if isinstance(results_dir, (str, Path)) else list(results_dir)
        if not dirs:
            raise PrunebenchError("no results folder given")
        parts = {"summary": [], "layers": [], "history": []}
        config = read_config(dirs[0]) if len(dirs) == 1 else {}
        for d in dirs:
            d = Path(d)
            summary = read_table(d / "summary.csv", SUMMARY_COLUMNS, True)
            parts["summary"].append(merge_timing(summary, d / "timing.csv"))
            parts["layers"].append(read_table(d / "layers.csv", LAYERS_COLUMNS, False))
            parts["history"].append(read_table(d / "history.csv", HISTORY_COLUMNS, False))
        cat = {k: pd.concat([p for p in v if len(p)] or [v[0]], ignore_index=True) for k, v in parts.items()}
        res = Results(cat["summary"], cat["layers"], cat["history"], preset, config)
    if preset is not None and res.summary["preset"].notna().any():
        keep = res.summary["preset"].isna() | (res.summary["preset"] == preset)
        if not keep.all():  # layers/history carry no preset: keep the cells the summary keeps
            cells = res.summary.loc[keep]
            res = Results(res.summary[keep], _cells(res.layers, cells), _cells(res.history, cells), preset,
                          res.config)
    if preset is not None:
        res.preset = preset
    return res
