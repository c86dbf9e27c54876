"""One training step, three ways that give the same bytes: plain, static-buffer, and a CUDA graph of the latter.

A step is: forward (bf16 autocast and channels_last on CUDA), cross-entropy, backward, the mask on the
gradients, the during-training pruner's `before_step` hook, the SGD update (`optim.MaskedSGD`), the mask on the
weights, and the epoch's running loss / accuracy sums (device tensors, read once per evaluation point).

- `plain` (`Stepper.plain`): `loss.backward()` into fresh `.grad` tensors; the CPU path, and the CUDA path of
  `torch.compile` runs. Its arithmetic is that of the loop it replaced (tests/test_train_equivalence.py).
- `static` (`Stepper.static`): the same kernels, but every tensor the step reads or writes lives at a fixed
  address: the batch is copied into static input buffers, the gradients come from `torch.autograd.grad` and are
  copied into persistent `.grad` buffers, momentum buffers and mask tensors are updated in place, and the
  metric sums are static. This is the body a CUDA graph captures; run eagerly it equals `plain` bit for bit
  (tests/test_train.py checks it on the CPU, where no graph can run).
- `graph` (`GraphStep`, CUDA): the static body captured once as a CUDA graph after a few eager warm-up steps and
  replayed for every full batch: no Python work and no host-device synchronisation per step. The learning rate
  is a constant of the graph (the update is `p - lr * g` with lr a Python number, as torch.optim.SGD's), so a
  new learning rate (an epoch boundary of a step or cosine schedule) re-captures it -- a capture costs about one
  step's host time and nothing else. Steps that need Python between the backward pass and the update (a
  pruning event of FGGP / GMP, which reads the gradients and may change the mask), and the last partial batch
  of an epoch (another shape), run the static body eagerly: same kernels, same bytes. A mask change is copied
  into the captured mask tensors in place; a mask over other tensors (a dense start's first event) re-captures.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from prunebench.library.training.optim import MaskedSGD, MaskEnforcer

STEP_MODES = ("auto", "plain", "static", "graph", "graph-emulated")
WARMUP_STEPS = 3  # eager static steps on a side stream before the first capture (cuDNN / cuBLAS handles, buffers)


class Stepper:
    """The step of one run: model, forward function, optimizer, mask enforcer and the metric sums."""

    def __init__(self, model: nn.Module, fwd, optim: MaskedSGD, enforcer: MaskEnforcer, *, device, amp: bool,
                 channels_last: bool, label_smoothing: float):
        self.model, self.fwd, self.optim, self.enforcer = model, fwd, optim, enforcer
        self.device, self.amp, self.cl, self.label_smoothing = torch.device(device), amp, channels_last, label_smoothing
        self.params = optim.params
        self.loss_sum = torch.zeros((), device=self.device)
        self.correct = torch.zeros((), device=self.device, dtype=torch.long)
        self.grad_buffers = None  # static mode: the persistent .grad tensors

    def reset_metrics(self) -> None:
        self.loss_sum.zero_()
        self.correct.zero_()

    def _forward_loss(self, x, y):
        if self.cl:
            x = x.contiguous(memory_format=torch.channels_last)
        if self.amp:
            with torch.autocast("cuda", dtype=torch.bfloat16, cache_enabled=False):
                out = self.fwd(x)
        else:
            out = self.fwd(x)
        return out, F.cross_entropy(out.float(), y, label_smoothing=self.label_smoothing)

    @torch.no_grad()
    def _accumulate(self, out, loss, y) -> None:
        self.loss_sum += loss.detach() * y.numel()
        self.correct += (out.argmax(1) == y).sum()

    # -- plain ------------------------------------------------------------------------------------------------
    def plain(self, x, y, lr: float, before_step=None, step: int = 0):
        """One step with fresh .grad tensors; `before_step(step + 1, model)` runs between backward and update."""
        out, loss = self._forward_loss(x, y)
        for p in self.params:
            p.grad = None
        loss.backward()
        self.enforcer.grads()
        if before_step is not None:
            before_step(step + 1, self.model)
        self.optim.step(lr)
        self.enforcer.weights_()
        self._accumulate(out, loss, y)
        return loss

    # -- static -----------------------------------------------------------------------------------------------
    def make_static(self) -> None:
        """Persistent .grad buffers for the static body (a parameter that then gets no gradient raises
        `_NoGradient` at the first step; the trainer falls back to `plain` steps)."""
        if self.grad_buffers is None:
            self.grad_buffers = [torch.zeros_like(p) for p in self.params]
        for p, g in zip(self.params, self.grad_buffers):
            p.grad = g

    def _static_grads(self, x, y):
        out, loss = self._forward_loss(x, y)
        grads = torch.autograd.grad(loss, self.params, allow_unused=True)
        if any(g is None for g in grads):
            raise _NoGradient(next(i for i, g in enumerate(grads) if g is None))
        torch._foreach_copy_(self.grad_buffers, list(grads))
        self.enforcer.grads()
        return out, loss

    def _static_update(self, lr: float) -> None:
        self.optim.step(lr, self.grad_buffers)
        self.enforcer.weights_()

    def static(self, x, y, lr: float, before_step=None, step: int = 0):
        """The static body run eagerly (`before_step` as in `plain`); the .grad tensors are the static buffers."""
        out, loss = self._static_grads(x, y)
        if before_step is not None:
            before_step(step + 1, self.model)
        self._static_update(lr)
        self._accumulate(out, loss, y)
        return loss

    def body(self, x, y, lr: float):
        """The static body without hooks: what a CUDA graph captures."""
        out, loss = self._static_grads(x, y)
        self._static_update(lr)
        self._accumulate(out, loss, y)
        return loss


class _NoGradient(Exception):
    def __init__(self, index):
        super().__init__(f"parameter {index} receives no gradient")


class CudaGraphs:
    """How `GraphStep` warms up and captures on CUDA: warm-up steps on a side stream, `torch.cuda.graph`."""

    def __init__(self, device):
        self.device = torch.device(device)
        self.side = torch.cuda.Stream(device=self.device)
        # one memory pool for every capture of the run: a re-capture (a new learning rate) reuses the memory of
        # the graph it replaces (which is dropped first) instead of holding a second pool
        self.pool = torch.cuda.graph_pool_handle()

    def warmup(self, fn):
        cur = torch.cuda.current_stream(self.device)
        self.side.wait_stream(cur)
        with torch.cuda.stream(self.side):
            out = fn()
        cur.wait_stream(self.side)
        return out

    def capture(self, fn):
        torch.cuda.synchronize(self.device)
        g = torch.cuda.CUDAGraph()
        # thread_local: the checkpoint writer's thread (host tensors only) may run while an epoch's re-capture does
        with torch.cuda.graph(g, pool=self.pool, capture_error_mode="thread_local"):
            out = fn()
        return _Captured(g, out)


class _Captured:
    def __init__(self, graph, out):
        self.graph, self.out = graph, out

    def replay(self):
        self.graph.replay()
        return self.out


class EmulatedGraphs:
    """`GraphStep` without CUDA (tests, `step_mode="graph-emulated"`): a "capture" records the step and each
    "replay" runs it, reading the same static buffers a CUDA graph reads. Everything but the capture itself --
    warm-up, static inputs, one capture per learning rate, eager events and partial batches, masks changed in
    place or re-captured -- runs as on CUDA, so the graph path's logic is checked where no GPU is."""

    def __init__(self, device=None):
        self.device = device

    def warmup(self, fn):
        return fn()

    def capture(self, fn):
        return _Deferred(fn)


class _Deferred:
    def __init__(self, fn):
        self.fn = fn

    def replay(self):
        return self.fn()


class GraphStep:
    """Full batches through a CUDA graph of `Stepper.body` (see the module docstring), the rest eagerly.

    `run(x, y, lr, hooks_needed, ...)` takes one step: the first WARMUP_STEPS full batches run eagerly (on a
    side stream), then the body is captured for (batch shape, lr) and replayed; `hooks_needed` (a pruning
    event) or another batch shape runs `Stepper.static` with the hooks. `invalidate()` drops the graph (a mask
    over other tensors). `fallback` says why graphs were given up, if they were (the run continues with eager
    static steps: the same bytes)."""

    def __init__(self, stepper: Stepper, batch_shape: tuple, log=print, backend=None):
        self.s, self.log = stepper, log
        self.backend = backend if backend is not None else CudaGraphs(stepper.device)
        self.shape = tuple(batch_shape)
        self.graph = None
        self.graph_lr = None
        self.warm = 0
        self.fallback = None
        self.captures = 0
        self.replays = 0
        self.eager_steps = 0
        fmt = torch.channels_last if stepper.cl else torch.contiguous_format
        self.static_x = torch.zeros(self.shape, device=stepper.device).contiguous(memory_format=fmt)
        self.static_y = torch.zeros(self.shape[0], device=stepper.device, dtype=torch.long)

    def invalidate(self) -> None:
        self.graph = None
        self.graph_lr = None

    def run(self, x, y, lr: float, *, hooks_needed: bool, before_step=None, step: int = 0):
        s = self.s
        full = tuple(x.shape) == self.shape
        if self.fallback is not None or hooks_needed or not full:
            self.eager_steps += 1
            return s.static(x, y, lr, before_step if hooks_needed else None, step)
        self.static_x.copy_(x)
        self.static_y.copy_(y)
        if self.warm < WARMUP_STEPS:
            self.warm += 1
            self.eager_steps += 1
            return self.backend.warmup(lambda: s.body(self.static_x, self.static_y, lr))
        if self.graph is None or self.graph_lr != lr:
            self._capture(lr)
            if self.graph is None:  # capture failed: this step (and the rest) eagerly
                self.eager_steps += 1
                return s.body(self.static_x, self.static_y, lr)
        self.replays += 1
        return self.graph.replay()

    def _capture(self, lr: float) -> None:
        self.graph = None  # the replaced graph's memory goes back to the shared pool before the new capture
        try:
            graph = self.backend.capture(lambda: self.s.body(self.static_x, self.static_y, lr))
        except _NoGradient:
            raise
        except Exception as e:  # never fatal: the static body runs eagerly, same kernels, same bytes
            self.fallback = f"CUDA graph capture failed ({type(e).__name__}: {str(e)[:200]}); eager steps"
            self.log(f"WARNING: {self.fallback}")
            return
        self.graph, self.graph_lr = graph, lr
        self.captures += 1
