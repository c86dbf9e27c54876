"""Shared pruning mechanics: exact top-k selection with deterministic tie-breaking (methods.md A.0).

Every method produces a score per prunable weight (higher = more important) and hands it to `select`.
The kept count is exactly round(N * density) (half rounds up), globally or per layer; ties are broken
by position (the earlier weight in layer-registration order, then in row-major order, wins), so the
same scores always give the same mask bytes. Selection is O(N) (`top_mask`), on the CPU.
"""
from __future__ import annotations

import math

import torch

from prunebench.errors import PrunebenchError
from prunebench.masks import Mask

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
