"""Per-cell outcomes derived from the tables (prunebench.report.outcomes): the official test script's checkpoint
window, history values at a step, trainability."""
import math

import pandas as pd
import pytest

from prunebench.library.errors import PrunebenchError
from prunebench.report.outcomes import (AT_CHANCE, DIVERGED, NOT_TRAINED, TRAINED, TestProtocol, first_values,
                                        history_values, official_values, outcomes, with_metrics)

SPP = TestProtocol("official_acc", checkpoint_every=1000, keep_last=5)
CELL = dict(dataset="mnist", model="mlp-7-linear", init="spp_orthogonal", arm="snip", sparsity=0.9)


def _run(seed, accs, diverged_step=None, max_steps=10000, eval_every=1000, **extra):
    """A summary row and its history: test accuracy `accs[i]` at step (i + 1) * eval_every."""
    row = dict(CELL, seed=seed, method="snip", max_steps=max_steps, eval_every=eval_every, epochs=1,
               diverged=diverged_step is not None, diverged_step=diverged_step, final_acc=None if diverged_step else accs[-1],
               trained=True, **extra)
    hist = [dict(CELL, seed=seed, epoch=1, step=(i + 1) * (eval_every or 1), test_acc=a, test_loss=0.3, train_loss=2.0 / (i + 1))
            for i, a in enumerate(accs)]
    return row, hist


def _tables(*runs):
    return pd.DataFrame([r for r, _ in runs]), pd.DataFrame([h for _, hs in runs for h in hs])


def test_the_official_number_is_the_best_of_the_last_five_checkpoints():
    """SPP's test.py evaluates the checkpoints a tf.train.Saver() (max_to_keep = 5) leaves: iterations
    6000-10000 of 10000. An early peak (step 2000) is not among them; best_acc would pick it."""
    accs = [0.80, 0.95, 0.90, 0.90, 0.90, 0.91, 0.92, 0.93, 0.92, 0.91]
    s, h = _tables(_run(0, accs))
    vals, why = official_values(s, h, SPP)
    assert vals.iloc[0] == pytest.approx(0.93) and why.iloc[0] == ""
    last = TestProtocol("official_acc", 1000, 5, reduce="last")
    assert official_values(s, h, last)[0].iloc[0] == pytest.approx(0.91)


def test_a_diverged_run_keeps_its_checkpoints_before_the_divergence():
    """Diverged at step 8000: the checkpoints 8000-10000 hold non-finite weights, 6000 and 7000 count."""
    s, h = _tables(_run(0, [0.8, 0.85, 0.86, 0.87, 0.88, 0.89, 0.9], diverged_step=8000),
                   _run(1, [0.8, 0.85, 0.86], diverged_step=4000))
    vals, why = official_values(s, h, SPP)
    assert vals.iloc[0] == pytest.approx(0.9)
    assert math.isnan(vals.iloc[1]) and "before the checkpoint window" in why.iloc[1]


def test_a_missing_evaluation_is_said_not_filled_in():
    row, hist = _run(0, [0.8] * 10)
    hist = [x for x in hist if x["step"] != 7000]
    vals, why = official_values(pd.DataFrame([row]), pd.DataFrame(hist), SPP)
    assert math.isnan(vals.iloc[0]) and why.iloc[0] == "no evaluation at checkpoint step 7000"


def test_epoch_runs_use_their_evaluations_as_checkpoints():
    """Evaluated once per epoch (no max_steps): the last five epochs' evaluations form the window."""
    row, hist = _run(0, [0.5, 0.99, 0.6, 0.61, 0.62, 0.63, 0.64], max_steps=None, eval_every=None)
    row["epochs"] = 7
    for i, x in enumerate(hist):
        x.update(epoch=i + 1, step=(i + 1) * 300)
    vals, _ = official_values(pd.DataFrame([row]), pd.DataFrame(hist), SPP)
    assert vals.iloc[0] == pytest.approx(0.64)


def test_history_metrics_and_first_evaluation():
    s, h = _tables(_run(0, [0.8, 0.9]), _run(1, [0.7], diverged_step=2000))
    loss = history_values(s, h, "train_loss", 2000)
    assert loss.iloc[0] == pytest.approx(1.0) and math.isnan(loss.iloc[1])
    assert list(first_values(s, h, "train_loss")) == [2.0, 2.0]
    out = with_metrics(s, h, {"official_acc", "train_loss@1000", "final_acc"}, SPP)
    assert "official_acc_reason" in out and out["train_loss@1000"].tolist() == [2.0, 2.0]
    with pytest.raises(PrunebenchError, match="unknown metric 'accuracy'"):
        with_metrics(s, h, {"accuracy"}, SPP)


def test_trainability_outcomes():
    rows = pd.DataFrame([dict(dataset="mnist", final_acc=0.95, diverged=False, trained=True),
                         dict(dataset="mnist", final_acc=None, diverged=True, trained=True),
                         dict(dataset="mnist", final_acc=0.1135, diverged=False, trained=True),  # dead: one class
                         dict(dataset="mnist", final_acc=None, diverged=False, trained=False)])
    assert outcomes(rows).tolist() == [TRAINED, DIVERGED, AT_CHANCE, NOT_TRAINED]


def test_a_protocol_is_validated():
    with pytest.raises(PrunebenchError, match="invalid test_protocol"):
        TestProtocol.from_dict({"metric": "official_acc", "checkpoint_every": 1000, "keep_last": 0})
