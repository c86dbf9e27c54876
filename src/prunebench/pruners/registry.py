"""Method registry, option validation, the public `prune` entry point and the paper-vs-code table.

    prune(model, method, sparsity, batches=None, *, scope="global", seed=0, allow_collapse=False,
          **options) -> Mask

Every method lives in its own module with a `scores(...)` function (raw saliencies, higher = kept) and
a `prune_mask(...)`; this module only validates input, times the scoring and writes the metadata.
The specification is reference/methods.md (section named per method in METHODS and in each docstring).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import torch

from prunebench.errors import PrunebenchError, check_sparsity, choose
from prunebench.masks import Mask
from prunebench.models import prunable_parameters
from prunebench.pruners import grasp, iterative, magnitude, prospr, rand, snip, synflow
from prunebench.pruners.common import SCOPES
from prunebench.pruners.scoring import BN_MODES, LABELS, LOSSES, BatchStream, measure, model_device

# ---------------------------------------------------------------------------------------------------
# Option validators: (option name, value, method) -> normalised JSON-serialisable value


def _bad(name, value, method, why):
    return PrunebenchError(f"invalid option {name}={value!r} for method {method!r}: {why}")


def _choice(*choices):
    def check(name, value, method):
        if value not in choices:
            raise _bad(name, value, method, f"choose one of: {', '.join(map(str, choices))}")
        return value
    return check


def _int(lo):
    def check(name, value, method):
        if isinstance(value, bool) or not isinstance(value, int) or value < lo:
            raise _bad(name, value, method, f"must be an integer >= {lo}")
        return int(value)
    return check


def _float(lo, hi=math.inf, lo_open=False):
    def check(name, value, method):
        try:
            v = float(value)
        except (TypeError, ValueError):
            raise _bad(name, value, method, "must be a number") from None
        if isinstance(value, bool) or not math.isfinite(v) or v < lo or v > hi or (lo_open and v == lo):
            raise _bad(name, value, method, f"must be a number in {'(' if lo_open else '['}{lo}, {hi}]")
        return v
    return check


def _bool(name, value, method):
    if not isinstance(value, bool):
        raise _bad(name, value, method, "must be true or false")
    return value


def _schedule(name, value, method):
    if isinstance(value, str):
        return _choice(*iterative.SCHEDULES)(name, value, method)
    try:
        return [float(v) for v in value]
    except (TypeError, ValueError):
        raise _bad(name, value, method, "must be 'exp', 'linear' or a list of densities") from None


def _shape(name, value, method):
    if value is None:
        return None
    try:
        shape = [int(v) for v in value]
    except (TypeError, ValueError):
        raise _bad(name, value, method, "must be a list of positive integers, e.g. [3, 32, 32]") from None
    if not shape or min(shape) < 1:
        raise _bad(name, value, method, "must be a list of positive integers, e.g. [3, 32, 32]")
    return shape


def _densities(name, value, method):
    if value is None:
        return None
    if not isinstance(value, dict):
        raise _bad(name, value, method, "must be a dict {parameter name: density}")
    out = {}
    for k, v in value.items():
        try:
            d = float(v)
        except (TypeError, ValueError):
            raise _bad(name, value, method, f"density of {k!r} is not a number") from None
        if not 0.0 <= d <= 1.0:
            raise _bad(name, value, method, f"density of {k!r} must be in [0, 1]")
        out[str(k)] = d
    return out


def _reinit(name, value, method):
    from prunebench.init import SCHEMES

    if value is None:
        return None
    return _choice(*[s for s in SCHEMES if s != "default"])(name, value, method)


# ---------------------------------------------------------------------------------------------------
# Registry


@dataclass
class Method:
    name: str
    prune_mask: Callable
    options: dict  # option -> (default, validator)
    needs_data: bool
    section: str
    summary: str
    uses_batches: bool = field(default=None)

    def __post_init__(self):
        if self.uses_batches is None:
            self.uses_batches = self.needs_data


_BN = lambda default: (default, _choice(*BN_MODES))  # noqa: E731
_LOSS = ("ce", _choice(*LOSSES))
_LABELS = ("true", _choice(*LABELS))
_ITER = {"steps": (60, _int(1)), "schedule": ("exp", _schedule), "num_batches": (1, _int(1)),
         "loss": _LOSS, "labels": _LABELS, "bn_mode": _BN("train")}

METHODS = {m.name: m for m in [
    Method("random", rand.prune_mask, {"densities": (None, _densities)}, False, "A.6",
           "i.i.d. random scores, exact top-k (uniform global; layer-wise; or given per-layer densities)"),
    Method("magnitude", magnitude.prune_mask, {}, False, "A.0", "|theta| at initialisation"),
    Method("snip", snip.prune_mask,
           {"num_batches": (1, _int(1)), "bn_mode": _BN("eval"), "loss": _LOSS, "labels": _LABELS,
            "prune_bias": (False, _bool), "reinit": (None, _reinit)}, True, "A.1",
           "connection sensitivity |theta * dL/dtheta| on one (or a few) batches"),
    Method("grasp", grasp.prune_mask,
           {"temperature": (200.0, _float(0.0, lo_open=True)), "num_batches": (1, _int(1)),
            "chunks": (1, _int(1)), "reinit_linear": (False, _bool), "bn_mode": _BN("train")},
           True, "A.4", "remove the largest -theta * Hg (gradient-flow preservation)"),
    Method("synflow", synflow.prune_mask,
           {"iterations": (100, _int(1)), "schedule": ("exp", _schedule), "input_shape": (None, _shape),
            "double": (True, _bool)}, False, "A.5",
           "data-free iterative synaptic flow |theta * dR/dtheta| with |theta| and an all-ones input",
           uses_batches=True),
    Method("iter_snip", iterative.prune_iter_snip, dict(_ITER), True, "A.2",
           "iterative SNIP on the pruned network, pruned weights never come back"),
    Method("force", iterative.prune_force, dict(_ITER), True, "A.3",
           "foresight connection sensitivity |theta0 * dL(theta0*m)/dtheta|, mask recomputed each step"),
    Method("prospr", prospr.prune_mask,
           {"inner_steps": (3, _int(0)), "inner_lr": (0.1, _float(0.0)), "inner_momentum": (0.0, _float(0.0)),
            "mode": ("full", _choice(*prospr.MODES)), "new_data_in_inner": (False, _bool),
            "bn_mode": _BN("train"), "momentum_init_detached": (False, _bool)}, True, "A.8",
           "meta-gradient of the loss after M inner SGD steps w.r.t. the mask"),
]}

METHOD_NAMES = tuple(METHODS)

# Where the paper and the official code differ (DESIGN.md): the paper is the default, the code an option.
PAPER_VS_CODE_OPTIONS = [
    {"method": "snip", "option": "prune_bias", "default": False, "official": True, "section": "A.0, A.1, E.6",
     "note": "official TF code ranks weights and biases together; the PyTorch ports and later papers prune weights only"},
    {"method": "snip", "option": "reinit", "default": None, "official": "xavier_normal", "section": "A.1",
     "note": "mil-ad/snip (the PyTorch port FORCE adapted) scores a xavier_normal re-initialised copy; the TF code scores a separate draw (weights_bp)"},
    {"method": "snip", "option": "bn_mode", "default": "eval", "official": "eval", "section": "A.1, E.6",
     "note": "TF SNIP scores with BN in inference mode; FORCE's Iter SNIP with steps=1 (and ProsPr with M=0) use train mode"},
    {"method": "snip", "option": "labels", "default": "true", "official": "uniform (SPP, not wired to a flag)", "section": "A.7",
     "note": "uniform labels = SPP's unsupervised pruning (fake_uniform)"},
    {"method": "iter_snip", "option": "loss", "default": "ce", "official": "neg_logit", "section": "A.3 pitfall 1, E.1",
     "note": "get_average_gradients uses F.nll_loss on raw logits = -logit of the target"},
    {"method": "iter_snip", "option": "steps", "default": 60, "official": 10, "section": "A.3",
     "note": "60 is the README value for every data set; 10 is the argparse default; the paper's T is not known"},
    {"method": "force", "option": "loss", "default": "ce", "official": "neg_logit", "section": "A.3 pitfall 1, E.1",
     "note": "get_average_gradients uses F.nll_loss on raw logits = -logit of the target"},
    {"method": "force", "option": "steps", "default": 60, "official": 10, "section": "A.3",
     "note": "60 is the README value for every data set; 10 is the argparse default; the paper's T is not known"},
    {"method": "grasp", "option": "reinit_linear", "default": False, "official": True, "section": "A.4, E.5",
     "note": "the official scoring copy re-draws every nn.Linear with xavier_normal (the trained net keeps N(0, 0.01))"},
    {"method": "grasp", "option": "chunks", "default": 1, "official": 2, "section": "A.4, E.5",
     "note": "the code splits each batch into two class-disjoint halves (memory only, per the maintainer); grad_w sums the halves"},
    {"method": "synflow", "option": "double", "default": True, "official": False, "section": "A.5",
     "note": "float64 avoids overflow of R on deep nets; the official code scores in float32"},
    {"method": "prospr", "option": "new_data_in_inner", "default": False, "official": True, "section": "A.8, E.8",
     "note": "the CLI default (and the paper) reuse one batch; the library prune() draws a new batch per inner step"},
    {"method": "prospr", "option": "momentum_init_detached", "default": False, "official": True, "section": "A.8",
     "note": "functional_sgd starts the momentum buffer from grad.detach(); matters only with inner_momentum != 0 and mode full"},
    {"method": "random", "option": "densities", "default": None, "official": "none (no random pruner in FORCE/ProsPr code)",
     "section": "A.6", "note": "default = uniform global (SynFlow's Rand); densities= gives another method's per-layer densities with random positions"},
]


def paper_vs_code_markdown() -> str:
    """The README table, generated from PAPER_VS_CODE_OPTIONS."""
    rows = ["| method | option | default (paper) | official code | methods.md | note |",
            "|---|---|---|---|---|---|"]
    def fmt(v):
        return v if isinstance(v, str) and " " in v else f"`{v!r}`" if isinstance(v, str) else f"`{v}`"

    for r in PAPER_VS_CODE_OPTIONS:
        rows.append(f"| {r['method']} | `{r['option']}` | {fmt(r['default'])} | {fmt(r['official'])} | "
                    f"{r['section']} | {r['note']} |")
    return "\n".join(rows)


# ---------------------------------------------------------------------------------------------------
# Entry points


def resolve_options(method: str, options: dict) -> dict:
    """Defaults filled in, every value validated and normalised (JSON-serialisable); unknown -> error."""
    m = METHODS[choose("pruning method", method, METHODS)]
    for k in options:
        if k not in m.options:
            valid = ", ".join(m.options) or "none"
            raise PrunebenchError(f"unknown option {k!r} for method {method!r}; valid options: {valid}")
    return {k: (check(k, options[k], method) if k in options else default)
            for k, (default, check) in m.options.items()}


def _check_densities(model, densities, density):
    params = prunable_parameters(model)
    missing = [n for n in params if n not in densities]
    extra = [n for n in densities if n not in params]
    if missing or extra:
        what = f"missing {missing[0]!r}" if missing else f"no prunable parameter {extra[0]!r}"
        raise PrunebenchError(f"invalid option densities for method 'random': {what}")
    from prunebench.pruners.common import keep_count

    total = sum(p.numel() for p in params.values())
    kept = sum(keep_count(params[n].numel(), densities[n]) for n in params)
    # per-layer rounding may move the total by at most one weight per layer
    if abs(kept - keep_count(total, density)) > len(params):
        raise PrunebenchError(f"invalid option densities for method 'random': they keep {kept} of {total} "
                              f"weights, the sparsity asks for {keep_count(total, density)}")


def prune(model, method: str, sparsity, batches=None, *, scope: str = "global", seed: int = 0,
          allow_collapse: bool = False, **options) -> Mask:
    """Prune `model` with `method` to `sparsity` (fraction of prunable weights removed) and return the Mask.

    model:    any nn.Module with Conv2d/Linear layers; never modified (data-driven methods score a deep
              copy on the model's device).
    batches:  iterable of (inputs, targets): a list/tuple is cycled, an iterator yields fresh batches,
              a DataLoader is restarted when exhausted; ignored by random and magnitude; synflow only
              reads its input shape from it. Required by snip, grasp, iter_snip, force, prospr.
    scope:    "global" (one ranking over all layers, every paper's default) or "layerwise".
    seed:     the only source of randomness (random scores; re-initialisations of scoring copies).
    allow_collapse: keep a mask with a fully pruned layer (recorded in metadata["collapsed"] either way).
    options:  per method, see METHODS[method].options and the method's module docstring.

    Mask.metadata (deterministic, saved with the mask): method, sparsity, density_target, scope, seed,
    options (all, defaults filled in), section (methods.md), collapsed, realised_density, kept, total,
    biases_in_mask. Mask.profile (not saved: it varies run to run): wall_time_s, peak_memory_bytes,
    memory_measure, device, torch.
    """
    m = METHODS[choose("pruning method", method, METHODS)]
    s = check_sparsity(sparsity)
    choose("scope", scope, SCOPES)
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise PrunebenchError(f"invalid seed {seed!r}: must be an integer")
    opts = resolve_options(method, options)
    weights = prunable_parameters(model)
    if not weights:
        raise PrunebenchError("the model has no Conv2d/Linear weights to prune")
    density = 1.0 - s
    if method == "random" and opts["densities"] is not None:
        _check_densities(model, opts["densities"], density)
        scope = "layerwise"
    if m.needs_data and batches is None:
        raise PrunebenchError(f"method {method!r} needs data: pass batches=[(inputs, targets), ...]")
    device = model_device(model)
    stream = BatchStream(batches, device, method) if (batches is not None and m.uses_batches) else None
    with measure(device) as profile:
        mask = m.prune_mask(model, stream, density, scope, seed, **opts)
    collapsed = Mask({n: mask[n] for n in weights}).check_collapse(allow_collapse)
    mask.metadata = {
        "method": method, "sparsity": s, "density_target": density, "scope": scope, "seed": seed,
        "options": opts, "section": m.section, "collapsed": collapsed,
        "realised_density": mask.density, "kept": mask.kept, "total": mask.total,
        "biases_in_mask": any(n not in weights for n in mask),
    }
    profile["torch"] = torch.__version__
    mask.profile = profile
    return mask


_SCORES = {
    "random": lambda model, batches, seed, o: rand.scores(model, seed),
    "magnitude": lambda model, batches, seed, o: magnitude.scores(model),
    "snip": lambda model, batches, seed, o: snip.scores(model, batches, seed=seed, **o),
    "grasp": lambda model, batches, seed, o: grasp.scores(model, batches, seed=seed, **o),
    "synflow": lambda model, batches, seed, o: synflow.scores(model, input_shape=o["input_shape"],
                                                              double=o["double"], batches=batches),
    "prospr": lambda model, batches, seed, o: prospr.scores(model, batches, **o),
}
for _name in ("iter_snip", "force"):  # their first step: SNIP with the iterative methods' options
    _SCORES[_name] = lambda model, batches, seed, o: snip.scores(
        model, batches, num_batches=o["num_batches"], bn_mode=o["bn_mode"], loss=o["loss"], labels=o["labels"])


def scores(model, method: str, batches=None, *, seed: int = 0, **options) -> dict:
    """Raw saliencies (name -> tensor, higher = kept) of a method's single scoring at the model's weights.

    For synflow, iter_snip and force this is the first iteration's score (dense network). For grasp it is
    theta * Hg (the negated GraSP score S). Options as in `prune`; irrelevant ones are ignored.
    """
    opts = resolve_options(method, options)
    if METHODS[method].needs_data and batches is None:
        raise PrunebenchError(f"method {method!r} needs data: pass batches=[(inputs, targets), ...]")
    return _SCORES[method](model, batches, seed, opts)
