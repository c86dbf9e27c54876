"""Shared pruning mechanics: exact top-k selection with deterministic tie-breaking (docs/methods.md A.0).

Every method produces a score per prunable weight (higher = more important) and hands it to `select`.
The kept count is exactly round(N * density) (half rounds up), globally or per layer; ties are broken
by position (the earlier weight in layer-registration order, then in row-major order, wins), so the
same scores always give the same mask bytes. Selection is O(N) (`top_mask`) and runs where the scores are
(a GPU's scores are no longer copied to the CPU and selected there: for FORCE's 60 steps on VGG19 that copy
and the CPU selection were half the time). It only compares values, so the device never changes a mask.
"""
from __future__ import annotations

import math
from decimal import Decimal

import torch

from prunebench.library.errors import PrunebenchError
from prunebench.library.masks import Mask

SCOPES = ("global", "layerwise")


def keep_count(n: int, density: float) -> int:
    """round(n * density), halves rounded up, clamped to [0, n]."""
    return max(0, min(n, int(math.floor(n * density + 0.5))))


def kth_largest(vals: torch.Tensor, k: int, how: str | None = None) -> torch.Tensor:
    """The k-th largest entry of the 1-D `vals` (1 <= k <= numel), on their device. `how`: "select" (quickselect,
    torch.kthvalue: the CPU default) or "sort" (the sorted values' entry: the default elsewhere, as
    torch.kthvalue has no deterministic CUDA kernel -- a value is a value, but the mode would warn or refuse).
    Exact either way: an element of `vals`."""
    n = vals.numel()
    how = how or ("select" if vals.device.type == "cpu" else "sort")
    if how == "select":
        return torch.kthvalue(vals, n - k + 1).values
    return torch.sort(vals, stable=True).values[n - k]


def _has_nan(flat: torch.Tensor) -> bool:
    """Whether `flat` holds a NaN: max propagates NaN, and one reduction is several times cheaper than a bool
    tensor of isnan and its any()."""
    return flat.numel() > 0 and bool(torch.isnan(flat.amax()))


def _check_nan(flat: torch.Tensor) -> None:
    if _has_nan(flat):
        raise PrunebenchError("pruning scores contain NaN: the loss, gradients or weights diverged "
                              "(lower the learning rate, or check the temperature / data)")


def _top_k(vals: torch.Tensor, k: int) -> torch.Tensor:
    """Bool vector of the k highest entries of the 1-D `vals`, ties at the threshold to the earlier positions
    (what `above | (ties & (cumsum(ties) <= k - #above))` gives, without the cumulative sum: usually the
    threshold is unique and the answer is `vals >= v`; otherwise the first ties are found by position)."""
    m = vals.numel()
    if k >= m:
        return torch.ones(m, dtype=torch.bool, device=vals.device)
    if k <= 0:
        return torch.zeros(m, dtype=torch.bool, device=vals.device)
    v = kth_largest(vals, k)
    above = vals > v
    ties = vals == v
    wanted = k - int(torch.count_nonzero(above))
    if int(torch.count_nonzero(ties)) == wanted:
        return above.logical_or_(ties)
    first = torch.nonzero(ties).flatten()[:wanted]
    return above.index_fill_(0, first, True)


def top_mask(flat: torch.Tensor, k: int, pool: torch.Tensor | None = None) -> torch.Tensor:
    """Bool mask (on the CPU) of the `k` highest entries of the 1-D `flat` (restricted to `pool` if given),
    exactly.

    Ties at the threshold go to the earlier positions. O(N) and on the scores' device: the threshold is the
    k-th largest value (`kth_largest`), the ties at it are taken in positional order, and a pool is gathered
    by its positions (index_select) rather than by a boolean mask, so a 20M-weight VGG19 selects in a fraction of
    a second on a CPU and in milliseconds on a GPU, where the scores already are. Comparisons only: the same
    scores give the same mask on every device.
    """
    flat = flat.detach().reshape(-1)
    if not torch.is_floating_point(flat):
        flat = flat.double()
    _check_nan(flat)
    if pool is None:
        return _top_k(flat, int(k)).cpu()
    where = torch.nonzero(pool.reshape(-1).to(flat.device)).flatten()
    chosen = _top_k(flat.index_select(0, where), max(0, min(int(k), where.numel())))
    keep = torch.zeros(flat.numel(), dtype=torch.bool, device=flat.device)
    keep[where[chosen]] = True
    return keep.cpu()


def select(scores: dict, density: float | dict | None = None, scope: str = "global", eligible: dict | None = None,
           count: int | None = None) -> Mask:
    """Keep the highest-scoring weights.

    scores:   name -> float tensor (same shape as the weight), in layer order (on any one device: the selection
              runs there).
    density:  fraction to keep (float), or name -> density for `layerwise` scope.
    count:    instead of `density` (global scope): keep exactly this many.
    eligible: optional name -> bool tensor; only eligible weights can be kept. If fewer weights are
              eligible than the budget, only the eligible ones are kept.
    """
    if scope not in SCOPES:
        raise PrunebenchError(f"unknown scope {scope!r}; choose one of: {', '.join(SCOPES)}")
    if (density is None) == (count is None):
        raise PrunebenchError("select needs exactly one of density or count")
    names = list(scores)
    dev = _device(scores)
    flat = [scores[n].detach().reshape(-1).to(dev) for n in names]
    elig = [eligible[n].reshape(-1) for n in names] if eligible is not None else None
    masks = {}
    if scope == "global":
        if isinstance(density, dict):
            raise PrunebenchError("per-layer densities need scope 'layerwise'")
        n_all = sum(f.numel() for f in flat)
        k = count if count is not None else keep_count(n_all, density)
        keep = top_mask(torch.cat(flat), k, torch.cat([e.to(dev) for e in elig]) if elig is not None else None)
        for n, part in zip(names, torch.split(keep, [f.numel() for f in flat])):
            masks[n] = part.reshape(scores[n].shape)
    else:
        if count is not None:
            raise PrunebenchError("count needs scope 'global'")
        for i, (n, f) in enumerate(zip(names, flat)):
            d = density[n] if isinstance(density, dict) else density
            masks[n] = top_mask(f, keep_count(f.numel(), d), elig[i] if elig is not None else None).reshape(scores[n].shape)
    return Mask(masks)


def _device(scores: dict) -> torch.device:
    """Where the selection runs: the scores' device when they share one, else the CPU."""
    devs = {t.device for t in scores.values()}
    return devs.pop() if len(devs) == 1 else torch.device("cpu")


# ---------------------------------------------------------------------------------------------------
# The official codes' keep rules (docs/methods.md A.0 "Keep rule and ties"), as `count_rule="official"`.
# Each reproduces its code's arithmetic: which count, truncated or rounded how, and what happens at ties.
# Measured on identical weights and batches, FORCE and Iter SNIP masks are chaotic in this count (one weight
# of rounding at an early step changes the final mask by a third), so a replication needs the code's rule.

OFFICIAL_RULES = ("round", "ceil", "int_keep_ties", "int_prune_ties", "grasp")


def official_density(sparsity: float) -> float:
    """The density a user of a density-valued official flag types for `sparsity` (FORCE's --pruning_factor,
    SynFlow's 10^-c): the decimal complement (0.99 -> 0.01 exactly), not the float 1 - 0.99."""
    return float(Decimal(1) - Decimal(repr(float(sparsity))))


def official_keep(flat: torch.Tensor, rule: str, *, density: float | None = None,
                  sparsity: float | None = None) -> torch.Tensor:
    """Bool keep-vector of the 1-D scores `flat` (higher = kept) under an official code's rule:

    round           k = int(round(N (1 - s))) kept, exact top-k            SNIP / SPP TF code
    ceil            k = ceil(N (1 - s)) kept, exact top-k                  ProsPr
    int_keep_ties   keep s >= the int(N d)-th largest score (ties kept)     FORCE, Iter SNIP
    int_prune_ties  prune s <= the int((1 - d) N)-th smallest (ties pruned)  SynFlow (and its Rand, Mag)
    grasp           S = -s / (|sum(-s)| + 1e-10); keep S <= the int(N s)-th largest S (the threshold
                    element survives: N - int(N s) + 1 kept without ties)  GraSP
    Ties of `round` and `ceil` go to the earlier position, as everywhere. Runs on the scores' device (a CPU bool
    vector comes back), except `grasp`, whose normalisation by a sum is computed on the CPU as it always was (a
    sum's rounding depends on the device, and so could a tie at the threshold).
    """
    flat = flat.detach().reshape(-1)
    if rule == "grasp":
        flat = flat.cpu()
    if not torch.is_floating_point(flat):
        flat = flat.double()
    if _has_nan(flat):
        raise PrunebenchError("pruning scores contain NaN: the loss, gradients or weights diverged")
    n = flat.numel()
    if rule == "round":
        return top_mask(flat, int(round(n * (1.0 - sparsity))))
    if rule == "ceil":
        return top_mask(flat, math.ceil(n * (1 - sparsity)))
    if rule == "int_keep_ties":
        k = int(n * density)
        return (flat >= kth_largest(flat, k)).cpu() if k >= 1 else torch.zeros(n, dtype=torch.bool)
    if rule == "int_prune_ties":
        k = int((1.0 - density) * n)
        return (flat > kth_largest(flat, n - k + 1)).cpu() if k >= 1 else torch.ones(n, dtype=torch.bool)
    if rule == "grasp":
        s = -flat
        s = s / (s.sum().abs() + 1e-10)
        k = int(n * sparsity)
        return s <= kth_largest(s, k) if k >= 1 else torch.ones(n, dtype=torch.bool)
    raise PrunebenchError(f"unknown keep rule {rule!r}; choose one of: {', '.join(OFFICIAL_RULES)}")


def select_official(scores: dict, rule: str, scope: str = "global", *, density: float | None = None,
                    sparsity: float | None = None) -> Mask:
    """`select` with an official code's keep rule (`official_keep`), globally or per layer."""
    if scope not in SCOPES:
        raise PrunebenchError(f"unknown scope {scope!r}; choose one of: {', '.join(SCOPES)}")
    names = list(scores)
    dev = _device(scores)
    flat = [scores[n].detach().reshape(-1).to(dev) for n in names]
    if scope == "global":
        keep = official_keep(torch.cat(flat), rule, density=density, sparsity=sparsity)
        parts = torch.split(keep, [f.numel() for f in flat])
    else:
        parts = [official_keep(f, rule, density=density, sparsity=sparsity) for f in flat]
    return Mask({n: p.reshape(scores[n].shape) for n, p in zip(names, parts)})
