"""What makes a pipeline job rerun: the provenance policy, explained once.

1. Content decides, never file times. Every job of the Snakemake DAG records a provenance *key* as a param:
   a hash of (a) its own options, (b) the source code its step runs (`step_code`), and (c) the keys of the
   jobs upstream of it. Snakemake's params trigger compares the recorded key with the current one, so a
   change to an option, to a source file a job runs, or to anything upstream reruns exactly the jobs
   downstream of it, and nothing else (editing the figures reruns no training).
2. File times never cause a rerun: source files are hashed into the key rather than declared as inputs,
   and before the DAG is built the main Snakemake process gives every output DVC restores (what a
   `dvc pull` writes under results/<preset>/ and figures/<preset>/) a fixed time that grows along the DAG
   (`settle_times`), so times after `git clone` or `dvc pull` are irrelevant while a job that must rerun
   still takes everything downstream with it. Git-tracked outputs (the report) are never touched.
3. The code a step runs is declared, in `STEPS` below: the project modules its jobs import, named once per
   step, whatever the place of the import statements in the code. `tests/test_provenance.py` runs every
   step (data, init, prune with every method, isometry, train dense / with a mask / with every method
   pruning during training, aggregate, every figure, the report) under an import tracer and fails on any
   project module a job imports that its step does not declare, and on any declaration no job uses.
   The packages above a module (their `__init__.py` runs on import) are added, not declared.
4. One exception, by design: the method table (`prunebench.library.methods`) loads each method's module
   by name when a job first uses it, so a step declares the *kind* of method whose module its jobs run
   (`method_kind`), and a job's code is its step's modules plus the module of its own method: a change to
   SNIP's file reruns the SNIP cells only. A method whose module lives outside this package (a plugin) is
   hashed the same way, from the file its module is loaded from.
"""
from __future__ import annotations

import functools
import hashlib
import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path

from prunebench.library.artifacts import canonical_json
from prunebench.library.errors import PrunebenchError
from prunebench.library.methods import AT_INIT_KIND, DURING_KIND, METHODS, method_info
from prunebench.pipeline.grid import expand
from prunebench.pipeline.paths import (CELL_FILES, RESOLVED_CONFIG, RUN_RECORD, TABLE_FILES, cell_dir, data_manifest, figure_path,
                                       init_path, table_path, train_init_path)

PACKAGE = Path(__file__).resolve().parents[1]
REPO = PACKAGE.parents[1]  # the checkout (src/prunebench/..): files are named relative to it


@dataclass(frozen=True)
class Step:
    """One pipeline step: the `prunebench` command its jobs run and the project modules that command runs.

    `modules` are module names; `name.*` stands for the package `name` and every module under it.
    `method_kind`: a job whose method is of this kind also runs that method's module (the method table's
    `module`) and `method_modules`. `every_method`: a job may load any method's module (it validates a
    preset's arms)."""
    command: str
    modules: tuple
    method_kind: str | None = None
    method_modules: tuple = ()
    every_method: bool = False


# What every command runs: the dispatcher, the argument helpers, the errors every command reports through (a
# missing optional dependency included).
COMMON = ("prunebench.cli", "prunebench.cli.args", "prunebench.library.errors", "prunebench.library.extras",
          "prunebench.library.limits")
_DATA = ("prunebench.library.data.*", "prunebench.library.datasets")
_MODEL = ("prunebench.library.artifacts", "prunebench.library.init", "prunebench.library.models",
          "prunebench.library.runtime")
_TRAINING = ("prunebench.library.training.*", "prunebench.library.masks", "prunebench.library.methods")
# The report wing's tables and its package data (claim files), what figures and the report read.
_REPORT = ("prunebench.report.arms", "prunebench.report.papers", "prunebench.report.tables",
           "prunebench.report.resources", "prunebench.library.resources", "prunebench.library.artifacts",
           "prunebench.library.datasets", "prunebench.library.methods")

STEPS = {s.command: s for s in (
    Step("data", ("prunebench.cli.data", "prunebench.library.artifacts") + _DATA),
    Step("init", ("prunebench.cli.init", "prunebench.library.datasets") + _MODEL),
    Step("prune", ("prunebench.cli.prune", "prunebench.library.masks", "prunebench.library.methods",
                   "prunebench.library.pruners.registry", "prunebench.library.pruners.base",
                   "prunebench.library.pruners.scoring", "prunebench.library.pruners.topk",
                   "prunebench.library.schedules", "prunebench.library.signalprop") + _DATA + _MODEL,
         method_kind=AT_INIT_KIND),
    Step("isometry", ("prunebench.cli.isometry", "prunebench.library.masks", "prunebench.library.signalprop")
         + _DATA + _MODEL),
    Step("train", ("prunebench.cli.train", "prunebench.library.train") + _TRAINING + _DATA + _MODEL,
         method_kind=DURING_KIND,
         method_modules=("prunebench.library.pruners.during", "prunebench.library.pruners.base",
                         "prunebench.library.pruners.erk", "prunebench.library.pruners.scoring",
                         "prunebench.library.pruners.topk", "prunebench.library.schedules")),
    # The aggregation validates the preset (every arm's options, the training configs, the models) before it
    # reads the cells: it runs the pruners' option classes and the trainer's config, not the figures.
    Step("aggregate", ("prunebench.cli.aggregate", "prunebench.pipeline.aggregate", "prunebench.pipeline.grid",
                       "prunebench.pipeline.paths", "prunebench.pipeline.resources", "prunebench.library.train",
                       "prunebench.library.pruners.registry", "prunebench.library.pruners.base",
                       "prunebench.library.pruners.during", "prunebench.library.pruners.erk",
                       "prunebench.library.pruners.scoring", "prunebench.library.pruners.topk",
                       "prunebench.library.schedules", "prunebench.library.resources", "prunebench.report.arms",
                       "prunebench.report.papers", "prunebench.report.tables") + _TRAINING + _DATA + _MODEL,
         every_method=True),
    Step("figure", ("prunebench.cli.figure", "prunebench.report.figures.*", "prunebench.report.claims.*",
                    "prunebench.report.outcomes", "prunebench.report.stats", "prunebench.library.schedules")
         + _REPORT),
    Step("report", ("prunebench.cli.report", "prunebench.pipeline.paths", "prunebench.report.claims.*",
                    "prunebench.report.data",
                    "prunebench.report.figures.*", "prunebench.report.markdown", "prunebench.report.outcomes",
                    "prunebench.report.replication", "prunebench.report.sections", "prunebench.report.stats",
                    "prunebench.library.schedules") + _REPORT),
)}


def module_file(module: str) -> Path:
    """The source file of a module: found in this package without importing anything, elsewhere (a plugin
    method's module) where the import system would load it from."""
    if module == "prunebench" or module.startswith("prunebench."):
        p = PACKAGE.joinpath(*module.split(".")[1:])
        f = p / "__init__.py" if p.is_dir() else p.with_suffix(".py")
    else:
        try:
            spec = importlib.util.find_spec(module)
        except (ImportError, ValueError):  # a missing parent package, an invalid name
            spec = None
        f = Path(spec.origin) if spec is not None and spec.origin else None
    if f is None or not f.is_file():
        raise PrunebenchError(f"no source file for module {module!r} (named by a step of the pipeline's provenance)")
    return f


def _expand(entry: str) -> list:
    """A declared entry -> module names (`pkg.*`: the package and every module under it)."""
    if not entry.endswith(".*"):
        return [entry]
    pkg = entry[:-2]
    folder = module_file(pkg).parent
    out = []
    for f in sorted(folder.rglob("*.py")):
        parts = f.relative_to(folder).with_suffix("").parts
        out.append(".".join((pkg, *(parts[:-1] if parts[-1] == "__init__" else parts))))
    return out


def _with_packages(modules) -> set:
    """The modules and every package above them (a package's __init__ runs when a module in it is imported)."""
    out = set()
    for m in modules:
        parts = m.split(".")
        out.update(".".join(parts[:i]) for i in range(1, len(parts) + 1))
    return out


def job_method(step: str, method: str | None) -> str | None:
    """The method whose module a job of `step` with `method` runs besides its step's modules (None: none)."""
    if method is None or STEPS[step].method_kind is None:
        return None
    return method if method_info(method).kind == STEPS[step].method_kind else None


@functools.lru_cache(maxsize=None)
def step_modules(step: str, method: str | None = None) -> tuple:
    """Every project module a job of `step` (with `method`) runs, packages included, sorted."""
    s = STEPS[step]
    declared = [m for e in COMMON + s.modules for m in _expand(e)]
    if job_method(step, method) is not None:
        declared += list(s.method_modules) + [METHODS[method].module]
    if s.every_method:
        declared += [m.module for m in METHODS.values()]
    return tuple(sorted(_with_packages(declared)))


def _display(f: Path) -> str:
    return str(f.relative_to(REPO)) if f.is_relative_to(REPO) else str(f)


@functools.lru_cache(maxsize=None)
def step_sources(step: str, method: str | None = None) -> tuple:
    """The source files a job of `step` (with `method`) runs: relative to the checkout, absolute outside it."""
    return tuple(sorted({_display(module_file(m)) for m in step_modules(step, method)}))


@functools.lru_cache(maxsize=None)
def step_code(step: str, method: str | None = None) -> str:
    """The hash of the code a job of `step` (with `method`) runs: each module's name and file content."""
    h = hashlib.sha256()
    for m in step_modules(step, method):
        h.update(m.encode() + b"\0" + module_file(m).read_bytes() + b"\0")
    return h.hexdigest()[:16]


def source_hash(files) -> str:
    """The hash of files named relative to the checkout (the claims the report checks)."""
    h = hashlib.sha256()
    for f in sorted(files):
        h.update(f.encode() + b"\0" + (REPO / f).read_bytes())
    return h.hexdigest()[:16]


# ------------------------------------------------------------------------------------------------------
# Provenance keys: a job's key hashes its own options and code and the keys of everything upstream.

def prov_hash(*parts) -> str:
    return hashlib.sha256(canonical_json(list(parts)).encode()).hexdigest()[:16]


def data_key(cfg: dict, dataset: str) -> str:
    return prov_hash("data", step_code("data"), dataset, cfg.get("data_sources", {}).get(dataset))


def init_key(cfg: dict, c: dict, concern: str = "init") -> str:
    return prov_hash("init", step_code("init"), c["dataset"], c["model"], c["init"], c["seeds"][concern])


def prune_key(cfg: dict, c: dict) -> str:
    return prov_hash("prune", init_key(cfg, c), data_key(cfg, c["dataset"]), step_code("prune", c["method"]),
                     c["method"], c["options"], c["pruning"], c["sparsity"], c["seeds"]["prune"], c["jsv"])


def isometry_key(cfg: dict, c: dict) -> str:
    return prov_hash("isometry", prune_key(cfg, c), step_code("isometry"), c["isometry"], c["jsv"],
                     c["pruning"].get("jsv_examples") if c["jsv"] else None)


def train_key(cfg: dict, c: dict) -> str:
    info = method_info(c["method"])
    if c["isometry"]:
        up = isometry_key(cfg, c)
    elif info.at_init:
        up = [prune_key(cfg, c), init_key(cfg, c, "reinit") if c.get("reinit") else None]
    else:
        up = init_key(cfg, c)
    during = [c["method"], c["options"], c["sparsity"]] if info.during else None
    return prov_hash("train", up, data_key(cfg, c["dataset"]), step_code("train", c["method"]), c["train"],
                     c["seeds"]["data"], cfg.get("val_fraction", 0.0), during)


def tables_key(cfg: dict) -> str:
    return prov_hash("tables", [train_key(cfg, c) for c in expand(cfg)], step_code("aggregate"))


def figure_key(cfg: dict, name: str) -> str:
    return prov_hash("figure", tables_key(cfg), step_code("figure"), name)


def report_key(cfg: dict) -> str:
    return prov_hash("report", tables_key(cfg), step_code("report"), step_code("figure"))


# ------------------------------------------------------------------------------------------------------
# File times (point 2 above).

SETTLED_EPOCH = 978307200  # 2001-01-01T00:00:00Z


def output_ranks(cfg: dict, root: str = "results", figures_root: str = "figures") -> dict:
    """Every output of the preset that DVC versions and `dvc pull` restores (under results/<preset>/ and
    figures/<preset>/) -> its depth in the DAG (1 = data ... 7 = figures). The report and its copies of the
    figures are git-tracked (dvc.yaml: `cache: false`) and are not among them."""
    preset = cfg["preset"]
    ranks = {}
    for c in expand(cfg):
        ranks[data_manifest(preset, c["dataset"], root)] = 1
        ranks[init_path(c, root)] = 2
        ranks[train_init_path(c, root)] = 2
        d = cell_dir(c, root)
        for name, r in CELL_FILES.items():
            ranks[f"{d}/{name}"] = r
    for t in TABLE_FILES + (RESOLVED_CONFIG, RUN_RECORD):
        ranks[table_path(preset, t, root)] = 6
    for name in cfg.get("figures", []):
        for ext in ("pdf", "png"):
            ranks[figure_path(preset, name, ext, figures_root)] = 7
    return ranks


def settle_times(cfg: dict, base: Path = Path("."), **kw) -> int:
    """Set each existing output DVC restores (`output_ranks`) to SETTLED_EPOCH + its DAG rank; returns how
    many exist. Files already at their time are left alone; nothing else is touched."""
    n = 0
    for rel, rank in output_ranks(cfg, **kw).items():
        p = base / rel
        t = SETTLED_EPOCH + rank
        try:
            st = p.stat()
        except FileNotFoundError:
            continue
        if st.st_mtime != t:
            os.utime(p, (t, t))
        n += 1
    return n
