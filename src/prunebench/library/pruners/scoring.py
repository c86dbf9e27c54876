"""Shared scoring helpers for the pruners (docs/methods.md A.0-A.8).

- `BatchStream`: one way to draw `(inputs, targets)` batches from what the caller passed.
- `loss_value`: the scoring losses (cross-entropy, -logit of the target, uniform-label variants).
- `mean_gradient`: gradient of the loss w.r.t. chosen tensors, averaged over batches.
- `scoring_copy`: the deep copy every data-driven method scores on (the caller's model is never touched).
- `measure`: wall time and peak memory of a scoring run.

Every helper works on the device of the model it is given (CPU or CUDA) and uses no global RNG.
"""
from __future__ import annotations

import contextlib
import copy
import ctypes
import os
import resource
import threading
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

from prunebench.library.errors import PrunebenchError
from prunebench.library.init import init_weight
from prunebench.library.models import prunable_modules, prunable_parameters

LOSSES = ("ce", "neg_logit")
LABELS = ("true", "uniform")
BN_MODES = ("train", "eval")


# ---------------------------------------------------------------------------------------------------
# Batches


def _is_batch(obj) -> bool:
    return isinstance(obj, (tuple, list)) and len(obj) == 2 and torch.is_tensor(obj[0])


class BatchStream:
    """Draw `(inputs, targets)` batches, moved to `device`.

    - a single batch `(x, y)` of tensors is treated as `[(x, y)]`;
    - a list or tuple of batches is cycled in order (batch 0, 1, ..., 0, 1, ...);
    - an iterator (``iter(b) is b``, e.g. a generator) is consumed: every draw is a fresh batch
      (FORCE draws a fresh batch per step, docs/methods.md A.3); running out is an error;
    - any other iterable (e.g. a DataLoader) is iterated and restarted when exhausted (like ProsPr's
      loader handling, docs/methods.md A.8).
    """

    def __init__(self, batches, device=None, what="this method"):
        if batches is None:
            raise PrunebenchError(f"{what} needs data: pass batches=[(inputs, targets), ...]")
        self.device = device
        self._seq = self._it = self._iterable = None
        self._pos = 0
        self.drawn = 0
        if _is_batch(batches):
            self._seq = [batches]
        elif isinstance(batches, (list, tuple)):
            if not batches:
                raise PrunebenchError(f"{what} needs data: batches is empty")
            self._seq = list(batches)
        else:
            try:
                it = iter(batches)
            except TypeError:
                raise PrunebenchError(f"batches must be an iterable of (inputs, targets), not "
                                      f"{type(batches).__name__}") from None
            if it is batches:
                self._it = it
            else:
                self._iterable, self._it = batches, it

    def peek_shape(self):
        """Input shape (without the batch dimension) of the first batch of a list, else None."""
        if self._seq is not None:
            return tuple(self._check(self._seq[0])[0].shape[1:])
        return None

    @staticmethod
    def _check(batch):
        if not _is_batch(batch) or not torch.is_tensor(batch[1]):
            raise PrunebenchError("every batch must be a pair (inputs, targets) of tensors, got "
                                  f"{type(batch).__name__}")
        return batch

    def next(self):
        if self._seq is not None:
            batch = self._seq[self._pos % len(self._seq)]
            self._pos += 1
        else:
            try:
                batch = next(self._it)
            except StopIteration:
                if self._iterable is None:
                    raise PrunebenchError(f"batches ran out after {self.drawn} batch(es): pass a list "
                                          "(cycled) or an infinite iterator") from None
                self._it = iter(self._iterable)
                try:
                    batch = next(self._it)
                except StopIteration:
                    raise PrunebenchError("batches is empty") from None
        x, y = self._check(batch)
        self.drawn += 1
        if self.device is not None:
            x, y = x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)
        return x, y


def as_stream(batches, model, what) -> BatchStream:
    """`batches` as a BatchStream on the model's device (a BatchStream is passed through)."""
    if isinstance(batches, BatchStream):
        return batches
    return BatchStream(batches, model_device(model), what)


# ---------------------------------------------------------------------------------------------------
# Losses


def loss_value(logits: torch.Tensor, targets: torch.Tensor, loss: str = "ce", labels: str = "true",
               temperature: float = 1.0) -> torch.Tensor:
    """Batch-mean scoring loss on raw logits.

    loss   "ce":        cross-entropy  -sum_c p_c log softmax(z)_c       (the papers)
           "neg_logit": -sum_c p_c z_c; with true labels -z_y = F.nll_loss on raw logits, which is what
                        the official FORCE code computes (docs/methods.md A.3 pitfall 1, E.1)
    labels "true":      p = one-hot(target)
           "uniform":   p = 1/C for every class (unsupervised pruning, SPP `fake_uniform`, docs/methods.md A.7)
    temperature: logits are divided by it first (GraSP uses 200, docs/methods.md A.4).
    """
    if logits.dim() != 2:
        logits = logits.reshape(logits.shape[0], -1)
    if temperature != 1.0:
        logits = logits / temperature
    if labels == "true":
        if loss == "ce":
            return F.cross_entropy(logits, targets)
        return -logits.gather(1, targets.reshape(-1, 1).long()).mean()
    if labels == "uniform":
        z = F.log_softmax(logits, dim=1) if loss == "ce" else logits
        return -z.mean(dim=1).mean()
    raise PrunebenchError(f"unknown labels {labels!r}; choose one of: {', '.join(LABELS)}")


# ---------------------------------------------------------------------------------------------------
# Scoring copies and gradients


def model_device(model: nn.Module) -> torch.device:
    for t in model.parameters():
        return t.device
    for t in model.buffers():
        return t.device
    return torch.device("cpu")


def scoring_copy(model: nn.Module, bn_mode: str = "train", names=None) -> tuple:
    """(copy, {name: weight of the copy}): a deep copy in `bn_mode` ("train": batch statistics; "eval":
    running statistics), gradients enabled only on the prunable tensors `names` (default: every
    Conv2d/Linear weight), so that backward does no work for the rest. The caller's model is untouched
    (docs/methods.md A.2: pruning never touches the model that is trained)."""
    net = copy.deepcopy(model)
    net.train(bn_mode == "train")
    params = dict(net.named_parameters())
    names = list(names) if names is not None else list(prunable_parameters(net))
    for n, p in params.items():
        p.requires_grad_(n in names)
    return net, {n: params[n] for n in names}


def reinit_copy(net, scheme, seed, linear_only=False):
    """Re-draw the Conv2d/Linear weights of a scoring copy in place with the init `scheme`, from
    Generator(seed) (mil-ad/snip's and GraSP's re-initialised scoring copies, docs/methods.md A.1, A.4)."""
    gen = torch.Generator().manual_seed(int(seed))
    with torch.no_grad():
        for m in prunable_modules(net).values():
            if linear_only and not isinstance(m, nn.Linear):
                continue
            w = torch.empty(m.weight.shape, dtype=torch.float32)
            init_weight(w, scheme, gen)
            m.weight.copy_(w.to(m.weight.device, m.weight.dtype))


def prunable_biases(model: nn.Module) -> dict:
    """Name -> bias of every Conv2d/Linear that has one (SNIP's official TF code scores biases too)."""
    return {f"{n}.bias" if n else "bias": m.bias for n, m in prunable_modules(model).items()
            if m.bias is not None}


def mean_gradient(net: nn.Module, tensors: dict, stream: BatchStream, num_batches: int = 1,
                  loss: str = "ce", labels: str = "true", temperature: float = 1.0) -> dict:
    """Mean over `num_batches` batches of d loss / d tensor, for every tensor of `tensors` (name->tensor).

    Uses torch.autograd.grad (no .grad is touched); one forward/backward per batch. The mean equals the
    sum up to a constant, so rankings built on |theta * g| are the same as SPP's |sum g| (A.7)."""
    names = list(tensors)
    ts = [tensors[n] for n in names]
    acc = None
    for _ in range(num_batches):
        x, y = stream.next()
        g = torch.autograd.grad(loss_value(net(x), y, loss, labels, temperature), ts)
        if acc is None:
            acc = [gi.detach().clone() for gi in g]
        else:
            torch._foreach_add_(acc, [gi.detach() for gi in g])
    if num_batches > 1:
        torch._foreach_div_(acc, float(num_batches))
    return dict(zip(names, acc))


# ---------------------------------------------------------------------------------------------------
# Measurement


def _malloc_trim() -> None:
    """Return freed heap memory to the OS (glibc), so that RSS growth reflects this run's allocations."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def _rss_bytes() -> int | None:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


class _RssSampler(threading.Thread):
    def __init__(self, interval=0.005):
        super().__init__(daemon=True)
        self.interval, self.peak = interval, _rss_bytes() or 0
        self._stop_event = threading.Event()

    def run(self):
        while not self._stop_event.wait(self.interval):
            r = _rss_bytes()
            if r is not None and r > self.peak:
                self.peak = r

    def stop(self):
        self._stop_event.set()
        self.join()
        r = _rss_bytes()
        if r is not None and r > self.peak:
            self.peak = r


@contextlib.contextmanager
def measure(device):
    """Wall time and peak extra memory of the block, written into the yielded dict on exit.

    CUDA: torch.cuda.max_memory_allocated above the allocation at entry (peak stats are reset at entry).
    CPU:  peak resident set size above the RSS at entry, sampled every 5 ms from /proc/self/statm, after
          returning freed heap memory to the OS (glibc malloc_trim) so that memory the allocator had
          cached does not hide this run's use; approximate (tracemalloc does not see tensor memory).
          Without /proc, the growth of ru_maxrss.
    """
    device = torch.device(device)
    out = {"device": str(device)}
    cuda = device.type == "cuda"
    if cuda:
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
        sampler = None
    else:
        _malloc_trim()
        base = _rss_bytes()
        sampler = _RssSampler() if base is not None else None
        max0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        if sampler:
            sampler.start()
    t0 = time.perf_counter()
    try:
        yield out
    finally:
        if cuda:
            torch.cuda.synchronize(device)
        out["wall_time_s"] = time.perf_counter() - t0
        if cuda:
            out["peak_memory_bytes"] = int(torch.cuda.max_memory_allocated(device) - base)
            out["memory_measure"] = "torch.cuda.max_memory_allocated"
        elif sampler:
            sampler.stop()
            out["peak_memory_bytes"] = int(max(0, sampler.peak - base))
            out["memory_measure"] = "peak RSS above start (sampled)"
        else:
            out["peak_memory_bytes"] = int(max(0, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - max0))
            out["memory_measure"] = "growth of ru_maxrss"
