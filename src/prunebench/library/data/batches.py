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
import weakref
from dataclasses import dataclass
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


# ---------------------------------------------------------------------------------------------------
# Whole-epoch draws and the normalised-split cache (the trainer's feed; train_batches / eval_batches use them)

CACHE_LIMIT_BYTES = 2 << 30  # a split's normalised float32 copy is kept only up to this size
_NORMALIZED: dict = {}  # id(uint8 images) -> (weakref to them, their normalised float32 copy)


def normalized_split(x: torch.Tensor, spec: DatasetSpec, create: bool = True) -> torch.Tensor | None:
    """`normalize(x, spec)` of a whole split, kept for as long as `x` lives (None: too large, or `create` is False
    and it was not made yet). Normalising is elementwise, so `normalized_split(x)[idx]` has exactly the bits of
    `normalize(x[idx])`: a stream reads batches from it instead of normalising every batch again."""
    hit = _NORMALIZED.get(id(x))
    if hit is not None and hit[0]() is x:
        return hit[1]
    if not create or x.numel() * 4 > CACHE_LIMIT_BYTES:
        return None
    key = id(x)
    xn = normalize(x, spec)
    _NORMALIZED[key] = (weakref.ref(x, lambda _ref, key=key: _NORMALIZED.pop(key, None)), xn)
    return xn


@dataclass(frozen=True)
class EpochOrder:
    """One epoch's random draws, made at once on the CPU in the order `train_batches` has always made them: the
    permutation of the split, then per batch its (rows, 2) crop offsets and (rows,) flips (None without
    augmentation); `batches` of `batch_size` examples (the last may be partial)."""

    perm: torch.Tensor
    offsets: torch.Tensor | None
    flips: torch.Tensor | None
    batch_size: int
    batches: int


def epoch_order(data: Data, batch_size: int, epoch: int, seed: int, augment: bool | None = None,
                drop_last: bool = False, *, split: str = "train", augment_seed: int | None = None,
                limit: int | None = None) -> EpochOrder:
    """The random draws of one training epoch (`train_batches` documents them), for its first `limit` batches
    (default: all). Drawing the augmentation of every batch up front gives the numbers a batch-by-batch draw
    gives: each batch takes its offsets, then its flips, from the same generator in turn."""
    x, y = data.split(split)
    batch_size = _check_batch_size(batch_size)
    epoch = check_seed(epoch, "epoch")
    aug_seed = seed if augment_seed is None else augment_seed
    check_seed(seed)
    check_seed(aug_seed, "augment_seed")
    n = len(y)
    length = num_batches(n, batch_size, drop_last)
    length = length if limit is None else max(0, min(length, int(limit)))
    perm = torch.randperm(n, generator=_generator(seed, "train-order", epoch))
    offsets = flips = None
    if _use_augment(data.spec, augment):
        g_aug = _generator(aug_seed, "train-augment", epoch)
        offs, fls = [], []
        for i in range(length):
            rows = min(batch_size, n - i * batch_size)
            offs.append(torch.randint(0, 2 * AUGMENT_PADDING + 1, (rows, 2), generator=g_aug))
            fls.append(torch.randint(0, 2, (rows,), generator=g_aug).bool())
        offsets = torch.cat(offs) if offs else torch.zeros(0, 2, dtype=torch.long)
        flips = torch.cat(fls) if fls else torch.zeros(0, dtype=torch.bool)
    return EpochOrder(perm, offsets, flips, batch_size, length)


def epoch_batches(data: Data, order: EpochOrder, start: int = 0, stop: int | None = None, *, split: str = "train",
                  chunk_bytes: int | None = None, cache: bool = True) -> Iterator:
    """Batches `start` .. `stop` - 1 of an epoch (`epoch_order`), on the data's device: the permutation and the
    augmentation draws are moved there once, and the images are gathered, cropped, flipped and normalised a
    chunk of batches at a time (`chunk_bytes` of float32 images: 32 MiB on a CPU, 256 MiB on a GPU); each
    batch is a view of its chunk. Without augmentation the images come from the split's normalised copy
    (`normalized_split`, made once when `cache`). The values are those of `train_batches`, bit for bit."""
    x, y = data.split(split)
    stop = order.batches if stop is None else min(stop, order.batches)
    if start >= stop:
        return
    dev = x.device
    b = order.batch_size
    per_batch = b * x[0].numel() * 4
    if chunk_bytes is None:
        chunk_bytes = (256 << 20) if dev.type == "cuda" else (32 << 20)
    chunk = max(1, chunk_bytes // max(per_batch, 1))
    n_used = min(len(y), stop * b)
    perm = order.perm[start * b:n_used].to(dev)
    aug = order.offsets is not None
    if aug:
        offsets, flips = order.offsets[start * b:n_used].to(dev), order.flips[start * b:n_used].to(dev)
    xn = None if aug else normalized_split(x, data.spec, create=cache)
    for c0 in range(start, stop, chunk):
        c1 = min(stop, c0 + chunk)
        lo, hi = (c0 - start) * b, min(len(perm), (c1 - start) * b)
        idx = perm[lo:hi]
        # index_select: whole rows copied (a CPU gather of uint8 images ~5x faster than x[idx]); the same values
        if xn is not None:
            xc = torch.index_select(xn, 0, idx)
        else:
            xc = torch.index_select(x, 0, idx)
            if aug:
                xc = crop_flip(xc, offsets[lo:hi], flips[lo:hi])
            xc = normalize(xc, data.spec)
        yc = torch.index_select(y, 0, idx)
        for i in range(0, hi - lo, b):
            yield xc[i:i + b], yc[i:i + b]


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
    check_seed(epoch, "epoch")
    check_seed(seed)
    check_seed(seed if augment_seed is None else augment_seed, "augment_seed")
    length = num_batches(len(y), batch_size, drop_last)

    def batches():
        order = epoch_order(data, batch_size, epoch, seed, augment, drop_last, split=split, augment_seed=augment_seed)
        yield from epoch_batches(data, order, split=split, cache=False)

    return Batches(batches, length)


def eval_batches(data: Data, split: str = "test", batch_size: int = 1000, *, cache: bool = False) -> Batches:
    """Normalised batches of `split` in stored order, no augmentation. `cache`: keep the split's normalised copy
    for the next pass (the trainer evaluates the same split every epoch); an existing copy is used either way."""
    x, y = data.split(split)
    batch_size = _check_batch_size(batch_size)
    length = num_batches(len(y), batch_size)

    def batches():
        xn = normalized_split(x, data.spec, create=cache)
        for i in range(length):
            sl = slice(i * batch_size, (i + 1) * batch_size)
            yield (xn[sl] if xn is not None else normalize(x[sl], data.spec)), y[sl]

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
