"""Seeded batches on the data's device: normalisation, augmentation (crop + flip), and the train, eval and
pruning-time batch streams.

Batches are built on the tensors' device from explicit, seeded ``torch.Generator``s (never the global
RNG); random numbers are always drawn on the CPU, so the batches are the same on every device. Each stream
has its own seed derivation (`derive_seed` with a tag such as "train-order" or "pruning-augment"), so
switching one off never shifts another.
"""
from __future__ import annotations

import functools
import hashlib
from typing import Callable, Iterator

import numpy as np
import torch

from prunebench.library.errors import PrunebenchError
from prunebench.library.datasets import DatasetSpec

from prunebench.library.data.cache import Data
from prunebench.library.data.basics import check_seed

AUGMENT_PADDING = 4  # random crop with 4-pixel zero padding + horizontal flip (docs/methods.md B.2)


def normalize(x: torch.Tensor, spec: DatasetSpec) -> torch.Tensor:
    """uint8 images (..., C, H, W) -> float32 (x / 255 - mean) / std, with the spec's per-channel constants.

    Same arithmetic as torchvision's ToTensor + Normalize (divide by 255, subtract, divide).
    """
    mean, std = _channel_stats(spec, x.device)
    return x.to(torch.float32).div(255).sub_(mean).div_(std)


@functools.lru_cache(maxsize=32)
def _channel_stats(spec: DatasetSpec, device: torch.device) -> tuple:
    def column(values):
        return torch.tensor(values, dtype=torch.float32, device=device).view(-1, 1, 1)

    return column(spec.mean), column(spec.std)


def derive_seed(seed: int, *tags) -> int:
    """A 63-bit seed for one stream, from a user seed and tags (e.g. "train-order", epoch); platform-stable."""
    text = "/".join(str(t) for t in (check_seed(seed), *tags))
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little") & ((1 << 63) - 1)


def _generator(seed: int, *tags) -> torch.Generator:
    return torch.Generator(device="cpu").manual_seed(derive_seed(seed, *tags))


def crop_flip(x: torch.Tensor, offsets: torch.Tensor, flips: torch.Tensor, pad: int = AUGMENT_PADDING) -> torch.Tensor:
    """Batched crop-with-zero-padding and horizontal flip, on x's device, without a per-image loop.

    x: (B, C, H, W); offsets: (B, 2) integer (row, column) offsets in [0, 2*pad] into the padded image
    (pad, pad = unchanged); flips: (B,) bool. out[b] = flip_b(pad(x[b])[:, dy:dy+H, dx:dx+W]).
    """
    b, c, h, w = x.shape
    dev = x.device
    offsets, flips = offsets.to(dev), flips.to(dev)
    padded = torch.nn.functional.pad(x, (pad, pad, pad, pad))
    rows = offsets[:, 0:1] + torch.arange(h, device=dev)  # (B, H)
    ar = torch.arange(w, device=dev)
    cols = offsets[:, 1:2] + torch.where(flips[:, None], (w - 1) - ar, ar)  # (B, W)
    return padded[torch.arange(b, device=dev)[:, None, None, None], torch.arange(c, device=dev)[None, :, None, None],
                  rows[:, None, :, None], cols[:, None, None, :]]


def random_crop_flip(x: torch.Tensor, generator: torch.Generator, pad: int = AUGMENT_PADDING) -> torch.Tensor:
    """Random crop (zero padding `pad`) + horizontal flip with p=0.5, parameters drawn on the CPU generator."""
    offsets = torch.randint(0, 2 * pad + 1, (len(x), 2), generator=generator)
    flips = torch.randint(0, 2, (len(x),), generator=generator).bool()
    return crop_flip(x, offsets, flips, pad)


class Batches:
    """A sized, re-iterable sequence of (x, y) batches; each iteration yields exactly the same batches."""

    def __init__(self, make: Callable[[], Iterator], length: int):
        self._make, self._length = make, length

    def __iter__(self):
        return self._make()

    def __len__(self):
        return self._length


def _check_batch_size(batch_size) -> int:
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise PrunebenchError(f"invalid batch_size {batch_size!r}: must be a positive integer")
    return int(batch_size)


def num_batches(n, batch_size: int, drop_last: bool = False, split: str = "train") -> int:
    """Batches per epoch for `n` examples (an int or a `Data`, whose `split` is counted)."""
    if isinstance(n, Data):
        n = len(n.split(split)[1])
    batch_size = _check_batch_size(batch_size)
    return n // batch_size if drop_last else -(-n // batch_size)


def _use_augment(spec: DatasetSpec, augment) -> bool:
    return spec.augment and augment is not False


def train_batches(data: Data, batch_size: int, epoch: int, seed: int, augment: bool | None = None,
                  drop_last: bool = False, *, split: str = "train", augment_seed: int | None = None) -> Batches:
    """One epoch of shuffled, augmented, normalised training batches (x float32, y int64) on data's device.

    Order: a permutation drawn from (seed, epoch). Augmentation (docs/methods.md B.2: crop 4 + flip) applies when
    the data set has one (spec.augment; MNIST has none) unless `augment` is False; its random parameters
    come from (augment_seed or seed, epoch), a separate stream, so changing one never shifts the other.
    The same arguments always give the same batches, on any device.
    """
    x, y = data.split(split)
    batch_size = _check_batch_size(batch_size)
    epoch = check_seed(epoch, "epoch")
    n, length = len(y), num_batches(len(y), batch_size, drop_last)
    aug = _use_augment(data.spec, augment)
    aug_seed = seed if augment_seed is None else augment_seed
    check_seed(seed)
    check_seed(aug_seed, "augment_seed")

    def batches():
        perm = torch.randperm(n, generator=_generator(seed, "train-order", epoch)).to(x.device)
        g_aug = _generator(aug_seed, "train-augment", epoch)
        for i in range(length):
            idx = perm[i * batch_size:(i + 1) * batch_size]
            xb = x[idx]
            if aug:
                xb = random_crop_flip(xb, g_aug)
            yield normalize(xb, data.spec), y[idx]

    return Batches(batches, length)


def eval_batches(data: Data, split: str = "test", batch_size: int = 1000) -> Batches:
    """Normalised batches of `split` in stored order, no augmentation."""
    x, y = data.split(split)
    batch_size = _check_batch_size(batch_size)
    length = num_batches(len(y), batch_size)

    def batches():
        for i in range(length):
            sl = slice(i * batch_size, (i + 1) * batch_size)
            yield normalize(x[sl], data.spec), y[sl]

    return Batches(batches, length)


class _IndexStream:
    """Endless indices: successive seeded permutations of `pool`, consumed in order."""

    def __init__(self, pool: torch.Tensor, generator: torch.Generator):
        self.pool, self.g, self.buf = pool, generator, pool[:0]

    def take(self, k: int) -> torch.Tensor:
        while len(self.buf) < k:
            self.buf = torch.cat([self.buf, self.pool[torch.randperm(len(self.pool), generator=self.g)]])
        out, self.buf = self.buf[:k], self.buf[k:]
        return out


def pruning_batches(data: Data, batch_size: int | None, seed: int, augment: bool = True,
                    class_balanced_per_class: int | None = None, *, split: str = "train") -> Iterator:
    """An infinite, seeded iterator of fresh normalised batches for pruning-time scoring.

    Plain mode (FORCE / Iter SNIP draw a fresh batch per step or per averaged gradient, docs/methods.md A.2/A.3):
    every batch has `batch_size` examples taken in turn from successive seeded permutations of the split,
    so each example is used once per pass and batches span pass boundaries.

    Class-balanced mode (GraSP's `GraSP_fetch_data`, docs/methods.md A.4): `class_balanced_per_class=k` gives
    batches of k examples of every class, CONCATENATED CLASS BY CLASS (labels 0,..,0,1,..,1,...), so the
    two halves of a batch are class-disjoint as in the official code. The batch size is k * num_classes
    (`batch_size` must be None or equal to it). Within a class, examples come from seeded permutations.

    augment: apply the data set's training augmentation (crop + flip; none for MNIST), as the official
    codes draw pruning data through the training transform. All randomness comes from `seed` (the
    "pruning batches" seed), in streams separate from training.
    """
    x, y = data.split(split)
    seed = check_seed(seed)
    aug = _use_augment(data.spec, augment)
    g_idx = _generator(seed, "pruning-order")
    g_aug = _generator(seed, "pruning-augment")
    if class_balanced_per_class is not None:
        k = _check_batch_size(class_balanced_per_class)
        classes = data.spec.num_classes
        if batch_size is not None and batch_size != k * classes:
            raise PrunebenchError(f"invalid batch_size {batch_size!r}: class-balanced batches hold "
                                  f"{k} x {classes} = {k * classes} examples (pass batch_size=None)")
        labels = y.cpu()
        pools = [torch.nonzero(labels == c).flatten() for c in range(classes)]
        small = [c for c, p in enumerate(pools) if len(p) < k]
        if small:
            raise PrunebenchError(f"invalid class_balanced_per_class {k}: class {small[0]} has only "
                                  f"{len(pools[small[0]])} examples in {split!r}")
        streams = [_IndexStream(p, g_idx) for p in pools]

        def next_indices():
            return torch.cat([s.take(k) for s in streams])
    else:
        batch_size = _check_batch_size(batch_size)
        stream = _IndexStream(torch.arange(len(y)), g_idx)

        def next_indices():
            return stream.take(batch_size)

    def batches():
        while True:
            idx = next_indices().to(x.device)
            xb = x[idx]
            if aug:
                xb = random_crop_flip(xb, g_aug)
            yield normalize(xb, data.spec), y[idx]

    return batches()
