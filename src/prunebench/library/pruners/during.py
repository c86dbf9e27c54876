"""Pruning during training: the protocol and the shared machinery of FGGP, GMP and the annealed
magnitude-first/gradient-next variant (docs/methods.md A.9; one module per method: fggp, gmp, mfgn).

The training loop drives a `DuringTraining` object: `start` once before training (it may return a sparse
starting mask, e.g. ERK), then `after_step` after every optimizer step; a pruning event returns a new,
smaller `Mask` (pruned weights never return: every method here is monotone).

Schedule (`prunebench.library.schedules`, docs/methods.md A.9, E.4), in density, with T_end = floor(total_steps *
end_ratio): cubic d(t) = d_f + (d_i - d_f)(1 - t/T_end)^3 or exp d(t) = d_i exp(ln(d_f/d_i) t/T_end);
d(t) = d_i for t <= 0 and exactly d_f for t >= T_end. Pruning events happen at every multiple of
`update_interval` (default 2000, the official code's) that is <= T_end, plus, by default, one event at T_end
itself so that the last event lands exactly on d_f (`final_event`). After T_end nothing is pruned. On small
runs pass a smaller `update_interval` (e.g. a few events per epoch).

Counting convention. By default the target is a fraction of the prunable weights (all Conv2d/Linear
weights) and every prunable layer can be pruned. The official FGGP code instead counts Conv/Linear biases
and the first conv in the denominator and never prunes the first conv: `count_bias_and_first_conv=True,
prune_first_layer=False` reproduce it. The "first layer" is the first Conv2d/Linear in registration order.

Determinism: every ranking is an exact-count selection with the tie rule of `pruners.common.select`
(ties broken by position), computed on the CPU; the only randomness is the ERK start, drawn from the
generator passed to `start`.
"""
from __future__ import annotations

import functools
import importlib
import math
from dataclasses import dataclass
from typing import ClassVar

import torch

from prunebench.library.errors import PrunebenchError, check_sparsity, choose
from prunebench.library.masks import Mask
from prunebench.library.methods import METHODS, during
from prunebench.library.models import prunable_modules, prunable_parameters
from prunebench.library.pruners.base import Options, boolean, choice, integer, number, option
from prunebench.library.pruners.topk import keep_count, select
from prunebench.library.pruners.erk import ERK_SAMPLINGS, erk_mask
from prunebench.library.schedules import GRADUAL_SCHEDULES, end_step, event_steps, gradual_density

INIT_TYPES = ("dense", "erk")
MAGNITUDES = ("post_step", "pre_step")
STATE_FORMAT = "prunebench-during-training/1"


@dataclass(frozen=True)
class DuringOptions(Options):
    """Options shared by every during-training method (docs/methods.md A.9)."""

    schedule: str = option("cubic", "density schedule: cubic (the code's) or exp", check=choice(*GRADUAL_SCHEDULES))
    end_ratio: float = option(0.8, "pruning ends at T_end = floor(total_steps * end_ratio)",
                              check=number(0.0, 1.0, lo_open=True))
    update_interval: int = option(2000, "optimizer steps between pruning events (the code's default)",
                                  check=integer(1))
    initial_density: float = option(1.0, "d_i of the schedule: 1 = dense start, 0.5 = 50% sparse start",
                                    check=number(0.0, 1.0, lo_open=True))
    init_type: str = option("dense", "dense, or erk: a random ERK mask at initial_density before training "
                            "(with dense and d_i < 1 the first event jumps towards d_i)", check=choice(*INIT_TYPES))
    erk_sampling: str = option(
        "exact", "ERK start: exact per-layer counts, or bernoulli draws", check=choice(*ERK_SAMPLINGS),
        paper="not stated", official="bernoulli", section="A.9",
        note="official ERK start draws each weight with probability = layer density (realised density is "
        "approximate); default draws exactly round(density * n) weights per layer, overall exact")
    count_bias_and_first_conv: bool = option(
        False, "the target counts Conv/Linear biases and the first layer too", check=boolean,
        paper="not stated", official=True, section="A.9, A.0, E.9",
        note="official code: the sparsity target is a fraction of all Conv/Linear weights + biases (first conv "
        "included); default: a fraction of the prunable weights")
    prune_first_layer: bool = option(
        True, "the first Conv2d/Linear can be pruned", check=boolean,
        paper="not stated", official=False, section="A.0, A.9, E.9",
        note="official code never prunes the first conv (`--prune-conv1` defaults to False); an ERK start "
        "still sparsifies it, as in the code")
    final_event: bool = option(
        True, "one extra event at T_end lands exactly on the target", check=boolean,
        paper="not stated", official=False, section="A.9",
        note="official code prunes only at multiples of --update-interval <= T_end, so the last event can stop "
        "short of the target")
    magnitude: str = option(
        "post_step", "the |w| ranked at an event: post_step (after this step's update) or pre_step (the weights "
        "this step's forward pass used)", check=choice(*MAGNITUDES),
        paper="not stated", official="pre_step", section="A.9",
        note="the code ranks torch.nn.utils.prune's `module.weight`, which its forward pre-hook last computed "
        "before optimizer.step(): the pre-step weights")


@functools.lru_cache(maxsize=None)
def during_class(method: str) -> type:
    """The DuringTraining subclass of a during-training method (imported through the method table)."""
    choose("during-training method", method, during())
    module = importlib.import_module(METHODS[method].module)
    for obj in vars(module).values():
        if isinstance(obj, type) and issubclass(obj, DuringTraining) and obj.name == method:
            return obj
    raise PrunebenchError(f"module {METHODS[method].module} defines no DuringTraining named {method!r}")


def make_during_training(method: str, target_sparsity, **options) -> "DuringTraining":
    """Build a during-training pruner (docs/methods.md A.9): target sparsity (fraction removed, in [0, 1)),
    options as the class's `Options`. Bad names/values raise a one-line PrunebenchError."""
    return during_class(method)(target_sparsity, **options)


def paper_vs_code() -> list:
    rows = []
    for m in during(builtin_only=True):  # prunebench's own methods (the README documents these)
        rows += during_class(m).Options.paper_vs_code()
    return rows


def pick(scores: dict, pool: dict, count: int) -> dict:
    """The `count` highest-scoring entries inside `pool` (name -> bool), exactly, with the tie rule of
    `common.select`. Returns name -> CPU bool tensor."""
    return select({n: scores[n] for n in pool}, count=count, eligible=pool).masks


def count(masks: dict) -> int:
    return sum(int(m.sum()) for m in masks.values())


class DuringTraining:
    """Base class of pruning during training (see the module docstring). Subclasses set `name` (a row of
    prunebench.library.methods) and `Options` (a DuringOptions subclass), and implement `_decide`."""

    name: ClassVar[str] = "during-training"
    Options: ClassVar[type] = DuringOptions

    def __init__(self, target_sparsity, **options):
        self.target_sparsity = check_sparsity(target_sparsity)
        self.options = self.Options.from_dict(options)
        if self.options.initial_density < self.final_density:
            raise PrunebenchError(f"invalid initial_density {self.options.initial_density!r}: below the target "
                                  f"density {self.final_density} (pruning only removes weights)")
        self.total_steps: int | None = None
        self.history: list = []
        self._pre_step: dict | None = None

    @property
    def final_density(self) -> float:
        return 1.0 - self.target_sparsity

    @property
    def end_step(self) -> int:
        return end_step(self._total(), self.options.end_ratio)

    def _total(self) -> int:
        if self.total_steps is None:
            raise PrunebenchError(f"{self.name}: call start() or load_state_dict() before using the schedule")
        return self.total_steps

    # -- protocol -----------------------------------------------------------------------------------
    def start(self, model, total_steps: int, generator: torch.Generator) -> Mask | None:
        """Called once before training. Returns the initial mask: a random ERK mask at `initial_density`
        drawn from `generator` when init_type="erk" and initial_density < 1, else None (dense start).
        Does not modify the model: the caller applies the mask."""
        if isinstance(total_steps, bool) or not isinstance(total_steps, int) or total_steps < 1:
            raise PrunebenchError(f"invalid total_steps {total_steps!r}: must be an integer >= 1")
        self.total_steps = total_steps
        self.history = []
        o = self.options
        if o.init_type != "erk" or o.initial_density >= 1.0:
            return None
        mask = erk_mask(prunable_parameters(model), o.initial_density, generator, o.erk_sampling)
        mask.metadata.update(method=self.name, step=0)
        return mask

    def density_at(self, step: int) -> float:
        """The schedule's target density at `step`: d_i before training, d_f from T_end on. With
        count_bias_and_first_conv it is a fraction of weights + biases, as in the official code."""
        o = self.options
        return gradual_density(o.schedule, step, self.end_step, o.initial_density, self.final_density)

    def event_steps(self) -> list:
        """All pruning-event steps of this run."""
        o = self.options
        return event_steps(self._total(), o.update_interval, o.end_ratio, o.final_event)

    def is_event(self, step: int) -> bool:
        """Whether `step` is a pruning event: a multiple of update_interval <= T_end, or T_end itself when
        final_event."""
        t_end = self.end_step
        if step < 1 or step > t_end:
            return False
        return step % self.options.update_interval == 0 or (self.options.final_event and step == t_end)

    def before_step(self, step: int, model) -> None:
        """Called after the backward pass of optimizer step `step` (1-based), before the update: with
        magnitude="pre_step" an event step keeps |w| of the weights this step's forward pass used."""
        if self.options.magnitude == "pre_step" and self.is_event(step):
            self._pre_step = {n: p.detach().abs().clone() for n, p in prunable_parameters(model).items()}

    def magnitudes(self, params: dict) -> dict:
        """|w| as ranked at this event: post-step (the current weights) or the pre-step copy."""
        if self.options.magnitude == "pre_step":
            if self._pre_step is None:
                raise PrunebenchError(f"{self.name}: magnitude='pre_step' needs before_step() at every event step")
            return self._pre_step
        return {n: p.detach().abs() for n, p in params.items()}

    def after_step(self, step: int, model, mask: Mask | None) -> Mask | None:
        """Called after every optimizer step. On a pruning event, returns the new mask (a subset of `mask`),
        else None. `.grad` of each prunable weight must hold this step's gradient (FGGP and the annealed
        variant read it); the weights are post-step and masked."""
        if not self.is_event(step):
            return None
        o = self.options
        params = mask.check_fits(model) if mask is not None else prunable_parameters(model)
        names = list(mask.masks) if mask is not None else list(params)
        cur = {n: (mask[n].clone() if mask is not None else torch.ones(params[n].shape, dtype=torch.bool))
               for n in names}
        first = next(iter(params), None)
        pool = {n: (cur[n] if (o.prune_first_layer or n != first) else torch.zeros_like(cur[n])) for n in names}
        units = sum(params[n].numel() for n in names)
        if o.count_bias_and_first_conv:
            units += sum(m.bias.numel() for m in prunable_modules(model).values() if m.bias is not None)
        already = sum(int((~cur[n]).sum()) for n in names)
        remain = units - already
        d = self.density_at(step)
        if o.count_bias_and_first_conv:
            wanted = int(math.floor(units * (1.0 - d) - already))  # the official code's arithmetic
        else:
            wanted = remain - keep_count(units, d)
        wanted = max(0, wanted)
        removed, info = self._decide(step, params, pool, wanted, remain)
        self._pre_step = None
        n_removed = count(removed)
        event = {"step": step, "target_density": d, "wanted": wanted, "removed": n_removed,
                 "kept": count(cur) - n_removed, **info}
        if n_removed < wanted:
            event["clamped"] = True
        self.history.append(event)
        if n_removed == 0:
            return None
        new = {n: cur[n] & ~removed[n] for n in names}
        return Mask(new, {"method": self.name, "step": step, "target_density": d})

    def _decide(self, step, params, pool, wanted, remain):  # -> (removed: name -> bool, info dict)
        raise NotImplementedError

    def _abs_grads(self, params, names, step):
        out = {}
        for n in names:
            g = params[n].grad
            if g is None:
                raise PrunebenchError(f"{self.name} needs gradients: {n!r} has no .grad at step {step}")
            out[n] = g.detach().abs()
        return out

    # -- checkpointing --------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        """JSON-serialisable state: method, target, options, total_steps and the event log. Future decisions
        depend only on it, the model, its gradients and the current mask."""
        return {"format": STATE_FORMAT, "method": self.name, "target_sparsity": self.target_sparsity,
                "options": self.options.to_dict(), "total_steps": self.total_steps,
                "history": [dict(e) for e in self.history]}

    def load_state_dict(self, state: dict) -> None:
        """Restore `state_dict()` output; a one-line error if it is for another method, target or option
        set. Can replace `start` on resume."""
        if not isinstance(state, dict) or state.get("format") != STATE_FORMAT:
            raise PrunebenchError("invalid pruner state: not a prunebench during-training state")
        if state.get("method") != self.name:
            raise PrunebenchError(f"pruner state is for method {state.get('method')!r}, not {self.name!r}")
        if state.get("target_sparsity") != self.target_sparsity or state.get("options") != self.options.to_dict():
            raise PrunebenchError(f"pruner state of {self.name} was saved with different settings: "
                                  f"sparsity {state.get('target_sparsity')}, options {state.get('options')}")
        total = state.get("total_steps")
        if total is not None and (not isinstance(total, int) or total < 1):
            raise PrunebenchError(f"invalid pruner state: total_steps {total!r}")
        self.total_steps = total
        self.history = [dict(e) for e in state.get("history", [])]
