"""Claim checks against constructed data: one test per verdict and design (prunebench.report.claims)."""
import copy
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from prunebench.library.errors import PrunebenchError
from prunebench.report import claims
from prunebench.report.outcomes import TestProtocol

REFERENCE = Path(__file__).resolve().parents[1] / "paper" / "reference"
SEED_EFFECT = np.array([0.010, -0.012, 0.004, -0.006, 0.009, -0.003, 0.011, -0.008])


def rows(arm, accs, *, model="mlp-7-tanh", init="spp_orthogonal", sparsity=0.9, method=None, diverged=(), **cols):
    out = []
    for i, a in enumerate(accs):
        per_seed = {k: (v[i] if isinstance(v, (list, np.ndarray)) else v) for k, v in cols.items()}
        out.append(dict(preset="t", dataset="mnist", model=model, init=init, arm=arm, method=method or arm.split("_")[0],
                        sparsity=sparsity, seed=i, final_acc=None if i in diverged else a, best_acc=a,
                        diverged=i in diverged, trained=True, **per_seed))
    return out


def claim(**kw):
    c = dict(id="t.c", text="t", source="test", metric="final_acc", quantifier="all", role="claim",
             reported={"value": None, "status": "not transcribed", "where": "not transcribed"})
    c.update(kw)
    return c


GT = dict(kind="greater", lhs={"arm": "snip_ai"}, rhs={"arm": "snip"})


def ai_pair(gain, noise=0.0001, base=0.96, **kw):
    snip = base + SEED_EFFECT
    jitter = noise * np.array([1, -1, 0.5, -0.5, 0.2, -0.2, 0.8, -0.8])
    return rows("snip", snip, **kw) + rows("snip_ai", snip + gain + jitter, isometry=True, **kw)


def test_a_paired_gain_holds_where_welch_sees_nothing():
    s = pd.DataFrame(ai_pair(0.002))
    v = claims.check(claim(**GT), s)
    r = v.rows[0]
    assert v.status == "holds" and r["design"] == "paired" and r["pairs"] == 8
    assert r["estimate"]["lo"] > 0 and r["mde"] < 0.002
    welch = claims.check(claim(**GT, paired=False), s)
    assert welch.status == "inconclusive" and welch.rows[0]["design"] == "welch"


def test_contradicted_inconclusive_and_not_run():
    assert claims.check(claim(**GT), pd.DataFrame(ai_pair(-0.002))).status == "contradicted"
    assert claims.check(claim(**GT), pd.DataFrame(ai_pair(0.0, noise=0.003))).status == "inconclusive"
    v = claims.check(claim(kind="greater", lhs={"arm": "force"}, rhs={"arm": "snip"}), pd.DataFrame(ai_pair(0.002)))
    assert v.status == "not run" and not v.rows


def test_fewer_than_three_pairs_is_inconclusive_whatever_the_means():
    s = pd.DataFrame(rows("snip", [0.5, 0.51]) + rows("snip_ai", [0.9, 0.91], isometry=True))
    v = claims.check(claim(**GT), s)
    assert v.status == "inconclusive" and v.rows[0]["reason"].startswith("fewer than 3")


def test_holm_over_settings_turns_borderline_settings_inconclusive():
    """Each setting alone is significant at one-sided 0.025 (p about 0.015), but not after Holm over several;
    the pooled estimate over six such settings is."""
    def setting(model):
        base = np.array([0.0031, 0.0010, 0.0035, -0.0004, 0.0022, 0.0012, 0.0029, 0.0009])
        d = base.mean() + (base - base.mean()) * 1.4   # one-sided p = 0.015
        snip = 0.96 + SEED_EFFECT
        return rows("snip", snip, model=model) + rows("snip_ai", snip + d, model=model, isometry=True)
    one = claims.check(claim(**GT), pd.DataFrame(setting("a")))
    assert 0.01 < one.rows[0]["p_holds"] < 0.025 and one.status == "holds"
    two = claims.check(claim(**GT), pd.DataFrame(setting("a") + setting("b")))
    assert {r["status"] for r in two.rows} == {"inconclusive"} and two.status == "inconclusive"
    assert two.rows[0]["p_holds_holm"] == pytest.approx(2 * two.rows[0]["p_holds"])
    assert two.pooled["lo"] < 0          # two settings: the Hartung-Knapp interval has one degree of freedom
    six = pd.DataFrame([r for m in "abcdef" for r in setting(m)])
    v = claims.check(claim(**GT), six)
    assert v.status == "inconclusive" and v.pooled["k"] == 6 and v.pooled["lo"] > 0
    assert claims.check(claim(**GT, quantifier="pooled"), six).status == "holds"


def test_non_inferiority_with_its_margin():
    s = pd.DataFrame(rows("snip", 0.96 + SEED_EFFECT) + rows("snip_unsup", 0.96 + SEED_EFFECT - 0.002,
                                                             supervision="unsupervised"))
    c = claim(kind="greater", op=">=", margin=0.005, lhs={"arm": "snip_unsup"}, rhs={"arm": "snip"})
    assert claims.check(c, s).status == "holds"                          # 0.2 points worse, margin 0.5
    assert claims.check(dict(c, margin=0.001), s).status == "contradicted"  # margin 0.1: inferior
    assert claims.check(dict(c, op=">", margin=0.0), s).status == "contradicted"  # not superior


def test_close_and_near():
    s = pd.DataFrame(rows("snip", 0.96 + SEED_EFFECT) + rows("snip_unsup", 0.96 + SEED_EFFECT + 0.0001))
    c = claim(kind="close", tolerance=0.002, lhs={"arm": "snip_unsup"}, rhs={"arm": "snip"})
    assert claims.check(c, s).status == "holds"
    jsv = pd.DataFrame(rows("snip", [0.9] * 8, jsv_init_mean=[1.0] * 8))
    jsv["jsv_init_mean"] = 1.0 + np.linspace(-1e-7, 1e-7, 8)
    near = claim(kind="near", lhs={"arm": "*", "metric": "jsv_init_mean"}, value=1.0, tolerance=0.1,
                 metric="jsv_init_mean")
    assert claims.check(near, jsv).status == "holds"
    jsv["jsv_init_mean"] = 1.5 + np.linspace(-1e-3, 1e-3, 8)
    assert claims.check(near, jsv).status == "contradicted"


def test_pinned_operands_compare_settings_with_welch():
    """SNIP under the orthogonal init against SNIP under each other init: different settings, Welch."""
    s = pd.DataFrame(rows("snip", 0.97 + SEED_EFFECT / 5) + rows("snip", 0.96 + SEED_EFFECT / 5, init="xavier_normal")
                     + rows("snip", 0.965 + SEED_EFFECT / 5, init="lecun_normal"))
    c = claim(kind="greater", lhs={"arm": "snip", "init": "spp_orthogonal"}, rhs={"arm": "snip"},
              where={"init": ["xavier_normal", "lecun_normal"]})
    v = claims.check(c, s)
    assert [r["init"] for r in v.rows] == ["lecun_normal", "xavier_normal"]
    assert {r["design"] for r in v.rows} == {"welch"} and v.status == "holds"


def test_beats_ablation_finds_the_ablation_by_its_columns():
    """The ablation arm is whatever arm the grid marks as the shuffle of `snip`, whatever its name."""
    s = pd.DataFrame(rows("snip", 0.96 + SEED_EFFECT)
                     + rows("mask_shuffled", 0.95 + SEED_EFFECT, method="snip", ablation="shuffle", ablation_of="snip"))
    v = claims.check(claim(kind="beats_ablation", arm="snip", ablation="shuffle"), s)
    assert v.status == "holds" and set(v.rows[0]["values"]) == {"SNIP", "SNIP (layer-wise shuffle)"}
    assert claims.check(claim(kind="beats_ablation", arm="snip", ablation="invert"), s).status == "not run"


def test_best_is_a_conjunction():
    s = pd.DataFrame(rows("fggp", 0.9 + SEED_EFFECT) + rows("gmp", 0.89 + SEED_EFFECT)
                     + rows("mfgn_annealed", 0.8995 + SEED_EFFECT + 0.0001 * np.arange(8) % 3))
    v = claims.check(claim(kind="best", arm="fggp", arms=["gmp", "mfgn_annealed"]), s)
    assert v.status == "inconclusive"      # beats GMP clearly, not the annealed variant
    s2 = pd.DataFrame(rows("fggp", 0.9 + SEED_EFFECT) + rows("gmp", 0.89 + SEED_EFFECT)
                      + rows("mfgn_annealed", 0.895 + SEED_EFFECT))
    assert claims.check(claim(kind="best", arm="fggp", arms=["gmp", "mfgn_annealed"]), s2).status == "holds"


def test_monotone_reads_meta_steps_from_the_column():
    """ProsPr arms carry their M in `meta_steps`: nothing is read from their names."""
    s = pd.DataFrame(rows("snip", 0.80 + SEED_EFFECT) + rows("a", 0.82 + SEED_EFFECT, method="prospr", meta_steps=1)
                     + rows("b", 0.85 + SEED_EFFECT, method="prospr", meta_steps=5))
    c = claim(kind="monotone", series=[{"arm": "snip", "x": 0}, {"arm": "a", "x_column": "meta_steps"},
                                      {"arm": "b", "x_column": "meta_steps"}], mode="endpoints")
    v = claims.check(c, s)
    assert v.status == "holds" and set(v.rows[0]["values"]) == {"x=0", "x=1", "x=5"}


def test_monotone_along_the_sparsity():
    """|ln JSV mean| after pruning grows with sparsity: settings are (dataset, model, init), x the sparsity."""
    parts = []
    for s, m in ((0.5, 0.8), (0.9, 0.3), (0.99, 0.05)):
        parts += rows("snip", [0.9] * 8, sparsity=s, jsv_prune_mean=list(m * (1 + SEED_EFFECT)))
    c = claim(kind="monotone", metric="jsv_prune_mean", transform="abs_log", mode="endpoints",
              series=[{"arm": "snip", "x_column": "sparsity"}])
    v = claims.check(c, pd.DataFrame(parts))
    assert v.status == "holds" and len(v.rows) == 1 and "sparsity" not in v.rows[0]


def test_failed_seeds_are_counted_and_unpaired():
    s = pd.DataFrame(ai_pair(0.002)[:8] + rows("snip_ai", 0.962 + SEED_EFFECT, isometry=True, diverged={2, 5}))
    v = claims.check(claim(**GT), s)
    r = v.rows[0]
    assert r["values"]["SNIP + AI"]["failed"] == 2 and r["values"]["SNIP + AI"]["diverged"] == 2
    assert r["pairs"] == 6 and r["unpaired"] == 2
    assert "2 seed value(s) missing" in v.explanation and "without a partner" in v.explanation


def test_derived_metrics_come_from_history():
    """The official metric and train_loss@k are computed from history.csv when a claim names them."""
    summary = pd.DataFrame(ai_pair(0.002))
    summary["max_steps"], summary["eval_every"] = 2000, 1000
    hist = []
    for _, r in summary.iterrows():
        for step in (1000, 2000):
            loss = (1.0 if r["arm"] == "snip" else 0.8) + 0.01 * r["seed"]
            hist.append(dict(dataset="mnist", model=r["model"], init=r["init"], arm=r["arm"], sparsity=0.9,
                             seed=r["seed"], step=step, epoch=1, test_acc=r["final_acc"], test_loss=0.2,
                             train_loss=loss))
    hist = pd.DataFrame(hist)
    proto = TestProtocol("official_acc", 1000, 5)
    assert claims.check(claim(**GT, metric="official_acc"), summary, hist, proto).status == "holds"
    faster = claim(kind="greater", metric="train_loss@1000", lhs={"arm": "snip"}, rhs={"arm": "snip_ai"})
    v = claims.check(faster, summary, hist, proto)
    assert v.status == "holds" and v.rows[0]["diff"] == pytest.approx(0.2)


# ------------------------------------------------------------------------------ files
def _write(tmp_path, name, doc):
    p = tmp_path / name
    p.write_text(yaml.safe_dump(doc, sort_keys=False))
    return p


GOOD = {"paper": "toy", "title": "Toy", "claims": [
    {"id": "toy.a", "text": "A beats B", "kind": "greater", "lhs": {"arm": "a"}, "rhs": {"arm": "b"},
     "source": "abstract", "reported": {"value": None, "status": "not transcribed", "where": "Table 1"}}]}


def test_shipped_claim_files_validate_and_separate_claims_from_checks():
    papers = claims.load_claims(REFERENCE)
    assert [p.paper for p in papers] == ["fggp", "force", "prospr", "spp"]
    ids = [c["id"] for p in papers for c in p.claims]
    assert len(ids) == len(set(ids)) >= 12
    for p in papers:
        for c in p.claims:  # numbers are unknown here: nothing may pretend otherwise
            assert c["reported"]["status"] == "not transcribed" and c["reported"]["value"] is None
            assert c["role"] in claims.ROLES
            if c["kind"] == "beats_ablation":  # sanity ablations are checks, never claims
                assert c["role"] == "check", c["id"]
    spp = next(p for p in papers if p.paper == "spp")
    assert spp.protocol == TestProtocol("official_acc", 1000, 5, "max", spp.protocol.source, spp.protocol.note)
    roles = {c["id"]: c["role"] for c in spp.claims}
    assert roles["spp.check.orthogonal-isometry"] == roles["spp.check.ai-restores-isometry"] == "check"
    assert roles["spp.init.decides-pruning"] == roles["spp.ai.improves-accuracy"] == "claim"
    assert next(c for c in spp.claims if c["id"] == "spp.ai.improves-accuracy")["quantifier"] == "all"


@pytest.mark.parametrize("mutate, expect", [
    (lambda d: d["claims"][0].update(kind="bigger"), "kind"),
    (lambda d: d["claims"][0].update(quantifier="most"), "quantifier"),
    (lambda d: d["claims"][0].update(role="aside"), "role"),
    (lambda d: d["claims"][0]["reported"].update(status="transcribed"), "reported"),
    (lambda d: d["claims"][0].update(where={"sparsity": 1.5}), "where"),
    (lambda d: d["claims"][0]["lhs"].update(metric="accuracy"), "metric"),
    (lambda d: d["claims"][0].update(op=">="), "margin"),
    (lambda d: d["claims"][0].update(metric="official_acc"), "test_protocol"),
    (lambda d: d["claims"].append(dict(d["claims"][0])), "duplicate id"),
    (lambda d: d.update(reported=[{"dataset": "cifar10", "model": "vgg19", "arm": "a", "sparsity": 0.9,
                                   "value": 93.1, "status": "transcribed", "where": "Table 1"}]), "fraction"),
])
def test_validator_rejects(tmp_path, mutate, expect):
    doc = copy.deepcopy(GOOD)
    mutate(doc)
    p = _write(tmp_path, "toy.yaml", doc)
    with pytest.raises(PrunebenchError, match=expect) as e:
        claims.load_claims(p, schema=REFERENCE / "schema.yaml")
    assert "toy.yaml" in str(e.value) and "\n" not in str(e.value)


def test_history_metrics_validate(tmp_path):
    doc = copy.deepcopy(GOOD)
    doc["claims"][0]["metric"] = "train_loss@1000"
    p = claims.load_claims(_write(tmp_path, "toy.yaml", doc), schema=REFERENCE / "schema.yaml")[0]
    assert p.claims[0]["metric"] == "train_loss@1000" and "train_loss@1000" in p.metrics()


def test_yaml_errors_and_cross_file_ids(tmp_path):
    p = tmp_path / "broken.yaml"
    p.write_text("paper: x\nclaims: [\n")
    with pytest.raises(PrunebenchError, match="broken.yaml.*invalid YAML"):
        claims.load_claims(p, schema=REFERENCE / "schema.yaml")
    a = _write(tmp_path, "a.yaml", GOOD)
    b = _write(tmp_path, "b.yaml", {**GOOD, "paper": "toy2"})
    with pytest.raises(PrunebenchError, match="b.yaml.*'toy.a'.*already used"):
        claims.load_claims([a, b], schema=REFERENCE / "schema.yaml")
    with pytest.raises(PrunebenchError, match="missing claims file"):
        claims.load_claims(tmp_path / "none.yaml")


def test_claims_for_a_preset_come_from_the_reference_folder():
    assert claims.reference_dir().resolve() == REFERENCE.resolve()  # package data: a link to paper/reference
    assert [p.paper for p in claims.claims_for(["spp"])] == ["spp"]
    assert claims.claims_for([]) == []
    assert not math.isnan(len(claims.paper_claims("force").claims)) and claims.paper_claims("nosuch") is None


def test_settings_are_matched_not_pooled_and_sparsity_filters():
    """Arms are compared per dataset/model/init/sparsity; a setting with one arm missing is skipped; `top`
    keeps the highest sparsities; a pinned operand is compared against every setting of the other side."""
    hi, lo = 0.96 + SEED_EFFECT, 0.90 + SEED_EFFECT
    s = pd.DataFrame(rows("force", hi, sparsity=0.99) + rows("snip", lo, sparsity=0.99)
                     + rows("force", lo, sparsity=0.9) + rows("snip", hi, sparsity=0.9)
                     + rows("force", hi, model="resnet20")                    # no snip there
                     + rows("dense", hi + 0.02, sparsity=0.0))
    c = claim(kind="greater", lhs={"arm": "force"}, rhs={"arm": "snip"})
    v = claims.check(c, s)
    assert v.status == "contradicted" and [r["status"] for r in v.rows] == ["contradicted", "holds"]
    assert claims.check(dict(c, where={"sparsity": {"top": 1}}), s).status == "holds"
    assert claims.check(dict(c, where={"sparsity": {"min": 0.999}}), s).status == "not run"
    assert claims.check(dict(c, quantifier="any"), s).status == "holds"
    assert claims.check(dict(c, quantifier="majority"), s).status == "inconclusive"
    vs_dense = claim(kind="greater", lhs={"arm": "dense", "sparsity": 0}, rhs={"arm": "snip"})
    v = claims.check(vs_dense, s)
    assert v.status == "holds" and [r["sparsity"] for r in v.rows] == [0.9, 0.99]


def test_transform_abs_log():
    s = pd.DataFrame(rows("snip_ai", [0.9] * 8, isometry=True, jsv_prune_mean=list(0.05 * (1 + SEED_EFFECT)),
                          jsv_isometry_mean=list(0.95 * (1 + SEED_EFFECT))))
    c = claim(kind="greater", lhs={"arm": "snip_ai", "metric": "jsv_prune_mean", "transform": "abs_log"},
              rhs={"arm": "snip_ai", "metric": "jsv_isometry_mean", "transform": "abs_log"})
    v = claims.check(c, s)
    assert v.status == "holds" and v.rows[0]["diff"] == pytest.approx(-np.log(0.05) + np.log(0.95))
