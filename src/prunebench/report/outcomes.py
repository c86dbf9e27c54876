"""Per-cell outcomes derived from the results tables (imports no torch): the accuracy a paper's own test
script would report, a history column's value at a step, and whether a run trained at all.

**The official test protocol** (`TestProtocol`, a claims file's `test_protocol` block). SPP's code
(namhoonlee/spp-public @ 32bde49, docs/methods.md A.7, E.7) saves a checkpoint every `save_interval` = 1000
iterations with a `tf.train.Saver()`, whose default `max_to_keep` of 5 deletes all but the last five; its
`test.py` then evaluates every checkpoint left in the folder on the test set and prints
`Error = 1 − max(accuracy)`. Over its 10,000 iterations the number it reports is therefore the best test
accuracy over the checkpoints at iterations 6000, 7000, 8000, 9000 and 10000 — not the best over all ten
evaluations (`best_acc`) and not the last one (`final_acc`). `official_values` computes it from history.csv:
the run's planned evaluations (every `eval_every` steps and at the last step, or once per epoch) stand for
the code's checkpoints, the last `keep_last` of them form the window, and the window's best test accuracy is
the value. A run that diverged keeps training in the TF code with non-finite weights, so its checkpoints after
the divergence hold no model: the value is the best over the window's evaluations before it, and a run that
diverged before the window has no value (it is a failure, counted in the trainability table, never dropped).
Where the run evaluates on another grid than the paper's checkpoints (e.g. once per epoch in the quick
preset), the report says so.

**History metrics**: `train_loss@1000` is history.csv's `train_loss` at step 1000 (the mean training loss over
iterations 1–1000: how fast a run starts to train, SPP's trainability), likewise any of `HISTORY_VALUES`.

**Trainability** (`outcomes`): every trained cell is `diverged` (non-finite training loss, the step it was
detected at is recorded), `at chance` (finite, but a test accuracy below `CHANCE_FACTOR` times chance, 1/C for
C classes: the network did not learn, e.g. dead ReLUs) or `trained`; sweep cells (`trained` false) are
`not trained`.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np
import pandas as pd

from prunebench.library.datasets import DATASETS
from prunebench.library.errors import PrunebenchError
from prunebench.report.tables import truthy

HISTORY_VALUES = ("train_loss", "train_acc", "test_loss", "test_acc")
HISTORY_METRIC = re.compile(r"^(" + "|".join(HISTORY_VALUES) + r")@([0-9]+)$")
CELL = ("dataset", "model", "init", "arm", "sparsity", "seed")
CHANCE_FACTOR = 2.0
TRAINED, DIVERGED, AT_CHANCE, NOT_TRAINED = "trained", "diverged", "at chance", "not trained"
OUTCOMES = (TRAINED, DIVERGED, AT_CHANCE, NOT_TRAINED)
REDUCERS = ("max", "last")


@dataclass(frozen=True)
class TestProtocol:
    """How a paper's official test script turns a run's checkpoints into the number it reports."""

    __test__ = False     # not a pytest class

    metric: str                  # the summary column claims use, e.g. official_acc
    checkpoint_every: int        # iterations between saved checkpoints (the code's save interval)
    keep_last: int               # checkpoints kept on disk (the saver's max_to_keep)
    reduce: str = "max"          # max: the best of the kept checkpoints; last: the last one
    source: str = ""
    note: str = ""

    @classmethod
    def from_dict(cls, d: dict) -> "TestProtocol":
        p = cls(str(d["metric"]), int(d["checkpoint_every"]), int(d["keep_last"]), str(d.get("reduce", "max")),
                str(d.get("source", "")), str(d.get("note", "")))
        if p.reduce not in REDUCERS or p.keep_last < 1 or p.checkpoint_every < 1:
            raise PrunebenchError(f"invalid test_protocol {d!r}")
        return p

    def describe(self) -> str:
        what = "best" if self.reduce == "max" else "last"
        return (f"`{self.metric}`: the {what} test accuracy over the last {self.keep_last} checkpoints "
                f"(one every {self.checkpoint_every} iterations)")


def untrained(row) -> bool:
    """A sweep cell (summary column `trained` false): pruned and measured, never trained."""
    v = row.get("trained")
    if isinstance(v, str):
        return v.strip().lower() in ("false", "0", "no")
    return v is not None and not (isinstance(v, float) and math.isnan(v)) and not bool(v)


def _num(v) -> float:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return math.nan
    return f


def _planned_steps(row, hist: pd.DataFrame) -> list:
    """The steps at which the run was planned to evaluate (= save a checkpoint)."""
    total, every = _num(row.get("max_steps")), _num(row.get("eval_every"))
    if every > 0 and total > 0:
        steps = list(range(int(every), int(total) + 1, int(every)))
        return steps if steps and steps[-1] == int(total) else steps + [int(total)]
    epochs = _num(row.get("epochs"))
    if len(hist) and epochs > 0:
        first = hist.iloc[0]
        per_epoch = _num(first["step"]) / max(_num(first["epoch"]), 1.0)
        if per_epoch > 0:
            return [int(round(e * per_epoch)) for e in range(1, int(epochs) + 1)]
    return []


def official_value(row, hist: pd.DataFrame, protocol: TestProtocol) -> tuple:
    """(value, reason) of one cell: its history rows `hist` (any order)."""
    if untrained(row):
        return math.nan, "not trained"
    hist = hist.sort_values("step")
    planned = _planned_steps(row, hist)
    if not planned:
        return math.nan, "no evaluations recorded"
    window = planned[-protocol.keep_last:]
    evaluated = {int(s): a for s, a, loss in zip(hist["step"], hist["test_acc"], hist["test_loss"])
                 if not (math.isnan(_num(a)) or math.isnan(_num(loss)))}
    diverged_at = _num(row.get("diverged_step")) if truthy(row.get("diverged")) else math.nan
    if truthy(row.get("diverged")) and math.isnan(diverged_at):  # step not recorded: after the last evaluation
        diverged_at = max(evaluated, default=0) + 1
    vals = []
    for s in window:
        if s in evaluated:
            vals.append(evaluated[s])
        elif not (diverged_at <= s):  # before a divergence (or none): an evaluation is missing
            return math.nan, f"no evaluation at checkpoint step {s}"
    if not vals:
        return math.nan, f"diverged at step {int(diverged_at)}, before the checkpoint window"
    return (max(vals) if protocol.reduce == "max" else vals[-1]), ""


def _by_cell(history: pd.DataFrame) -> dict:
    if history is None or history.empty:
        return {}
    keys = [c for c in CELL if c in history.columns]
    h = history.copy()
    if "sparsity" in h.columns:
        h["sparsity"] = h["sparsity"].round(6)
    return {k: g for k, g in h.groupby(keys, sort=False, dropna=False)}


def _cell_key(row, keys) -> tuple:
    return tuple(round(float(row[k]), 6) if k == "sparsity" else row[k] for k in keys)


def official_values(summary: pd.DataFrame, history: pd.DataFrame, protocol: TestProtocol) -> tuple:
    """(values, reasons): two Series aligned with `summary`'s index."""
    groups = _by_cell(history)
    keys = [c for c in CELL if history is not None and c in history.columns]
    empty = pd.DataFrame(columns=["step", "test_acc", "test_loss", "epoch"])
    vals, why = [], []
    for _, row in summary.iterrows():
        hist = groups.get(_cell_key(row, keys), empty) if keys else empty
        v, r = official_value(row, hist, protocol)
        vals.append(v)
        why.append(r)
    return pd.Series(vals, index=summary.index, dtype=float), pd.Series(why, index=summary.index, dtype=object)


def history_values(summary: pd.DataFrame, history: pd.DataFrame, column: str, step: int) -> pd.Series:
    """history.csv's `column` at `step` for each summary row (NaN where the run has no evaluation there)."""
    if history is None or history.empty or column not in history.columns:
        return pd.Series(np.nan, index=summary.index, dtype=float)
    keys = [c for c in CELL if c in history.columns]
    h = history[history["step"] == step]
    h = h.assign(sparsity=h["sparsity"].round(6)).drop_duplicates(subset=keys)
    left = summary[keys].assign(sparsity=summary["sparsity"].round(6))
    merged = left.merge(h[keys + [column]], on=keys, how="left")
    return pd.Series(pd.to_numeric(merged[column], errors="coerce").to_numpy(), index=summary.index, dtype=float)


def is_history_metric(name: str) -> bool:
    return bool(HISTORY_METRIC.match(str(name)))


def with_metrics(summary: pd.DataFrame, history: pd.DataFrame, names, protocol: TestProtocol | None = None):
    """The summary with every derived metric of `names` added as a column (the protocol's metric, and
    `<history column>@<step>` ones); names that are summary columns already are left alone. Also adds
    `<protocol metric>_reason` (why a cell has no official value)."""
    out = summary.copy()
    for name in sorted(set(names)):
        if protocol is not None and name == protocol.metric:
            out[name], out[name + "_reason"] = official_values(summary, history, protocol)
        elif is_history_metric(name):
            col, step = HISTORY_METRIC.match(name).groups()
            out[name] = history_values(summary, history, col, int(step))
        elif name not in out.columns:
            raise PrunebenchError(f"unknown metric {name!r}: neither a summary column, the test protocol's "
                                  f"metric nor <{'|'.join(HISTORY_VALUES)}>@<step>")
    return out


def chance_level(dataset) -> float:
    spec = DATASETS.get(str(dataset))
    return 1.0 / spec.num_classes if spec else math.nan


def outcomes(summary: pd.DataFrame, metric: str = "final_acc") -> pd.Series:
    """The trainability outcome of every row (see the module docstring)."""
    out = []
    for _, r in summary.iterrows():
        acc = _num(r.get(metric)) if metric in summary.columns else math.nan
        if math.isnan(acc):
            acc = _num(r.get("final_acc"))
        if untrained(r):
            out.append(NOT_TRAINED)
        elif truthy(r.get("diverged")):
            out.append(DIVERGED)
        elif not math.isnan(acc) and acc < CHANCE_FACTOR * chance_level(r.get("dataset")):
            out.append(AT_CHANCE)
        elif math.isnan(acc):
            out.append(DIVERGED)  # no accuracy at all: a failed run
        else:
            out.append(TRAINED)
    return pd.Series(out, index=summary.index, dtype=object)


def first_values(summary: pd.DataFrame, history: pd.DataFrame, column: str) -> pd.Series:
    """history.csv's `column` at each run's first evaluation (NaN where a run has none)."""
    if history is None or history.empty or column not in history.columns:
        return pd.Series(np.nan, index=summary.index, dtype=float)
    keys = [c for c in CELL if c in history.columns]
    h = history.assign(sparsity=history["sparsity"].round(6)).sort_values("step").drop_duplicates(subset=keys)
    left = summary[keys].assign(sparsity=summary["sparsity"].round(6))
    merged = left.merge(h[keys + [column]], on=keys, how="left")
    return pd.Series(pd.to_numeric(merged[column], errors="coerce").to_numpy(), index=summary.index, dtype=float)
