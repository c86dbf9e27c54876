"""Masked SGD: the mask enforcer and the optimizer step of the trainer, as fused `torch._foreach_*` calls.

`MaskedSGD.step` is torch.optim.SGD's update (momentum, dampening 0, Nesterov, weight decay) written with the same
kernels in the same order as `torch.optim.sgd._single_tensor_sgd` -- `g + wd * p`, a momentum buffer that is the
first gradient's clone and then `buf * m + g`, `g + m * buf` for Nesterov, `p - lr * g` -- so its results are
those of `torch.optim.SGD` bit for bit (tests/test_train.py checks it against the real optimizer), without the
optimizer's per-step Python machinery. It changes no tensor object after the first step (buffers are updated in
place), which is what a CUDA graph of the step needs: the graph captures these same calls.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from prunebench.library.masks import Mask


class MaskEnforcer:
    """Holds aligned (weights, float masks) lists and zeroes pruned entries with fused foreach ops.

    `update(mask)` changes the mask in place (the float tensors keep their storage, so a captured step sees the
    new mask) when the new mask names the same tensors; otherwise it rebuilds and says so (False)."""

    def __init__(self, model: nn.Module, mask: Mask | None):
        self.model = model
        self.mask = mask
        self.weights, self.floats = (mask.float_tensors(model) if mask is not None else ([], []))
        self.names = list(mask.masks) if mask is not None else []

    @torch.no_grad()
    def grads(self):
        gs = [w.grad for w in self.weights if w.grad is not None]
        if gs and len(gs) == len(self.weights):
            torch._foreach_mul_(gs, self.floats)
        elif gs:
            for w, m in zip(self.weights, self.floats):
                if w.grad is not None:
                    w.grad.mul_(m)

    @torch.no_grad()
    def mask_(self, tensors: list):
        """Zero the pruned entries of `tensors`, aligned with the masked weights (e.g. their gradients)."""
        if tensors:
            torch._foreach_mul_(tensors, self.floats)

    @torch.no_grad()
    def weights_(self):
        if self.weights:
            torch._foreach_mul_(self.weights, self.floats)

    @torch.no_grad()
    def update(self, mask: Mask) -> bool:
        """Switch to `mask`; True when done in place (same tensors masked), False when the lists were rebuilt."""
        if self.mask is not None and list(mask.masks) == self.names:
            for f, n in zip(self.floats, self.names):
                f.copy_(mask[n].to(device=f.device, dtype=f.dtype))
            self.mask = mask
            return True
        self.__init__(self.model, mask)
        return False


class MaskedSGD:
    """SGD over `params` (momentum, Nesterov, weight decay; dampening 0), bit-identical to torch.optim.SGD.

    Momentum buffers live in `self.buffers` (parameter index -> tensor), created from the first gradient as
    torch does; `state(names)` / `load_state(...)` read and write them by parameter name for checkpoints (the
    format of torch.optim.SGD's `momentum_buffer` entries)."""

    def __init__(self, params: list, momentum: float = 0.0, weight_decay: float = 0.0, nesterov: bool = False):
        self.params = list(params)
        self.momentum, self.weight_decay, self.nesterov = float(momentum), float(weight_decay), bool(nesterov)
        self.buffers: dict = {}

    @torch.no_grad()
    def step(self, lr: float, grads: list | None = None) -> None:
        """One update with learning rate `lr`, from `grads` (aligned with the parameters; default: their .grad;
        a parameter whose gradient is None is skipped, as torch.optim.SGD skips it)."""
        grads = [p.grad for p in self.params] if grads is None else grads
        if any(g is None for g in grads):
            idx = [i for i, g in enumerate(grads) if g is not None]
            params, grads = [self.params[i] for i in idx], [grads[i] for i in idx]
        else:
            idx, params = range(len(self.params)), self.params
        if not params:
            return
        if self.weight_decay != 0:
            grads = torch._foreach_add(grads, params, alpha=self.weight_decay)
        if self.momentum != 0:
            bufs = [self.buffers.get(i) for i in idx]
            if any(b is None for b in bufs):
                for k, (i, g) in enumerate(zip(idx, grads)):
                    if bufs[k] is None:
                        bufs[k] = self.buffers[i] = g.detach().clone()
                    else:
                        bufs[k].mul_(self.momentum).add_(g, alpha=1.0)
            else:
                torch._foreach_mul_(bufs, self.momentum)
                torch._foreach_add_(bufs, grads, alpha=1.0)
            grads = torch._foreach_add(grads, bufs, alpha=self.momentum) if self.nesterov else bufs
        torch._foreach_add_(params, grads, alpha=-lr)

    def state(self, names: dict) -> dict:
        """`momentum/<name>` -> buffer, in parameter order (`names`: id(parameter) -> name)."""
        return {f"momentum/{names[id(self.params[i])]}": self.buffers[i] for i in sorted(self.buffers)}

    def load_state(self, buffers: dict, named: dict, device) -> None:
        """Momentum buffers by parameter name (`named`: name -> parameter), copied to `device`."""
        index = {id(p): i for i, p in enumerate(self.params)}
        for name, v in buffers.items():
            self.buffers[index[id(named[name])]] = v.to(device).clone()
