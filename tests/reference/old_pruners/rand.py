"""Random pruning (docs/methods.md A.6).

Neither the FORCE nor the ProsPr repository has a random pruner; SynFlow's `Rand` draws i.i.d. Gaussian
scores and applies its global top-k. How each paper defines "random" is not stated, so both candidates
are offered and the choice is recorded in the mask metadata:

- scope "global" (default): i.i.d. uniform scores from `torch.Generator().manual_seed(seed)`, then one
  exact global top-k: a uniform-random global mask, every layer gets the same density in expectation;
- scope "layerwise": the same scores, exact top-k inside each layer;
- option `densities={name: density}`: the given per-layer densities (e.g. another method's
  `Mask.layer_report()`) with random positions (a "layer-wise shuffle"); implies layer-wise selection.

Scores are drawn on the CPU in layer-registration order, so the mask depends only on the seed and the
layer shapes (not on the device or the weights).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from prunebench.library.models import prunable_parameters
from reference.old_pruners.base import Pruner, PrunerOptions, densities, option
from reference.old_pruners.topk import select


class Random(Pruner):
    name = "random"
    needs_data = False

    @dataclass(frozen=True)
    class Options(PrunerOptions):
        method = "random"
        densities: dict | None = option(
            None, "per-layer densities {parameter name: density} (random positions)", check=densities,
            paper="not stated", official="none (no random pruner in FORCE/ProsPr code)", section="A.6",
            note="default = uniform global (SynFlow's Rand); densities= gives another method's per-layer "
            "densities with random positions")

    def scores(self, model, batches=None, seed: int = 0) -> dict:
        """I.i.d. U[0, 1) score per prunable weight, drawn from the seed in layer order (docs/methods.md A.6)."""
        gen = torch.Generator().manual_seed(int(seed))
        return {n: torch.rand(tuple(w.shape), generator=gen, dtype=torch.float64)
                for n, w in prunable_parameters(model).items()}

    def mask(self, model, batches, sparsity, scope="global", seed=0):
        s = self.scores(model, batches, seed)
        if self.options.densities is not None:
            return select(s, dict(self.options.densities), "layerwise")
        return self.select(s, sparsity, scope)
