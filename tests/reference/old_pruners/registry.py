"""The public pruning entry points over the method table (docs/methods.md A.0).

    prune(model, method, sparsity, batches=None, *, scope="global", seed=0, allow_collapse=False,
          **options) -> Mask
    scores(model, method, batches=None, *, seed=0, **options) -> {name: tensor}

A method's class is found through its row of `prunebench.library.methods` (its module is imported on first use,
so a job imports only the method it runs). This module validates input, times the scoring and writes the
mask metadata; the methods themselves are `Pruner` subclasses (`pruners.base`).
"""
from __future__ import annotations

import functools
import importlib

import torch

from prunebench.library.errors import PrunebenchError, check_sparsity, choose
from prunebench.library.masks import Mask
from prunebench.library.methods import METHODS, at_init
from prunebench.library.models import prunable_parameters
from reference.old_pruners.base import Pruner
from reference.old_pruners.topk import SCOPES, keep_count
from reference.old_pruners.scoring import BatchStream, measure, model_device


@functools.lru_cache(maxsize=None)
def pruner_class(method: str) -> type:
    """The Pruner subclass of an at-init method (its module is imported here, on first use)."""
    choose("pruning method", method, at_init())
    module = importlib.import_module(METHODS[method].module.replace("prunebench.library.pruners", "reference.old_pruners"))
    for obj in vars(module).values():
        if isinstance(obj, type) and issubclass(obj, Pruner) and obj.name == method:
            return obj
    raise PrunebenchError(f"module {METHODS[method].module} defines no Pruner named {method!r}")


def resolve_options(method: str, options: dict) -> dict:
    """Defaults filled in, every value validated and normalised (JSON-serialisable); unknown -> error."""
    return pruner_class(method).Options.from_dict(options).to_dict()


def paper_vs_code() -> list:
    """Every at-init option where the paper's text and the official code differ (docs/methods.md)."""
    return [row for m in at_init() for row in pruner_class(m).Options.paper_vs_code()]


def _check_densities(model, densities, density):
    params = prunable_parameters(model)
    missing = [n for n in params if n not in densities]
    extra = [n for n in densities if n not in params]
    if missing or extra:
        what = f"missing {missing[0]!r}" if missing else f"no prunable parameter {extra[0]!r}"
        raise PrunebenchError(f"invalid option densities for method 'random': {what}")
    total = sum(p.numel() for p in params.values())
    kept = sum(keep_count(params[n].numel(), densities[n]) for n in params)
    # per-layer rounding may move the total by at most one weight per layer
    if abs(kept - keep_count(total, density)) > len(params):
        raise PrunebenchError(f"invalid option densities for method 'random': they keep {kept} of {total} "
                              f"weights, the sparsity asks for {keep_count(total, density)}")


SHUFFLE_STREAM = 1_000_003  # the shuffle's random positions come from seed + this (not the method's own draws)


def shuffled(mask: Mask, seed: int) -> Mask:
    """The layer-wise shuffle of a mask (Frankle et al. 2021): the same number of kept entries in every tensor,
    at uniformly random positions drawn from the seed (exact counts, ties by position as everywhere)."""
    from reference.old_pruners.topk import top_mask

    gen = torch.Generator().manual_seed(int(seed) + SHUFFLE_STREAM)
    out = {}
    for n, m in mask.items():
        r = torch.rand(m.numel(), generator=gen, dtype=torch.float64)
        out[n] = top_mask(r, int(m.sum())).reshape(m.shape)
    return Mask(out)


def _pruner(model, method, batches, options):
    pruner = pruner_class(method)(options)
    if pruner.needs_data and batches is None:
        raise PrunebenchError(f"method {method!r} needs data: pass batches=[(inputs, targets), ...]")
    stream = BatchStream(batches, model_device(model), method) if (batches is not None and pruner.uses_batches()) else None
    return pruner, stream


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
    options:  per method: the fields of `pruner_class(method).Options` (see docs/methods.md).

    Mask.metadata (deterministic, saved with the mask): method, sparsity, density_target, scope, seed,
    options (all, defaults filled in), section (docs/methods.md), collapsed, realised_density, kept, total,
    biases_in_mask. Mask.profile (not saved: it varies run to run): wall_time_s, peak_memory_bytes,
    memory_measure, device, torch.
    """
    choose("pruning method", method, at_init())
    s = check_sparsity(sparsity)
    choose("scope", scope, SCOPES)
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise PrunebenchError(f"invalid seed {seed!r}: must be an integer")
    pruner, stream = _pruner(model, method, batches, options)
    weights = prunable_parameters(model)
    if not weights:
        raise PrunebenchError("the model has no Conv2d/Linear weights to prune")
    density = 1.0 - s
    dens = getattr(pruner.options, "densities", None)
    if dens is not None:
        _check_densities(model, dens, density)
        scope = "layerwise"
    device = model_device(model)
    with measure(device) as profile:
        mask = pruner.mask(model, stream, s, scope, seed)
        if pruner.options.shuffle:
            mask = shuffled(mask, seed)
    collapsed = Mask({n: mask[n] for n in weights}).check_collapse(allow_collapse)
    mask.metadata = {
        "method": method, "sparsity": s, "density_target": density, "scope": scope, "seed": seed,
        "options": pruner.options.to_dict(), "section": METHODS[method].section, "collapsed": collapsed,
        "realised_density": mask.density, "kept": mask.kept, "total": mask.total,
        "biases_in_mask": any(n not in weights for n in mask),
    }
    profile["torch"] = torch.__version__
    mask.profile = profile
    return mask


def scores(model, method: str, batches=None, *, seed: int = 0, **options) -> dict:
    """Raw saliencies (name -> tensor, higher = kept) of a method's single scoring at the model's weights.

    For synflow, iter_snip and force this is the first iteration's score (dense network). For grasp it is
    theta * Hg (the negated GraSP score S)."""
    pruner, stream = _pruner(model, method, batches, options)
    return pruner.scores(model, stream, seed)

