"""The training configuration: every option that changes what is trained (part of the checkpoint's key).

`TrainConfig.to_dict()` is recorded in manifests and joins the checkpoint key, so its fields and their order are
part of the results' bytes: a new field changes every existing key.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields

from prunebench.library.errors import PrunebenchError, choose

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
