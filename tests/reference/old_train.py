"""A frozen copy of the training loop and batch streams as they were at commit 7ba29fc, before the trainer was
restructured (issue 18 section 5, issue 19): `tests/test_train_equivalence.py` runs it beside the current
`prunebench.library.train.train` and requires the same bytes on the CPU (metrics.json, checkpoints, final masks,
weights). Copied verbatim from src/prunebench/library/train.py and src/prunebench/library/data/batches.py of
that commit; only the imports are adapted so that the copy depends on nothing the restructuring touches (it
shares `TrainConfig`, whose `to_dict` is part of the checkpoint key, and the artifact, mask and error helpers).
Do not edit: it is the definition of "today's bytes".
"""
from __future__ import annotations

import functools
import hashlib
import math
import sys
import time
import types
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from prunebench.library.artifacts import canonical_json, load_tensors, save_tensors, write_json
from prunebench.library.data.basics import check_seed
from prunebench.library.data.cache import Data
from prunebench.library.datasets import DatasetSpec
from prunebench.library.errors import PrunebenchError
from prunebench.library.masks import Mask

# -- src/prunebench/library/data/batches.py at 7ba29fc (train and eval streams) ----------------------------------

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



_OLD_DATA = types.SimpleNamespace(num_batches=num_batches, train_batches=train_batches, eval_batches=eval_batches)


# -- src/prunebench/library/train.py at 7ba29fc (everything after TrainConfig) -----------------------------------

class MaskEnforcer:
    """Holds aligned (weights, float masks) lists and zeroes pruned entries with fused foreach ops."""

    def __init__(self, model: nn.Module, mask: Mask | None):
        self.mask = mask
        self.weights, self.floats = (mask.float_tensors(model) if mask is not None else ([], []))

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
    def weights_(self):
        if self.weights:
            torch._foreach_mul_(self.weights, self.floats)


def evaluate(model: nn.Module, batches, device, amp=False, channels_last=False) -> tuple:
    """(accuracy, mean cross-entropy) over `batches` of (x, y); the model's mode is restored."""
    was = model.training
    model.eval()
    correct, loss_sum, n = 0, 0.0, 0
    with torch.no_grad():
        for x, y in batches:
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            if channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            with torch.autocast("cuda", dtype=torch.bfloat16, enabled=amp):
                out = model(x)
            loss_sum += float(F.cross_entropy(out.float(), y, reduction="sum"))
            correct += int((out.argmax(1) == y).sum())
            n += y.numel()
    model.train(was)
    return correct / max(n, 1), loss_sum / max(n, 1)


class _Progress:
    """tqdm bar (rate, ETA) on a terminal; otherwise nothing per step (one line per epoch is logged)."""

    def __init__(self, total, desc, enabled):
        self.bar = None
        if enabled and sys.stderr.isatty():
            from tqdm import tqdm

            self.bar = tqdm(total=total, desc=desc, unit="batch", leave=False, dynamic_ncols=True)

    def update(self, loss):
        if self.bar is not None:
            self.bar.update(1)
            self.bar.set_postfix(loss=f"{loss:.3f}", refresh=False)

    def close(self):
        if self.bar is not None:
            self.bar.close()


def _checkpoint_tensors(model, optimizer, enforcer: MaskEnforcer):
    tensors = {f"model/{k}": v for k, v in model.state_dict().items()}
    names = {id(p): n for n, p in model.named_parameters()}
    for p, st in optimizer.state.items():
        if "momentum_buffer" in st and st["momentum_buffer"] is not None:
            tensors[f"momentum/{names[id(p)]}"] = st["momentum_buffer"]
    if enforcer.mask is not None:
        for n, m in enforcer.mask.items():
            tensors[f"mask/{n}"] = m.to(torch.uint8)
    return tensors


def train(model: nn.Module, data, cfg: TrainConfig, *, mask: Mask | None = None, during=None,
          out_dir=None, device: str = "cpu", progress: bool = True, log=print, resume: bool = True,
          identity: dict | None = None, stop_after_epoch: int | None = None,
          stop_after_step: int | None = None) -> dict:
    """Train `model` in place on `data` (prunebench.library.data.Data) and return the metrics dict.

    mask:    a fixed at-initialization mask (pruned weights are zeroed first and kept at zero).
    during:  a `DuringTraining` pruner (FGGP, GMP) that may return a new mask after any step.
    out_dir: where checkpoint.safetensors, metrics.json and timing.json go (None: nothing written).
    identity: what else the run depends on (the checksums of its init, mask and data, its code): part of the
             checkpoint's key, so a checkpoint is resumed only by the run that wrote it.
    stop_after_epoch, stop_after_step: end after this many epochs / at the first checkpoint at or after this
             many steps (simulate an interruption; used by tests).
    """
    D = _OLD_DATA
    is_cuda = str(device).startswith("cuda")
    amp = cfg.amp and is_cuda
    cl = cfg.channels_last and is_cuda and any(isinstance(m, nn.Conv2d) for m in model.modules())
    model.to(device)
    if cl:
        model.to(memory_format=torch.channels_last)
    out_dir = Path(out_dir) if out_dir is not None else None
    ckpt_path = out_dir / "checkpoint.safetensors" if out_dir else None

    params = list(model.parameters())
    optimizer = torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov,
                                weight_decay=cfg.weight_decay)
    steps_full = D.num_batches(data, cfg.batch_size)
    steps_per_epoch = min(steps_full, cfg.steps_per_epoch) if cfg.steps_per_epoch else steps_full
    n_epochs, total_steps = cfg.plan(steps_per_epoch)

    start_epoch, step, history, best = 0, 0, [], -1.0
    if during is not None:
        gen = torch.Generator().manual_seed(cfg.seed)
        start_mask = during.start(model, total_steps, gen)
        if start_mask is not None:
            mask = start_mask
    if mask is not None:
        mask.apply(model)
    enforcer = MaskEnforcer(model, mask)
    before_step = getattr(during, "before_step", None)  # optional part of the protocol

    config_key = canonical_json({"train": cfg.to_dict(), "during": getattr(during, "name", None),
                                 "identity": identity})
    if resume and ckpt_path is not None and ckpt_path.exists():
        tensors, meta = load_tensors(ckpt_path, what="checkpoint")
        if meta.get("config_key") != config_key:
            log(f"checkpoint {ckpt_path} was written by another run (its init, mask, data, code or config "
                f"differ); starting over")
        else:
            model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model/")})
            pmap = dict(model.named_parameters())
            for k, v in tensors.items():
                if k.startswith("momentum/"):
                    optimizer.state[pmap[k[9:]]]["momentum_buffer"] = v.to(device).clone()
            mtens = {k[5:]: v.bool() for k, v in tensors.items() if k.startswith("mask/")}
            if mtens:
                mask = Mask(mtens, mask.metadata if mask is not None else {})
                enforcer = MaskEnforcer(model, mask)
            if during is not None and meta.get("during") is not None:
                during.load_state_dict(meta["during"])
            start_epoch, step, history, best = meta["epoch"], meta["step"], meta["history"], meta["best"]
            log(f"resumed from {ckpt_path} at epoch {start_epoch}")

    fwd = torch.compile(model) if (cfg.compile and is_cuda) else model
    times = {"train_s": 0.0, "eval_s": 0.0, "images": 0}
    model.train()

    def record(epoch, step, lr):
        """One evaluation point: the training loss and accuracy since the previous one, every metric split."""
        nonlocal loss_sum, correct, seen, t0
        if is_cuda:
            torch.cuda.synchronize()
        if not math.isfinite(float(loss_sum)):
            raise _Diverged(epoch + 1, step, lr)
        times["train_s"] += time.perf_counter() - t0
        times["images"] += seen
        t1 = time.perf_counter()
        row = {"epoch": epoch + 1, "step": step, "lr": lr, "train_loss": float(loss_sum) / max(seen, 1),
               "train_acc": float(correct) / max(seen, 1),
               "density": enforcer.mask.density if enforcer.mask is not None else 1.0}
        for split in cfg.metrics:
            acc, l = evaluate(fwd, D.eval_batches(data, split, cfg.eval_batch_size), device, amp, cl)
            row[f"{split}_acc"], row[f"{split}_loss"] = acc, l
        times["eval_s"] += time.perf_counter() - t1
        history.append(row)
        log(f"epoch {epoch + 1}/{n_epochs} step {step} lr {lr:.4g} loss {row['train_loss']:.4f} "
            f"train {row['train_acc']:.4f} " + " ".join(f"{s} {row[f'{s}_acc']:.4f}" for s in cfg.metrics)
            + f" density {row['density']:.4f} ({time.perf_counter() - t0:.1f}s)")
        loss_sum = torch.zeros((), device=device)
        correct = torch.zeros((), device=device, dtype=torch.long)
        seen = 0
        t0 = time.perf_counter()
        return max(best, row.get("test_acc", -1.0))

    def save(epoch, step):
        """A checkpoint after `step` steps (`epoch` whole epochs done: where a resumed run restarts)."""
        if ckpt_path is not None:
            meta = {"config_key": config_key, "epoch": epoch, "step": step, "history": history, "best": best,
                    "during": during.state_dict() if during is not None else None}
            save_tensors(ckpt_path, _checkpoint_tensors(model, optimizer, enforcer), meta)
    skip = step - start_epoch * steps_per_epoch  # steps of a resumed epoch already done (mid-epoch checkpoints)
    loss_sum = correct = seen = t0 = None  # bound per epoch inside loop()

    def loop():
        """The epochs; returns an interruption marker (tests) or None."""
        nonlocal enforcer, step, best, skip, loss_sum, correct, seen, t0
        for epoch in range(start_epoch, n_epochs):
            lr = cfg.lr_at(epoch, n_epochs)
            for g in optimizer.param_groups:
                g["lr"] = lr
            t0 = time.perf_counter()
            bar = _Progress(steps_per_epoch, f"epoch {epoch + 1}/{n_epochs}", progress)
            loss_sum = torch.zeros((), device=device)
            correct = torch.zeros((), device=device, dtype=torch.long)
            seen = 0
            batches = D.train_batches(data, cfg.batch_size, epoch=epoch, seed=cfg.seed, augment=cfg.augment)
            for i, (x, y) in enumerate(batches):
                if i >= steps_per_epoch or step >= total_steps:
                    break
                if i < skip:
                    continue
                if cl:
                    x = x.contiguous(memory_format=torch.channels_last)
                with torch.autocast("cuda", dtype=torch.bfloat16, enabled=amp):
                    out = fwd(x)
                loss = F.cross_entropy(out.float(), y, label_smoothing=cfg.label_smoothing)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                enforcer.grads()
                if before_step is not None:
                    before_step(step + 1, model)
                optimizer.step()
                enforcer.weights_()
                step += 1
                if during is not None:
                    new = during.after_step(step, model, enforcer.mask)
                    if new is not None:
                        enforcer = MaskEnforcer(model, new)
                        enforcer.weights_()
                with torch.no_grad():
                    loss_sum += loss.detach() * y.numel()
                    correct += (out.argmax(1) == y).sum()
                seen += y.numel()
                if bar.bar is not None:
                    bar.update(float(loss))
                if cfg.eval_every and (step % cfg.eval_every == 0 or step == total_steps):
                    best = record(epoch, step, lr)
                    save(epoch, step)
                    if stop_after_step is not None and stop_after_step <= step < total_steps:
                        return {"interrupted_at_step": step}
            bar.close()
            skip = 0
            if not cfg.eval_every:
                best = record(epoch, step, lr)
                save(epoch + 1, step)
            if stop_after_epoch is not None and epoch + 1 >= stop_after_epoch and epoch + 1 < n_epochs:
                return {"interrupted_at_epoch": epoch + 1}

        return None

    diverged = None
    try:
        interrupted = loop()
    except _Diverged as d:  # a result, not a crash: recorded as a failed run (best_acc is the best before it)
        diverged, interrupted = d, None
        log(f"WARNING: training diverged by step {d.step} (epoch {d.epoch}, lr {d.lr:g}); recorded as a failed run")
    if interrupted is not None:
        return interrupted
    return _finish(cfg, history, best, step, n_epochs, enforcer, during, diverged, times, out_dir)


class _Diverged(Exception):
    def __init__(self, epoch, step, lr):
        super().__init__(f"diverged in epoch {epoch}")
        self.epoch, self.step, self.lr = epoch, step, lr


def _finish(cfg, history, best, step, n_epochs, enforcer, during, diverged, times, out_dir) -> dict:
    """metrics.json and timing.json of a finished (or diverged) run."""
    last = history[-1] if history else {}
    metrics = {"final_acc": None if diverged else last.get("test_acc"), "best_acc": best if best >= 0 else None,
               "final_loss": None if diverged else last.get("test_loss"),
               "final_train_loss": None if diverged else last.get("train_loss"),
               "density": enforcer.mask.density if enforcer.mask is not None else 1.0, "epochs": n_epochs,
               "steps": step, "history": history}
    if diverged:
        metrics["diverged"] = {"epoch": diverged.epoch, "step": diverged.step, "lr": diverged.lr}
    if "val_acc" in last:
        metrics["final_val_acc"] = None if diverged else last["val_acc"]
        metrics["best_val_acc"] = max(r["val_acc"] for r in history)
    if enforcer.mask is not None:
        metrics["collapsed"] = len(enforcer.mask.collapsed())
    if out_dir is not None:
        write_json(out_dir / "metrics.json", metrics)
        times["images_per_s"] = times["images"] / max(times["train_s"], 1e-9)
        write_json(out_dir / "timing.json", times)
        if enforcer.mask is not None and during is not None:
            enforcer.mask.save(out_dir / "final_mask.safetensors", method=during.name)
    metrics["_timing"] = times
    metrics["_mask"] = enforcer.mask
    return metrics
