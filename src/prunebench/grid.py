"""Presets -> cells: load and validate a config (config/schema.yaml), expand its grid, name result paths.

A cell is one (dataset, model, init, arm, sparsity, seed) with everything needed to run it; its canonical
JSON has a content hash (`cell_hash`) that is recorded in masks and manifests. Paths stay readable:
    results/<preset>/<dataset>/<model>/<init>/<arm>/s<sparsity>/seed<seed>/
(the init level lets one preset compare init schemes, as SPP does; DESIGN.md's path plus one level).
"""
from __future__ import annotations

import ast
import copy
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
                            "train": {**train, **arm.get("train", {})}, "pruning": pruning,
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


def module_closure(*modules: str) -> list:
    """The prunebench source files reachable from `modules` by import statements (sorted, repo-relative)."""
    todo, seen = list(modules), set()
    while todo:
        mod = todo.pop()
        f = module_file(mod)
        if not f.exists() or f in seen:
            continue
        seen.add(f)
        if f.name == "__init__.py" and mod != "prunebench":
            pass
        tree = ast.parse(f.read_text())
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.ImportFrom) and node.module:
                base = node.module
                if node.level:  # relative import
                    pkg = mod.split(".") if f.name == "__init__.py" else mod.split(".")[:-1]
                    pkg = pkg[: len(pkg) - (node.level - 1)]
                    base = ".".join(pkg + ([node.module] if node.module else []))
                names.append(base)
                names += [f"{base}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                names += [a.name for a in node.names]
            todo += [n for n in names if n.startswith("prunebench")]
    return sorted(str(p.relative_to(REPO)) for p in seen)


def source_hash(files) -> str:
    h = hashlib.sha256()
    for f in sorted(files):
        h.update(f.encode() + b"\0" + (REPO / f).read_bytes())
    return h.hexdigest()[:16]


def method_module(method: str) -> str:
    if method in DURING:
        return "prunebench.pruners.gradual"
    if method == "dense":
        return "prunebench.train"
    try:
        from prunebench.pruners import method_module as mm  # provided by the pruner registry

        return mm(method)
    except ImportError:
        return "prunebench.pruners"
