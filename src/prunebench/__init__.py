"""prunebench: reproducible pruning at initialization and during training.

Public API (see README):
    prunebench.build_model(name, dataset)            -> nn.Module
    prunebench.initialize(model, scheme, seed)       -> model (in place)
    prunebench.prune(model, method, sparsity, batches, **options) -> Mask
    prunebench.Mask                                   (library/masks.py)

`import prunebench` imports no torch: every command of the CLI, the Snakefile (each Snakemake process
parses it, one per job on a cluster) and the report wing import this package on their way to their own
module, and most of them never touch a model; importing torch costs each of them seconds and hundreds of
megabytes. So the public names are imported on first access (module `__getattr__`, PEP 562), and
`from prunebench import prune` works as usual.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from prunebench.library.errors import PrunebenchError

if TYPE_CHECKING:  # what static tools see; at run time, `__getattr__` below
    from prunebench.library.init import initialize
    from prunebench.library.masks import Mask
    from prunebench.library.models import MODELS, build_model, prunable_parameters
    from prunebench.library.pruners.registry import prune

__version__ = "0.1.0"


def __getattr__(name):
    # Function-level imports on purpose: they run on first access to a public name (see the docstring).
    if name in ("build_model", "prunable_parameters", "MODELS"):
        from prunebench.library import models  # torch: on first access

        return getattr(models, name)
    if name == "initialize":
        from prunebench.library.init import initialize  # torch: on first access

        return initialize
    if name == "Mask":
        from prunebench.library.masks import Mask  # torch: on first access

        return Mask
    if name == "prune":
        from prunebench.library.pruners.registry import prune  # torch: on first access

        return prune
    raise AttributeError(f"module 'prunebench' has no attribute {name!r}")


__all__ = ["PrunebenchError", "build_model", "prunable_parameters", "initialize", "Mask", "prune"]
