"""The trainer: one run of masked SGD training in named phases (issue 18 section 5, issue 19).

    Trainer(model, data, cfg, ...).run()  ==  train(model, data, cfg, ...)

Phases, in order:
  place     the model on its device (channels_last on CUDA for conv nets), bf16 autocast on CUDA;
  plan      steps per epoch, epochs and total steps (`TrainConfig.plan`);
  start     the during-training pruner's starting mask (ERK), the mask applied, the enforcer and optimizer;
  resume    the checkpoint of this very run (its key: the config, the pruner, the caller's `identity`), if any;
  epochs    per epoch: the learning rate, the epoch's order and augmentation drawn at once
            (`data.batches.epoch_order`), batches gathered a chunk at a time on the device
            (`data.batches.epoch_batches`), one `step` per batch (`training.step`: plain, static or CUDA
            graph), the during-training pruner after each step, and evaluation points;
  record    an evaluation point (every epoch, or every `eval_every` steps): the training loss and accuracy
            since the previous one (device sums, read here, the only synchronisation), every metric split
            evaluated, a history row, the log line;
  save      a checkpoint after every evaluation point (on CUDA written by a background thread from a copy,
            so the GPU keeps training while it is hashed and written);
  finish    metrics.json (no timings: the same config gives the same bytes), timing.json, final_mask.

On the CPU every result is bit-identical to the loop this replaced (tests/test_train_equivalence.py checks
the hashes of that loop's outputs). `step_mode`: "auto" (CUDA: graph, else plain), "plain", "static" (the
graph's body run eagerly: the CPU check of the graph path), "graph" (CUDA only).
"""
from __future__ import annotations

import json
import math
import sys
import threading
import time
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F
from tqdm import tqdm

from prunebench.library.artifacts import canonical_json, load_tensors, save_tensors, write_json
from prunebench.library.data.batches import epoch_batches, epoch_order, eval_batches, num_batches
from prunebench.library.errors import PrunebenchError, choose
from prunebench.library.masks import Mask
from prunebench.library.runtime import deterministic_compile
from prunebench.library.training.config import TrainConfig
from prunebench.library.training.optim import MaskedSGD, MaskEnforcer
from prunebench.library.training.step import STEP_MODES, EmulatedGraphs, GraphStep, Stepper, _NoGradient


def evaluate(model: nn.Module, batches, device, amp=False, channels_last=False) -> tuple:
    """(accuracy, mean cross-entropy) over `batches` of (x, y); the model's mode is restored. The sums stay on
    the device (the loss in float64, which is what adding Python floats did) and are read once at the end."""
    was = model.training
    model.eval()
    correct = torch.zeros((), dtype=torch.long, device=device)
    loss_sum = torch.zeros((), dtype=torch.float64, device=device)
    n = 0
    with torch.no_grad():
        for x, y in batches:
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            if channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            with torch.autocast("cuda", dtype=torch.bfloat16, enabled=amp):
                out = model(x)
            loss_sum += F.cross_entropy(out.float(), y, reduction="sum").double()
            correct += (out.argmax(1) == y).sum()
            n += y.numel()
    model.train(was)
    return int(correct) / max(n, 1), float(loss_sum) / max(n, 1)


class _Progress:
    """tqdm bar (rate, ETA) on a terminal; otherwise nothing per step (one line per evaluation point is logged).
    The loss is shown at evaluation points only: reading it every step would synchronise the GPU."""

    def __init__(self, total, desc, enabled):
        self.bar = None
        if enabled and sys.stderr.isatty():
            self.bar = tqdm(total=total, desc=desc, unit="batch", leave=False, dynamic_ncols=True)

    def update(self):
        if self.bar is not None:
            self.bar.update(1)

    def show(self, loss):
        if self.bar is not None:
            self.bar.set_postfix(loss=f"{loss:.3f}", refresh=False)

    def close(self):
        if self.bar is not None:
            self.bar.close()


class _Diverged(Exception):
    def __init__(self, epoch, step, lr):
        super().__init__(f"diverged in epoch {epoch}")
        self.epoch, self.step, self.lr = epoch, step, lr


class _Writer:
    """Checkpoint writes: synchronous on the CPU; on CUDA from a host copy in a background thread (one at a
    time; a failed write is raised at the next save or at the end)."""

    def __init__(self, background: bool):
        self.background = background
        self.thread = None
        self.error = None
        self.seconds = 0.0

    def write(self, path, tensors: dict, meta: dict) -> None:
        self.wait()
        if not self.background:
            t = time.perf_counter()
            save_tensors(path, tensors, meta)
            self.seconds += time.perf_counter() - t
            return
        host = {k: v.detach().to("cpu", copy=True) for k, v in tensors.items()}
        meta = json.loads(json.dumps(meta))  # the history list keeps growing after this point

        def work():
            t = time.perf_counter()
            try:
                save_tensors(path, host, meta)
            except BaseException as e:  # raised in the training thread by wait()
                self.error = e
            self.seconds += time.perf_counter() - t

        self.thread = threading.Thread(target=work, name="prunebench-checkpoint", daemon=True)
        self.thread.start()

    def wait(self) -> None:
        if self.thread is not None:
            self.thread.join()
            self.thread = None
        if self.error is not None:
            e, self.error = self.error, None
            raise e


class Trainer:
    """One training run (see the module docstring for its phases). `run()` returns the metrics dict, or an
    interruption marker when `stop_after_epoch` / `stop_after_step` end it early (tests)."""

    def __init__(self, model: nn.Module, data, cfg: TrainConfig, *, mask: Mask | None = None, during=None,
                 out_dir=None, device: str = "cpu", progress: bool = True, log=print, resume: bool = True,
                 identity: dict | None = None, stop_after_epoch: int | None = None,
                 stop_after_step: int | None = None, step_mode: str = "auto"):
        self.model, self.data, self.cfg, self.mask, self.during = model, data, cfg, mask, during
        self.out_dir = Path(out_dir) if out_dir is not None else None
        self.device, self.progress, self.log, self.resume_ok, self.identity = device, progress, log, resume, identity
        self.stop_after_epoch, self.stop_after_step = stop_after_epoch, stop_after_step
        self.step_mode = choose("step mode", step_mode, STEP_MODES)
        self.ckpt_path = self.out_dir / "checkpoint.safetensors" if self.out_dir else None
        self.history, self.best, self.step, self.start_epoch = [], -1.0, 0, 0
        self.times = {"train_s": 0.0, "eval_s": 0.0, "images": 0}

    # -- phases ------------------------------------------------------------------------------------------------
    def place(self) -> None:
        model, cfg = self.model, self.cfg
        self.is_cuda = str(self.device).startswith("cuda")
        self.amp = cfg.amp and self.is_cuda
        self.cl = cfg.channels_last and self.is_cuda and any(isinstance(m, nn.Conv2d) for m in model.modules())
        model.to(self.device)
        if self.cl:
            model.to(memory_format=torch.channels_last)

    def plan(self) -> None:
        cfg = self.cfg
        steps_full = num_batches(self.data, cfg.batch_size)
        self.steps_per_epoch = min(steps_full, cfg.steps_per_epoch) if cfg.steps_per_epoch else steps_full
        self.n_epochs, self.total_steps = cfg.plan(self.steps_per_epoch)

    def start(self) -> None:
        if self.during is not None:
            gen = torch.Generator().manual_seed(self.cfg.seed)
            start_mask = self.during.start(self.model, self.total_steps, gen)
            if start_mask is not None:
                self.mask = start_mask
        if self.mask is not None:
            self.mask.apply(self.model)
        self.enforcer = MaskEnforcer(self.model, self.mask)
        self.before_step = getattr(self.during, "before_step", None)  # optional part of the protocol
        cfg = self.cfg
        self.optim = MaskedSGD(list(self.model.parameters()), cfg.momentum, cfg.weight_decay, cfg.nesterov)
        self.config_key = canonical_json({"train": cfg.to_dict(), "during": getattr(self.during, "name", None),
                                          "identity": self.identity})

    def resume(self) -> None:
        path = self.ckpt_path
        if not (self.resume_ok and path is not None and path.exists()):
            return
        tensors, meta = load_tensors(path, what="checkpoint")
        if meta.get("config_key") != self.config_key:
            self.log(f"checkpoint {path} was written by another run (its init, mask, data, code or config "
                     f"differ); starting over")
            return
        model = self.model
        model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model/")})
        self.optim.load_state({k[9:]: v for k, v in tensors.items() if k.startswith("momentum/")},
                              dict(model.named_parameters()), self.device)
        mtens = {k[5:]: v.bool() for k, v in tensors.items() if k.startswith("mask/")}
        if mtens:
            self.mask = Mask(mtens, self.mask.metadata if self.mask is not None else {})
            self.enforcer = MaskEnforcer(model, self.mask)
        if self.during is not None and meta.get("during") is not None:
            self.during.load_state_dict(meta["during"])
        self.start_epoch, self.step, self.history, self.best = meta["epoch"], meta["step"], meta["history"], meta["best"]
        self.log(f"resumed from {path} at epoch {self.start_epoch}")

    def build_step(self) -> None:
        cfg = self.cfg
        if cfg.compile and self.is_cuda:
            deterministic_compile()
            fwd = torch.compile(self.model)
        else:
            fwd = self.model
        self.stepper = Stepper(self.model, fwd, self.optim, self.enforcer, device=self.device, amp=self.amp,
                               channels_last=self.cl, label_smoothing=cfg.label_smoothing)
        mode = self.step_mode
        if mode == "auto":
            mode = "graph" if (self.is_cuda and not cfg.compile) else "plain"
        if mode == "graph" and not self.is_cuda:
            raise PrunebenchError("step mode 'graph' needs a CUDA device (CUDA graphs); use 'static' to run its "
                                  "body on the CPU")
        if mode == "graph" and cfg.compile:
            self.log("torch.compile runs its own graphs: plain steps around the compiled model")
            mode = "plain"
        if mode in ("graph", "graph-emulated") and self.during is not None and not hasattr(self.during, "is_event"):
            mode = "static"  # an arbitrary pruner may act after any step: its hooks run every step, eagerly
        self.mode = mode
        self.graph = None
        if mode != "plain":
            self.stepper.make_static()
        if mode in ("graph", "graph-emulated"):
            shape = (cfg.batch_size,) + tuple(self.data.split("train")[0].shape[1:])
            backend = EmulatedGraphs() if mode == "graph-emulated" else None
            self.graph = GraphStep(self.stepper, shape, self.log, backend)
        self.writer = _Writer(background=self.is_cuda)

    # -- one step ------------------------------------------------------------------------------------------------
    def take_step(self, x, y, lr: float):
        s, step = self.stepper, self.step
        hooks = self.during is not None
        try:
            if self.mode == "plain":
                return s.plain(x, y, lr, self.before_step, step)
            if self.mode == "static":
                return s.static(x, y, lr, self.before_step, step)
            event = hooks and self.during.is_event(step + 1)
            return self.graph.run(x, y, lr, hooks_needed=event, before_step=self.before_step, step=step)
        except _NoGradient as e:  # a parameter outside the graph of the loss: no static buffers for it
            self.log(f"{e}: plain steps instead of {self.mode} ones (same results)")
            for p in s.params:
                p.grad = None
            self.mode, self.graph = "plain", None
            return s.plain(x, y, lr, self.before_step, step)

    def after_step(self) -> None:
        """The during-training pruner after step `self.step` (a new mask replaces the enforced one)."""
        new = self.during.after_step(self.step, self.model, self.enforcer.mask)
        if new is None:
            return
        in_place = self.enforcer.update(new)
        self.enforcer.weights_()
        if not in_place and self.graph is not None:
            self.graph.invalidate()

    # -- evaluation points and checkpoints ---------------------------------------------------------------------
    def record(self, epoch: int, lr: float, seen: int, t0: float):
        """One evaluation point: the training loss and accuracy since the previous one, every metric split."""
        s = self.stepper
        if self.is_cuda:
            torch.cuda.synchronize()
        loss_sum = float(s.loss_sum)
        if not math.isfinite(loss_sum):
            raise _Diverged(epoch + 1, self.step, lr)
        self.times["train_s"] += time.perf_counter() - t0
        t1 = time.perf_counter()
        row = {"epoch": epoch + 1, "step": self.step, "lr": lr, "train_loss": loss_sum / max(seen, 1),
               "train_acc": float(s.correct) / max(seen, 1),
               "density": self.enforcer.mask.density if self.enforcer.mask is not None else 1.0}
        for split in self.cfg.metrics:
            acc, loss = evaluate(s.fwd, eval_batches(self.data, split, self.cfg.eval_batch_size, cache=True),
                                 self.device, self.amp, self.cl)
            row[f"{split}_acc"], row[f"{split}_loss"] = acc, loss
        self.times["eval_s"] += time.perf_counter() - t1
        self.history.append(row)
        self.bar.show(row["train_loss"])
        self.log(f"epoch {epoch + 1}/{self.n_epochs} step {self.step} lr {lr:.4g} loss {row['train_loss']:.4f} "
                 f"train {row['train_acc']:.4f} " + " ".join(f"{sp} {row[f'{sp}_acc']:.4f}" for sp in self.cfg.metrics)
                 + f" density {row['density']:.4f} ({time.perf_counter() - t0:.1f}s)")
        s.reset_metrics()
        self.best = max(self.best, row.get("test_acc", -1.0))

    def save(self, epoch: int) -> None:
        """A checkpoint after `self.step` steps (`epoch` whole epochs done: where a resumed run restarts)."""
        if self.ckpt_path is None:
            return
        meta = {"config_key": self.config_key, "epoch": epoch, "step": self.step, "history": self.history,
                "best": self.best, "during": self.during.state_dict() if self.during is not None else None}
        self.writer.write(self.ckpt_path, self.checkpoint_tensors(), meta)

    def checkpoint_tensors(self) -> dict:
        tensors = {f"model/{k}": v for k, v in self.model.state_dict().items()}
        tensors.update(self.optim.state({id(p): n for n, p in self.model.named_parameters()}))
        if self.enforcer.mask is not None:
            for n, m in self.enforcer.mask.items():
                tensors[f"mask/{n}"] = m.to(torch.uint8)
        return tensors

    # -- the epochs ------------------------------------------------------------------------------------------
    def epochs(self):
        """The training loop; returns an interruption marker (tests) or None."""
        cfg = self.cfg
        skip = self.step - self.start_epoch * self.steps_per_epoch  # steps of a resumed epoch already done
        for epoch in range(self.start_epoch, self.n_epochs):
            lr = cfg.lr_at(epoch, self.n_epochs)
            t0 = time.perf_counter()
            self.bar = _Progress(self.steps_per_epoch, f"epoch {epoch + 1}/{self.n_epochs}", self.progress)
            self.stepper.reset_metrics()
            seen = 0
            stop = min(self.steps_per_epoch, skip + max(0, self.total_steps - self.step))
            order = epoch_order(self.data, cfg.batch_size, epoch, cfg.seed, cfg.augment, limit=stop)
            for x, y in epoch_batches(self.data, order, start=skip, stop=stop):
                self.take_step(x, y, lr)
                self.step += 1
                if self.during is not None:
                    self.after_step()
                seen += y.numel()
                self.times["images"] += y.numel()
                self.bar.update()
                if cfg.eval_every and (self.step % cfg.eval_every == 0 or self.step == self.total_steps):
                    self.record(epoch, lr, seen, t0)
                    self.save(epoch)
                    seen, t0 = 0, time.perf_counter()
                    if self.stop_after_step is not None and self.stop_after_step <= self.step < self.total_steps:
                        return {"interrupted_at_step": self.step}
            self.bar.close()
            skip = 0
            if not cfg.eval_every:
                self.record(epoch, lr, seen, t0)
                self.save(epoch + 1)
            elif seen:  # the training time of the steps after the last evaluation point of this epoch
                self.times["train_s"] += time.perf_counter() - t0
            if self.stop_after_epoch is not None and epoch + 1 >= self.stop_after_epoch and epoch + 1 < self.n_epochs:
                return {"interrupted_at_epoch": epoch + 1}
        return None

    def run(self) -> dict:
        self.place()
        self.plan()
        self.start()
        self.resume()
        self.build_step()
        self.model.train()
        diverged = None
        try:
            try:
                interrupted = self.epochs()
            except _Diverged as d:  # a result, not a crash: a failed run (best_acc is the best before it)
                diverged, interrupted = d, None
                self.log(f"WARNING: training diverged by step {d.step} (epoch {d.epoch}, lr {d.lr:g}); recorded "
                         f"as a failed run")
        finally:
            self.writer.wait()
        if interrupted is not None:
            return interrupted
        return self.finish(diverged)

    def finish(self, diverged) -> dict:
        """metrics.json and timing.json of a finished (or diverged) run."""
        history, enforcer, out_dir, times = self.history, self.enforcer, self.out_dir, self.times
        last = history[-1] if history else {}
        best = self.best
        metrics = {"final_acc": None if diverged else last.get("test_acc"), "best_acc": best if best >= 0 else None,
                   "final_loss": None if diverged else last.get("test_loss"),
                   "final_train_loss": None if diverged else last.get("train_loss"),
                   "density": enforcer.mask.density if enforcer.mask is not None else 1.0, "epochs": self.n_epochs,
                   "steps": self.step, "history": history}
        if diverged:
            metrics["diverged"] = {"epoch": diverged.epoch, "step": diverged.step, "lr": diverged.lr}
        if "val_acc" in last:
            metrics["final_val_acc"] = None if diverged else last["val_acc"]
            metrics["best_val_acc"] = max(r["val_acc"] for r in history)
        if enforcer.mask is not None:
            metrics["collapsed"] = len(enforcer.mask.collapsed())
        times["images_per_s"] = times["images"] / max(times["train_s"], 1e-9)
        times["checkpoint_s"] = self.writer.seconds
        times["step_mode"] = self.mode
        if self.graph is not None:
            times.update(graph_captures=self.graph.captures, graph_replays=self.graph.replays,
                         eager_steps=self.graph.eager_steps, graph_fallback=self.graph.fallback)
        if out_dir is not None:
            write_json(out_dir / "metrics.json", metrics)
            write_json(out_dir / "timing.json", times)
            if enforcer.mask is not None and self.during is not None:
                enforcer.mask.save(out_dir / "final_mask.safetensors", method=self.during.name)
        metrics["_timing"] = times
        metrics["_mask"] = enforcer.mask
        return metrics


def train(model: nn.Module, data, cfg: TrainConfig, *, mask: Mask | None = None, during=None,
          out_dir=None, device: str = "cpu", progress: bool = True, log=print, resume: bool = True,
          identity: dict | None = None, stop_after_epoch: int | None = None,
          stop_after_step: int | None = None, step_mode: str = "auto") -> dict:
    """Train `model` in place on `data` (prunebench.library.data.Data) and return the metrics dict.

    mask:    a fixed at-initialization mask (pruned weights are zeroed first and kept at zero).
    during:  a `DuringTraining` pruner (FGGP, GMP) that may return a new mask after any step.
    out_dir: where checkpoint.safetensors, metrics.json and timing.json go (None: nothing written).
    identity: what else the run depends on (the checksums of its init, mask and data, its code): part of the
             checkpoint's key, so a checkpoint is resumed only by the run that wrote it.
    stop_after_epoch, stop_after_step: end after this many epochs / at the first checkpoint at or after this
             many steps (simulate an interruption; used by tests).
    step_mode: "auto" (CUDA graphs on CUDA, plain steps on the CPU), "plain", "static", "graph" (same bytes;
             see prunebench.library.training.step).
    """
    return Trainer(model, data, cfg, mask=mask, during=during, out_dir=out_dir, device=device, progress=progress,
                   log=log, resume=resume, identity=identity, stop_after_epoch=stop_after_epoch,
                   stop_after_step=stop_after_step, step_mode=step_mode).run()
