"""The pruner base classes and their typed options (docs/methods.md A.0).

A method at initialization is one class:

    class Snip(Pruner):
        name = "snip"                                   # its row in prunebench.library.methods

        @dataclass(frozen=True)
        class Options(PrunerOptions):
            num_batches: int = option(1, "batches averaged", check=integer(1))
            ...

        def scores(self, model, batches, seed):         # name -> tensor, higher = kept
            ...

`Pruner.mask()` keeps the top-scored weights with the shared exact top-k (`common.select`); iterative
methods derive from `IterativePruner` (the one driver of Iter SNIP, FORCE and SynFlow) and override
`step_scores()` instead. Options are frozen dataclasses validated in `__post_init__`; each field's metadata
holds its help text and, where the paper's text and the official code differ, both behaviours
(`paper=`, `official=`, `section=`, `note=`), from which the README's paper-vs-code table is generated.
"""
from __future__ import annotations

import copy
import math
from dataclasses import MISSING, dataclass, field, fields
from typing import Callable, ClassVar

import torch

from prunebench.library.errors import PrunebenchError
from prunebench.library.init import SCHEMES
from prunebench.library.masks import Mask
from prunebench.library.pruners.topk import official_density, select, select_official
from prunebench.library.pruners.scoring import BN_MODES, LABELS, LOSSES
from prunebench.library.schedules import ITERATIVE_SCHEDULES, force_official_densities, iterative_densities

_UNSET = object()


# ---------------------------------------------------------------------------------------------------
# Options


def option(default, help: str, *, check: Callable | None = None, paper=_UNSET, official=_UNSET,
           section: str = "", note: str = ""):
    """A typed option: a dataclass field whose metadata carries its help text, its validator
    `check(name, value, method) -> normalised value`, and the paper-vs-code facts (docs/methods.md)."""
    meta = {"help": help, "check": check, "section": section, "note": note}
    if paper is not _UNSET:
        meta["paper"] = paper
    if official is not _UNSET:
        meta["official"] = official
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: copy.deepcopy(default), metadata=meta)
    return field(default=default, metadata=meta)


@dataclass(frozen=True)
class Options:
    """Base of every method's options. Subclasses set `method` and declare fields with `option()`."""

    method: ClassVar[str] = ""

    def __post_init__(self):
        for f in fields(self):
            check = f.metadata.get("check")
            if check is not None:
                object.__setattr__(self, f.name, check(f.name, getattr(self, f.name), self.method))
        self.validate()

    def validate(self) -> None:
        """Checks across fields (override)."""

    @classmethod
    def from_dict(cls, values: dict | None) -> "Options":
        """Build from a dict; an unknown key is a one-line error listing the valid options."""
        values = dict(values or {})
        valid = [f.name for f in fields(cls)]
        for k in values:
            if k not in valid:
                raise PrunebenchError(f"unknown option {k!r} for method {cls.method!r}; "
                                      f"valid options: {', '.join(valid) or 'none'}")
        return cls(**values)

    def to_dict(self) -> dict:
        """Every option, defaults filled in, JSON-serialisable (recorded in the mask metadata)."""
        return {f.name: copy.deepcopy(getattr(self, f.name)) for f in fields(self)}

    @classmethod
    def defaults(cls) -> dict:
        out = {}
        for f in fields(cls):
            out[f.name] = f.default if f.default is not MISSING else f.default_factory()
        return out

    @classmethod
    def paper_vs_code(cls) -> list:
        """One row per option whose official-code behaviour differs from the paper's text or our default."""
        rows = []
        for f in fields(cls):
            if "official" in f.metadata:
                rows.append({"method": cls.method, "option": f.name, "default": cls.defaults()[f.name],
                             "paper": f.metadata.get("paper", "not stated"), "official": f.metadata["official"],
                             "section": f.metadata["section"], "note": f.metadata["note"]})
        return rows


# ---------------------------------------------------------------------------------------------------
# Validators: (option name, value, method) -> normalised JSON-serialisable value


def _bad(name, value, method, why):
    return PrunebenchError(f"invalid option {name}={value!r} for method {method!r}: {why}")


def choice(*choices):
    def check(name, value, method):
        if value not in choices:
            raise _bad(name, value, method, f"choose one of: {', '.join(map(str, choices))}")
        return value
    return check


def integer(lo):
    def check(name, value, method):
        if isinstance(value, bool) or not isinstance(value, int) or value < lo:
            raise _bad(name, value, method, f"must be an integer >= {lo}")
        return int(value)
    return check


def number(lo, hi=math.inf, lo_open=False):
    def check(name, value, method):
        try:
            v = float(value)
        except (TypeError, ValueError):
            raise _bad(name, value, method, "must be a number") from None
        if isinstance(value, bool) or not math.isfinite(v) or v < lo or v > hi or (lo_open and v == lo):
            raise _bad(name, value, method, f"must be a number in {'(' if lo_open else '['}{lo}, {hi}]")
        return v
    return check


def boolean(name, value, method):
    if not isinstance(value, bool):
        raise _bad(name, value, method, "must be true or false")
    return value


def schedule(name, value, method):
    if isinstance(value, str):
        return choice(*ITERATIVE_SCHEDULES)(name, value, method)
    try:
        return [float(v) for v in value]
    except (TypeError, ValueError):
        raise _bad(name, value, method, "must be 'exp', 'linear' or a list of densities") from None


def shape(name, value, method):
    if value is None:
        return None
    try:
        out = [int(v) for v in value]
    except (TypeError, ValueError):
        raise _bad(name, value, method, "must be a list of positive integers, e.g. [3, 32, 32]") from None
    if not out or min(out) < 1:
        raise _bad(name, value, method, "must be a list of positive integers, e.g. [3, 32, 32]")
    return out


def densities(name, value, method):
    if value is None:
        return None
    if not isinstance(value, dict):
        raise _bad(name, value, method, "must be a dict {parameter name: density}")
    out = {}
    for k, v in value.items():
        try:
            d = float(v)
        except (TypeError, ValueError):
            raise _bad(name, value, method, f"density of {k!r} is not a number") from None
        if not 0.0 <= d <= 1.0:
            raise _bad(name, value, method, f"density of {k!r} must be in [0, 1]")
        out[str(k)] = d
    return out


def init_scheme(name, value, method):
    if value is None:
        return None
    return choice(*[s for s in SCHEMES if s != "default"])(name, value, method)


# Options several methods share (one definition each).


def bn_mode_option(default, **facts):
    return option(default, "BatchNorm while scoring: train (batch statistics) or eval (running statistics)",
                  check=choice(*BN_MODES), **facts)


def loss_option(**facts):
    return option("ce", "scoring loss: ce (cross-entropy) or neg_logit (-logit of the target)",
                  check=choice(*LOSSES), **facts)


COUNT_RULES = ("exact", "official")


def count_rule_option(official: str):
    """The keep-count rule: our exact round(N d) with ties by position, or the official code's (`official`
    says which; docs/methods.md A.0 "Keep rule and ties")."""
    return option("exact", "exact: keep round(N*d), ties by position; official: the official code's count and ties",
                  check=choice(*COUNT_RULES), paper="not stated", official=official, section="A.0",
                  note="the codes truncate, round or ceil N*d differently and keep or prune ties at the threshold; "
                  "the iterative methods are chaotic in this count")


@dataclass(frozen=True)
class PrunerOptions(Options):
    """Options every at-init method has: the keep-count rule and the two sanity-check ablations that act on
    the mask (Frankle et al. 2021; Su et al. 2020; docs/methods.md "Sanity checks")."""

    count_rule: str = count_rule_option("SynFlow's Rand/Mag: int((1-d)N) pruned, ties at the threshold pruned")
    invert: bool = option(False, "ablation: keep the lowest-scored weights instead of the highest", check=boolean)
    shuffle: bool = option(False, "ablation: keep the method's per-layer counts at random positions", check=boolean)


def labels_option():
    return option("true", "labels of the scoring loss: true, or uniform (unsupervised pruning, A.7)",
                  check=choice(*LABELS))


# ---------------------------------------------------------------------------------------------------
# Pruners


class Pruner:
    """A method that prunes once at initialization. Subclasses set `name` (a row of prunebench.library.methods),
    `Options` (a PrunerOptions subclass), `needs_data`, `official_rule` (the keep rule of the official code,
    `common.OFFICIAL_RULES`), and implement `scores()`; `mask()` keeps the top-scored weights."""

    name: ClassVar[str] = ""
    Options: ClassVar[type] = PrunerOptions
    official_rule: ClassVar[str] = "int_prune_ties"  # SynFlow's, whose Rand and Mag are the baselines' code
    needs_data: ClassVar[bool] = True     # batches are required
    reads_batches: ClassVar[bool | None] = None  # batches are read at all (default: needs_data)

    def __init_subclass__(cls, **kw):
        super().__init_subclass__(**kw)
        if not cls.name or cls.Options.method == cls.name:
            return
        if cls.Options is not PrunerOptions:
            raise TypeError(f"{cls.__name__}.Options.method must be {cls.name!r}")
        # a method with only the shared options: its Options still names it in error messages
        cls.Options = dataclass(frozen=True)(type("Options", (PrunerOptions,), {"method": cls.name}))

    def __init__(self, options: Options | dict | None = None, **kw):
        if isinstance(options, Options):
            if kw:
                raise TypeError("pass an Options object or keyword options, not both")
            self.options = options
        else:
            self.options = self.Options.from_dict({**(options or {}), **kw})

    @classmethod
    def uses_batches(cls) -> bool:
        return cls.needs_data if cls.reads_batches is None else cls.reads_batches

    def cost(self) -> dict:
        """What one pruning costs, in the units `prunebench plan` estimates it from: `passes` forward + backward
        passes, each over a pruning batch (`per: "batch"`) or one input (`"image"`), and `selections` exact
        top-k selections over the weights. Default: one pass per batch read (`num_batches`), one selection."""
        passes = getattr(self.options, "num_batches", 1) if self.needs_data else 0
        return {"passes": passes, "per": "batch", "selections": 1}

    def scores(self, model, batches, seed: int = 0) -> dict:
        """Importance per prunable tensor (name -> tensor shaped like it; higher = kept)."""
        raise NotImplementedError

    def mask(self, model, batches, sparsity: float, scope: str = "global", seed: int = 0) -> Mask:
        """The top-scored weights: exactly round(N (1 - sparsity)) with ties by position, or the official
        code's rule (`count_rule`)."""
        return self.select(self.scores(model, batches, seed), sparsity, scope)

    def select(self, scores: dict, sparsity: float, scope: str) -> Mask:
        if self.options.invert:
            scores = {n: -s for n, s in scores.items()}
        if self.options.count_rule == "official":
            return select_official(scores, self.official_rule, scope, sparsity=sparsity,
                                   density=official_density(sparsity))
        return select(scores, 1.0 - sparsity, scope)


class IterativePruner(Pruner):
    """The one iterative driver of Iter SNIP, FORCE and SynFlow (docs/methods.md A.2, A.3, A.5).

    For t = 1..T with densities d_1 > ... > d_T = d (`schedules.iterative_densities`), score the current
    network, select the top round(N d_t) weights exactly, then reload the scoring copy's weights **in place**
    as theta0 * m_t (one copy for the whole run, so T steps cost about T single scorings). Monotone methods
    (Iter SNIP, SynFlow) make pruned weights ineligible; FORCE recomputes the mask from scratch each step.

    Subclasses implement `prepare(model, batches, seed) -> (state, weights, theta0)` (the scoring copy, its
    prunable parameters, and the initial weights to reload) and `step_scores(state, mask)`; `scores()` is the
    first step's score on the dense network.
    """

    monotone: ClassVar[bool] = True
    official_schedule: ClassVar[str] = "synflow"  # whose arithmetic the official densities follow

    def steps_and_schedule(self) -> tuple:
        raise NotImplementedError

    def cost(self) -> dict:
        steps = self.steps_and_schedule()[0]
        one = super().cost()
        return {**one, "passes": steps * one["passes"], "selections": steps}

    def densities(self, sparsity: float) -> list:
        """d_1..d_T: from 1 - sparsity, or with count_rule="official" from the density the official code's user
        types (`official_density`) and with that code's arithmetic."""
        steps, sched = self.steps_and_schedule()
        if self.options.count_rule != "official":
            return iterative_densities(1.0 - sparsity, steps, sched)
        d = official_density(sparsity)
        if self.official_schedule == "force":
            return force_official_densities(d, steps, sched)
        return iterative_densities(d, steps, sched)

    def select_step(self, scores: dict, density: float, scope: str, mask) -> Mask:
        """One step's mask. Exact rule: monotone methods may keep only weights still kept. Official rule: the
        code's threshold, after giving pruned weights the minimum score for monotone methods (as Iter SNIP's
        code does; ties at that minimum can bring pruned weights back into the mask, at value zero)."""
        if self.options.invert:
            scores = {n: -s for n, s in scores.items()}
        if self.options.count_rule != "official":
            return select(scores, density, scope, eligible=mask.masks if (self.monotone and mask is not None) else None)
        if self.monotone and mask is not None:
            low = min(float(s.min()) for s in scores.values())
            scores = {n: torch.where(mask[n].to(s.device), s, torch.full_like(s, low)) for n, s in scores.items()}
        return select_official(scores, self.official_rule, scope, density=density)

    def prepare(self, model, batches, seed):
        raise NotImplementedError

    def step_scores(self, state, mask) -> dict:
        raise NotImplementedError

    def scores(self, model, batches, seed: int = 0) -> dict:
        with torch.enable_grad():
            state, _, _ = self.prepare(model, batches, seed)
            return self.step_scores(state, None)

    def mask(self, model, batches, sparsity, scope="global", seed=0, on_step=None) -> Mask:
        with torch.enable_grad():
            state, weights, theta0 = self.prepare(model, batches, seed)
            mask = None
            for t, d in enumerate(self.densities(sparsity), 1):
                mask = self.select_step(self.step_scores(state, mask), d, scope, mask)
                with torch.no_grad():  # monotone: prune the current weights; FORCE: back to theta0 with the mask
                    for n, w in weights.items():
                        m = mask[n].to(device=w.device, dtype=w.dtype)
                        w.mul_(m) if self.monotone else w.copy_(theta0[n] * m)
                if on_step is not None:
                    on_step(t, mask)
            return mask
