"""prunebench plan (issue 19): a preset's cost from a throughput file, checked on constructed files."""
from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from prunebench.library.datasets import DATASETS

from prunebench.cli import main
from prunebench.cli.plan import preset_path
from prunebench.library.errors import PrunebenchError
from prunebench.pipeline import plan as PL
from prunebench.pipeline.grid import expand, load_config

REPO = Path(__file__).resolve().parents[1]


def cpu_rates(**extra):
    doc = {"device": "cpu (x86_64)", "train": [{"model": "lenet300", "dataset": "mnist", "batch": 100,
                                                "dense_img_s": 50000.0, "masked99_img_s": 40000.0}],
           "job_overhead_s": 0.5}
    doc.update(extra)
    return PL.Rates(doc, "constructed.json")


def smoke():
    return load_config(REPO / "config" / "smoke.yaml")


def test_every_data_set_has_split_sizes():
    assert all(n_train > 0 and n_test > 0 for n_train, n_test in (d.sizes for d in DATASETS.values()))


def test_prune_costs_come_from_the_pruners():
    """The planner asks each pruner what a pruning costs: FORCE's and Iter SNIP's T steps of num_batches passes,
    SynFlow's iterations of one image, GraSP's three passes per batch, ProsPr's two per inner step."""
    assert PL._cost("force", {"steps": 60, "num_batches": 2}) == {"passes": 120, "per": "batch", "selections": 60}
    assert PL._cost("iter_snip", {"steps": 10}) == {"passes": 10, "per": "batch", "selections": 10}
    assert PL._cost("synflow", {"iterations": 100}) == {"passes": 100, "per": "image", "selections": 100}
    assert PL._cost("snip", {"num_batches": 3})["passes"] == 3
    assert PL._cost("grasp", {})["passes"] == 3 and PL._cost("prospr", {"inner_steps": 3})["passes"] == 8
    assert PL._cost("random", {})["passes"] == 0 and PL._cost("magnitude", {})["passes"] == 0


def test_model_facts_count_forward_flops_on_the_meta_device():
    f = PL.model_facts("lenet300", "mnist")
    assert f["fwd_flops"] == 2 * (784 * 300 + 300 * 100 + 100 * 10) and f["weights"] == 784 * 300 + 300 * 100 + 1000
    assert f["shapes"] == [(300, 784), (100, 300), (10, 100)]
    assert PL.model_facts("vgg19", "cifar10")["fwd_flops"] == pytest.approx(0.796e9, rel=2e-3)


def test_a_dense_training_job_is_images_over_the_measured_rate_plus_evaluation():
    cfg = smoke()
    rates = cpu_rates()
    jobs = {(r, n): (s, b) for r, n, s, b in PL.jobs(cfg, rates)}
    s, basis = jobs[("train", "mnist/lenet300/kaiming_normal/dense/s0.0/seed0")]
    # 2 epochs x 20 steps x 100 images, 2 evaluations of the 10,000 test images at 3x the rate, the job's start
    assert s == pytest.approx(40 * 100 / 50000 + 2 * 10000 / (3 * 50000) + 0.5)
    assert basis == "measured (lenet300, batch 100)"
    masked, _ = jobs[("train", "mnist/lenet300/kaiming_normal/snip/s0.9/seed0")]
    assert masked == pytest.approx(40 * 100 / 40000 + 2 * 10000 / (3 * 40000) + 0.5)  # the masked rate


def test_an_unmeasured_model_is_scaled_by_forward_flops():
    rates = cpu_rates()
    rate, basis = rates.train_rate("mlp-3-tanh", "mnist", 100, masked=False)
    ratio = PL.model_facts("lenet300", "mnist")["fwd_flops"] / PL.model_facts("mlp-3-tanh", "mnist")["fwd_flops"]
    assert rate == pytest.approx(50000.0 * ratio) and basis.startswith("scaled from lenet300 by forward FLOPs")


def test_measured_pruning_and_isometry_scale_with_their_steps():
    rates = cpu_rates(prune=[{"model": "lenet300", "method": "force", "options": {"steps": 10}, "batch": 100,
                              "wall_s": 2.0}],
                      isometry=[{"model": "mlp-3-tanh", "steps": 1000, "wall_s": 0.5}],
                      jsv=[{"model": "mlp-3-tanh", "examples": 1000, "wall_s": 0.2}])
    cfg = smoke()
    cells = {(c["arm"], c["model"], c["sparsity"]): c for c in expand(cfg)}
    s, basis = rates.prune_s(cells[("force", "lenet300", 0.9)], 60000)  # 3 steps in the smoke preset
    assert s == pytest.approx(2.0 * 3 / 10) and basis.startswith("measured (force, lenet300)")
    iso = cells[("snip_ai", "mlp-3-tanh", 0.9)]
    assert rates.isometry_s(iso, 20)[0] == pytest.approx(0.01)
    jobs = {(r, n): s for r, n, s, _ in PL.jobs(cfg, rates)}
    # the isometry job: 20 steps + JSV after it on the preset's 4 examples + the job's start
    assert jobs[("isometry", "mnist/mlp-3-tanh/orthogonal/snip_ai/s0.9/seed0")] == pytest.approx(0.01 + 4 * 0.2e-3 + 0.5)


def test_cpu_plan_totals_and_resources():
    cfg = smoke()
    p = PL.plan(cfg, cpu_rates(), workers=2)
    assert p["cells"] == len(expand(cfg)) == p["rules"]["train"]["jobs"]
    assert p["rules"]["prune"]["jobs"] == sum(1 for c in expand(cfg) if c["method"] not in ("dense", "fggp", "gmp"))
    hours = sum(r["device_hours"] for r in p["rules"].values())
    assert p["device_hours"] == pytest.approx(hours) and p["wall_hours"] == pytest.approx(max(
        hours / 2, max(r["longest_s"] for r in p["rules"].values()) / 3600))
    assert p["resources"]["train"]["gpu"] == 0 and p["resources"]["train"]["runtime"] >= 10
    text = PL.render(p)
    assert "| train | 25 |" in text and "2 worker processes" in text and "resources:" in text


def test_gpu_plan_uses_the_best_k_sharing_a_gpu():
    doc = {"device": "NVIDIA H200", "train": [{"model": "lenet300", "dataset": "mnist", "batch": 100,
                                               "dense_img_s": 50000.0, "masked99_img_s": 50000.0}],
           "concurrency": {"best_k": 2, "rounds": [{"processes": 1, "aggregate_img_s": 1000.0},
                                                   {"processes": 2, "aggregate_img_s": 1800.0},
                                                   {"processes": 4, "aggregate_img_s": 1850.0}]}}
    rates = PL.Rates(doc, "gpu.json")
    assert rates.kind == "cuda" and rates.concurrency() == (2, 1.8)
    p = PL.plan(smoke(), rates, gpus=3)
    assert p["jobs_per_gpu"] == 2 and p["workers"] == 6
    single = {r: v["seconds"] for r, v in p["rules"].items()}
    assert p["rules"]["train"]["device_hours"] == pytest.approx(single["train"] / 3600 / 1.8)
    assert p["rules"]["data"]["device_hours"] == pytest.approx(single["data"] / 3600)
    assert p["resources"]["train"]["gpu"] == 1
    assert p["resources"]["train"]["runtime"] == max(10, math.ceil(p["rules"]["train"]["longest_s"] * 2 / 1.8 * 1.5 / 60) + 5)
    assert "--resources gpu=6" in PL.render(p)


def test_cli_plan(tmp_path, capsys):
    f = tmp_path / "rates.json"
    f.write_text(json.dumps(cpu_rates().doc))
    assert main(["plan", "--preset", "smoke", "--throughput", str(f), "--workers", "2"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("preset smoke: 25 cells")
    assert main(["plan", "--preset", str(REPO / "config" / "smoke.yaml"), "--throughput", str(f), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["cells"] == 25


@pytest.mark.parametrize("content, needle", [('{"device": "x"}', "no training rates"), ("not json", "corrupt JSON")])
def test_bad_throughput_file_is_one_line(tmp_path, capsys, content, needle):
    f = tmp_path / "bad.json"
    f.write_text(content)
    assert main(["plan", "--preset", "smoke", "--throughput", str(f)]) == 2
    err = capsys.readouterr().err.strip()
    assert needle in err and len(err.splitlines()) == 1
    with pytest.raises(PrunebenchError, match="unknown preset"):
        preset_path("no-such-preset")
