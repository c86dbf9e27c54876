"""Magnitude pruning at initialization (baseline; methods.md A.0 conventions).

score = |theta| of every Conv2d/Linear weight; keep the largest, globally (default) or per layer.
Data-free: `batches` is ignored. Ties (e.g. exact zeros of a delta-orthogonal init) are broken by
position, as everywhere (`common.select`).
"""
from __future__ import annotations

from prunebench.models import prunable_parameters
from prunebench.pruners.common import select


def scores(model) -> dict:
    """|theta| per prunable weight (a detached copy; the model is not modified)."""
    return {n: w.detach().abs().clone() for n, w in prunable_parameters(model).items()}


def prune_mask(model, stream, density, scope, seed):
    return select(scores(model), density, scope)
