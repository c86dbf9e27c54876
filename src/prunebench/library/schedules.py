"""Density schedules, in one place (imports no torch; docs/methods.md A.3, A.5, A.9, E.4).

- Iterative pruning at initialization (FORCE, Iter SNIP, SynFlow): densities d_1 > ... > d_T = d,
  exponential d_t = d^(t/T) or linear d_t = 1 - t(1 - d)/T, t = 1..T.
- Pruning during training (FGGP, GMP, the annealed variant): the cubic schedule of Zhu & Gupta (2018)
  d(t) = d_f + (d_i - d_f)(1 - t/T_end)^3, or the exponential d(t) = d_i exp(ln(d_f/d_i) t/T_end), with
  T_end = floor(total_steps * end_ratio); pruning events at every multiple of the update interval <= T_end.
- The annealed variant's regrowth fraction: the official code's CosineDecay, in closed form.

`cubic` works on floats and on numpy arrays alike (the FGGP schedule figure draws it).
"""
from __future__ import annotations

import math

import numpy as np

from prunebench.library.errors import PrunebenchError

ITERATIVE_SCHEDULES = ("exp", "linear")
GRADUAL_SCHEDULES = ("cubic", "exp")


def exp_densities(final_density: float, steps: int) -> list:
    """FORCE/SynFlow exponential schedule: d_t = d^(t/T), t = 1..T (docs/methods.md A.3, A.5)."""
    return [final_density ** (t / steps) for t in range(1, steps + 1)]


def linear_densities(final_density: float, steps: int) -> list:
    """FORCE linear schedule: d_t = 1 - t (1 - d) / T, t = 1..T (docs/methods.md A.3)."""
    return [1.0 - t * (1.0 - final_density) / steps for t in range(1, steps + 1)]


def iterative_densities(density: float, steps: int, schedule="exp") -> list:
    """Densities d_1..d_T of an iterative pruning run: "exp", "linear" or an explicit list (non-increasing,
    in (0, 1], ending at the target) (docs/methods.md A.3, E.4)."""
    if isinstance(schedule, str):
        if schedule == "exp":
            return exp_densities(density, steps)
        if schedule == "linear":
            return linear_densities(density, steps)
        raise PrunebenchError(f"unknown schedule {schedule!r}; choose one of: exp, linear, or a list of densities")
    ds = [float(d) for d in schedule]
    if len(ds) != steps:
        raise PrunebenchError(f"schedule lists {len(ds)} densities but steps={steps}")
    if any(not 0.0 < d <= 1.0 for d in ds) or any(b > a for a, b in zip(ds, ds[1:])):
        raise PrunebenchError(f"schedule {ds} must be non-increasing densities in (0, 1]")
    if abs(ds[-1] - density) > 1e-12:
        raise PrunebenchError(f"schedule must end at the target density {density}, not {ds[-1]}")
    return ds


def force_official_densities(final_density: float, steps: int, schedule: str = "exp") -> list:
    """FORCE's own arithmetic for its schedules (naver/force `iterative_pruning`): exp as
    np.exp(0 - (t (0 - ln d) / T)), linear as 1 - t (1 - d) / T, t = 1..T. The exp values can differ from
    d^(t/T) in the last bit, which moves int(N d_t) at some steps (`count_rule="official"`)."""
    if schedule == "linear":
        return linear_densities(final_density, steps)
    if schedule != "exp":
        return iterative_densities(final_density, steps, schedule)
    return [float(np.exp(0 - ((t + 1) * (0 - np.log(final_density)) / steps))) for t in range(steps)]


def cubic(frac, d_i, d_f):
    """The cubic schedule at `frac` = t / T_end in [0, 1]: d_f + (d_i - d_f)(1 - frac)^3 (Zhu & Gupta 2018;
    docs/methods.md A.9). Floats or numpy arrays."""
    return d_f + (d_i - d_f) * (1 - frac) ** 3


def end_step(total_steps: int, end_ratio: float) -> int:
    """T_end = floor(total_steps * end_ratio) (docs/methods.md A.9). A 1e-9 guard avoids float artefacts such
    as int(100 * 0.29) == 28; the official code uses plain int()."""
    return int(math.floor(total_steps * end_ratio + 1e-9))


def gradual_density(kind: str, t: float, t_end: int, d_i: float, d_f: float) -> float:
    """Target density at step t (docs/methods.md A.9, E.4): cubic or exp from d_i to d_f over [0, T_end];
    d_i for t <= 0, exactly d_f for t >= T_end."""
    if t <= 0:
        return float(d_i)
    if t >= t_end:
        return float(d_f)
    frac = t / t_end
    if kind == "cubic":
        return float(cubic(frac, d_i, d_f))
    if kind == "exp":
        return float(d_i * math.exp(math.log(d_f / d_i) * frac))
    raise PrunebenchError(f"unknown schedule {kind!r}; choose one of: {', '.join(GRADUAL_SCHEDULES)}")


def event_steps(total_steps: int, update_interval: int, end_ratio: float = 0.8, final_event: bool = True) -> list:
    """The steps (1-based optimizer-step counts) of the pruning events (docs/methods.md A.9): every multiple of
    `update_interval` <= T_end, plus T_end itself when `final_event` (and T_end >= 1)."""
    t_end = end_step(total_steps, end_ratio)
    steps = list(range(update_interval, t_end + 1, update_interval))
    if final_event and t_end >= 1 and (not steps or steps[-1] != t_end):
        steps.append(t_end)
    return steps


def cosine_decay(t: float, t_max: float, start: float, eta_min: float = 0.005) -> float:
    """The official FGGP code's `CosineDecay` (docs/methods.md A.9, annealed variant): the learning rate of
    `CosineAnnealingLR(T_max, eta_min)` started at `start`, after `t` scheduler steps, in closed form
    eta_min + (start - eta_min)(1 + cos(pi t / T_max)) / 2 (t is clamped to [0, T_max])."""
    if t_max <= 0:
        return float(eta_min)
    t = min(max(t, 0.0), t_max)
    return float(eta_min + (start - eta_min) * (1.0 + math.cos(math.pi * t / t_max)) / 2.0)
