"""Random pruning (methods.md A.6).

Neither the FORCE nor the ProsPr repository has a random pruner; SynFlow's `Rand` draws i.i.d. Gaussian
scores and applies its global top-k. How each paper defines "random" is not stated (A.6 [NF]), so both
candidates of A.6 are offered and the choice is recorded in the mask metadata:

- scope "global" (default): i.i.d. uniform scores from `torch.Generator().manual_seed(seed)`, then one
  exact global top-k: a uniform-random global mask, every layer gets the same density in expectation;
- scope "layerwise": the same scores, exact top-k inside each layer: every layer gets exactly the target
  density (up to rounding);
- option `densities={name: density}`: the given per-layer densities (e.g. another method's
  `Mask.layer_report()`) with random positions ("shuffled" masks of A.6); implies layer-wise selection.

Scores are drawn on the CPU in layer-registration order, so the mask depends only on the seed and the
layer shapes (not on the device or the weights).
"""
from __future__ import annotations

import torch

from prunebench.models import prunable_parameters
from prunebench.pruners.common import select


def scores(model, seed: int = 0) -> dict:
    """I.i.d. U[0, 1) score per prunable weight, drawn from the seed in layer order (methods.md A.6)."""
    gen = torch.Generator().manual_seed(int(seed))
    return {n: torch.rand(tuple(w.shape), generator=gen, dtype=torch.float64)
            for n, w in prunable_parameters(model).items()}


def prune_mask(model, stream, density, scope, seed, densities=None):
    """Mask with random positions; `densities` (name -> density) gives per-layer budgets (A.6)."""
    s = scores(model, seed)
    if densities is not None:
        return select(s, dict(densities), "layerwise")
    return select(s, density, scope)
