"""Claim files validate, the checker gives the right verdicts, and the report shows them."""
from pathlib import Path

import pandas as pd
import pytest
import yaml

from fake_results import write_fake_results
from prunebench.report import claims
from prunebench.library.errors import PrunebenchError
from prunebench.report.figures import FIGURES
from prunebench.report.replication import render_report, write_report

REPO = Path(__file__).resolve().parents[1]
REFERENCE = REPO / "paper" / "reference"


def summary(rows, dataset="mnist", model="lenet300", init="kaiming_normal"):
    """rows: (arm, sparsity, seed, final_acc[, extra dict])."""
    out = []
    for r in rows:
        arm, s, seed, acc = r[:4]
        d = dict(preset="t", dataset=dataset, model=model, arm=arm, method=arm, sparsity=s, seed=seed, init=init,
                 final_acc=acc, best_acc=acc + 0.01, source_note="MNIST", device="cpu")
        if len(r) > 4:
            d.update(r[4])
        out.append(d)
    return pd.DataFrame(out)


def claim(**kw):
    c = dict(id="t.claim", text="t", source="test", reported={"value": None, "status": "not transcribed",
                                                               "where": "not transcribed"},
             metric="final_acc", quantifier="all")
    c.update(kw)
    return c


GT = dict(kind="greater", lhs={"arm": "force"}, rhs={"arm": "snip"})


# ------------------------------------------------------------------------------ checker
def seeds(arm, sparsity, accs, extra=None):
    """One row per seed of `arm` at `sparsity` with the given accuracies (and extra columns)."""
    return [(arm, sparsity, i, a) + ((extra,) if extra else ()) for i, a in enumerate(accs)]


HI, LO = [0.80, 0.82, 0.81], [0.50, 0.52, 0.51]      # clearly apart over 3 seeds


def test_greater_holds_contradicted_inconclusive_not_run():
    s = summary(seeds("force", 0.99, HI) + seeds("snip", 0.99, LO)
                + seeds("force", 0.9, LO) + seeds("snip", 0.9, HI))
    v = claims.check(claim(**GT, where={"sparsity": {"min": 0.99}}), s)
    assert v.status == "holds" and len(v.numbers) == 1
    row = v.numbers[0]
    assert row["sparsity"] == 0.99 and row["values"]["force"]["mean"] == pytest.approx(0.81)
    assert row["values"]["force"]["n"] == 3 and row["values"]["snip"]["std"] == pytest.approx(0.01)
    assert row["interval"]["lo"] > 0 and row["status"] == "holds"
    # at 90% the opposite is clear: over all sparsities, `all` is contradicted
    v = claims.check(claim(**GT), s)
    assert v.status == "contradicted" and "1 holds, 1 contradicted" in v.explanation
    assert claims.check(claim(**GT, quantifier="any"), s).status == "holds"
    # overlapping seeds: inconclusive
    noisy = summary(seeds("force", 0.99, [0.8, 0.5, 0.65]) + seeds("snip", 0.99, [0.7, 0.55, 0.6]))
    assert claims.check(claim(**GT), noisy).status == "inconclusive"
    # no setting at that sparsity, or the arm never ran
    v = claims.check(claim(**GT, where={"sparsity": {"min": 0.999}}), s)
    assert v.status == "not run" and v.numbers == []
    v = claims.check(claim(kind="greater", lhs={"arm": "force"}, rhs={"arm": "grasp"}), s)
    assert v.status == "not run" and "grasp" in v.explanation


def test_two_seeds_are_inconclusive_whatever_the_means():
    """The old quick report: FORCE 39 % vs SNIP 84 % over two seeds 'did not hold'; now inconclusive."""
    s = summary([("force", 0.995, 0, 0.2060), ("force", 0.995, 1, 0.5770),
                 ("snip", 0.995, 0, 0.7765), ("snip", 0.995, 1, 0.9091)], model="lenet5")
    v = claims.check(claim(**GT), s)
    assert v.status == "inconclusive" and "fewer than 3 seeds" in v.numbers[0]["reason"]


def test_majority_and_margin():
    rows = seeds("force", 0.9, HI) + seeds("snip", 0.9, LO) + seeds("force", 0.95, HI) + seeds("snip", 0.95, LO)
    rows += seeds("force", 0.98, LO) + seeds("snip", 0.98, HI)
    s = summary(rows)
    assert claims.check(claim(**GT), s).status == "contradicted"
    assert claims.check(claim(**GT, quantifier="majority"), s).status == "holds"
    # a 30-point bar: the 30-point gaps are inside their intervals' reach, the reversed one is contradicted
    assert claims.check(claim(**GT, quantifier="majority", margin=0.3), s).status == "inconclusive"
    assert claims.check(claim(**GT, quantifier="majority", margin=0.5), s).status == "contradicted"


def test_metric_can_be_best_acc():
    s = summary([(a, 0.9, i, acc, {"best_acc": b}) for i in range(3)
                 for a, acc, b in (("force", 0.80 + i / 100, 0.70 + i / 100), ("snip", 0.75 + i / 100, 0.90 + i / 100))])
    assert claims.check(claim(**GT), s).status == "holds"
    v = claims.check(claim(**GT, metric="best_acc"), s)
    assert v.status == "contradicted" and "best_acc" in v.explanation


def test_failed_seeds_are_counted_and_left_out():
    s = summary(seeds("force", 0.99, HI + [float("nan")]) + seeds("snip", 0.99, LO, {"collapsed": 2}))
    v = claims.check(claim(**GT), s)
    force, snip = v.numbers[0]["values"]["force"], v.numbers[0]["values"]["snip"]
    assert (force["n"], force["failed"], force["mean"]) == (3, 1, pytest.approx(0.81))
    assert (snip["n"], snip["collapsed"]) == (3, 3) and v.status == "holds"
    assert "1 failed seed(s) left out" in v.explanation


def test_settings_are_matched_not_pooled():
    """Arms are compared per dataset/model/init; a setting with one arm missing is skipped."""
    a = summary(seeds("force", 0.9, HI) + seeds("snip", 0.9, LO))
    b = summary(seeds("force", 0.9, LO), dataset="cifar10", model="resnet20")  # no snip here
    c = summary(seeds("snip", 0.9, HI), init="orthogonal")  # no force under this init
    v = claims.check(claim(**GT), pd.concat([a, b, c]))
    assert v.status == "holds" and len(v.numbers) == 1 and v.numbers[0]["dataset"] == "mnist"
    v = claims.check(claim(**GT, where={"dataset": "cifar10"}), pd.concat([a, b, c]))
    assert v.status == "not run"


def test_close_near_pinned_and_top():
    s = summary(seeds("snip", 0.9, [0.900, 0.901, 0.899]) + seeds("snip_unsup", 0.9, [0.899, 0.900, 0.898])
                + seeds("snip", 0.99, [0.60, 0.61, 0.59]) + seeds("snip_unsup", 0.99, [0.40, 0.41, 0.39])
                + seeds("dense", 0.0, [0.98, 0.981, 0.979]))
    close = dict(kind="close", lhs={"arm": "snip_unsup"}, rhs={"arm": "snip"}, tolerance=0.02)
    assert claims.check(claim(**close), s).status == "contradicted"
    assert claims.check(claim(**close, where={"sparsity": 0.9}), s).status == "holds"
    assert claims.check(claim(**close, where={"sparsity": {"top": 1}}), s).status == "contradicted"
    # a pinned column is not matched: every SNIP sparsity against the dense net
    vs_dense = dict(kind="greater", lhs={"arm": "dense", "sparsity": 0}, rhs={"arm": "snip"})
    v = claims.check(claim(**vs_dense), s)
    assert v.status == "holds" and [r["sparsity"] for r in v.numbers] == [0.9, 0.99]
    jsv = summary([("snip", 0.9, i, 0.9, {"jsv_init_mean": m}) for i, m in enumerate([1.01, 0.99, 1.00])],
                  model="mlp-7-linear", init="orthogonal")
    near = dict(kind="near", lhs={"arm": "*", "metric": "jsv_init_mean"}, value=1.0, tolerance=0.1,
                where={"model": "mlp-*-linear", "init": "orthogonal"})
    v = claims.check(claim(**near), pd.concat([s, jsv]))
    assert v.status == "holds" and v.numbers[0]["values"]["any arm jsv_init_mean"]["mean"] == pytest.approx(1.0)
    assert claims.check(claim(**dict(near, value=1.5)), jsv).status == "contradicted"
    assert claims.check(claim(**near), s).status == "not run"


def test_transform_abs_log():
    s = summary([("snip_ai", 0.9, i, 0.9, {"jsv_prune_mean": 0.05 + i / 100, "jsv_isometry_mean": 0.95 + i / 100})
                 for i in range(3)])
    c = dict(kind="greater", lhs={"arm": "snip_ai", "metric": "jsv_prune_mean", "transform": "abs_log"},
             rhs={"arm": "snip_ai", "metric": "jsv_isometry_mean", "transform": "abs_log"})
    assert claims.check(claim(**c), s).status == "holds"


def test_best_monotone_and_beats_ablation():
    s = summary(seeds("fggp", 0.9, [0.92, 0.921, 0.919]) + seeds("gmp", 0.9, [0.91, 0.911, 0.909])
                + seeds("mfgn_annealed", 0.9, [0.90, 0.901, 0.899])
                + seeds("fggp", 0.95, [0.88, 0.881, 0.879]) + seeds("gmp", 0.95, [0.89, 0.891, 0.889]))
    best = dict(kind="best", arm="fggp", arms=["gmp", "mfgn_annealed"])
    v = claims.check(claim(**best), s)
    assert v.status == "contradicted" and [r["status"] for r in v.numbers] == ["holds", "contradicted"]
    assert claims.check(claim(**best, where={"sparsity": 0.9}), s).status == "holds"
    m = summary(seeds("snip", 0.99, [0.50, 0.51, 0.49]) + seeds("prospr", 0.99, [0.66, 0.67, 0.65], {"meta_steps": 3})
                + seeds("prospr_m1", 0.99, [0.72, 0.73, 0.71], {"meta_steps": 1})
                + seeds("prospr_m5", 0.99, [0.75, 0.76, 0.74]))  # M from the name
    series = [{"arm": "snip", "x": 0}, {"arm": "prospr", "x_column": "meta_steps"},
              {"arm": "prospr_m*", "x_column": "meta_steps"}]
    v = claims.check(claim(kind="monotone", series=series, mode="endpoints"), m)
    assert v.status == "holds" and list(v.numbers[0]["values"]) == ["x=0", "x=1", "x=3", "x=5"]
    assert claims.check(claim(kind="monotone", series=series, mode="pairwise"), m).status == "contradicted"
    assert claims.check(claim(kind="monotone", series=series, mode="pairwise", tolerance=0.1), m).status == "holds"
    assert claims.check(claim(kind="monotone", series=series), summary([("snip", 0.99, 0, 0.5)])).status == "not run"
    shuffle = summary(seeds("snip", 0.98, HI) + seeds("snip_shuffle", 0.98, [0.80, 0.83, 0.815]))
    v = claims.check(claim(kind="beats_ablation", arm="snip", ablation="shuffle"), shuffle)
    assert v.status == "inconclusive" and "snip_shuffle" in v.explanation


# ------------------------------------------------------------------------------ files
def _write(tmp_path, name, doc):
    p = tmp_path / name
    p.write_text(yaml.safe_dump(doc, sort_keys=False, allow_unicode=True))
    return p


GOOD = {"paper": "toy", "title": "Toy", "claims": [
    {"id": "toy.a", "text": "A beats B", "kind": "greater", "lhs": {"arm": "a"}, "rhs": {"arm": "b"},
     "source": "abstract", "reported": {"value": None, "status": "not transcribed", "where": "Table 1"}}]}


def test_shipped_claim_files_validate():
    papers = claims.load_claims(REFERENCE)
    assert [p.paper for p in papers] == ["fggp", "force", "prospr", "spp"]
    ids = [c["id"] for p in papers for c in p.claims]
    assert len(ids) == len(set(ids)) >= 12
    for p in papers:
        for c in p.claims:  # numbers are unknown here: nothing may pretend otherwise
            assert c["reported"]["status"] == "not transcribed" and c["reported"]["value"] is None
        assert all(r["value"] is None for r in p.reported)


def test_validator_names_file_and_claim(tmp_path):
    bad = {**GOOD, "claims": [dict(GOOD["claims"][0], id="toy.broken")]}
    del bad["claims"][0]["rhs"]
    p = _write(tmp_path, "toy.yaml", bad)
    with pytest.raises(PrunebenchError) as e:
        claims.load_claims(p, schema=REFERENCE / "schema.yaml")
    msg = str(e.value)
    assert "toy.yaml" in msg and "'toy.broken'" in msg and "rhs" in msg and "\n" not in msg


@pytest.mark.parametrize("mutate, expect", [
    (lambda d: d["claims"][0].update(kind="bigger"), "kind"),
    (lambda d: d["claims"][0].update(quantifier="most"), "quantifier"),
    (lambda d: d["claims"][0]["reported"].update(status="transcribed"), "reported"),
    (lambda d: d["claims"][0].update(where={"sparsity": 1.5}), "where"),
    (lambda d: d["claims"][0]["lhs"].update(metric="accuracy"), "metric"),
    (lambda d: d["claims"].append(dict(d["claims"][0])), "duplicate id"),
    (lambda d: d.update(reported=[{"dataset": "cifar10", "model": "vgg19", "arm": "a", "sparsity": 0.9,
                                   "value": 93.1, "status": "transcribed", "where": "Table 1"}]), "fraction"),
])
def test_validator_rejects(tmp_path, mutate, expect):
    import copy

    doc = copy.deepcopy(GOOD)
    mutate(doc)
    p = _write(tmp_path, "toy.yaml", doc)
    with pytest.raises(PrunebenchError, match=expect) as e:
        claims.load_claims(p, schema=REFERENCE / "schema.yaml")
    assert "toy.yaml" in str(e.value)


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


# ------------------------------------------------------------------------------ report
@pytest.fixture(scope="module")
def results(tmp_path_factory):
    return write_fake_results(tmp_path_factory.mktemp("res") / "results" / "quick", preset="quick", seeds=(0, 1, 2))


def test_report_lists_every_claim_with_its_verdict(results, tmp_path):
    figs = tmp_path / "figures"
    figs.mkdir()
    (figs / "force_acc_vs_sparsity.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    out = tmp_path / "paper" / "replication.md"
    verdicts = write_report(results, REFERENCE, out=out, preset="quick", figures_dir=figs, results_label="results/quick")
    text = out.read_text()
    papers = claims.load_claims(REFERENCE)
    for p in papers:
        assert f"## {p.paper}:" in text
        for c in p.claims:
            v = verdicts[c["id"]]
            assert v.status in claims.STATUSES
            assert f"#### `{c['id']}` — **{v.status}**" in text
            assert f"| `{c['id']}` |" in text
    assert {"holds", "inconclusive", "not run"} <= {v.status for v in verdicts.values()}
    assert "95% CI" in text and "Welch" in text and "## Compute used" in text
    assert "### Replication summary" in text and "Not a replication of the paper's protocol" in text
    assert "CIFAR-10 (JPEG q75 copy)" in text and "| cpu |" in text and "Preset: **quick**" in text
    assert "![force_acc_vs_sparsity](../figures/force_acc_vs_sparsity.png)" in text
    assert "`force_walltime`: not generated" in text
    assert "± " in text and "(n=3)" in text
    for name in FIGURES:
        assert f"`{name}`" in text
    assert "not transcribed" in text


def test_report_is_deterministic_and_atomic(results, tmp_path):
    a = tmp_path / "a.md"
    b = tmp_path / "b.md"
    write_report(results, REFERENCE, out=a, preset="quick", results_label="results/quick")
    write_report([results], REFERENCE, out=b, preset="quick", results_label="results/quick")
    assert a.read_bytes() == b.read_bytes()
    assert sorted(x.name for x in tmp_path.iterdir()) == ["a.md", "b.md"]
    text, _ = render_report(results, REFERENCE, preset="quick", generated="commit abc123")
    assert "generated: commit abc123" in text


def test_report_shows_transcribed_paper_numbers(results, tmp_path):
    ref = tmp_path / "ref"
    ref.mkdir()
    (ref / "schema.yaml").write_text((REFERENCE / "schema.yaml").read_text())
    doc = yaml.safe_load((REFERENCE / "force.yaml").read_text())
    doc["reported"] = [{"dataset": "cifar10", "model": "resnet20", "arm": "force", "sparsity": 0.995,
                        "value": 0.8123, "std": 0.004, "status": "transcribed", "where": "Table 9"},
                       {"dataset": "cifar10", "model": "vgg19", "arm": "force", "sparsity": 0.99,
                        "value": 0.9, "status": "transcribed", "where": "Table 8"}]
    _write(ref, "force.yaml", doc)
    text, _ = render_report(results, ref, preset="quick")
    assert "81.23 ± 0.40 (final_acc, Table 9)" in text
    assert "| not run | not run | 0 | 90.00 (final_acc, Table 8) |" in text


def test_diverged_seeds_are_counted_in_the_report_tables(tmp_path):
    cell = ("cifar10", "resnet20", "kaiming_normal", "force", 0.98, 1)
    res = write_fake_results(tmp_path / "results" / "quick", preset="quick", seeds=(0, 1, 2), diverge={cell})
    text, _ = render_report(res, REFERENCE, preset="quick")
    row = [ln for ln in text.splitlines() if ln.startswith("| CIFAR-10 | resnet20 | kaiming_normal | force | 98% |")]
    assert row and row[0].split(" | ")[7] == "3 (1)"  # 3 seeds, 1 diverged
    prov = [ln for ln in text.splitlines() if ln.startswith("| cifar10 | resnet20 |")]
    assert "diverged cells" in text and prov[0].rstrip(" |").endswith("| 1")


def test_a_diverged_flag_wins_over_a_recorded_accuracy(tmp_path):
    """A seed marked diverged is a failure even where a number was recorded (e.g. best_acc before it diverged)."""
    res = write_fake_results(tmp_path / "results" / "quick", preset="quick", seeds=(0, 1, 2))
    s = pd.read_csv(res / "summary.csv")
    hit = (s["arm"] == "force") & (s["dataset"] == "cifar10") & (s["sparsity"] == 0.98) & (s["seed"] == 1)
    s.loc[hit, "diverged"] = True
    from fake_results import write_table

    write_table(s, res / "summary.csv")
    text, _ = render_report(res, REFERENCE, preset="quick")
    row = [ln for ln in text.splitlines() if ln.startswith("| CIFAR-10 | resnet20 | kaiming_normal | force | 98% |")]
    assert row[0].split(" | ")[7] == "3 (1)"


def test_sanity_figure_is_embedded_where_a_claim_checks_an_ablation(results, tmp_path):
    figs = tmp_path / "figures"
    figs.mkdir()
    (figs / "sanity_checks.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    text, _ = render_report(results, REFERENCE, out=tmp_path / "r.md", preset="quick", figures_dir=figs)
    papers = {p.paper: p for p in claims.load_claims(REFERENCE)}
    sections = text.split("\n## ")
    for paper, p in papers.items():
        sec = next(s for s in sections if s.startswith(f"{paper}:"))
        wants = any(c["kind"] == "beats_ablation" for c in p.claims) or paper == "force"
        assert ("![sanity_checks](figures/sanity_checks.png)" in sec) == wants, paper
        for c in p.claims:  # the ablation arm of a beats_ablation claim is in the section's accuracy table
            if c["kind"] == "beats_ablation" and c["arm"] == "snip":
                assert f"| snip_{c['ablation']} |" in sec


def test_obstacles_sentence_is_plain(results):
    text, _ = render_report(results, REFERENCE, preset="quick")
    assert "option names in parentheses'" not in text
    assert "Where the official code and the paper's text differ, the paper presets follow the code." in text
