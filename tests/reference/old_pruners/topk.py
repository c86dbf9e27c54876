"""Shared pruning mechanics: exact top-k selection with deterministic tie-breaking (docs/methods.md A.0).

Every method produces a score per prunable weight (higher = more important) and hands it to `select`.
The kept count is exactly round(N * density) (half rounds up), globally or per layer; ties are broken
by position (the earlier weight in layer-registration order, then in row-major order, wins), so the
same scores always give the same mask bytes. Selection is O(N) (`top_mask`), on the CPU.
"""
from __future__ import annotations

import math

import torch

from prunebench.library.errors import PrunebenchError
from prunebench.library.masks import Mask

SCOPES = ("global", "layerwise")


def keep_count(n: int, density: float) -> int:
    """round(n * density), halves rounded up, clamped to [0, n]."""
    return max(0, min(n, int(math.floor(n * density + 0.5))))


def top_mask(flat: torch.Tensor, k: int, pool: torch.Tensor | None = None) -> torch.Tensor:
    """Bool mask of the `k` highest entries of the 1-D `flat` (restricted to `pool` if given), exactly.

    Ties at the threshold go to the earlier positions. O(N): the threshold is the k-th largest value
    (kthvalue) and the ties at it are taken in positional order, so a 20M-weight VGG19 selects in well under
    a second on a CPU (a full stable sort takes seconds). Runs on the CPU (deterministic everywhere).
    """
    flat = flat.detach().reshape(-1).cpu()
    if not torch.is_floating_point(flat):
        flat = flat.double()
    if torch.isnan(flat).any():
        raise PrunebenchError("pruning scores contain NaN: the loss, gradients or weights diverged "
                              "(lower the learning rate, or check the temperature / data)")
    vals = flat if pool is None else flat[pool.reshape(-1).cpu()]
    k = max(0, min(int(k), vals.numel()))
    chosen = torch.zeros(vals.numel(), dtype=torch.bool)
    if k == vals.numel():
        chosen[:] = True
    elif k > 0:
        v = torch.kthvalue(vals, vals.numel() - k + 1).values  # the k-th largest
        above = vals > v
        ties = vals == v
        chosen = above | (ties & (torch.cumsum(ties, 0) <= k - int(above.sum())))
    if pool is None:
        return chosen
    keep = torch.zeros(flat.numel(), dtype=torch.bool)
    keep[pool.reshape(-1).cpu()] = chosen
    return keep


def select(scores: dict, density: float | dict | None = None, scope: str = "global", eligible: dict | None = None,
           count: int | None = None) -> Mask:
    """Keep the highest-scoring weights.

    scores:   name -> float tensor (same shape as the weight), in layer order.
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
    flat = [scores[n].detach().reshape(-1).cpu() for n in names]
    elig = [eligible[n].reshape(-1).cpu() for n in names] if eligible is not None else None
    masks = {}
    if scope == "global":
        if isinstance(density, dict):
            raise PrunebenchError("per-layer densities need scope 'layerwise'")
        n_all = sum(f.numel() for f in flat)
        k = count if count is not None else keep_count(n_all, density)
        keep = top_mask(torch.cat(flat), k, torch.cat(elig) if elig is not None else None)
        off = 0
        for n, f in zip(names, flat):
            masks[n] = keep[off:off + f.numel()].reshape(scores[n].shape)
            off += f.numel()
    else:
        if count is not None:
            raise PrunebenchError("count needs scope 'global'")
        for i, (n, f) in enumerate(zip(names, flat)):
            d = density[n] if isinstance(density, dict) else density
            masks[n] = top_mask(f, keep_count(f.numel(), d), elig[i] if elig is not None else None).reshape(scores[n].shape)
    return Mask(masks)


# ---------------------------------------------------------------------------------------------------
# The official codes' keep rules (docs/methods.md A.0 "Keep rule and ties"), as `count_rule="official"`.
# Each reproduces its code's arithmetic: which count, truncated or rounded how, and what happens at ties.
# Measured on identical weights and batches, FORCE and Iter SNIP masks are chaotic in this count (one weight
# of rounding at an early step changes the final mask by a third), so a replication needs the code's rule.

OFFICIAL_RULES = ("round", "ceil", "int_keep_ties", "int_prune_ties", "grasp")


def official_density(sparsity: float) -> float:
    """The density a user of a density-valued official flag types for `sparsity` (FORCE's --pruning_factor,
    SynFlow's 10^-c): the decimal complement (0.99 -> 0.01 exactly), not the float 1 - 0.99."""
    from decimal import Decimal

    return float(Decimal(1) - Decimal(repr(float(sparsity))))


def _kth_largest(flat: torch.Tensor, k: int) -> torch.Tensor:
    return torch.kthvalue(flat, flat.numel() - k + 1).values


def official_keep(flat: torch.Tensor, rule: str, *, density: float | None = None,
                  sparsity: float | None = None) -> torch.Tensor:
    """Bool keep-vector of the 1-D scores `flat` (higher = kept) under an official code's rule:

    round           k = int(round(N (1 - s))) kept, exact top-k            SNIP / SPP TF code
    ceil            k = ceil(N (1 - s)) kept, exact top-k                  ProsPr
    int_keep_ties   keep s >= the int(N d)-th largest score (ties kept)     FORCE, Iter SNIP
    int_prune_ties  prune s <= the int((1 - d) N)-th smallest (ties pruned)  SynFlow (and its Rand, Mag)
    grasp           S = -s / (|sum(-s)| + 1e-10); keep S <= the int(N s)-th largest S (the threshold
                    element survives: N - int(N s) + 1 kept without ties)  GraSP
    Ties of `round` and `ceil` go to the earlier position, as everywhere.
    """
    flat = flat.detach().reshape(-1).cpu()
    if not torch.is_floating_point(flat):
        flat = flat.double()
    if torch.isnan(flat).any():
        raise PrunebenchError("pruning scores contain NaN: the loss, gradients or weights diverged")
    n = flat.numel()
    if rule == "round":
        return top_mask(flat, int(round(n * (1.0 - sparsity))))
    if rule == "ceil":
        return top_mask(flat, math.ceil(n * (1 - sparsity)))
    if rule == "int_keep_ties":
        k = int(n * density)
        return flat >= _kth_largest(flat, k) if k >= 1 else torch.zeros(n, dtype=torch.bool)
    if rule == "int_prune_ties":
        k = int((1.0 - density) * n)
        return flat > torch.kthvalue(flat, k).values if k >= 1 else torch.ones(n, dtype=torch.bool)
    if rule == "grasp":
        s = -flat
        s = s / (s.sum().abs() + 1e-10)
        k = int(n * sparsity)
        return s <= _kth_largest(s, k) if k >= 1 else torch.ones(n, dtype=torch.bool)
    raise PrunebenchError(f"unknown keep rule {rule!r}; choose one of: {', '.join(OFFICIAL_RULES)}")


def select_official(scores: dict, rule: str, scope: str = "global", *, density: float | None = None,
                    sparsity: float | None = None) -> Mask:
    """`select` with an official code's keep rule (`official_keep`), globally or per layer."""
    if scope not in SCOPES:
        raise PrunebenchError(f"unknown scope {scope!r}; choose one of: {', '.join(SCOPES)}")
    names = list(scores)
    flat = [scores[n].detach().reshape(-1).cpu() for n in names]
    if scope == "global":
        keep = official_keep(torch.cat(flat), rule, density=density, sparsity=sparsity)
        parts = torch.split(keep, [f.numel() for f in flat])
    else:
        parts = [official_keep(f, rule, density=density, sparsity=sparsity) for f in flat]
    return Mask({n: p.reshape(scores[n].shape) for n, p in zip(names, parts)})
