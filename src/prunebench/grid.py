"""Presets -> cells: load and validate a config (config/schema.yaml), expand its grid, name result paths.

A cell is one (dataset, model, init, arm, sparsity, seed) with everything needed to run it; its canonical
JSON has a content hash (`cell_hash`) that is recorded in masks and manifests. Paths stay readable:
    results/<preset>/<dataset>/<model>/<init>/<arm>/s<sparsity>/seed<seed>/
(the init level lets one preset compare init schemes, as SPP does; DESIGN.md's path plus one level).
"""
from __future__ import annotations

import ast
import copy
import functools
import hashlib
from pathlib import Path

import yaml

from prunebench.errors import PrunebenchError
from prunebench.io import canonical_json

REPO = Path(__file__).resolve().parents[2]
SCHEMA = REPO / "config" / "schema.yaml"
PACKAGE = Path(__file__).resolve().parent

AT_INIT = ("random", "magnitude", "snip", "grasp", "synflow", "iter_snip", "force", "prospr")
DURING = ("fggp", "gmp", "mfgn_annealed")
METHODS = ("dense",) + AT_INIT + DURING

# Seeds per concern, derived from the cell seed and all recorded (DESIGN.md "Determinism").
SEED_OFFSETS = {"init": 0, "data": 10_000, "prune": 20_000, "isometry": 30_000}


def seeds_for(seed: int) -> dict:
    return {k: int(seed) + off for k, off in SEED_OFFSETS.items()}


def load_config(path) -> dict:
    path = Path(path)
    if not path.exists():
        raise PrunebenchError(f"missing config file {str(path)!r}")
    try:
        cfg = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise PrunebenchError(f"config {str(path)!r} is not valid YAML: {str(e).splitlines()[0]}") from None
    validate(cfg, where=str(path))
    return cfg


def validate(cfg: dict, where: str = "config") -> dict:
    """JSON-schema validation plus cross-references; one-line error naming the bad key or value."""
    import jsonschema

    schema = yaml.safe_load(SCHEMA.read_text())
    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(cfg), key=lambda e: list(e.absolute_path))
    if errors:
        e = errors[0]
        loc = "/".join(str(p) for p in e.absolute_path) or "(top level)"
        msg = e.message
        if e.validator == "additionalProperties":
            msg = f"unknown key: {msg.split('(')[-1].rstrip(')')}"
        raise PrunebenchError(f"{where}: invalid config at {loc}: {msg}")
    arms = cfg["arms"]
    for name, arm in arms.items():
        if arm["method"] not in METHODS:
            raise PrunebenchError(f"{where}: arm {name!r} has unknown method {arm['method']!r}; "
                                  f"choose one of: {', '.join(METHODS)}")
    for i, block in enumerate(cfg["grid"]):
        for a in block["arms"]:
            if a not in arms:
                raise PrunebenchError(f"{where}: grid/{i} names unknown arm {a!r}; defined arms: {', '.join(arms)}")
    cells = expand(cfg)
    seen = {}
    for c in cells:
        p = cell_dir(c)
        if p in seen:
            raise PrunebenchError(f"{where}: two grid cells share the result path {p} (blocks overlap)")
        seen[p] = c
    return cfg


def fmt_sparsity(s: float) -> str:
    return format(float(s), "g")


def expand(cfg: dict) -> list:
    """All cells of the preset, in a fixed order (grid block, dataset, model, init, arm, sparsity, seed)."""
    cells = []
    preset = cfg["preset"]
    for block in cfg["grid"]:
        train = {**cfg.get("train", {}), **block.get("train", {})}
        pruning = {**cfg.get("pruning", {}), **block.get("pruning", {})}
        for init in block.get("inits", [cfg.get("init", "kaiming_normal")]):
            for arm_name in block["arms"]:
                arm = cfg["arms"][arm_name]
                method = arm["method"]
                sps = [0.0] if method == "dense" else block["sparsities"]
                for s in sps:
                    for seed in block["seeds"]:
                        cells.append({
                            "preset": preset, "dataset": block["dataset"], "model": block["model"],
                            "init": init, "arm": arm_name, "method": method, "sparsity": float(s),
                            "seed": int(seed), "options": copy.deepcopy(arm.get("options", {})),
                            "isometry": copy.deepcopy(arm.get("isometry")),
                            "jsv": bool(block.get("jsv", False) or arm.get("jsv", False)),
                            "train": {**train, **arm.get("train", {})}, "pruning": {**pruning, **arm.get("pruning", {})},
                            "seeds": seeds_for(seed),
                        })
    return cells


def cell_hash(cell: dict) -> str:
    return hashlib.sha256(canonical_json(cell).encode()).hexdigest()[:16]


def cell_dir(cell: dict, root="results") -> str:
    return (f"{root}/{cell['preset']}/{cell['dataset']}/{cell['model']}/{cell['init']}/{cell['arm']}/"
            f"s{fmt_sparsity(cell['sparsity'])}/seed{cell['seed']}")


def init_path(cell: dict, root="results") -> str:
    return f"{root}/{cell['preset']}/{cell['dataset']}/{cell['model']}/{cell['init']}/init/seed{cell['seed']}.safetensors"


# ------------------------------------------------------------------------------------------------------
# Source dependencies: which files of the package a step runs, so a code change reruns exactly that.

def module_file(module: str) -> Path:
    rel = module.split(".")[1:]
    p = PACKAGE.joinpath(*rel)
    return p / "__init__.py" if p.is_dir() else p.with_suffix(".py")


@functools.lru_cache(maxsize=None)
def _imported_modules(mod: str) -> tuple:
    """The prunebench modules `mod`'s source imports (anywhere in the file), parsed once per process."""
    f = module_file(mod)
    out = []
    if f.exists():
        tree = ast.parse(f.read_text())
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.ImportFrom) and node.module:
                base = node.module
                if node.level:  # relative import
                    pkg = mod.split(".") if f.name == "__init__.py" else mod.split(".")[:-1]
                    pkg = pkg[: len(pkg) - (node.level - 1)]
                    base = ".".join(pkg + ([node.module] if node.module else []))
                subs = [f"{base}.{a.name}" for a in node.names]
                names += [m for m in subs if module_file(m).exists()]
                # `from pkg import submodule` runs the package's __init__ too, but only the package root's
                # lazy attributes matter there, so the root (prunebench/__init__.py) is not followed.
                if len(names) < len(subs) or (base != "prunebench" and module_file(base).name != "__init__.py"):
                    names.append(base)
            elif isinstance(node, ast.Import):
                names += [a.name for a in node.names]
            out += [n for n in names if n.startswith("prunebench")]
    return tuple(out)


def module_closure(*modules: str) -> list:
    """The prunebench source files reachable from `modules` by import statements (sorted, repo-relative)."""
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


CLI_FILE = "src/prunebench/cli.py"
STEP_MODULES = {"data": ("prunebench.data",), "init": ("prunebench.init",),
                "prune": ("prunebench.init", "prunebench.data", "prunebench.signal"),
                "isometry": ("prunebench.signal", "prunebench.init", "prunebench.data"),
                "train": ("prunebench.train", "prunebench.data", "prunebench.init"), "aggregate": ("prunebench.aggregate",),
                "figure": ("prunebench.figures",), "report": ("prunebench.report", "prunebench.claims")}


# The module implementing each method (tests/test_grid.py checks it against the pruner registry); kept
# static so that the pipeline's code hashes need not import the pruners.
METHOD_MODULES = {"random": "prunebench.pruners.rand", "magnitude": "prunebench.pruners.magnitude",
                  "snip": "prunebench.pruners.snip", "grasp": "prunebench.pruners.grasp",
                  "synflow": "prunebench.pruners.synflow", "iter_snip": "prunebench.pruners.iterative",
                  "force": "prunebench.pruners.iterative", "prospr": "prunebench.pruners.prospr",
                  **{m: "prunebench.pruners.gradual" for m in DURING}, "dense": "prunebench.train"}


def method_module(method: str) -> str:
    """The module implementing `method` (its closure is what a prune job of that method runs)."""
    return METHOD_MODULES[method]


@functools.lru_cache(maxsize=None)
def step_sources(step: str, method: str | None = None) -> tuple:
    """The source files one pipeline step runs: the CLI file, the step's module closure and, for prune
    and train, the closure of the method's own module (not every pruner: a change to SNIP's file reruns the
    SNIP-based cells only). Declared as the step's inputs and hashed into its provenance key."""
    if step == "prune":
        mods = STEP_MODULES["prune"] + (method_module(method),)
        extra = ["src/prunebench/pruners/registry.py", "src/prunebench/pruners/__init__.py"]
    else:
        mods = STEP_MODULES[step] + ((method_module(method),) if step == "train" and method in DURING else ())
        extra = []
    return tuple(sorted(set(module_closure(*mods)) | {CLI_FILE} | set(extra)))


@functools.lru_cache(maxsize=None)
def step_code(step: str, method: str | None = None) -> str:
    return source_hash(step_sources(step, method))


# ------------------------------------------------------------------------------------------------------
# Provenance keys: a job's key hashes its own options and code and the keys of everything upstream, so
# a change anywhere reruns exactly the jobs downstream of it (the rules record keys as params and declare
# every input `ancient`: file times never matter, see profiles/default/config.yaml).

def prov_hash(*parts) -> str:
    return hashlib.sha256(canonical_json(list(parts)).encode()).hexdigest()[:16]


def data_key(cfg: dict, dataset: str) -> str:
    return prov_hash("data", step_code("data"), dataset, cfg.get("data_sources", {}).get(dataset))


def init_key(cfg: dict, c: dict) -> str:
    return prov_hash("init", step_code("init"), c["dataset"], c["model"], c["init"], c["seeds"]["init"])


def prune_key(cfg: dict, c: dict) -> str:
    return prov_hash("prune", init_key(cfg, c), data_key(cfg, c["dataset"]), step_code("prune", c["method"]), c["method"],
              c["options"], c["pruning"], c["sparsity"], c["seeds"]["prune"], c["jsv"])


def isometry_key(cfg: dict, c: dict) -> str:
    return prov_hash("isometry", prune_key(cfg, c), step_code("isometry"), c["isometry"], c["jsv"])


def train_key(cfg: dict, c: dict) -> str:
    if c["isometry"]:
        up = isometry_key(cfg, c)
    elif c["method"] in AT_INIT:
        up = prune_key(cfg, c)
    else:
        up = init_key(cfg, c)
    during = [c["method"], c["options"], c["sparsity"]] if c["method"] in DURING else None
    return prov_hash("train", up, data_key(cfg, c["dataset"]), step_code("train", c["method"]), c["train"],
              c["seeds"]["data"], cfg.get("val_fraction", 0.0), during)


def tables_key(cfg: dict) -> str:
    return prov_hash("tables", [train_key(cfg, c) for c in expand(cfg)], step_code("aggregate"))


# ------------------------------------------------------------------------------------------------------
# File times. Snakemake reruns a job whose input is newer than its output, and file times are arbitrary
# after `git clone` + `dvc pull` (anchors.md 4.4.1). Whether a result is current is decided by content
# instead (the provenance keys above, recorded as params), so before building the DAG the Snakefile sets
# every existing output of the preset to a fixed time that grows along the DAG. Times then never cause a
# rerun, while a job that must rerun still takes everything downstream with it.

SETTLED_EPOCH = 978307200  # 2001-01-01T00:00:00Z
CELL_RANKS = {"mask.safetensors": 3, "prune.json": 3, "prune_timing.json": 3, "weights_ai.safetensors": 4,
              "isometry.json": 4, "metrics.json": 5, "timing.json": 5, "manifest.json": 5,
              "checkpoint.safetensors": 5, "final_mask.safetensors": 5}
TABLE_FILES = ("summary.csv", "timing.csv", "layers.csv", "history.csv", "metrics.json", "config.yaml")


def output_ranks(cfg: dict, root: str = "results", figures_root: str = "figures", report: str | None = None) -> dict:
    """Every output path the preset can produce -> its depth in the DAG (1 = data ... 8 = report)."""
    preset = cfg["preset"]
    ranks = {}
    for c in expand(cfg):
        ranks[f"{root}/{preset}/data/{c['dataset']}.json"] = 1
        ranks[init_path(c, root)] = 2
        d = cell_dir(c, root)
        for name, r in CELL_RANKS.items():
            ranks[f"{d}/{name}"] = r
    for t in TABLE_FILES:
        ranks[f"{root}/{preset}/{t}"] = 6
    for name in cfg.get("figures", []):
        for ext in ("pdf", "png"):
            ranks[f"{figures_root}/{preset}/{name}.{ext}"] = 7
    ranks[report or f"paper/replication-{preset}.md"] = 8
    return ranks


def settle_times(cfg: dict, base: Path = Path("."), **kw) -> int:
    """Set each existing output of the preset to SETTLED_EPOCH + its DAG rank; returns how many were set."""
    import os

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
