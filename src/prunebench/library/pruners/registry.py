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
import torch.nn as nn

from prunebench.library.errors import PrunebenchError, check_sparsity, choose
from prunebench.library.masks import Mask
from prunebench.library.methods import METHODS, at_init
from prunebench.library.models import prunable_parameters
from prunebench.library.pruners.base import Pruner
from prunebench.library.pruners.topk import SCOPES, keep_count, top_mask
from prunebench.library.pruners.scoring import BatchStream, measure, model_device


@functools.lru_cache(maxsize=None)
def pruner_class(method: str) -> type:
    """The Pruner subclass of an at-init method (its module is imported here, on first use)."""
    choose("pruning method", method, at_init())
    module = importlib.import_module(METHODS[method].module)
    for obj in vars(module).values():
        if isinstance(obj, type) and issubclass(obj, Pruner) and obj.name == method:
            return obj
    raise PrunebenchError(f"module {METHODS[method].module} defines no Pruner named {method!r}")


def resolve_options(method: str, options: dict) -> dict:
    """Defaults filled in, every value validated and normalised (JSON-serialisable); unknown -> error."""
    return pruner_class(method).Options.from_dict(options).to_dict()


def paper_vs_code() -> list:
    """Every at-init option where the paper's text and the official code differ (docs/methods.md), for
    prunebench's own methods (an installed plugin does not change the README's table)."""
    return [row for m in at_init(builtin_only=True) for row in pruner_class(m).Options.paper_vs_code()]


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


EPOCH = "epoch"  # num_batches="epoch": one ordered pass over a sized `batches` (SPP's epoch-long sensitivity)
MAX_SEED = 2**63 - 1  # torch generators take seeds below 2**64; a shuffle adds SHUFFLE_STREAM


def has_option(method: str, name: str) -> bool:
    """Whether an at-init method has the option `name` (e.g. num_batches)."""
    return name in pruner_class(method).Options.defaults()


def one_pass(method: str, batches, options: dict) -> tuple:
    """(batches, options) with `num_batches="epoch"` resolved: the batches are read once, in order, and
    num_batches is their number (SPP's connection sensitivity over one epoch, docs/methods.md A.7; pass
    `prunebench.library.data.eval_batches(data, "train", batch_size)`). Other options pass unchanged."""
    if options.get("num_batches") != EPOCH:
        return batches, options
    if not has_option(method, "num_batches"):
        raise PrunebenchError(f"method {method!r} has no option num_batches, so num_batches='epoch' means nothing")
    try:
        n = len(batches)
    except TypeError:
        raise PrunebenchError("num_batches='epoch' needs batches with a length (a list, or "
                              "prunebench.library.data.eval_batches(data, 'train', batch_size))") from None
    if n < 1:
        raise PrunebenchError("num_batches='epoch' needs at least one batch")
    return iter(batches), {**options, "num_batches": n}


def check_model(model) -> None:
    """A model the pruners can score: an nn.Module with float32/float64 parameters that hold data."""
    if not isinstance(model, nn.Module):
        raise PrunebenchError(f"model must be an nn.Module, got {type(model).__name__}")
    params = list(model.parameters())
    if any(p.is_meta for p in params):
        raise PrunebenchError("the model is on the meta device (no weights): build it on cpu or cuda")
    dtypes = sorted({str(p.dtype).replace("torch.", "") for p in params})
    if any(p.dtype not in (torch.float32, torch.float64) for p in params):
        raise PrunebenchError(f"the model's parameters are {', '.join(dtypes)}: pruning scores need float32 or "
                              f"float64 weights (use model.float())")
    if len(dtypes) > 1:
        raise PrunebenchError(f"the model mixes parameter dtypes ({', '.join(dtypes)}): use model.float()")


class _BatchChecker:
    """Checks every batch drawn, with a one-line `PrunebenchError` saying what is wrong (instead of a torch
    error deep inside a scoring pass): a pair (inputs, targets) of tensors of the same length, floating-point
    inputs of the model's dtype, integer class labels (cast to int64) inside the model's outputs. The first
    batch is probed with one example through the model (eval mode, no gradients: nothing changes), which
    shows an input shape the model does not take and the number of classes."""

    def __init__(self, model):
        self.model, self.classes = model, None
        params = list(model.parameters())
        self.dtype = params[0].dtype if params else torch.float32
        self.device = params[0].device if params else torch.device("cpu")

    def __call__(self, batch):
        if not (isinstance(batch, (tuple, list)) and len(batch) == 2 and all(torch.is_tensor(t) for t in batch)):
            raise PrunebenchError(f"every batch must be a pair (inputs, targets) of tensors, got {_describe(batch)}")
        x, y = batch
        if x.dim() < 2 or len(x) == 0:
            raise PrunebenchError(f"batch inputs of shape {tuple(x.shape)}: expected (batch, features...) with at "
                                  "least one example")
        if not x.is_floating_point():
            raise PrunebenchError(f"batch inputs are {str(x.dtype).replace('torch.', '')}: pass normalised "
                                  f"floating-point inputs (prunebench.library.data's batches are)")
        if x.dtype != self.dtype:
            raise PrunebenchError(f"batch inputs are {str(x.dtype).replace('torch.', '')}, the model's weights "
                                  f"{str(self.dtype).replace('torch.', '')}: convert one of them")
        if y.is_floating_point() or y.is_complex() or y.dtype == torch.bool:
            raise PrunebenchError(f"batch targets are {str(y.dtype).replace('torch.', '')}: pass integer class "
                                  "labels")
        if y.dim() != 1 or len(y) != len(x):
            raise PrunebenchError(f"batch targets of shape {tuple(y.shape)} for {len(x)} inputs: pass one class "
                                  "label per input")
        if self.classes is None:
            self.classes = self._probe(x)
        lo, hi = int(y.min()), int(y.max())
        if lo < 0 or hi >= self.classes:
            raise PrunebenchError(f"batch label {lo if lo < 0 else hi} is outside 0..{self.classes - 1} (the model "
                                  f"has {self.classes} outputs)")
        return x, y.long()

    @torch.no_grad()
    def _probe(self, x) -> int:
        was = self.model.training
        self.model.eval()
        try:
            out = self.model(x[:1].to(self.device))
        except (RuntimeError, ValueError, TypeError, IndexError) as e:
            raise PrunebenchError(f"batch inputs of shape {tuple(x.shape)} do not fit the model: "
                                  f"{(str(e).splitlines() or [type(e).__name__])[0]}") from None
        finally:
            self.model.train(was)
        if not torch.is_tensor(out) or out.dim() != 2:
            raise PrunebenchError(f"the model's output has shape {tuple(getattr(out, 'shape', ()))}: the pruners "
                                  "need logits of shape (batch, classes)")
        return int(out.shape[1])


def _describe(obj) -> str:
    if isinstance(obj, (tuple, list)):
        return f"a {type(obj).__name__} of {len(obj)} ({', '.join(type(o).__name__ for o in obj[:3])})"
    return type(obj).__name__


class _CheckedIterable:
    """A re-iterable (e.g. a DataLoader) whose batches are checked as they are drawn."""

    def __init__(self, batches, check):
        self.batches, self.check = batches, check

    def __iter__(self):
        return (self.check(b) for b in self.batches)


def checked_batches(batches, model):
    """`batches` with every batch checked as it is drawn (`_BatchChecker`), keeping its kind: a single batch
    or a list (checked now, so that SynFlow can still read the input shape from it), an iterator (checked
    batch by batch), another iterable (restarted by the stream when exhausted)."""
    if batches is None:
        return None
    check = _BatchChecker(model)
    if isinstance(batches, (tuple, list)) and len(batches) == 2 and torch.is_tensor(batches[0]):
        return check(batches)
    if isinstance(batches, (tuple, list)):
        return [check(b) for b in batches]
    try:
        it = iter(batches)
    except TypeError:
        raise PrunebenchError(f"batches must be an iterable of (inputs, targets), not {type(batches).__name__}") from None
    if it is batches:
        return (check(b) for b in it)
    return _CheckedIterable(batches, check)


SHUFFLE_STREAM = 1_000_003  # the shuffle's random positions come from seed + this (not the method's own draws)


def shuffled(mask: Mask, seed: int) -> Mask:
    """The layer-wise shuffle of a mask (Frankle et al. 2021): the same number of kept entries in every tensor,
    at uniformly random positions drawn from the seed (exact counts, ties by position as everywhere)."""
    gen = torch.Generator().manual_seed(int(seed) + SHUFFLE_STREAM)
    out = {}
    for n, m in mask.items():
        r = torch.rand(m.numel(), generator=gen, dtype=torch.float64)
        out[n] = top_mask(r, int(m.sum())).reshape(m.shape)
    return Mask(out)


def _pruner(model, method, batches, options):
    check_model(model)
    batches, options = one_pass(method, batches, options)
    pruner = pruner_class(method)(options)
    if pruner.needs_data and batches is None:
        raise PrunebenchError(f"method {method!r} needs data: pass batches=[(inputs, targets), ...]")
    stream = None
    if batches is not None and pruner.uses_batches():
        stream = BatchStream(checked_batches(batches, model), model_device(model), method)
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
    options:  per method: the fields of `pruner_class(method).Options` (see docs/methods.md);
              num_batches="epoch" reads a sized `batches` once, in order, num_batches = its length (SPP's
              epoch-long connection sensitivity, A.7: `data.eval_batches(data, "train", batch_size)`).

    Bad input (a model that is not a float32/float64 nn.Module with weights, a batch of the wrong shape,
    dtype or length, labels outside the model's classes) is a one-line PrunebenchError.

    Mask.metadata (deterministic, saved with the mask): method, sparsity, density_target, scope, seed,
    options (all, defaults filled in), section (docs/methods.md), collapsed, realised_density, kept, total,
    biases_in_mask. Mask.profile (not saved: it varies run to run): wall_time_s, peak_memory_bytes,
    memory_measure, device, torch.
    """
    choose("pruning method", method, at_init())
    s = check_sparsity(sparsity)
    choose("scope", scope, SCOPES)
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED:
        raise PrunebenchError(f"invalid seed {seed!r}: must be an integer in [0, 2**63)")
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

