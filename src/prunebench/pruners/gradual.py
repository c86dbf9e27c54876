"""Pruning during training: FGGP, GMP and the annealed magnitude-first/gradient-next variant (methods.md A.9).

The training loop drives a `DuringTraining` object (the protocol below): `start` once before training
(it may return a sparse starting mask, e.g. ERK), then `after_step` after every optimizer step; a pruning
event returns a new, smaller `Mask` (pruned weights never return: every method here is monotone).

Schedule (methods.md A.9 "Schedule", E.4), in density, with T_end = floor(total_steps * end_ratio):

    cubic: d(t) = d_f + (d_i - d_f) (1 - t/T_end)^3          (Zhu & Gupta 2018)
    exp:   d(t) = d_i exp(ln(d_f/d_i) t/T_end)
    d(t) = d_i for t <= 0 and d(t) = d_f exactly for t >= T_end.

Pruning events happen at every multiple of `update_interval` (default 2000 iterations, the official
code's `--update-interval`; the paper's value is [NF]) that is <= T_end, plus, by default, one event at
T_end itself so that the last event lands exactly on d_f (`final_event=True`; the official code has no
such event, so its last event stops short of the target when T_end is not a multiple of the interval).
After T_end nothing is pruned. On small runs pass a smaller `update_interval` (e.g. a few events per
epoch: `update_interval = steps_per_epoch // 4`).

Counting convention (DESIGN.md; methods.md A.0 "What is prunable", A.9, E.9). By default the target is a
fraction of the prunable weights (all Conv2d/Linear weights) and every prunable layer can be pruned. The
official FGGP code instead counts Conv/Linear biases and the first conv in the denominator and never
prunes the first conv: `count_bias_and_first_conv=True, prune_first_layer=False` reproduce it (see
`PAPER_VS_CODE_OPTIONS`). The "first layer" is the first Conv2d/Linear in registration order (the code's
`conv1` / `features.0` / `fc1`).

Determinism: every ranking is an exact-count selection with the tie rule of `pruners.common.select`
(ties broken by position: the earlier weight, in layer-registration then row-major order, is the one
chosen for the role at hand), computed on the CPU by `select` (O(N)); the only randomness is the ERK start, drawn from the generator passed to `start`.
"""
from __future__ import annotations

import math

import torch

from prunebench.errors import PrunebenchError, check_sparsity, choose
from prunebench.masks import Mask
from prunebench.models import prunable_modules, prunable_parameters
from prunebench.pruners.common import keep_count, select

DURING_TRAINING_METHODS = ("fggp", "gmp", "mfgn_annealed")
SCHEDULES = ("cubic", "exp")
INIT_TYPES = ("dense", "erk")
ERK_SAMPLINGS = ("exact", "bernoulli")
ANNEAL_PERIODS = ("training", "pruning")
STATE_FORMAT = "prunebench-during-training/1"

# Where our default follows the paper / DESIGN.md and the official code differs (methods.md A.0, A.9, E.9).
PAPER_VS_CODE_OPTIONS = [
    {"method": "fggp, gmp, mfgn_annealed", "option": "count_bias_and_first_conv", "default": False,
     "official": True, "section": "A.9, A.0, E.9",
     "note": "official code: the sparsity target is a fraction of all Conv/Linear weights + biases (first conv "
             "included); default: a fraction of the prunable weights (DESIGN convention)"},
    {"method": "fggp, gmp, mfgn_annealed", "option": "prune_first_layer", "default": True,
     "official": False, "section": "A.0, A.9, E.9",
     "note": "official code never prunes the first conv (`--prune-conv1` defaults to False); an ERK start "
             "still sparsifies it, as in the code"},
    {"method": "fggp, gmp, mfgn_annealed", "option": "final_event", "default": True,
     "official": False, "section": "A.9",
     "note": "official code prunes only at multiples of --update-interval <= T_end, so the last event can stop "
             "short of the target; default adds one event at T_end that lands exactly on the target"},
    {"method": "fggp, gmp, mfgn_annealed", "option": "erk_sampling", "default": "exact",
     "official": "bernoulli", "section": "A.9",
     "note": "official ERK start draws each weight with probability = layer density (realised density is "
             "approximate); default draws exactly round(density * n) weights per layer, overall exact"},
]


# --------------------------------------------------------------------------------------------------
# Schedules


def end_step(total_steps: int, end_ratio: float) -> int:
    """T_end = floor(total_steps * end_ratio) (methods.md A.9). A 1e-9 guard avoids float artefacts such as
    int(100 * 0.29) == 28; the official code uses plain int()."""
    return int(math.floor(total_steps * end_ratio + 1e-9))


def schedule_density(kind: str, t: float, t_end: int, d_i: float, d_f: float) -> float:
    """Target density at step t (methods.md A.9 "Schedule", E.4): cubic or exp from d_i to d_f over
    [0, T_end]; d_i for t <= 0, exactly d_f for t >= T_end."""
    if t <= 0:
        return float(d_i)
    if t >= t_end:
        return float(d_f)
    frac = t / t_end
    if kind == "cubic":
        return float(d_f + (d_i - d_f) * (1.0 - frac) ** 3)
    if kind == "exp":
        return float(d_i * math.exp(math.log(d_f / d_i) * frac))
    raise PrunebenchError(f"unknown schedule {kind!r}; choose one of: {', '.join(SCHEDULES)}")


def event_steps(total_steps: int, update_interval: int, end_ratio: float = 0.8,
                final_event: bool = True) -> list:
    """The steps (1-based optimizer-step counts) at which pruning events happen (methods.md A.9): every
    multiple of `update_interval` <= T_end, plus T_end itself when `final_event` (and T_end >= 1)."""
    t_end = end_step(total_steps, end_ratio)
    steps = list(range(update_interval, t_end + 1, update_interval))
    if final_event and t_end >= 1 and (not steps or steps[-1] != t_end):
        steps.append(t_end)
    return steps


def cosine_decay(t: float, t_max: float, start: float, eta_min: float = 0.005) -> float:
    """The official code's `CosineDecay` (methods.md A.9, annealed variant): the learning rate of
    `CosineAnnealingLR(T_max, eta_min)` started at `start`, after `t` scheduler steps, in closed form
    eta_min + (start - eta_min)(1 + cos(pi t / T_max)) / 2 (t is clamped to [0, T_max])."""
    if t_max <= 0:
        return float(eta_min)
    t = min(max(t, 0.0), t_max)
    return float(eta_min + (start - eta_min) * (1.0 + math.cos(math.pi * t / t_max)) / 2.0)


# --------------------------------------------------------------------------------------------------
# ERK (Erdős–Rényi-Kernel) random start


def erk_densities(shapes: dict, density: float) -> dict:
    """Per-layer ERK densities whose weighted mean is `density` (methods.md A.9 "Initially 50% sparse start";
    Evci et al. 2020 RigL / GraNet).

    Layer density is eps * (sum of the weight's dims) / (product of the weight's dims), i.e.
    (cout+cin+kh+kw)/(cout*cin*kh*kw) for a conv and (out+in)/(out*in) for a linear layer, with eps set so
    that sum_l density_l * n_l = density * N. Capacity check: while some layer's density would exceed 1,
    the layer(s) with the largest raw density are made dense and eps is re-solved over the rest (without
    this check ERK undershoots the requested density: TimDettmers/sparse_learning #20).
    """
    if not 0.0 < density <= 1.0:
        raise PrunebenchError(f"invalid ERK density {density!r}: must be in (0, 1]")
    numel = {n: math.prod(s) for n, s in shapes.items()}
    raw = {n: sum(s) / numel[n] for n, s in shapes.items()}
    dense: set = set()
    eps = 0.0
    while True:
        free = [n for n in shapes if n not in dense]
        if not free:
            break
        budget = density * sum(numel.values()) - sum(numel[n] for n in dense)
        divisor = sum(raw[n] * numel[n] for n in free)
        eps = budget / divisor
        top = max(raw[n] for n in free)
        if eps * top <= 1.0:
            break
        dense.update(n for n in free if raw[n] == top)
    return {n: 1.0 if n in dense else min(1.0, eps * raw[n]) for n in shapes}


def erk_counts(shapes: dict, density: float) -> dict:
    """Kept weights per layer for an ERK mask: the ERK densities turned into integer counts whose total is
    exactly keep_count(N, density) (largest-remainder rounding; ties go to the earlier layer), none above
    the layer's size (methods.md A.9)."""
    dens = erk_densities(shapes, density)
    numel = {n: math.prod(s) for n, s in shapes.items()}
    target = {n: dens[n] * numel[n] for n in shapes}
    counts = {n: min(numel[n], int(math.floor(target[n]))) for n in shapes}
    deficit = keep_count(sum(numel.values()), density) - sum(counts.values())
    order = sorted(shapes, key=lambda n: -(target[n] - math.floor(target[n])))
    while deficit > 0:
        moved = False
        for n in order:
            if deficit > 0 and counts[n] < numel[n]:
                counts[n] += 1
                deficit -= 1
                moved = True
        if not moved:
            break
    return counts


def erk_mask(params: dict, density: float, generator: torch.Generator, sampling: str = "exact") -> Mask:
    """A random ERK mask over `params` (name -> weight) at overall `density` (methods.md A.9).

    sampling="exact": each layer keeps exactly its `erk_counts` weights, a uniformly random subset drawn
    with torch.randperm from `generator` (overall density exact up to rounding of N*density).
    sampling="bernoulli": the official code's draw, each weight kept with probability = its layer's density
    (realised density only approximately the target)."""
    choose("ERK sampling", sampling, ERK_SAMPLINGS)
    shapes = {n: tuple(p.shape) for n, p in params.items()}
    masks = {}
    if sampling == "exact":
        counts = erk_counts(shapes, density)
        for n, s in shapes.items():
            numel = math.prod(s)
            keep = torch.zeros(numel, dtype=torch.bool)
            keep[torch.randperm(numel, generator=generator)[:counts[n]]] = True
            masks[n] = keep.reshape(s)
    else:
        dens = erk_densities(shapes, density)
        for n, s in shapes.items():
            masks[n] = torch.rand(s, generator=generator) < dens[n]
    return Mask(masks, {"init_type": "erk", "erk_sampling": sampling, "target_density": density})


# --------------------------------------------------------------------------------------------------
# Exact selection helper


def _pick(scores: dict, pool: dict, count: int) -> dict:
    """The `count` highest-scoring entries inside `pool` (name -> bool), exactly, with the tie rule of
    `common.select` (methods.md A.0 "Keep rule and ties"). Returns name -> CPU bool tensor."""
    return select({n: scores[n] for n in pool}, count=count, eligible=pool).masks


def _count(masks: dict) -> int:
    return sum(int(m.sum()) for m in masks.values())


# --------------------------------------------------------------------------------------------------
# The protocol and the three methods


class DuringTraining:
    """Base class / protocol for pruning during training (methods.md A.9; see the module docstring).

    Construct through `make_during_training`. Common options (all keyword):
      schedule                 "cubic" (default, the code's) or "exp"
      end_ratio                pruning ends at T_end = floor(total_steps * end_ratio); default 0.8
      update_interval          steps between pruning events; default 2000 (the official code's)
      initial_density          d_i of the schedule; 1.0 = dense start (default); 0.5 = "50% sparse start"
      init_type                "dense" (default) or "erk": with "erk" and d_i < 1, `start` returns a random
                               ERK mask at d_i. With "dense" and d_i < 1 the network starts dense and the
                               first event jumps towards d_i (the official code's behaviour without
                               --init-type ERK; methods.md A.9).
      erk_sampling             "exact" (default) or "bernoulli" (official)
      count_bias_and_first_conv, prune_first_layer, final_event: see PAPER_VS_CODE_OPTIONS.
    """

    name = "during-training"
    OPTIONS = {"schedule": "cubic", "end_ratio": 0.8, "update_interval": 2000, "initial_density": 1.0,
               "init_type": "dense", "erk_sampling": "exact", "count_bias_and_first_conv": False,
               "prune_first_layer": True, "final_event": True}

    def __init__(self, target_sparsity: float, **options):
        self.target_sparsity = check_sparsity(target_sparsity)
        unknown = sorted(set(options) - set(self.OPTIONS))
        if unknown:
            raise PrunebenchError(f"unknown option {unknown[0]!r} for {self.name}; "
                                  f"accepted: {', '.join(sorted(self.OPTIONS))}")
        self.options = {**self.OPTIONS, **options}
        self._validate()
        self.total_steps: int | None = None
        self.history: list = []

    # -- options ------------------------------------------------------------------------------------
    def _validate(self):
        o = self.options
        choose("schedule", o["schedule"], SCHEDULES)
        choose("init_type", o["init_type"], INIT_TYPES)
        choose("erk_sampling", o["erk_sampling"], ERK_SAMPLINGS)
        for key in ("count_bias_and_first_conv", "prune_first_layer", "final_event"):
            if not isinstance(o[key], bool):
                raise PrunebenchError(f"invalid {key} {o[key]!r}: must be true or false")
        ui = o["update_interval"]
        if isinstance(ui, bool) or not isinstance(ui, int) or ui < 1:
            raise PrunebenchError(f"invalid update_interval {ui!r}: must be an integer >= 1")
        self._unit_float("end_ratio")
        self._unit_float("initial_density")
        o["end_ratio"] = float(o["end_ratio"])
        o["initial_density"] = float(o["initial_density"])
        if o["initial_density"] < self.final_density:
            raise PrunebenchError(f"invalid initial_density {o['initial_density']!r}: below the target density "
                                  f"{self.final_density} (pruning only removes weights)")

    def _unit_float(self, key):
        v = self.options[key]
        ok = isinstance(v, (int, float)) and not isinstance(v, bool) and (0.0 < v <= 1.0)
        if not ok:
            raise PrunebenchError(f"invalid {key} {v!r}: must be a number in (0, 1]")

    @property
    def final_density(self) -> float:
        return 1.0 - self.target_sparsity

    @property
    def end_step(self) -> int:
        return end_step(self._total(), self.options["end_ratio"])

    def _total(self) -> int:
        if self.total_steps is None:
            raise PrunebenchError(f"{self.name}: call start() or load_state_dict() before using the schedule")
        return self.total_steps

    # -- protocol -----------------------------------------------------------------------------------
    def start(self, model, total_steps: int, generator: torch.Generator) -> Mask | None:
        """Called once before training (methods.md A.9). Returns the initial mask: a random ERK mask at
        `initial_density` drawn from `generator` when init_type="erk" and initial_density < 1, else None
        (dense start). Does not modify the model: the caller applies the mask."""
        if isinstance(total_steps, bool) or not isinstance(total_steps, int) or total_steps < 1:
            raise PrunebenchError(f"invalid total_steps {total_steps!r}: must be an integer >= 1")
        self.total_steps = total_steps
        self.history = []
        d_i = self.options["initial_density"]
        if self.options["init_type"] != "erk" or d_i >= 1.0:
            return None
        mask = erk_mask(prunable_parameters(model), d_i, generator, self.options["erk_sampling"])
        mask.metadata.update(method=self.name, step=0)
        return mask

    def density_at(self, step: int) -> float:
        """The schedule's target density at `step` (methods.md A.9): d_i before training, d_f from T_end on.
        With count_bias_and_first_conv it is a fraction of weights + biases, as in the official code."""
        o = self.options
        return schedule_density(o["schedule"], step, self.end_step, o["initial_density"], self.final_density)

    def event_steps(self) -> list:
        """All pruning-event steps of this run (methods.md A.9)."""
        o = self.options
        return event_steps(self._total(), o["update_interval"], o["end_ratio"], o["final_event"])

    def is_event(self, step: int) -> bool:
        """Whether `step` is a pruning event (methods.md A.9): a multiple of update_interval <= T_end, or
        T_end itself when final_event."""
        t_end = self.end_step
        if step < 1 or step > t_end:
            return False
        return step % self.options["update_interval"] == 0 or (self.options["final_event"] and step == t_end)

    def after_step(self, step: int, model, mask: Mask | None) -> Mask | None:
        """Called after every optimizer step (methods.md A.9). On a pruning event, returns the new mask
        (a subset of `mask`), else None. `.grad` of each prunable weight must hold this step's gradient
        (FGGP and the annealed variant read it); the weights are post-step and masked."""
        if not self.is_event(step):
            return None
        params = mask.check_fits(model) if mask is not None else prunable_parameters(model)
        names = list(mask.masks) if mask is not None else list(params)
        cur = {n: (mask[n].clone() if mask is not None else torch.ones(params[n].shape, dtype=torch.bool))
               for n in names}
        first = next(iter(params), None)
        pool = {n: (cur[n] if (self.options["prune_first_layer"] or n != first) else torch.zeros_like(cur[n]))
                for n in names}
        units = sum(params[n].numel() for n in names)
        if self.options["count_bias_and_first_conv"]:
            units += sum(m.bias.numel() for m in prunable_modules(model).values() if m.bias is not None)
        already = sum(int((~cur[n]).sum()) for n in names)
        remain = units - already
        d = self.density_at(step)
        if self.options["count_bias_and_first_conv"]:
            wanted = int(math.floor(units * (1.0 - d) - already))  # the official code's arithmetic
        else:
            wanted = remain - keep_count(units, d)
        wanted = max(0, wanted)
        removed, info = self._decide(step, params, pool, wanted, remain)
        n_removed = _count(removed)
        event = {"step": step, "target_density": d, "wanted": wanted, "removed": n_removed,
                 "kept": _count(cur) - n_removed, **info}
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
        """JSON-serialisable state (methods.md A.9): method, target, options, total_steps and the event log.
        Future decisions depend only on it, the model, its gradients and the current mask."""
        return {"format": STATE_FORMAT, "method": self.name, "target_sparsity": self.target_sparsity,
                "options": dict(self.options), "total_steps": self.total_steps,
                "history": [dict(e) for e in self.history]}

    def load_state_dict(self, state: dict) -> None:
        """Restore `state_dict()` output (methods.md A.9); a one-line error if it is for another method,
        target or option set. Can replace `start` on resume."""
        if not isinstance(state, dict) or state.get("format") != STATE_FORMAT:
            raise PrunebenchError("invalid pruner state: not a prunebench during-training state")
        if state.get("method") != self.name:
            raise PrunebenchError(f"pruner state is for method {state.get('method')!r}, not {self.name!r}")
        if state.get("target_sparsity") != self.target_sparsity or state.get("options") != self.options:
            raise PrunebenchError(f"pruner state of {self.name} was saved with different settings: "
                                  f"sparsity {state.get('target_sparsity')}, options {state.get('options')}")
        total = state.get("total_steps")
        if total is not None and (not isinstance(total, int) or total < 1):
            raise PrunebenchError(f"invalid pruner state: total_steps {total!r}")
        self.total_steps = total
        self.history = [dict(e) for e in state.get("history", [])]


class FGGP(DuringTraining):
    """FGGP, fixed-rate gradient-first magnitude-next gradual pruning (methods.md A.9; the code's
    `--prune-criterion "|grad|" --add-criterion "|w|"`, class `Prune_WfromGrad_Add_Grad`).

    At each event, with `remain` = active units and `wanted` = the net number to remove to reach d(t):
      1. candidates: the C = int(select_ratio * remain) active (prunable) weights with the smallest |grad|
         of this step's minibatch (global ranking over all prunable layers);
      2. remove the `wanted` candidates with the smallest |w| (post-step weights).
    Equivalently the code marks the C candidates and un-marks the C - wanted of them with the largest |w|.
    Edge cases: C is capped at the number of active prunable weights; if wanted > C (a schedule step that
    asks for more than select_ratio of the active weights, e.g. a dense start with initial_density 0.5) the
    removal is clamped to C (all candidates go) and the event is logged with "clamped": later events catch
    up because `wanted` is always computed from the current count. The official code fails there (negative
    top-k). Extra option: select_ratio (default 0.5, in (0, 1]).
    """

    name = "fggp"
    OPTIONS = {**DuringTraining.OPTIONS, "select_ratio": 0.5}

    def _validate(self):
        super()._validate()
        self._unit_float("select_ratio")
        self.options["select_ratio"] = float(self.options["select_ratio"])

    def _decide(self, step, params, pool, wanted, remain):
        names = list(pool)
        grads = self._abs_grads(params, names, step)
        n_pool = _count(pool)
        n_cand = min(int(self.options["select_ratio"] * remain), n_pool)
        cand = _pick({n: -grads[n] for n in names}, pool, n_cand)
        k = min(wanted, n_cand)
        removed = _pick({n: -params[n].detach().abs() for n in names}, cand, k)
        return removed, {"candidates": n_cand}


class GMP(DuringTraining):
    """Gradual magnitude pruning (Zhu & Gupta 2018) on the same schedule (methods.md A.9, E.4): at each
    event remove the `wanted` active prunable weights with the smallest |w| (global ranking)."""

    name = "gmp"

    def _decide(self, step, params, pool, wanted, remain):
        k = min(wanted, _count(pool))
        return _pick({n: -params[n].detach().abs() for n in pool}, pool, k), {}


class AnnealedMFGN(DuringTraining):
    """Annealed magnitude-first / gradient-next (methods.md A.9, the code's `--prune-criterion "|w|"
    --add-criterion "|grad|"`, class `Prune_GradfromW_Add_Grad`; the GraNet-like "annealing approach").

    At each event: to_add = int((remain - wanted) * r(t)), mark the wanted + to_add active weights with the
    smallest |w|, then un-mark the to_add of them with the largest |grad| (net: `wanted` removed).
    r(t) is the code's CosineDecay: r(t) = eta_min + (prune_rate*0.01 - eta_min)(1 + cos(pi t/T_max))/2.
    Our reading of the code: the decay is stepped once per training iteration (before the pruning call)
    and T_max is the whole training length (len(train_loader) * epochs), so by default
    (anneal_period="training") T_max = total_steps and r never reaches eta_min within the pruning period
    (r(T_end) ~ 0.0055 for the defaults); anneal_period="pruning" uses T_max = T_end instead.
    If wanted + to_add exceeds the active prunable weights, to_add is reduced first, then wanted.
    Extra options: prune_rate (default 1, i.e. r(0) = 0.01), eta_min (0.005), anneal_period.
    """

    name = "mfgn_annealed"
    OPTIONS = {**DuringTraining.OPTIONS, "prune_rate": 1.0, "eta_min": 0.005, "anneal_period": "training"}

    def _validate(self):
        super()._validate()
        o = self.options
        choose("anneal_period", o["anneal_period"], ANNEAL_PERIODS)
        for key in ("prune_rate", "eta_min"):
            v = o[key]
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not (0.0 <= v <= 100.0):
                raise PrunebenchError(f"invalid {key} {v!r}: must be a number in [0, 100]")
            o[key] = float(v)

    def add_rate(self, step: int) -> float:
        """r(t), the cosine-annealed fraction of the surviving weights re-admitted by |grad| (A.9)."""
        o = self.options
        t_max = self._total() if o["anneal_period"] == "training" else self.end_step
        return cosine_decay(step, t_max, o["prune_rate"] * 0.01, o["eta_min"])

    def _decide(self, step, params, pool, wanted, remain):
        names = list(pool)
        grads = self._abs_grads(params, names, step)
        n_pool = _count(pool)
        rate = self.add_rate(step)
        to_add = max(0, int((remain - wanted) * rate))
        n_mark = min(wanted + to_add, n_pool)
        to_add = min(to_add, max(0, n_mark - wanted))
        marked = _pick({n: -params[n].detach().abs() for n in names}, pool, n_mark)
        back = _pick(grads, marked, to_add)
        removed = {n: marked[n] & ~back[n] for n in names}
        return removed, {"marked": n_mark, "re_added": to_add, "add_rate": rate}


_CLASSES = {"fggp": FGGP, "gmp": GMP, "mfgn_annealed": AnnealedMFGN}


def make_during_training(method: str, target_sparsity: float, **options) -> DuringTraining:
    """Build a during-training pruner (methods.md A.9): method in DURING_TRAINING_METHODS, target sparsity
    (fraction removed, in [0, 1)), options as documented on the classes. Bad names/values raise a one-line
    PrunebenchError."""
    cls = _CLASSES[choose("during-training method", method, DURING_TRAINING_METHODS)]
    return cls(target_sparsity, **options)
