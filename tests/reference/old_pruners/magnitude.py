"""Magnitude pruning at initialization (baseline; docs/methods.md A.0).

score = |theta| of every Conv2d/Linear weight; keep the largest, globally (default) or per layer.
Data-free: batches are ignored. Ties (e.g. exact zeros of a delta-orthogonal init) are broken by
position, as everywhere (`common.select`).
"""
from __future__ import annotations

from prunebench.library.models import prunable_parameters
from reference.old_pruners.base import Pruner


class Magnitude(Pruner):
    name = "magnitude"
    needs_data = False

    def scores(self, model, batches=None, seed: int = 0) -> dict:
        """|theta| per prunable weight (a detached copy; the model is not modified)."""
        return {n: w.detach().abs().clone() for n, w in prunable_parameters(model).items()}
