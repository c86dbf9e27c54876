"""prunebench: reproducible pruning at initialization and during training.

Public API (see README):
    prunebench.build_model(name, dataset)            -> nn.Module
    prunebench.initialize(model, scheme, seed)       -> model (in place)
    prunebench.prune(model, method, sparsity, batches, **options) -> Mask
    prunebench.Mask                                   (masks.py)
"""
from prunebench.errors import PrunebenchError

__version__ = "0.1.0"


def __getattr__(name):  # lazy: importing the package must not import torch-heavy modules eagerly
    if name in ("build_model", "prunable_parameters", "MODELS"):
        from prunebench import models
        return getattr(models, name)
    if name == "initialize":
        from prunebench.init import initialize
        return initialize
    if name == "Mask":
        from prunebench.masks import Mask
        return Mask
    if name == "prune":
        from prunebench.pruners import prune
        return prune
    raise AttributeError(name)


__all__ = ["PrunebenchError", "build_model", "prunable_parameters", "initialize", "Mask", "prune"]
