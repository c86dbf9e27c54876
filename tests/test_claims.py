"""Claim checks that read the arm names and the divergence flag of summary.csv (prunebench.report.arms / tables)."""
import pandas as pd
import pytest

from prunebench.report import claims
def _rows(arm, accs, diverged=(), metric="final_acc", **extra):
    out = []
    for i, a in enumerate(accs):
        out.append(dict(preset="t", dataset="mnist", model="lenet300", init="kaiming_normal", arm=arm, method=arm,
                        sparsity=0.99, seed=i, final_acc=a, best_acc=a, diverged=i in diverged, **extra))
    return out


def _claim(**kw):
    c = dict(id="t.c", text="t", source="test", metric="final_acc", quantifier="all",
             reported={"value": None, "status": "not transcribed", "where": "not transcribed"})
    c.update(kw)
    return c


def test_a_diverged_seed_is_a_failure_on_every_metric():
    """best_acc of a diverged seed is the best before it diverged: not a result (counted as failed)."""
    s = pd.DataFrame(_rows("force", [0.80, 0.81, 0.82, 0.99], diverged={3}) + _rows("snip", [0.5, 0.51, 0.52]))
    v = claims.check(_claim(kind="greater", lhs={"arm": "force"}, rhs={"arm": "snip"}, metric="best_acc"), s)
    force = v.numbers[0]["values"]["force"]
    assert (force["n"], force["failed"], force["mean"]) == (3, 1, pytest.approx(0.81))


def test_beats_ablation_reads_the_ablation_arm():
    s = pd.DataFrame(_rows("force", [0.80, 0.81, 0.82]) + _rows("force_shuffle", [0.5, 0.51, 0.52]))
    v = claims.check(_claim(kind="beats_ablation", arm="force", ablation="shuffle"), s)
    assert v.status == "holds" and set(v.numbers[0]["values"]) == {"force", "force_shuffle"}


def test_monotone_reads_meta_steps_from_prospr_arm_names():
    s = pd.DataFrame(_rows("prospr_m1", [0.60, 0.61, 0.62]) + _rows("prospr_m5", [0.80, 0.81, 0.82]))
    s["meta_steps"] = float("nan")
    v = claims.check(_claim(kind="monotone", series=[{"arm": "prospr_m*", "x_column": "meta_steps"}]), s)
    assert v.status != "not run" and {"x=1", "x=5"} <= set(v.numbers[0]["values"])
