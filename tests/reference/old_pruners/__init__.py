"""A frozen copy of src/prunebench/library/pruners at commit 7ba29fc, before the pruning-time fixes of issue 19
(FORCE's and SynFlow's selection): `tests/pruners/test_mask_bytes.py` requires the current pruners to give the
same mask bytes. Only the package name in imports is changed (prunebench.library.pruners -> reference.old_pruners)
so that the copy imports itself and not the current code. Do not edit.

Pruning: at initialization one class per method on shared helpers (docs/methods.md A.0-A.8), during
training in `pruners.during` (A.9).

    from reference.old_pruners import prune
    mask = prune(model, "force", 0.99, batches, steps=60, loss="ce")

The methods are the rows of `prunebench.library.methods`; each at-init method is a `Pruner` subclass
(`pruners.base`) with typed `Options`, found by `pruner_class(name)`. `paper_vs_code()` lists every option
where the paper's text and its official code differ.
"""
import importlib

# Lazy: importing one method's module (e.g. reference.old_pruners.fggp) must not run the registry, so the
# names below are resolved on first access (and, being strings, are not counted as run by provenance).
_LAZY = ("prune", "scores", "pruner_class", "paper_vs_code", "resolve_options")


def __getattr__(name):
    if name in _LAZY:
        return getattr(importlib.import_module("reference.old_pruners.registry"), name)
    raise AttributeError(name)


__all__ = list(_LAZY)
