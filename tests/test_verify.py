"""prunebench.pipeline.verify on small constructed trees (the end-to-end checks on the smoke preset are in
tests/test_pipeline.py: verify passes, reproduces cells and catches tampering; SIGKILL; prunebench.pipeline.workflow's
own tests are in tests/test_workflow.py)."""
import base64
import json

import pytest

from prunebench.pipeline import paths as P
from prunebench.pipeline import verify as VF
from prunebench.library.errors import PrunebenchError
from prunebench.pipeline.grid import expand, load_config
from prunebench.library.artifacts import write_checked_text
from prunebench.pipeline.workflow import argv_builders

from conftest import REPO


def smoke():
    return load_config(REPO / "config" / "smoke.yaml")


def test_every_declared_output_has_a_key_function():
    cfg = smoke()
    outs = VF.expected_outputs(cfg)
    cells = expand(cfg)
    assert all(f"{P.cell_dir(c)}/metrics.json" in outs for c in cells)
    assert P.report_path("smoke") in outs and P.table_path("smoke", "summary.csv") in outs
    from prunebench.pipeline import provenance as V
    c = next(c for c in cells if c["method"] == "snip")
    assert outs[f"{P.cell_dir(c)}/mask.safetensors"](cfg) == V.prune_key(cfg, c)
    assert outs[f"{P.cell_dir(c)}/metrics.json"](cfg) == V.train_key(cfg, c)
    assert outs[P.table_path("smoke", "summary.csv")](cfg) == V.tables_key(cfg)


def test_recorded_keys_read_snakemake_metadata_names(tmp_path):
    meta = tmp_path / ".snakemake" / "metadata"
    long = "results/smoke/" + "x" * 300 + "/metrics.json"  # Snakemake splits long names into folders
    for path, key in (("results/smoke/summary.csv", "abc"), (long, "def")):
        name = base64.urlsafe_b64encode(path.encode()).decode()
        parts = [name[i:i + 255] for i in range(0, len(name), 255)]
        f = meta.joinpath(*parts)
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text(json.dumps({"rule": "x", "params": [repr(key), "'other'"]}))
    assert VF.recorded_keys(tmp_path) == {"results/smoke/summary.csv": {"'abc'", "'other'"}, long: {"'def'", "'other'"}}


def test_choice_of_cells_is_seeded():
    cfg = smoke()
    a = [P.cell_dir(c) for c in VF.choose_cells(cfg, 3, 5)]
    assert a == [P.cell_dir(c) for c in VF.choose_cells(cfg, 3, 5)] and len(set(a)) == 3
    assert a != [P.cell_dir(c) for c in VF.choose_cells(cfg, 3, 6)]


def test_table_difference_names_the_cell(tmp_path):
    head = "dataset,model,init,arm,sparsity,seed,final_acc\n"
    write_checked_text(tmp_path / "a.csv", head + "mnist,lenet5,kaiming_normal,snip,0.9,0,0.91\n")
    write_checked_text(tmp_path / "b.csv", head + "mnist,lenet5,kaiming_normal,snip,0.9,0,0.90\n")
    msg = VF._table_difference(tmp_path / "a.csv", tmp_path / "b.csv")
    assert "mnist/lenet5/kaiming_normal/snip/s0.9/seed0" in msg and "final_acc" in msg and "'0.91'" in msg


def test_missing_results_and_wrong_preset_are_one_line_errors(tmp_path):
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "smoke.yaml").write_text((REPO / "config" / "smoke.yaml").read_text())
    with pytest.raises(PrunebenchError, match="no results for preset 'smoke'"):
        VF.verify("smoke", tmp_path)
    with pytest.raises(PrunebenchError, match="is preset 'smoke', not 'quick'"):
        VF.verify("quick", tmp_path, config=tmp_path / "config" / "smoke.yaml")


def test_a_damaged_file_and_a_missing_output_are_problems(tmp_path):
    cfg = smoke()
    c = next(c for c in expand(cfg) if c["method"] == "snip")
    d = tmp_path / P.cell_dir(c)
    d.mkdir(parents=True)
    (d / "mask.safetensors").write_bytes(b"garbage")
    (d / "prune.json").write_text("{not json")
    found = VF.Findings()
    VF.check_integrity(cfg, tmp_path, found, log=lambda s: None)
    problems = dict(found.problems)
    assert "corrupt mask file" in problems[f"{P.cell_dir(c)}/mask.safetensors"]
    assert "corrupt JSON" in problems[f"{P.cell_dir(c)}/prune.json"]
    assert problems[P.report_path("smoke")] == "missing"
    assert f"{P.cell_dir(c)}/checkpoint.safetensors" not in problems  # not a declared output
    assert not found.ok and "MISMATCH" in VF.summary("smoke", found)


def test_argv_builders_are_the_rules_own():
    cfg = smoke()
    fn = argv_builders(cfg, "cpu")
    c = next(c for c in expand(cfg) if c["method"] == "snip")

    class NS:
        init, data, mask, report, timing = "i", "d", "m", "r", "t"

    argv = fn["prune_argv"](c, NS, NS, 1)
    assert argv[:3] == ["prune", "--method", "snip"] and "--cell-hash" in argv


def test_isometry_gets_the_presets_jsv_examples_and_its_key_follows():
    """The Jacobians after approximate isometry are computed on as many examples as those after init and
    pruning (the preset's pruning.jsv_examples), and changing that number reruns the isometry jobs."""
    import copy

    from prunebench.pipeline import provenance as V
    cfg = load_config(REPO / "config" / "spp-mnist.yaml")
    c = next(c for c in expand(cfg) if c["isometry"])
    assert c["jsv"] and c["pruning"]["jsv_examples"] == 5000

    class NS:
        init, data, mask, weights, report = "i", "d", "m", "w", "r"

    argv = argv_builders(cfg, "cpu")["isometry_argv"](c, NS, NS, 1)
    assert argv[argv.index("--jsv-examples") + 1] == 5000
    c2 = copy.deepcopy(c)
    c2["pruning"]["jsv_examples"] = 100
    assert V.isometry_key(cfg, c2) != V.isometry_key(cfg, c)


def test_cheapest_cells_by_recorded_time_and_without_training(tmp_path):
    """--cheapest: the K cells with the smallest recorded compute time (prune wall time + training and
    evaluation time + isometry estimated at the cell's training step time); cells with no timings last.
    --no-train: at-init cells only, and their training time does not count."""
    from prunebench.library.artifacts import write_json
    from prunebench.library.methods import method_info

    cfg = smoke()
    cells = expand(cfg)
    for i, c in enumerate(cells):
        d = tmp_path / P.cell_dir(c)
        d.mkdir(parents=True)
        write_json(d / "timing.json", {"train_s": 100.0 - i, "eval_s": 1.0})
        write_json(d / "metrics.json", {"steps": 10})
        if method_info(c["method"]).at_init:
            write_json(d / "prune_timing.json", {"wall_s": float(i)})
    no_timing = next(c for c in cells if c["method"] == "dense")
    (tmp_path / P.cell_dir(no_timing) / "timing.json").unlink()
    chosen = VF.choose_cells(cfg, 3, 0, root=tmp_path, cheapest=True)
    costs = sorted(VF.recorded_cost(cfg, c, tmp_path) for c in cells)
    assert [VF.recorded_cost(cfg, c, tmp_path) for c in chosen] == costs[:3] and costs[-1] == float("inf")
    iso = next(c for c in cells if c["isometry"])
    i = cells.index(iso)
    assert VF.recorded_cost(cfg, iso, tmp_path) == pytest.approx(i + (100.0 - i) + 1.0 + (100.0 - i) / 10 * 20)
    quick = VF.choose_cells(cfg, 3, 0, root=tmp_path, cheapest=True, train=False)
    assert all(method_info(c["method"]).at_init for c in quick)
    assert [P.cell_dir(c) for c in quick] == [P.cell_dir(c) for c in sorted(
        (c for c in cells if method_info(c["method"]).at_init),
        key=lambda c: (VF.recorded_cost(cfg, c, tmp_path, train=False), P.cell_dir(c)))[:3]]
