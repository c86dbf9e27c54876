"""The `Mask`: parameter name -> bool tensor (True = kept), with reports and bit-packed storage.

Conventions (docs/methods.md A.0): sparsity = fraction of prunable weights removed; density = 1 - sparsity.
Masks are stored as safetensors (no pickle: masks come from remotes), one uint8 tensor of packed bits per
parameter, the shapes and metadata in the header. Loading validates names and shapes against a model.
"""
from __future__ import annotations

import numpy as np
import torch

from prunebench.library.errors import PrunebenchError
from prunebench.library.artifacts import load_tensors, save_tensors
from prunebench.library.models import prunable_modules, prunable_parameters

FORMAT = "prunebench-mask/1"


class Mask:
    def __init__(self, masks: dict, metadata: dict | None = None):
        self.masks = {k: v.detach().to(torch.bool).cpu() for k, v in masks.items()}
        self.metadata = dict(metadata or {})

    # -- construction -------------------------------------------------------------------------------
    @classmethod
    def ones(cls, model, names=None):
        params = prunable_parameters(model)
        names = names or list(params)
        return cls({n: torch.ones_like(params[n], dtype=torch.bool) for n in names})

    @classmethod
    def from_model(cls, model, names=None):
        """The mask of the nonzero entries of the model's prunable weights."""
        params = prunable_parameters(model)
        return cls({n: params[n] != 0 for n in (names or params)})

    # -- queries ------------------------------------------------------------------------------------
    def __getitem__(self, name):
        return self.masks[name]

    def __iter__(self):
        return iter(self.masks)

    def __len__(self):
        return len(self.masks)

    def items(self):
        return self.masks.items()

    def __eq__(self, other):
        return (isinstance(other, Mask) and list(self.masks) == list(other.masks)
                and all(torch.equal(self.masks[k], other.masks[k]) for k in self.masks))

    @property
    def total(self) -> int:
        return sum(m.numel() for m in self.masks.values())

    @property
    def kept(self) -> int:
        return sum(int(m.sum()) for m in self.masks.values())

    @property
    def density(self) -> float:
        return self.kept / max(self.total, 1)

    @property
    def sparsity(self) -> float:
        return 1.0 - self.density

    def layer_report(self) -> list:
        """One row per parameter: name, shape, numel, kept, density (in registration order)."""
        rows = []
        for n, m in self.masks.items():
            kept = int(m.sum())
            rows.append({"name": n, "shape": list(m.shape), "numel": m.numel(), "kept": kept,
                         "density": kept / m.numel()})
        return rows

    def collapsed(self) -> list:
        """Names of fully pruned weight tensors (no weight kept): a disconnected network (layer collapse).
        Bias entries (SNIP's `prune_bias`) do not count: a layer without biases is still connected."""
        return [n for n, m in self.masks.items() if not n.endswith("bias") and not bool(m.any())]

    def report(self) -> dict:
        """Density, counts, collapsed layers and the per-layer table (written next to every pruned mask)."""
        return {"density": self.density, "kept": self.kept, "total": self.total, "collapsed": self.collapsed(),
                "layers": self.layer_report()}

    def check_collapse(self, allow: bool = False) -> list:
        bad = self.collapsed()
        if bad and not allow:
            raise PrunebenchError(f"layer collapse: {len(bad)} layer(s) fully pruned ({', '.join(bad)}); "
                                  "pass allow_collapse to keep such a mask")
        return bad

    # -- model interaction ----------------------------------------------------------------------------
    def check_fits(self, model) -> dict:
        """Raise a one-line error unless every mask names a prunable weight (or, for SNIP's `prune_bias`,
        the bias of a prunable layer) of the same shape. Returns name -> parameter."""
        if not isinstance(model, torch.nn.Module):
            raise PrunebenchError(f"a mask applies to an nn.Module, got {type(model).__name__}")
        params = prunable_parameters(model)
        for mod_name, mod in prunable_modules(model).items():
            if mod.bias is not None:
                params.setdefault(f"{mod_name}.bias" if mod_name else "bias", mod.bias)
        for n, m in self.masks.items():
            if n not in params:
                raise PrunebenchError(f"mask does not fit the model: no prunable parameter {n!r}")
            if tuple(params[n].shape) != tuple(m.shape):
                raise PrunebenchError(f"mask does not fit the model: {n!r} has shape {tuple(m.shape)}, "
                                      f"the model's is {tuple(params[n].shape)}")
        return params

    @torch.no_grad()
    def apply(self, model):
        """Zero the pruned weights of `model` in place (the mask must fit)."""
        params = self.check_fits(model)
        for n, m in self.masks.items():
            params[n].mul_(m.to(params[n].device, params[n].dtype))
        return model

    def float_tensors(self, model) -> tuple:
        """(weights, float masks on the weights' devices), aligned lists for foreach enforcement."""
        params = self.check_fits(model)
        names = list(self.masks)
        return ([params[n] for n in names],
                [self.masks[n].to(device=params[n].device, dtype=params[n].dtype) for n in names])

    # -- storage --------------------------------------------------------------------------------------
    def save(self, path, **metadata):
        """Save as bit-packed safetensors with `metadata` (method, sparsity, seed, cell hash, ...) in the header."""
        meta = {**self.metadata, **metadata, "format": FORMAT,
                "shapes": {n: list(m.shape) for n, m in self.masks.items()},
                "order": list(self.masks), "density": self.density, "kept": self.kept, "total": self.total,
                "layers": {r["name"]: r["density"] for r in self.layer_report()}}
        packed = {n: torch.from_numpy(np.packbits(m.numpy().reshape(-1).astype(np.uint8)))
                  for n, m in self.masks.items()}
        save_tensors(path, packed, meta, what="mask file")

    @classmethod
    def load(cls, path, model=None) -> "Mask":
        tensors, meta = load_tensors(path, what="mask file")
        if meta.get("format") != FORMAT:
            raise PrunebenchError(f"corrupt mask file {str(path)!r}: not a prunebench mask (format {meta.get('format')!r})")
        order, shapes = meta.get("order"), meta.get("shapes")
        bad = _bad_layout(order, shapes, tensors)
        if bad:
            raise PrunebenchError(f"corrupt mask file {str(path)!r}: {bad}")
        masks = {}
        for n in order:
            shape = shapes[n]
            numel = int(np.prod(shape)) if shape else 1
            bits = np.unpackbits(tensors[n].numpy())
            if bits.size < numel or bits.size - numel >= 8:
                raise PrunebenchError(f"corrupt mask file {str(path)!r}: {n!r} holds {bits.size} bits for {numel} weights")
            masks[n] = torch.from_numpy(bits[:numel].astype(bool).reshape(shape))
        meta = {k: v for k, v in meta.items() if k not in ("format", "shapes", "order", "layers")}
        mask = cls(masks, meta)
        if model is not None:
            mask.check_fits(model)
        return mask


def _bad_layout(order, shapes, tensors) -> str | None:
    """What is wrong with a mask file's layout metadata (its names, shapes and packed tensors), or None. A file
    can pass its checksum and still be forged or written by a broken tool: this is checked before use."""
    if not isinstance(order, list) or not isinstance(shapes, dict):
        return "its metadata has no list of parameters and their shapes"
    if len(set(map(str, order))) != len(order) or set(order) != set(tensors):
        return "the parameters its metadata lists are not the tensors it holds"
    for n in order:
        shape = shapes.get(n)
        if not isinstance(shape, list) or len(shape) > 8 or not all(
                isinstance(d, int) and not isinstance(d, bool) and 0 <= d <= 2**31 for d in shape):
            return f"parameter {n!r} has no valid shape ({shape!r})"
        t = tensors[n]
        if t.dtype != torch.uint8 or t.dim() != 1:
            return f"parameter {n!r} is not a packed bit tensor"
    return None
