"""Bounds on what a run may ask for, checked before any work (the command line and the preset validation).

A value far beyond any paper's protocol is a typo, not an experiment: `--epochs 1000000000000` would train
for years, a thread count of 10**12 crashes the process, a seed of 2**64 overflows the random generators.
Every bound is named in its error ("must be an integer in [1, 10000]"), so whoever really means a larger
value knows which constant to raise. Pure Python (no torch): the pipeline's validation imports it.
"""
from __future__ import annotations

import dataclasses
import math

from prunebench.library.errors import PrunebenchError

MAX_SEED = 2**32 - 1           # numpy's RandomState (the validation split) takes seeds below 2**32
MAX_THREADS = 256              # torch.set_num_threads with an absurd count crashes the process
MAX_EPOCHS = 10_000            # the papers train at most 350 epochs
MAX_STEPS = 100_000_000        # optimizer steps (max_steps, steps per epoch, eval_every): SPP trains 10k
MAX_BATCH = 65_536             # batch sizes (training, evaluation, pruning)
MAX_ISOMETRY_STEPS = 10_000_000  # SPP's approximate isometry: 10k steps
MAX_EXAMPLES = 10_000_000      # examples of a measurement (Jacobian singular values)
MAX_PER_CLASS = 10_000         # class-balanced pruning batches (GraSP: 10 per class)
MAX_GPUS = 64                  # resources of one job
MAX_MEM_MB = 64 * 2**20        # 64 TiB
MAX_RUNTIME_MIN = 60 * 24 * 60  # 60 days
MAX_MLP_DEPTH = 1_000          # mlp-<depth>-<act> (SPP: 7)

# TrainConfig's integer fields -> (lowest, highest) allowed.
TRAIN_INTEGERS = {"epochs": (1, MAX_EPOCHS), "batch_size": (1, MAX_BATCH), "eval_batch_size": (1, MAX_BATCH),
                  "steps_per_epoch": (0, MAX_STEPS), "max_steps": (0, MAX_STEPS), "eval_every": (0, MAX_STEPS),
                  "seed": (0, MAX_SEED)}


def integer(value, what: str, lo: int = 0, hi: int = MAX_SEED) -> int:
    """`value` if it is an integer (not a bool, not a float) in [lo, hi], else a one-line error."""
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise PrunebenchError(f"invalid {what} {value!r}: must be an integer in [{lo}, {hi}]")
    return value


def real(value, what: str, lo: float = -math.inf, hi: float = math.inf, lo_open: bool = False,
         hi_open: bool = False) -> float:
    """`value` if it is a finite number in the range (NaN and infinities never are), else a one-line error."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if ok:
        ok = (value > lo if lo_open else value >= lo) and (value < hi if hi_open else value <= hi)
    if not ok:
        rng = f"{'(' if lo_open else '['}{lo:g}, {hi:g}{')' if hi_open else ']'}"
        raise PrunebenchError(f"invalid {what} {value!r}: must be a finite number in {rng}")
    return value


def _default(f: dataclasses.Field):
    return f.default if f.default is not dataclasses.MISSING else f.default_factory()


def train_options(options, config_cls):
    """A training-options dict checked field by field against `config_cls` (prunebench.library.train.TrainConfig,
    passed in so that this module imports no torch): known names only, each value of its field's type
    (an integer where the default is one, a list where it is a tuple), integers within `TRAIN_INTEGERS`;
    then the config itself (its own ranges: lr, momentum, ...). Returns the config object."""
    if not isinstance(options, dict):
        raise PrunebenchError(f"training options must be a mapping, got {type(options).__name__}")
    known = {f.name: f for f in dataclasses.fields(config_cls)}
    for name, value in options.items():
        if name not in known:
            raise PrunebenchError(f"unknown training option {name!r}; choose from: {', '.join(sorted(known))}")
        default = _default(known[name])
        if isinstance(default, bool):
            if not isinstance(value, bool):
                raise PrunebenchError(f"invalid {name} {value!r}: must be true or false")
        elif isinstance(default, int):
            integer(value, name, *TRAIN_INTEGERS.get(name, (0, MAX_STEPS)))
        elif isinstance(default, float):
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise PrunebenchError(f"invalid {name} {value!r}: must be a number")
        elif isinstance(default, str):
            if not isinstance(value, str):
                raise PrunebenchError(f"invalid {name} {value!r}: must be a string")
        elif isinstance(default, tuple):
            if not isinstance(value, (list, tuple)):
                raise PrunebenchError(f"invalid {name} {value!r}: must be a list")
            kinds = {type(v) for v in default} or {str}
            numeric = kinds <= {int, float}
            for v in value:
                good = (isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)) if numeric \
                    else isinstance(v, tuple(kinds))
                if not good:
                    raise PrunebenchError(f"invalid {name} {list(value)!r}: {v!r} is not a "
                                          f"{'finite number' if numeric else 'string'}")
    return config_cls.from_dict(options)
