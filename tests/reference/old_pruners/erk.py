"""ERK (Erdős–Rényi-Kernel) random masks: the "initially sparse" start of pruning during training
(docs/methods.md A.9; Evci et al. 2020 RigL / GraNet)."""
from __future__ import annotations

import math

import torch

from prunebench.library.errors import PrunebenchError, choose
from prunebench.library.masks import Mask
from reference.old_pruners.topk import keep_count

ERK_SAMPLINGS = ("exact", "bernoulli")

def erk_densities(shapes: dict, density: float) -> dict:
    """Per-layer ERK densities whose weighted mean is `density` (docs/methods.md A.9 "Initially 50% sparse start";
    Evci et al. 2020 RigL / GraNet).

    Layer density is eps * (sum of the weight's dims) / (product of the weight's dims), i.e.
    (cout+cin+kh+kw)/(cout*cin*kh*kw) for a conv and (out+in)/(out*in) for a linear layer, with eps set so
    that sum_l density_l * n_l = density * N. Capacity check: while some layer's density would exceed 1,
    the layer(s) with the largest raw density are made dense and eps is re-solved over the rest (without
    this check ERK undershoots the requested density: TimDettmers/sparse_learning #20).
    """
    if not 0.0 < density <= 1.0:
        raise PrunebenchError(f"invalid ERK density {density!r}: must be in (0, 1]")
    numel = {n: math.prod(s) for n, s in shapes.items()}
    raw = {n: sum(s) / numel[n] for n, s in shapes.items()}
    dense: set = set()
    eps = 0.0
    while True:
        free = [n for n in shapes if n not in dense]
        if not free:
            break
        budget = density * sum(numel.values()) - sum(numel[n] for n in dense)
        divisor = sum(raw[n] * numel[n] for n in free)
        eps = budget / divisor
        top = max(raw[n] for n in free)
        if eps * top <= 1.0:
            break
        dense.update(n for n in free if raw[n] == top)
    return {n: 1.0 if n in dense else min(1.0, eps * raw[n]) for n in shapes}


def erk_counts(shapes: dict, density: float) -> dict:
    """Kept weights per layer for an ERK mask: the ERK densities turned into integer counts whose total is
    exactly keep_count(N, density) (largest-remainder rounding; ties go to the earlier layer), none above
    the layer's size (docs/methods.md A.9)."""
    dens = erk_densities(shapes, density)
    numel = {n: math.prod(s) for n, s in shapes.items()}
    target = {n: dens[n] * numel[n] for n in shapes}
    counts = {n: min(numel[n], int(math.floor(target[n]))) for n in shapes}
    deficit = keep_count(sum(numel.values()), density) - sum(counts.values())
    order = sorted(shapes, key=lambda n: -(target[n] - math.floor(target[n])))
    while deficit > 0:
        moved = False
        for n in order:
            if deficit > 0 and counts[n] < numel[n]:
                counts[n] += 1
                deficit -= 1
                moved = True
        if not moved:
            break
    return counts


def erk_mask(params: dict, density: float, generator: torch.Generator, sampling: str = "exact") -> Mask:
    """A random ERK mask over `params` (name -> weight) at overall `density` (docs/methods.md A.9).

    sampling="exact": each layer keeps exactly its `erk_counts` weights, a uniformly random subset drawn
    with torch.randperm from `generator` (overall density exact up to rounding of N*density).
    sampling="bernoulli": the official code's draw, each weight kept with probability = its layer's density
    (realised density only approximately the target)."""
    choose("ERK sampling", sampling, ERK_SAMPLINGS)
    shapes = {n: tuple(p.shape) for n, p in params.items()}
    masks = {}
    if sampling == "exact":
        counts = erk_counts(shapes, density)
        for n, s in shapes.items():
            numel = math.prod(s)
            keep = torch.zeros(numel, dtype=torch.bool)
            keep[torch.randperm(numel, generator=generator)[:counts[n]]] = True
            masks[n] = keep.reshape(s)
    else:
        dens = erk_densities(shapes, density)
        for n, s in shapes.items():
            masks[n] = torch.rand(s, generator=generator) < dens[n]
    return Mask(masks, {"init_type": "erk", "erk_sampling": sampling, "target_density": density})
