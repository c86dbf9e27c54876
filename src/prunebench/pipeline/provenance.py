"""What makes a pipeline job rerun: the provenance policy, explained once.

1. Content decides, never file times. Every job of the Snakemake DAG records a provenance *key* as a param:
   a hash of (a) its own options, (b) the source files it runs (`step_sources`: the CLI module of its step
   and everything that module imports, plus the module of the method the job runs), and (c) the keys of the
   jobs upstream of it. Snakemake's params trigger compares the recorded key with the current one, so a
   change to an option, to a source file a job runs, or to anything upstream reruns exactly the jobs
   downstream of it, and nothing else (editing the `report` command reruns no training).
2. File times never cause a rerun: source files are hashed into the key rather than declared as inputs,
   and before the DAG is built the main Snakemake process sets every existing output of the preset to a
   fixed time that grows along the DAG (`settle_times`), so times after `git clone` or `dvc pull` are
   irrelevant while a job that must rerun still takes everything downstream with it.
3. The source files a step runs are found by reading import statements (`module_closure`): a module's
   imports anywhere in its file, and the `__init__.py` of every package on its path (they run on import).
   Methods are imported by name through the method table at run time (`importlib`), which import statements
   cannot show, so `step_sources` adds the module of the job's method explicitly: a change to SNIP's file
   reruns the SNIP cells only. `tests/test_provenance.py` runs real steps and checks that every prunebench
   file they import is declared.
"""
from __future__ import annotations

import ast
import functools
import hashlib
import os
from pathlib import Path

from prunebench.pipeline.grid import expand
from prunebench.library.artifacts import canonical_json
from prunebench.library.methods import METHODS, method_info
from prunebench.pipeline.paths import (CELL_FILES, RESOLVED_CONFIG, TABLE_FILES, cell_dir, data_manifest, figure_path, init_path,
                              report_figure_path, report_path, table_path, train_init_path)

PACKAGE = Path(__file__).resolve().parents[1]
ROOT = PACKAGE.parent  # src/ in a checkout: paths are reported relative to the checkout
REPO = ROOT.parent

# The CLI module of each pipeline step (its import closure is what the step runs).
STEP_MODULES = {step: f"prunebench.cli.{step}" for step in
                ("data", "init", "prune", "isometry", "train", "aggregate", "figure", "report")}
# Every command starts here: `python -m prunebench` -> the dispatcher -> the step's module.
ENTRY_MODULES = ("prunebench.__main__", "prunebench.cli")


def module_file(module: str) -> Path:
    rel = module.split(".")[1:]
    p = PACKAGE.joinpath(*rel)
    return p / "__init__.py" if p.is_dir() else p.with_suffix(".py")


def _exists(mod: str) -> bool:
    return mod.startswith("prunebench") and module_file(mod).exists()


def _parents(mod: str) -> list:
    """The packages whose __init__ runs when `mod` is imported."""
    parts = mod.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


@functools.lru_cache(maxsize=None)
def _imported_modules(mod: str) -> tuple:
    """The prunebench modules `mod`'s source imports (anywhere in the file), parsed once per process."""
    f = module_file(mod)
    is_pkg = f.name == "__init__.py"
    out = _parents(mod)
    for node in ast.walk(ast.parse(f.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative import
                pkg = mod.split(".") if is_pkg else mod.split(".")[:-1]
                pkg = pkg[: len(pkg) - (node.level - 1)]
                base = ".".join(pkg + ([node.module] if node.module else []))
            out.append(base)
            out += [f"{base}.{a.name}" for a in node.names if _exists(f"{base}.{a.name}")]
        elif isinstance(node, ast.Import):
            out += [a.name for a in node.names]
    return tuple(m for m in out if _exists(m))


def module_closure(*modules: str) -> list:
    """The prunebench source files reachable from `modules` by import statements and package __init__
    files (sorted, relative to the checkout)."""
    todo, seen = list(modules), set()
    while todo:
        mod = todo.pop()
        f = module_file(mod)
        if not f.exists() or f in seen:
            continue
        seen.add(f)
        todo += _imported_modules(mod)
    return sorted(str(p.relative_to(REPO)) for p in seen)


def source_hash(files) -> str:
    h = hashlib.sha256()
    for f in sorted(files):
        h.update(f.encode() + b"\0" + (REPO / f).read_bytes())
    return h.hexdigest()[:16]


def job_method(step: str, method: str | None) -> str | None:
    """The method whose module a job of `step` imports at run time (None: none)."""
    if method is None:
        return None
    info = method_info(method)
    if step == "prune" and info.at_init:
        return method
    if step == "train" and info.during:
        return method
    return None


@functools.lru_cache(maxsize=None)
def step_sources(step: str, method: str | None = None) -> tuple:
    """The source files one pipeline step runs: the entry point, the step's CLI module closure and, for a
    prune job of an at-init method or a train job of a during-training method, the closure of that method's
    module (not every method's). Declared as the step's inputs and hashed into its provenance key."""
    mods = ENTRY_MODULES + (STEP_MODULES[step],)
    m = job_method(step, method)
    if m is not None:
        mods += (METHODS[m].module,)
    return tuple(module_closure(*mods))


@functools.lru_cache(maxsize=None)
def step_code(step: str, method: str | None = None) -> str:
    return source_hash(step_sources(step, method))


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


def output_ranks(cfg: dict, root: str = "results", figures_root: str = "figures", report: str | None = None) -> dict:
    """Every output path the preset can produce -> its depth in the DAG (1 = data ... 8 = report)."""
    preset = cfg["preset"]
    ranks = {}
    for c in expand(cfg):
        ranks[data_manifest(preset, c["dataset"], root)] = 1
        ranks[init_path(c, root)] = 2
        ranks[train_init_path(c, root)] = 2
        d = cell_dir(c, root)
        for name, r in CELL_FILES.items():
            ranks[f"{d}/{name}"] = r
    for t in TABLE_FILES + (RESOLVED_CONFIG,):
        ranks[table_path(preset, t, root)] = 6
    for name in cfg.get("figures", []):
        for ext in ("pdf", "png"):
            ranks[figure_path(preset, name, ext, figures_root)] = 7
        ranks[report_figure_path(preset, name)] = 8
    ranks[report or report_path(preset)] = 8
    return ranks





def settle_times(cfg: dict, base: Path = Path("."), **kw) -> int:
    """Set each existing output of the preset to SETTLED_EPOCH + its DAG rank; returns how many were set."""
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
