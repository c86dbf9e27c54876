"""Presets -> cells: load and validate a preset (schema `prunebench/pipeline/schemas/preset.yaml`), expand its grid.

A cell is one (dataset, model, init, arm, sparsity, seed) with everything needed to run it; its canonical
JSON has a content hash (`cell_hash`) that is recorded in masks and manifests. Where its files live is
`prunebench.pipeline.paths`; what makes it rerun is `prunebench.pipeline.provenance`.

Validation happens before any work: the JSON schema, then every arm's method (the method table) and its
options (the method's typed `Options`), every grid block's arms, sparsities against the arms' options,
and the uniqueness of result paths. Every error is one line naming the bad key or value.
"""
from __future__ import annotations

import copy
import functools
import hashlib
from importlib import resources
from pathlib import Path

import yaml

from prunebench.library.datasets import DATASETS
from prunebench.library.errors import PrunebenchError
from prunebench.library.artifacts import canonical_json
from prunebench.library.methods import ABLATIONS as METHOD_ABLATIONS, METHODS, method_info
from prunebench.pipeline.paths import cell_dir

# Seeds per concern, derived from the cell seed and all recorded (one seed per concern).
SEED_OFFSETS = {"init": 0, "data": 10_000, "prune": 20_000, "isometry": 30_000, "reinit": 40_000}
# Sanity-check ablations of an at-init arm, `{of: <arm>, ablation: ...}`: the table in library/methods.py.
ABLATIONS = tuple(METHOD_ABLATIONS)


def seeds_for(seed: int) -> dict:
    return {k: int(seed) + off for k, off in SEED_OFFSETS.items()}


@functools.lru_cache(maxsize=None)
def schema() -> dict:
    """The preset schema, shipped inside the package (works from a checkout and from an installed wheel)."""
    s = yaml.safe_load(resources.files("prunebench.pipeline").joinpath("schemas/preset.yaml").read_text())
    s["properties"]["grid"]["items"]["properties"]["dataset"]["enum"] = list(DATASETS)  # the data-set table
    return s


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


def _check_schema(cfg, where):
    import jsonschema

    validator = jsonschema.Draft202012Validator(schema())
    errors = sorted(validator.iter_errors(cfg), key=lambda e: list(e.absolute_path))
    if errors:
        e = errors[0]
        loc = "/".join(str(p) for p in e.absolute_path) or "(top level)"
        msg = e.message
        if e.validator == "additionalProperties":
            msg = f"unknown key: {msg.split('(')[-1].rstrip(')')}"
        raise PrunebenchError(f"{where}: invalid config at {loc}: {msg}")


def check_arm_options(method: str, options: dict, sparsities=()) -> None:
    """Validate an arm's options with its method's typed Options (and, for pruning during training, the
    sparsities it will run at); a one-line PrunebenchError otherwise. Imports the method's module."""
    info = method_info(method)
    if info.at_init:
        from prunebench.library.pruners.registry import resolve_options

        resolve_options(method, options)
    elif info.during:
        from prunebench.library.pruners.during import make_during_training

        for s in sparsities or [0.0]:
            make_during_training(method, s, **options)
    elif options:
        raise PrunebenchError(f"method {method!r} takes no options, got {sorted(options)}")


def validate(cfg: dict, where: str = "config") -> dict:
    """Schema plus cross-references and option values; one-line error naming the bad key or value."""
    _check_schema(cfg, where)
    arms = cfg["arms"]
    for name, arm in arms.items():
        if ("method" in arm) == ("of" in arm):
            raise PrunebenchError(f"{where}: arm {name!r} needs exactly one of method or of (an ablation of an arm)")
        if "of" in arm:
            base = arms.get(arm["of"])
            if base is None or "method" not in base:
                raise PrunebenchError(f"{where}: arm {name!r} is an ablation of {arm['of']!r}, which is not an arm "
                                      f"with a method")
            if not method_info(base["method"]).at_init:
                raise PrunebenchError(f"{where}: arm {name!r}: ablations need a method pruning at initialization, "
                                      f"not {base['method']!r}")
            if arm.get("ablation") not in ABLATIONS:
                raise PrunebenchError(f"{where}: arm {name!r}: ablation must be one of {', '.join(ABLATIONS)}")
            if arm["ablation"] == "reinit" and base.get("isometry"):
                raise PrunebenchError(f"{where}: arm {name!r}: a reinit ablation of an arm with approximate isometry "
                                      "is not defined (isometry rewrites the pruned initialization)")
            continue
        if arm["method"] not in METHODS:
            raise PrunebenchError(f"{where}: arm {name!r} has unknown method {arm['method']!r}; "
                                  f"choose one of: {', '.join(METHODS)}")
    for i, block in enumerate(cfg["grid"]):
        for a in list(block["arms"]) + list(block.get("arm_options", {})) + list(block.get("arm_pruning", {})):
            if a not in arms:
                raise PrunebenchError(f"{where}: grid/{i} names unknown arm {a!r}; defined arms: {', '.join(arms)}")
        for a in block["arms"]:
            try:
                check_arm_options(arm_method(cfg, a), arm_options(cfg, block, a), block["sparsities"])
            except PrunebenchError as e:
                raise PrunebenchError(f"{where}: arm {a!r}{f' in grid/{i}' if a in block.get('arm_options', {}) else ''}: "
                                      f"{e}") from None
    seen = set()
    for c in expand(cfg):
        p = cell_dir(c)
        if p in seen:
            raise PrunebenchError(f"{where}: two grid cells share the result path {p} (blocks overlap)")
        seen.add(p)
    return cfg


def _base(cfg: dict, arm: str) -> str:
    return cfg["arms"][arm].get("of", arm)


def arm_method(cfg: dict, arm: str) -> str:
    return cfg["arms"][_base(cfg, arm)]["method"]


def arm_options(cfg: dict, block: dict, arm: str) -> dict:
    """An arm's method options in one grid block: the arm's own (an ablation's: its base arm's), updated by the
    block's `arm_options` (e.g. FORCE's num_batches per data set); shuffle and invert ablations add their
    pruning option."""
    base = _base(cfg, arm)
    out = {**copy.deepcopy(cfg["arms"][base].get("options", {})),
           **copy.deepcopy(block.get("arm_options", {}).get(base, {})),
           **copy.deepcopy(block.get("arm_options", {}).get(arm, {}))}
    ablation = cfg["arms"][arm].get("ablation")
    if ablation in ("shuffle", "invert"):
        out[ablation] = True
    return out


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
                base = cfg["arms"][_base(cfg, arm_name)]
                method = base["method"]
                sps = [0.0] if method == "dense" else block["sparsities"]
                for s in sps:
                    for seed in block["seeds"]:
                        cells.append({
                            "preset": preset, "dataset": block["dataset"], "model": block["model"],
                            "init": init, "arm": arm_name, "method": method, "sparsity": float(s),
                            "seed": int(seed), "options": arm_options(cfg, block, arm_name),
                            "isometry": copy.deepcopy(base.get("isometry")),
                            "jsv": bool(block.get("jsv", False) or base.get("jsv", False)),
                            "train": {**train, **base.get("train", {})},
                            "pruning": {**pruning, **base.get("pruning", {}),
                                        **block.get("arm_pruning", {}).get(_base(cfg, arm_name), {})},
                            "seeds": seeds_for(seed), "reinit": arm.get("ablation") == "reinit",
                        })
                        if block.get("trained") is False:  # a prune + JSV sweep cell (the key only then:
                            cells[-1]["trained"] = False  # other cells keep their hashes)
    return cells


def cell_hash(cell: dict) -> str:
    return hashlib.sha256(canonical_json(cell).encode()).hexdigest()[:16]
