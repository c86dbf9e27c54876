"""Pruning at initialization: one module per method on shared helpers (reference/methods.md A.0-A.8).

    from prunebench.pruners import prune
    mask = prune(model, "force", 0.99, batches, steps=60, loss="ce")

Methods: random, magnitude, snip, grasp, synflow, iter_snip, force, prospr (see `registry.METHODS` and
each module's docstring). `PAPER_VS_CODE_OPTIONS` lists every option where the paper and its official
code differ (the paper is always the default).
"""
from prunebench.pruners.registry import (METHOD_NAMES, METHODS, PAPER_VS_CODE_OPTIONS, paper_vs_code_markdown,
                                         prune, resolve_options, scores)

__all__ = ["prune", "scores", "METHODS", "METHOD_NAMES", "PAPER_VS_CODE_OPTIONS", "paper_vs_code_markdown",
           "resolve_options"]
