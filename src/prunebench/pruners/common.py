"""Shared pruning mechanics: exact top-k selection with deterministic tie-breaking (methods.md A.0).

Every method produces a score per prunable weight (higher = more important) and hands it to `select`.
The kept count is exactly round(N * density) (half rounds up), globally or per layer; ties are broken
by position (the earlier weight in layer-registration order, then in row-major order, wins), so the
same scores always give the same mask bytes.
"""
from __future__ import annotations

import math

import torch

from prunebench.errors import PrunebenchError, check_sparsity
from prunebench.masks import Mask

SCOPES = ("global", "layerwise")


def keep_count(n: int, density: float) -> int:
    """round(n * density), halves rounded up, clamped to [0, n]."""
    return max(0, min(n, int(math.floor(n * density + 0.5))))


def _top_indices(flat: torch.Tensor, k: int) -> torch.Tensor:
    if torch.isnan(flat).any():
        raise PrunebenchError("pruning scores contain NaN (diverged scoring: check the loss, lr or temperature)")
    # Stable descending sort: equal scores keep their positional order, so the earliest wins.
    order = torch.sort(flat, descending=True, stable=True).indices
    return order[:k]


def select(scores: dict, density: float, scope: str = "global", eligible: dict | None = None) -> Mask:
    """Keep the highest-scoring weights.

    scores:   name -> float tensor (same shape as the weight), in layer order.
    density:  fraction to keep (float), or name -> density for `layerwise` scope.
    eligible: optional name -> bool tensor; only eligible weights can be kept (others score -inf).
              If fewer weights are eligible than the budget, only the eligible ones are kept.
    """
    if scope not in SCOPES:
        raise PrunebenchError(f"unknown scope {scope!r}; choose one of: {', '.join(SCOPES)}")
    names = list(scores)
    flat = [scores[n].detach().reshape(-1).double().cpu() for n in names]
    elig = None
    if eligible is not None:
        elig = [eligible[n].reshape(-1).cpu() for n in names]
        flat = [torch.where(e, f, torch.full_like(f, -math.inf)) for f, e in zip(flat, elig)]
    masks = {}
    if scope == "global":
        if isinstance(density, dict):
            raise PrunebenchError("per-layer densities need scope 'layerwise'")
        check_sparsity(1.0 - density) if density < 1.0 else None
        allf = torch.cat(flat)
        k = keep_count(allf.numel(), density)
        if elig is not None:
            k = min(k, int(torch.cat(elig).sum()))
        keep = torch.zeros(allf.numel(), dtype=torch.bool)
        keep[_top_indices(allf, k)] = True
        off = 0
        for n, f in zip(names, flat):
            masks[n] = keep[off:off + f.numel()].reshape(scores[n].shape)
            off += f.numel()
    else:
        for i, (n, f) in enumerate(zip(names, flat)):
            d = density[n] if isinstance(density, dict) else density
            k = keep_count(f.numel(), d)
            if elig is not None:
                k = min(k, int(elig[i].sum()))
            keep = torch.zeros(f.numel(), dtype=torch.bool)
            keep[_top_indices(f, k)] = True
            masks[n] = keep.reshape(scores[n].shape)
    return Mask(masks)


def exp_schedule(final_density: float, steps: int) -> list:
    """FORCE/SynFlow exponential schedule: d_t = d^(t/T), t = 1..T (methods.md A.3, E.4)."""
    return [final_density ** (t / steps) for t in range(1, steps + 1)]


def linear_schedule(final_density: float, steps: int) -> list:
    """FORCE linear schedule: d_t = 1 - t (1 - d) / T."""
    return [1.0 - t * (1.0 - final_density) / steps for t in range(1, steps + 1)]
