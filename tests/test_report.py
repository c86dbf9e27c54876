"""The replication report: claims and checks apart, the statistics it prints, trainability, the data folder it
regenerates from byte-identically, and the command line around it."""
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from fake_results import write_fake_results, write_table
from prunebench.cli import main
from prunebench.library.errors import PrunebenchError
from prunebench.report import claims
from prunebench.report import data as data_mod
from prunebench.report.figures import FIGURES, make_figure
from prunebench.report.replication import regenerate, render_report, without_compute, write_report

REPO = Path(__file__).resolve().parents[1]
REFERENCE = REPO / "paper" / "reference"
PAPER_VS_CODE = [{"method": "snip", "option": "prune_bias", "paper": "weights only", "official": True,
                  "default": False, "section": "A.1", "note": "the TF code ranks weights and biases together"}]


def _write(tmp_path, name, doc):
    p = tmp_path / name
    p.write_text(yaml.safe_dump(doc, sort_keys=False, allow_unicode=True))
    return p


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    d = write_fake_results(tmp_path_factory.mktemp("res") / "results" / "quick", preset="quick", seeds=(0, 1, 2))
    (d / "config.yaml").write_text(yaml.safe_dump({"preset": "quick", "claims": ["force", "spp", "prospr", "fggp"],
                                                   "figures": sorted(FIGURES)}))
    (d / "run.json").write_text(json.dumps({"commits": ["0123abc"], "command": "snakemake --cores 2 figures",
                                            "cells": 306, "paper_vs_code": PAPER_VS_CODE}))
    return d


def test_report_lists_claims_and_checks_apart(results, tmp_path):
    figs = tmp_path / "figures"
    figs.mkdir()
    (figs / "force_acc_vs_sparsity.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    out = tmp_path / "paper" / "replication.md"
    verdicts = write_report(results, REFERENCE, out=out, preset="quick", figures_dir=figs, results_label="results/quick")
    text = out.read_text()
    for p in claims.load_claims(REFERENCE):
        assert f"## {p.paper}:" in text
        for c in p.claims:
            v = verdicts[c["id"]]
            assert v.status in claims.STATUSES and v.role == c["role"]
            assert f"#### `{c['id']}` — **{v.status}**" in text and f"| `{c['id']}` |" in text
        spp_or_force = p.paper in ("spp", "force")
        assert (f"## {p.paper}:" in text) and (not spp_or_force or "### Checks (not claims of the paper" in text)
    # the glance table counts the checks apart from the claims
    glance = text[text.index("## Verdicts at a glance"):text.index("\n## force")]
    force = next(ln for ln in glance.splitlines() if ln.startswith("| force |"))
    assert force.split(" | ")[1:3] == ["3", "3"] and force.split(" | ")[6] == "1"   # 3 claims (3 hold), 1 check
    assert {"holds", "inconclusive", "not run"} <= {v.status for v in verdicts.values()}
    for needle in ("paired by seed", "Holm", "random-effects", "DerSimonian–Laird", "minimum detectable",
                   "non-inferiority", "MDE (power 0.8)", "**pooled**", "Holm p", "### Trainability",
                   "official_acc", "checkpoints at iterations 6000-10000", "## Closing note"):
        assert needle in text, needle
    assert "CIFAR-10 (JPEG q75 copy)" in text and "| cpu |" in text and "Preset **quick**" in text
    assert "![force_acc_vs_sparsity](../figures/force_acc_vs_sparsity.png)" in text
    assert "`force_walltime`: not generated" in text
    assert "Cells produced by: commit `0123abc`" in text and "`snakemake --cores 2 figures`" in text
    assert "`prune_bias` (snip): the TF code ranks weights and biases together" in text


def test_report_is_deterministic_and_atomic(results, tmp_path):
    a, b = tmp_path / "a.md", tmp_path / "b.md"
    write_report(results, REFERENCE, out=a, preset="quick", results_label="results/quick")
    write_report(results, None, out=b, preset="quick", results_label="results/quick")  # claims from config.yaml
    assert a.read_bytes() == b.read_bytes()
    assert sorted(x.name for x in tmp_path.iterdir()) == ["a.md", "b.md"]
    text, _ = render_report(results, REFERENCE, preset="quick", generated="commit abc123")
    assert "generated: commit abc123" in text


def test_the_run_specific_blocks_are_masked_for_comparisons(results):
    text, _ = render_report(results, REFERENCE, preset="quick")
    masked = without_compute(text.encode()).decode()
    assert "<!-- run (masked) -->" in masked and "<!-- compute (masked) -->" in masked
    assert "0123abc" not in masked and "Compute used" not in masked and "## Verdicts at a glance" in masked


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


def test_diverged_seeds_are_counted_in_every_table(tmp_path):
    cell = ("cifar10", "resnet20", "kaiming_normal", "force", 0.98, 1)
    res = write_fake_results(tmp_path / "results" / "quick", preset="quick", seeds=(0, 1, 2), diverge={cell})
    text, verdicts = render_report(res, REFERENCE, preset="quick")
    row = [ln for ln in text.splitlines() if ln.startswith("| CIFAR-10 | resnet20 | kaiming_normal | FORCE | 98% |")]
    assert row and row[0].split(" | ")[-2] == "3 (1 failed)"
    train = [ln for ln in text.splitlines() if ln.startswith("| CIFAR-10 | resnet20 | kaiming_normal | 98% | FORCE |")]
    assert train and train[0].split(" | ")[5:8] == ["3", "2", "1 (500)"]   # seeds, trained, diverged (at step)
    prov = [ln for ln in text.splitlines() if ln.startswith("| cifar10 | resnet20 |")]
    assert prov[0].split(" | ")[-2] == "1"                                 # the diverged column
    v = verdicts["force.extreme.force-gt-snip"]
    assert all(r["values"]["FORCE"]["n"] == 3 for r in v.rows)            # 98% is not >= 99%: untouched


def test_a_diverged_flag_wins_over_a_recorded_accuracy(tmp_path):
    """A seed marked diverged is a failure even where a number was recorded (best_acc before it diverged)."""
    res = write_fake_results(tmp_path / "results" / "quick", preset="quick", seeds=(0, 1, 2))
    s = pd.read_csv(res / "summary.csv")
    hit = (s["arm"] == "force") & (s["dataset"] == "cifar10") & (s["sparsity"] == 0.98) & (s["seed"] == 1)
    s.loc[hit, "diverged"] = True
    write_table(s, res / "summary.csv")
    text, _ = render_report(res, REFERENCE, preset="quick")
    row = [ln for ln in text.splitlines() if ln.startswith("| CIFAR-10 | resnet20 | kaiming_normal | FORCE | 98% |")]
    assert row[0].split(" | ")[-2] == "3 (1 failed)"


def test_sanity_figure_is_embedded_where_a_check_tests_an_ablation(results, tmp_path):
    figs = tmp_path / "figures"
    figs.mkdir()
    (figs / "sanity_checks.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    text, _ = render_report(results, REFERENCE, out=tmp_path / "r.md", preset="quick", figures_dir=figs)
    sections = text.split("\n## ")
    for paper, p in {p.paper: p for p in claims.load_claims(REFERENCE)}.items():
        sec = next(s for s in sections if s.startswith(f"{paper}:"))
        wants = any(c["kind"] == "beats_ablation" for c in p.claims) or paper == "force"
        assert ("![sanity_checks](figures/sanity_checks.png)" in sec) == wants, paper
        for c in p.claims:  # the ablation arm of a beats_ablation check is in the section's accuracy table
            if c["kind"] == "beats_ablation" and c["arm"] == "snip":
                assert "| SNIP (layer-wise shuffle) |" in sec


def test_the_report_wing_imports_no_torch():
    code = ("import sys; import prunebench.report.replication, prunebench.report.figures; "
            "sys.exit(1 if 'torch' in sys.modules else 0)")
    subprocess.run([sys.executable, "-c", code], check=True)


# ------------------------------------------------------------------------------ paper/data and regeneration
def test_the_report_regenerates_from_its_data_folder_byte_identically(results, tmp_path):
    """The pipeline writes the data copy and renders from it; a reviewer's `prunebench report --data` draws the
    PNGs again and writes the same bytes."""
    paper = tmp_path / "paper"
    data = paper / "data" / "quick"
    figs = tmp_path / "figures" / "quick"
    names = ["spp_isometry_error", "spp_forest", "sanity_checks"]
    for n in names:
        make_figure(n, results, figs / n, "quick")
    (results / "config.yaml").write_text(yaml.safe_dump({"preset": "quick", "claims": ["spp"], "figures": names}))
    try:
        out = paper / "replication-quick.md"
        write_report(results, None, out=out, preset="quick", figures_dir=figs, embed_dir=paper / "figures" / "quick",
                     data_dir=data, results_label="paper/data/quick")
        pipeline = {p.name: p.read_bytes() for p in (paper / "figures" / "quick").iterdir()}
        pipeline["report"] = out.read_bytes()
        assert sorted(p.name for p in data.iterdir()) == sorted(
            ["SHA256SUMS", "config.yaml", "run.json", "summary.csv", "summary.csv.sha256", "layers.csv",
             "layers.csv.sha256", "history.csv", "history.csv.sha256"])
        clone = tmp_path / "clone" / "paper"
        shutil.copytree(data, clone / "data" / "quick")
        regenerate(clone / "data" / "quick", label="paper/data/quick")
        assert (clone / "replication-quick.md").read_bytes() == pipeline["report"]
        for n in names:
            assert (clone / "figures" / "quick" / f"{n}.png").read_bytes() == pipeline[f"{n}.png"], n
    finally:
        (results / "config.yaml").write_text(yaml.safe_dump({"preset": "quick", "claims": ["force", "spp", "prospr",
                                                                                            "fggp"],
                                                             "figures": sorted(FIGURES)}))


def test_a_changed_data_file_is_refused(results, tmp_path):
    data = tmp_path / "paper" / "data" / "quick"
    data_mod.export(results, data)
    data_mod.verify(data)
    s = bytearray((data / "history.csv").read_bytes())
    s[len(s) // 2] ^= 0x01
    (data / "history.csv").write_bytes(bytes(s))
    with pytest.raises(PrunebenchError, match="checksum mismatch in .*history.csv"):
        data_mod.verify(data)
    (data / "SHA256SUMS").unlink()
    with pytest.raises(PrunebenchError, match="no SHA256SUMS"):
        data_mod.verify(data)


def test_the_wall_time_is_recorded_and_survives_a_re_export(results, tmp_path):
    data = tmp_path / "paper" / "data" / "quick"
    data_mod.export(results, data)
    run = data_mod.record_run(data, wall_time_s=6300.0, alone=True, machine="2-core CPU")
    assert run["wall_time_s"] == 6300.0 and data_mod.verify(data)
    data_mod.export(results, data)                    # the same cells: the recorded fields stay
    assert data_mod.read_run(data)["machine"] == "2-core CPU"
    text, _ = render_report(data, None, preset="quick")
    assert "Wall time of the run: 1.8 h, alone on the machine (2-core CPU)." in text
    with pytest.raises(PrunebenchError, match="unknown run field"):
        data_mod.record_run(data, speed=1)


def _cli(argv, capsys):
    code = main(argv)
    return code, capsys.readouterr().err


def test_command_line(results, tmp_path, capsys):
    data = tmp_path / "paper" / "data" / "quick"
    data_mod.export(results, data)
    (data / "config.yaml").write_text(yaml.safe_dump({"preset": "quick", "claims": ["spp"],
                                                      "figures": ["spp_jsv"]}))
    data_mod.export(data, data)                       # re-checksum the edited copy
    code, err = _cli(["report", "--data", str(data), "--wall-time-s", "120", "--not-alone"], capsys)
    assert code == 0, err
    text = (tmp_path / "paper" / "replication-quick.md").read_text()
    assert "Wall time of the run: 2 min, sharing the machine with other jobs" in text
    assert (tmp_path / "paper" / "figures" / "quick" / "spp_jsv.png").is_file()
    for argv, msg in ((["report", "--data", str(data), "--results-dir", str(results)], "exactly one of"),
                      (["report"], "exactly one of"),
                      (["report", "--data", str(data), "--claims", "x.yaml"], "--claims does not go with --data"),
                      (["report", "--data", str(data), "--alone"], "give it too"),
                      (["report", "--results-dir", str(results), "--wall-time-s", "5"], "goes with --data only"),
                      (["report", "--data", str(tmp_path / "nowhere")], "missing data folder")):
        code, err = _cli(argv, capsys)
        assert code == 2 and msg in err and len(err.strip().splitlines()) == 1, (argv, err)
