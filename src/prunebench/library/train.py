"""One training loop for every method (docs/methods.md B.2 for the papers' protocols).

- SGD with momentum / Nesterov, weight decay, step / cosine / constant LR, optional label smoothing.
- Masked ("sparse") training: gradients of pruned weights are zeroed before the step and pruned weights
  are zeroed after it, with one fused `torch._foreach_mul_` each (no Python loop per parameter), so
  pruned weights stay exactly zero under momentum and weight decay.
- Hooks for pruning during training (FGGP, GMP: `pruners.during.DuringTraining`): `before_step` after the
  backward pass and `after_step` after every optimizer step, with this step's gradients still in `.grad`.
- Evaluation every epoch; `metrics.json` (final and best test accuracy, per-epoch history) holds no
  timings, so the same config gives the same bytes; timings go to `timing.json`.
- A checkpoint (safetensors: weights, momentum buffers, mask, loop state) after every epoch; a rerun
  resumes from it and ends in the same bytes as an uninterrupted run (batches depend only on seed+epoch).
- CUDA: bf16 autocast, channels_last, optional torch.compile. CPU: plain fp32.
"""
from __future__ import annotations

import math
import sys
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from prunebench.library.errors import PrunebenchError, choose
from prunebench.library.artifacts import canonical_json, load_tensors, save_tensors, write_json
from prunebench.library.masks import Mask

SCHEDULES = ("step", "cosine", "constant")


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 1
    batch_size: int = 128
    lr: float = 0.1
    momentum: float = 0.9
    nesterov: bool = False
    weight_decay: float = 5e-4
    schedule: str = "step"                 # step | cosine | constant
    milestones: tuple = (0.5, 0.75)        # step schedule: fractions of the epochs at which lr *= gamma
    gamma: float = 0.1
    label_smoothing: float = 0.0
    seed: int = 0                          # data order + augmentation
    augment: bool = True                   # crop+flip where the data set has it (CIFAR, Tiny-ImageNet)
    eval_batch_size: int = 1000
    steps_per_epoch: int = 0               # 0 = full epoch; >0 = cap (quick presets)
    max_steps: int = 0                     # >0: train exactly this many steps (epochs = ceil(max_steps / steps per
                                           # epoch); SPP trains 10k iterations)
    eval_every: int = 0                    # >0: evaluate (and checkpoint) every this many steps and at the end,
                                           # instead of after every epoch (SPP: every 1000 iterations)
    amp: bool = True                       # bf16 autocast on CUDA (ignored on CPU)
    channels_last: bool = True             # CUDA only
    compile: bool = False                  # torch.compile on CUDA
    metrics: tuple = field(default=("test",))  # splits evaluated every epoch: test, val

    # (field, low, high, low excluded, high excluded): every number is finite and in its range, checked
    # before training starts (a learning rate of nan or 1e6 is a typo, not an experiment).
    RANGES = (("lr", 0.0, 10.0, True, False), ("momentum", 0.0, 1.0, False, True), ("gamma", 0.0, 1.0, True, False),
              ("weight_decay", 0.0, 1.0, False, True), ("label_smoothing", 0.0, 1.0, False, True))

    def __post_init__(self):
        choose("lr schedule", self.schedule, SCHEDULES)
        for name in ("epochs", "batch_size", "eval_batch_size", "steps_per_epoch", "seed", "max_steps", "eval_every"):
            v = getattr(self, name)
            lo = 0 if name in ("steps_per_epoch", "seed", "max_steps", "eval_every") else 1
            if isinstance(v, bool) or not isinstance(v, int) or v < lo:
                raise PrunebenchError(f"invalid {name} {v!r}: must be an integer >= {lo}")
        for name, lo, hi, lo_open, hi_open in self.RANGES:
            v = getattr(self, name)
            ok = isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
            if not ok or (v <= lo if lo_open else v < lo) or (v >= hi if hi_open else v > hi):
                rng = f"{'(' if lo_open else '['}{lo:g}, {hi:g}{')' if hi_open else ']'}"
                raise PrunebenchError(f"invalid {name} {v!r}: must be a finite number in {rng}")
        for name in ("nesterov", "augment", "amp", "channels_last", "compile"):
            if not isinstance(getattr(self, name), bool):
                raise PrunebenchError(f"invalid {name} {getattr(self, name)!r}: must be true or false")
        for m in self.metrics:
            choose("metric split", m, ("test", "val"))
        for m in self.milestones:
            if not 0 < float(m) <= 1:
                raise PrunebenchError(f"invalid milestone {m!r}: milestones are fractions of training in (0, 1]")

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        known = {f.name for f in fields(cls)}
        for k in d:
            if k not in known:
                raise PrunebenchError(f"unknown training option {k!r}; choose from: {', '.join(sorted(known))}")
        d = {k: tuple(v) if isinstance(v, list) else v for k, v in d.items()}
        return cls(**d)

    def to_dict(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    def lr_at(self, epoch: int, epochs: int | None = None) -> float:
        """Learning rate of 0-based `epoch` of `epochs` (default: self.epochs; the decays take effect at the
        start of the milestone epoch)."""
        epochs = epochs or self.epochs
        if self.schedule == "constant":
            return self.lr
        if self.schedule == "cosine":
            return 0.5 * self.lr * (1 + math.cos(math.pi * epoch / epochs))
        drops = sum(1 for m in self.milestones if epoch >= int(m * epochs + 0.5))
        return self.lr * self.gamma ** drops

    def plan(self, steps_per_epoch: int) -> tuple:
        """(epochs, total steps) of a run with `steps_per_epoch` steps per epoch."""
        if self.max_steps:
            return -(-self.max_steps // steps_per_epoch), self.max_steps
        return self.epochs, self.epochs * steps_per_epoch


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
    from prunebench.library import data as D
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
