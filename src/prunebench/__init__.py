"""prunebench: reproducible pruning at initialization and during training.

Public API (see README):
    prunebench.build_model(name, dataset)            -> nn.Module
    prunebench.initialize(model, scheme, seed)       -> model (in place)
    prunebench.prune(model, method, sparsity, batches, **options) -> Mask
    prunebench.Mask                                   (library/masks.py)
"""
import importlib

from prunebench.library.errors import PrunebenchError

__version__ = "0.1.0"

# Lazy attributes: importing the package imports no torch. The modules are named as strings (imported on
# first access), so that a pipeline step's provenance (prunebench.pipeline.provenance) does not count them as run.
_LAZY = {"build_model": "prunebench.library.models", "prunable_parameters": "prunebench.library.models", "MODELS": "prunebench.library.models",
         "initialize": "prunebench.library.init", "Mask": "prunebench.library.masks", "prune": "prunebench.library.pruners.registry"}


def __getattr__(name):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(name)


__all__ = ["PrunebenchError", "build_model", "prunable_parameters", "initialize", "Mask", "prune"]
