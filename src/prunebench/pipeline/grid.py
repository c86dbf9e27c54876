"""Presets -> cells: load and validate a preset (schema `prunebench/pipeline/schemas/preset.yaml`), expand its grid.

A cell is one (dataset, model, init, arm, sparsity, seed) with everything needed to run it; its canonical
JSON has a content hash (`cell_hash`) that is recorded in masks and manifests. Where its files live is
`prunebench.pipeline.paths`; what makes it rerun is `prunebench.pipeline.provenance`.

Validation (`validate`; `prunebench grid` and the Snakefile run it before any job) checks every value of a
preset, so that nothing fails after hours of work for a reason that was in the preset from the start:
1. its size: at most `MAX_PRESET_NODES` values once YAML aliases are expanded (an alias bomb is refused
   before anything walks it), nested at most `MAX_DEPTH` deep, only JSON values (a YAML date is not one),
   every number finite (NaN and infinities are refused wherever they appear);
2. the JSON schema, whose enums and bounds come from the tables (data sets, init schemes, ablations) and
   from `prunebench.library.limits` (epochs, steps, batch sizes, threads, resources, seeds);
3. every arm, used or not: its method (the method table), its typed options (the method's `Options`), its
   training options (`TrainConfig`, merged as the cells merge them); sanity-check ablations of at-init arms;
4. every grid block: its arms, its model for its data set (built on the meta device: no memory, no time),
   each init scheme for that model, each sparsity (its path name must read back as the same number, and it
   must keep at least one weight per prunable layer unless collapse is allowed);
5. the names the report needs: figures (the figure registry), claims and replication blocks (the paper
   table, and a claims file in `paper/reference/` where the checkout has one);
6. the cells: at most `MAX_CELLS`, and no two sharing a result path.
Every error is one line naming the bad key or value.
"""
from __future__ import annotations

import copy
import functools
import hashlib
import math
from importlib import resources
from pathlib import Path

import jsonschema
import yaml

from prunebench.library import limits
from prunebench.library.artifacts import canonical_json
from prunebench.library.datasets import DATASETS
from prunebench.library.errors import PrunebenchError
from prunebench.library.methods import ABLATIONS as METHOD_ABLATIONS, METHODS, method_info
from prunebench.pipeline.paths import cell_dir, fmt_sparsity
from prunebench.pipeline.resources import preset_file
from prunebench.report.papers import PAPERS

# Seeds per concern, derived from the cell seed and all recorded (one seed per concern).
SEED_OFFSETS = {"init": 0, "data": 10_000, "prune": 20_000, "isometry": 30_000, "reinit": 40_000}
# Sanity-check ablations of an at-init arm, `{of: <arm>, ablation: ...}`: the table in library/methods.py.
ABLATIONS = tuple(METHOD_ABLATIONS)
# A cell seed plus its largest offset names an init file `seed<n>.safetensors` that the rules match with at
# most 9 digits (rules/common.smk's seed wildcard).
MAX_CELL_SEED = 10**9 - 1 - max(SEED_OFFSETS.values())
MAX_PRESET_BYTES = 1 << 20      # a preset file
MAX_PRESET_NODES = 20_000       # values after alias expansion (the paper presets have about 250)
MAX_DEPTH = 32                  # nesting
MAX_CELLS = 100_000             # cells of one preset (the largest paper preset has 849)
ARM_NAME = r"^[A-Za-z0-9_]{1,64}$"  # as the rules' arm wildcard
CHECKOUT = Path(__file__).resolve().parents[3]  # the repository root, in a checkout (claims files)


def seeds_for(seed: int) -> dict:
    return {k: int(seed) + off for k, off in SEED_OFFSETS.items()}


# Bounds the schema takes from prunebench.library.limits: ($defs or property path, field) -> maximum.
_MAXIMA = {
    ("$defs", "train", "epochs"): limits.MAX_EPOCHS, ("$defs", "train", "batch_size"): limits.MAX_BATCH,
    ("$defs", "train", "eval_batch_size"): limits.MAX_BATCH, ("$defs", "train", "steps_per_epoch"): limits.MAX_STEPS,
    ("$defs", "train", "max_steps"): limits.MAX_STEPS, ("$defs", "train", "eval_every"): limits.MAX_STEPS,
    ("$defs", "pruning", "batch_size"): limits.MAX_BATCH, ("$defs", "pruning", "jsv_examples"): limits.MAX_EXAMPLES,
    ("$defs", "pruning", "samples_per_class"): limits.MAX_PER_CLASS, ("$defs", "resources", "gpu"): limits.MAX_GPUS,
    ("$defs", "resources", "mem_mb"): limits.MAX_MEM_MB, ("$defs", "resources", "runtime"): limits.MAX_RUNTIME_MIN,
}


@functools.lru_cache(maxsize=None)
def schema() -> dict:
    """The preset schema, shipped inside the package (works from a checkout and from an installed wheel), with
    its enums filled from the name tables and its maxima from `prunebench.library.limits`."""
    from prunebench.library.init import SCHEMES  # torch: only when a preset is validated, not on import

    s = yaml.safe_load(resources.files("prunebench.pipeline").joinpath("schemas/preset.yaml").read_text())
    props, block = s["properties"], s["properties"]["grid"]["items"]["properties"]
    block["dataset"]["enum"] = list(DATASETS)
    block["inits"]["items"]["enum"] = list(SCHEMES)
    block["seeds"]["items"]["maximum"] = MAX_CELL_SEED
    props["init"]["enum"] = list(SCHEMES)
    props["threads"]["maximum"] = limits.MAX_THREADS
    props["arms"]["propertyNames"] = {"pattern": ARM_NAME}
    arm = props["arms"]["additionalProperties"]["properties"]
    arm["ablation"]["enum"] = list(ABLATIONS)
    arm["isometry"]["properties"]["steps"]["maximum"] = limits.MAX_ISOMETRY_STEPS
    for (_, group, name), hi in _MAXIMA.items():
        s["$defs"][group]["properties"][name]["maximum"] = hi
    return s


def load_config(path, report_names: bool = True) -> dict:
    """Read and validate a preset file (a path, or a preset by name: "smoke" is the shipped preset); every
    problem is a one-line PrunebenchError. `report_names=False` leaves out the figure and claim names (the
    aggregation reads a preset the Snakefile validated in full, and does not run the report wing)."""
    path = preset_file(path)
    if not path.exists():
        raise PrunebenchError(f"missing config file {str(path)!r}")
    if path.is_dir():
        raise PrunebenchError(f"config {str(path)!r} is a folder, not a preset file")
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise PrunebenchError(f"cannot read config {str(path)!r}: {e.strerror or e}") from None
    if len(raw) > MAX_PRESET_BYTES:
        raise PrunebenchError(f"config {str(path)!r} is {len(raw)} bytes; a preset is at most {MAX_PRESET_BYTES}")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise PrunebenchError(f"config {str(path)!r} is not UTF-8 text: byte {raw[e.start]:#04x} at offset "
                              f"{e.start}") from None
    try:
        cfg = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise PrunebenchError(f"config {str(path)!r} is not valid YAML: {str(e).splitlines()[0]}") from None
    except RecursionError:
        raise PrunebenchError(f"config {str(path)!r} is nested too deeply") from None
    validate(cfg, where=str(path), report_names=report_names)
    return cfg


def _loc(path) -> str:
    return "/".join(map(str, path)) or "(top level)"


def _check_tree(cfg, where) -> None:
    """Point 1 of the module docstring, without recursion and stopping at the first excess: a YAML alias
    bomb (aliases that expand exponentially, or an alias that contains itself) is refused after at most
    MAX_PRESET_NODES steps instead of exhausting the memory of whatever walks or serialises it."""
    budget = MAX_PRESET_NODES
    stack = [(cfg, ())]

    def too_big(path):
        return PrunebenchError(f"{where}: the preset expands to more than {MAX_PRESET_NODES} values (at {_loc(path)}: "
                               f"YAML aliases that expand exponentially, or one that contains itself?); a preset is at "
                               f"most that big")

    while stack:
        node, path = stack.pop()
        budget -= 1
        if budget < 0:
            raise too_big(path)
        if len(path) > MAX_DEPTH:
            raise PrunebenchError(f"{where}: invalid config at {_loc(path[:MAX_DEPTH])}/...: nested more than "
                                  f"{MAX_DEPTH} deep")
        if isinstance(node, dict):
            if len(node) > budget:
                raise too_big(path)
            for k, v in node.items():
                if not isinstance(k, str):
                    raise PrunebenchError(f"{where}: invalid config at {_loc(path)}: key {k!r} is not a string")
                stack.append((v, path + (k,)))
        elif isinstance(node, list):
            if len(node) > budget:
                raise too_big(path)
            stack.extend((v, path + (i,)) for i, v in enumerate(node))
        elif isinstance(node, float):
            if not math.isfinite(node):
                raise PrunebenchError(f"{where}: invalid config at {_loc(path)}: {node!r} is not a finite number")
        elif not (node is None or isinstance(node, (str, int, bool))):
            raise PrunebenchError(f"{where}: invalid config at {_loc(path)}: a {type(node).__name__} is not a "
                                  f"preset value (quote it if it is text)")


def _integer_checker():
    """The schema's "integer": a whole number written as one (1e12 or 5.0 is a float here; the command lines
    that the rules build from it take integers only)."""
    base = jsonschema.Draft202012Validator
    checker = base.TYPE_CHECKER.redefine(
        "integer", lambda _, v: isinstance(v, int) and not isinstance(v, bool))
    return jsonschema.validators.extend(base, type_checker=checker)


def _check_schema(cfg, where):
    validator = _integer_checker()(schema())
    errors = sorted(validator.iter_errors(cfg), key=lambda e: list(e.absolute_path))
    if errors:
        e = errors[0]
        loc = _loc(e.absolute_path)
        msg = e.message
        if e.validator == "additionalProperties":
            msg = f"unknown key: {msg.split('(')[-1].rstrip(')')}"
        elif e.validator == "enum" and len(e.validator_value) > 3:
            msg = f"{e.instance!r} is not one of {', '.join(map(str, e.validator_value))}"
        raise PrunebenchError(f"{where}: invalid config at {loc}: {msg}")


def check_arm_options(method: str, options: dict, sparsities=()) -> None:
    """Validate an arm's options with its method's typed Options (and, for pruning during training, the
    sparsities it will run at); a one-line PrunebenchError otherwise. Imports the method's module."""
    info = method_info(method)
    if info.at_init:
        from prunebench.library.pruners.registry import resolve_options  # torch: only when a preset is validated

        resolve_options(method, options)
    elif info.during:
        from prunebench.library.pruners.during import make_during_training  # torch, as above

        for s in sparsities or [0.0]:
            make_during_training(method, s, **options)
    elif options:
        raise PrunebenchError(f"method {method!r} takes no options, got {sorted(options)}")


def _check_arms(cfg, where) -> None:
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


def _check_options(cfg, where) -> None:
    """Every arm's options: those of the arms a block runs with its overrides and sparsities, and those of
    the arms no block runs (at the preset's largest sparsity): a typo in an unused arm is still a typo."""
    used = set()
    all_sparsities = [s for b in cfg["grid"] for s in b["sparsities"]]
    for i, block in enumerate(cfg["grid"]):
        for a in list(block["arms"]) + list(block.get("arm_options", {})) + list(block.get("arm_pruning", {})):
            if a not in cfg["arms"]:
                raise PrunebenchError(f"{where}: grid/{i} names unknown arm {a!r}; defined arms: {', '.join(cfg['arms'])}")
        for a in block["arms"]:
            used.add(a)
            try:
                check_arm_options(arm_method(cfg, a), arm_options(cfg, block, a), block["sparsities"])
            except PrunebenchError as e:
                raise PrunebenchError(f"{where}: arm {a!r}{f' in grid/{i}' if a in block.get('arm_options', {}) else ''}: "
                                      f"{e}") from None
    for a in cfg["arms"]:
        if a not in used:
            try:
                check_arm_options(arm_method(cfg, a), arm_options(cfg, {}, a), [max(all_sparsities)])
            except PrunebenchError as e:
                raise PrunebenchError(f"{where}: arm {a!r} (in no grid block): {e}") from None


def _check_training(cfg, where) -> None:
    """Every training configuration the preset can run (the preset's, each block's, each arm's, merged as
    the cells merge them; unused arms too): types, finiteness, the ranges of TrainConfig and the bounds."""
    from prunebench.library.train import TrainConfig  # torch: only when a preset is validated

    seen = set()
    combos = [((), {**cfg.get("train", {}), **arm.get("train", {})}, name) for name, arm in cfg["arms"].items()]
    for i, block in enumerate(cfg["grid"]):
        for a in block["arms"]:
            base = cfg["arms"][_base(cfg, a)]
            combos.append((("grid", i), {**cfg.get("train", {}), **block.get("train", {}), **base.get("train", {})}, a))
    for loc, train, arm in combos:
        key = canonical_json(train)
        if key in seen:
            continue
        seen.add(key)
        try:
            limits.train_options(train, TrainConfig)
        except PrunebenchError as e:
            raise PrunebenchError(f"{where}: training of arm {arm!r}{' in ' + _loc(loc) if loc else ''}: {e}") from None


def _check_models(cfg, where) -> None:
    """Each block's model for its data set (built on the meta device), its init schemes for that model, and
    its sparsities: a path name that reads back as the same number, and at least one weight kept per
    prunable layer (fewer is certain layer collapse) unless the block's pruning allows collapse."""
    from prunebench.library.init import check_scheme, meta_model  # torch: only when a preset is validated
    from prunebench.library.models import prunable_parameters  # torch, as above

    models = {}
    for i, block in enumerate(cfg["grid"]):
        key = (block["model"], block["dataset"])
        if key not in models:
            try:
                m = meta_model(*key)
            except PrunebenchError as e:
                raise PrunebenchError(f"{where}: invalid config at grid/{i}/model: {e}") from None
            models[key] = (m, [p.numel() for p in prunable_parameters(m).values()])
        model, sizes = models[key]
        for init in block.get("inits", [cfg.get("init", "kaiming_normal")]):
            try:
                check_scheme(model, init)
            except PrunebenchError as e:
                raise PrunebenchError(f"{where}: invalid config at grid/{i}: {e}") from None
        total = sum(sizes)
        for s in block["sparsities"]:
            name = fmt_sparsity(s)
            if float(name) != float(s):
                raise PrunebenchError(f"{where}: invalid config at grid/{i}/sparsities: sparsity {s!r} would be "
                                      f"named s{name} (which reads back as {float(name)!r}); use a sparsity whose "
                                      f"shortest form has at most 6 significant digits")
            kept = math.floor(total * (1.0 - float(s)) + 0.5)  # the exact keep rule, round(N d) halves up
            pruned_arms = [a for a in block["arms"] if arm_method(cfg, a) != "dense"]
            collapse_ok = {**cfg.get("pruning", {}), **block.get("pruning", {})}.get("allow_collapse")
            if pruned_arms and kept < len(sizes) and not collapse_ok:
                raise PrunebenchError(f"{where}: invalid config at grid/{i}/sparsities: sparsity {s!r} keeps {kept} "
                                      f"of {total} weights of {block['model']}, fewer than its {len(sizes)} prunable "
                                      f"layers (certain layer collapse); set pruning: {{allow_collapse: true}} to "
                                      f"run it anyway")


def _check_report_names(cfg, where) -> None:
    """The figures (the figure registry), the claims and the replication blocks (the paper table; a claims
    file where the checkout has paper/reference/) a preset names: checked now, not after every cell trained.
    The report wing is imported here, when the names are checked, not with this module: the Snakefile imports
    grid in every Snakemake process, and the figure registry brings matplotlib."""
    if cfg.get("figures"):
        from prunebench.report.figures import FIGURES as figures  # matplotlib: only when names are checked
        for name in cfg["figures"]:
            if name not in figures:
                raise PrunebenchError(f"{where}: invalid config at figures: unknown figure {name!r}; choose from: "
                                      f"{', '.join(figures)}")
        if len(set(cfg["figures"])) != len(cfg["figures"]):
            raise PrunebenchError(f"{where}: invalid config at figures: a figure is listed twice")
    for key in ("claims", "replication"):
        for paper in cfg.get(key) or []:
            if paper not in PAPERS:
                raise PrunebenchError(f"{where}: invalid config at {key}: unknown paper {paper!r}; choose from: "
                                      f"{', '.join(PAPERS)}")
    reference = CHECKOUT / "paper" / "reference"
    if cfg.get("claims") and reference.is_dir():
        files = []
        for paper in cfg["claims"]:
            f = reference / f"{paper}.yaml"
            if not f.is_file():
                raise PrunebenchError(f"{where}: invalid config at claims: no claims file {str(f)!r} for {paper!r}")
            files.append(f)
        from prunebench.report.claims import load_claims  # scipy, pandas: only when names are checked

        load_claims(files)  # the claims files' own schema


def _cell_count(cfg) -> int:
    n = 0
    for block in cfg["grid"]:
        for a in block["arms"]:
            sps = 1 if arm_method(cfg, a) == "dense" else len(block["sparsities"])
            n += len(block.get("inits", [None])) * sps * len(block["seeds"])
    return n


def validate(cfg: dict, where: str = "config", report_names: bool = True) -> dict:
    """Every value of a preset (see the module docstring), before any job; a one-line error naming the bad
    key or value (`report_names`: also the figures and claims it names). Returns `cfg`."""
    _check_tree(cfg, where)
    _check_schema(cfg, where)
    for ds in cfg.get("data_sources", {}):
        if ds not in DATASETS:
            raise PrunebenchError(f"{where}: invalid config at data_sources: unknown dataset {ds!r}; choose from: "
                                  f"{', '.join(DATASETS)}")
    _check_arms(cfg, where)
    _check_options(cfg, where)
    _check_training(cfg, where)
    _check_models(cfg, where)
    if report_names:
        _check_report_names(cfg, where)
    n = _cell_count(cfg)
    if n > MAX_CELLS:
        raise PrunebenchError(f"{where}: the grid has {n} cells; a preset has at most {MAX_CELLS}")
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
    if ablation is not None and METHOD_ABLATIONS[ablation].pruning_option:
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
