"""benchmarks/gpu_check.sh, the one prepared GPU run (issue 13): its pieces, and the whole script in its CPU
smoke mode (every part at tiny sizes on synthetic data, about a minute on 2 cores), which is how CI knows the
script a lent GPU machine would run still works."""
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

import gpu_check as GC  # noqa: E402
import gpu_pipeline as GP  # noqa: E402
from prunebench.pipeline import paths as P  # noqa: E402
from prunebench.pipeline import workflow as W  # noqa: E402


def preset(name):
    return yaml.safe_load((REPO / "config" / f"{name}.yaml").read_text())


# -- sizing -------------------------------------------------------------------------------------------------

def test_size_epochs_fits_the_time_and_grows_with_it():
    e = [GC.size_epochs(t, 11, 6, 40000) for t in (0, 10, 60, 150, 300, 10_000)]
    assert e[0] == 0 and e[1] == 0
    assert e == sorted(e) and e[-1] == GC.SIZING["max_epochs"]
    for t, n in zip((60, 150, 300), e[2:5]):  # the chosen epochs fit in safety x the time, one more does not
        cost = lambda k: 11 * k * 50000 / 40000 + 11 * k * 0.6 / 6 + 2 * 8.0  # noqa: E731
        assert cost(n) <= 0.8 * t < cost(n + 1)
    assert GC.size_epochs(150, 11, 6, 0) == 0


def test_sizing_inputs_prefer_the_multi_process_rate():
    tp = {"concurrency": {"model": "vgg19", "processes": 6, "aggregate_img_s": 50000.0},
          "train": [{"model": "vgg19", "masked99_img_s": 20000.0}],
          "prune": [{"model": "vgg19", "method": "force", "wall_s": 2.0}, {"model": "vgg19", "method": "grasp", "wall_s": 3.0},
                    {"model": "resnet50", "method": "force", "wall_s": 9.0}]}
    rate, basis, prune_s = GC.sizing_inputs(tp)
    assert rate == 50000.0 and "6 VGG19 processes" in basis and prune_s == 3.0 + GC.SIZING["prune_overhead_s"]
    del tp["concurrency"]
    assert GC.sizing_inputs(tp)[0] == 20000.0
    assert GC.sizing_inputs({}) == (GC.SIZING["fallback_img_s"], GC.sizing_inputs({})[1], GC.SIZING["fallback_prune_s"])


def test_lr_drop_epochs_follow_train_lr_at():
    from prunebench.library.train import TrainConfig

    train = preset("force-check")["train"]
    for epochs in (1, 5, 12, 40):
        cfg = TrainConfig.from_dict({**train, "epochs": epochs})
        lrs = [cfg.lr_at(e) for e in range(epochs)]  # 0-based epochs
        drops = [e + 1 for e in range(1, epochs) if lrs[e] < lrs[e - 1]]
        assert [d for d in GC.lr_drop_epochs(train, epochs) if 1 < d <= epochs] == drops
    assert GC.lr_drop_epochs(train, 40) == [18, 30]


def test_issue19_table_from_the_h200_baseline():
    """The committed H200 baseline (before issue 19) read as the issue's table: what it missed, and what it did
    not measure (the variants ran separately: benchmarks/results/NVIDIA_H200-step-variants.json)."""
    tp = json.loads((REPO / "benchmarks" / "results" / "h200-2026-12-04" / "NVIDIA_H200.json").read_text())
    tp["variants"] = json.loads((REPO / "benchmarks" / "results" / "h200-2026-12-04" / "NVIDIA_H200-step-variants.json").read_text())["variants"]
    tp["prune"] = json.loads((REPO / "benchmarks" / "results" / "h200-2026-12-04" / "NVIDIA_H200-prune.json").read_text())["prune"]
    rows = {r["row"]: r for r in GC.issue19_table(tp)}
    ours = rows["ours vs the reference-style loop (VGG19 / ResNet-20)"]
    assert ours["measured"] == pytest.approx({"vgg19": 0.909, "resnet20": 0.748}, abs=1e-3) and ours["met"] is False
    assert rows["one CIFAR-10 epoch of VGG19, batch 128 (s)"]["measured"] == pytest.approx(4.709, abs=1e-3)
    assert rows["masked (99 %) / dense, per model"]["measured"]["resnet20"] == pytest.approx(0.886, abs=1e-3)
    force = rows["FORCE 60 steps / 60 SNIP scorings, VGG19; FORCE / Iter SNIP"]
    assert force["measured"]["force_over_60_snip"] == pytest.approx(1.217, abs=1e-3) and force["met"] is False
    assert rows["SynFlow, 100 iterations, VGG19 (s)"]["measured"] == pytest.approx(36.57, abs=0.01)
    assert rows["torch.compile step variants"]["met"] is False  # TypeError: VGG does not support len()
    assert rows["k training processes sharing the GPU: best k"]["met"] is None  # one k only, no best_k then
    assert rows["graph path vs plain steps: same bytes"]["met"] is None
    assert all(r["met"] is None for r in GC.issue19_table({}))


def test_compiled_models_work_in_the_step_variants():
    """`fwd or model` asked torch.compile's wrapper for len() ("VGG does not support len()"): every model runs."""
    import gpu_throughput as GT
    import torch

    for name in ("vgg19", "resnet20", "lenet300"):
        ds = "mnist" if name == "lenet300" else "cifar10"
        model, opt, enf, is_cuda, cl = GT.setup_model(name, ds, "cpu", 0.9)
        step = GT.make_step(model, opt, enf, is_cuda, cl, fwd=torch.compile(model, backend="eager"))
        shape = (2, 1, 28, 28) if ds == "mnist" else (2, 3, 32, 32)
        loss = step(torch.randn(shape), torch.tensor([1, 2]))
        assert torch.isfinite(loss)


def test_probe_files_are_written_atomically(tmp_path):
    import gpu_throughput as GT

    target = tmp_path / "probe0.go0"
    GT.write_atomic(target, json.dumps({"start": 1.5, "duration": 2.0, "processes": 3}))
    assert json.loads(target.read_text())["processes"] == 3 and [p.name for p in tmp_path.iterdir()] == ["probe0.go0"]
    GT.write_atomic(target, "stop")
    assert target.read_text() == "stop" and len(list(tmp_path.iterdir())) == 1


# -- the presets as the script runs them -------------------------------------------------------------------------

def test_shrunk_presets_stay_valid_and_keep_their_shape():
    from prunebench.pipeline import grid as G
    smoke = GC.shrink_smoke(preset("smoke"))
    G.validate(smoke)
    methods = {c["method"] for c in G.expand(smoke)}
    assert {"dense", "snip", "force", "fggp"} <= methods
    force = GC.shrink_force(preset("force-check"))
    G.validate(force)
    full, tiny = G.expand(G.validate(preset("force-check"))), G.expand(force)
    assert [(c["arm"], c["sparsity"]) for c in tiny] == [(c["arm"], c["sparsity"]) for c in full]
    assert len(full) == 11


def test_pipeline_runs_the_dags_commands():
    """The per-cell arguments are the rules' (prunebench.pipeline.workflow), the DAG's order is kept."""
    cfg = preset("force-check")
    pipe = GP.Pipeline(cfg, "/nowhere")
    jobs = {j.name: j for j in pipe.cell_jobs() + pipe.report_jobs()}
    steps = [n.split("/")[0] for n in jobs]
    assert steps.count("data") == 1 and steps.count("init") == 1 and steps.count("prune") == 10
    assert steps.count("train") == 11 and steps.count("figures") == 3 and "report/report" in jobs
    force = jobs["prune/cifar10_vgg19_kaiming_normal_force_s0.99_seed0"]
    argv = [str(a) for a in force.argv]
    assert argv[:3] == ["prune", "--method", "force"]
    opts = json.loads(argv[argv.index("--options") + 1])
    assert opts["steps"] == 60 and opts["loss"] == "neg_logit" and opts["count_rule"] == "official"
    assert argv[argv.index("--val-fraction") + 1] == "0.1" and "--cell-hash" in argv
    train = jobs["train/cifar10_vgg19_kaiming_normal_force_s0.99_seed0"]
    assert "prune/cifar10_vgg19_kaiming_normal_force_s0.99_seed0" in train.deps
    tcfg = json.loads(train.argv[train.argv.index("--config") + 1])
    assert tcfg["epochs"] == cfg["train"]["epochs"] and tcfg["seed"] == 10000
    data = jobs["data/cifar10"].argv
    assert "--no-download" in data and data[data.index("--source") + 1] == cfg["data_sources"]["cifar10"]
    assert set(jobs["aggregate/aggregate"].deps) == {n for n in jobs if n.startswith("train/")}
    # the other steps' command lines are the rules' too (rules/run.smk, rules/report.smk)
    pre = cfg["preset"]
    assert data == W.data_argv(cfg, "cifar10", P.data_manifest(pre, "cifar10")) + ["--no-download"]
    c = pipe.cells[0]
    init = next(j for n, j in jobs.items() if n.startswith("init/"))
    assert init.argv == W.init_argv(c["model"], c["dataset"], c["init"], c["seeds"]["init"], P.init_path(c), pipe.threads)
    assert jobs["aggregate/aggregate"].argv == W.aggregate_argv(P.table_path(pre, P.RESOLVED_CONFIG))
    assert all(jobs[f"figures/{n}"].argv == W.figure_argv(pre, n) for n in cfg["figures"])
    claims = [str(REPO / "paper" / "reference" / f"{c}.yaml") for c in cfg["claims"]]
    assert jobs["report/report"].argv == W.report_argv(pre, claims, P.report_path(pre))


def test_restricted_config_keeps_only_finished_arms():
    pipe = GP.Pipeline(preset("force-check"), "/nowhere")
    done = [c for c in pipe.cells if not (c["arm"] == "snip" and c["sparsity"] == 0.995)]
    cfg = pipe.restricted_config(done)
    assert cfg["grid"][0]["arms"] == ["dense", "random", "grasp", "iter_snip", "force"]
    assert pipe.restricted_config([])["grid"] == []


def test_pool_runs_dependencies_in_order_and_stops_at_the_deadline(tmp_path):
    import time

    pool = GP.Pool(tmp_path, 2)
    try:
        jobs = [GP.Job("methods/a", ["methods"], "logs/a.log"),
                GP.Job("methods/b", ["methods", "--nonsense"], "logs/b.log", deps=("methods/a",)),
                GP.Job("methods/c", ["methods"], "logs/c.log", deps=("methods/b",))]
        r = pool.run(jobs, time.time() + 120, log=lambda s: None)
        assert r.done == ["methods/a"] and list(r.failed) == ["methods/b"] and "upstream" in r.skipped["methods/c"]
        assert (tmp_path / "logs" / "a.log").read_text().strip()
    finally:
        pool.close()
    pool = GP.Pool(tmp_path, 1)
    r = pool.run([GP.Job("methods/late", ["methods"], "logs/late.log")], time.time() - 1, log=lambda s: None)
    assert r.deadline_hit and "not started" in r.skipped["methods/late"]
    pool.kill()


# -- comparison and report text ----------------------------------------------------------------------------------

def test_compare_trees_says_what_differs(tmp_path):
    import torch
    from safetensors.torch import save_file

    for run, acc, w in (("a", 0.5, 1.0), ("b", 0.5, 1.0)):
        d = tmp_path / run / "mnist" / "m" / "k" / "snip" / "s0.9" / "seed0"
        d.mkdir(parents=True)
        (d / "metrics.json").write_text(json.dumps({"final_acc": acc}))
        save_file({"w": torch.full((4,), w)}, str(d / "mask.safetensors"))
        (d / "timing.json").write_text(json.dumps({"train_s": 1.0 if run == "a" else 2.0}))
    # one metric and one tensor differ in b
    d = tmp_path / "b" / "mnist" / "m" / "k" / "snip" / "s0.9" / "seed0"
    (d / "metrics.json").write_text(json.dumps({"final_acc": 0.25}))
    save_file({"w": torch.tensor([1.0, 1.0, 3.0, 1.0])}, str(d / "mask.safetensors"))
    (tmp_path / "b" / "extra.csv").write_text("x\n")
    cats = GC.compare_trees(tmp_path / "a", tmp_path / "b")
    assert cats["metrics"]["identical"] == 0 and "final_acc: 0.5 vs 0.25" in cats["metrics"]["different"][0]["detail"][0]
    assert "1/4 elements differ, max |diff| 2" in cats["masks"]["different"][0]["detail"][0]
    assert len(cats["timings"]["different"]) == 1 and cats["tables"]["only_in_b"] == ["extra.csv"]
    doc = {"device": "x", "date": "d", "versions": {"torch": "t"}, "mode": "gpu", "config_device": "cuda",
           "categories": cats, "verdict": {"masks": "NOT identical", "metrics": "NOT identical"}, "runs": {},
           "warnings": ["UserWarning: foo does not have a deterministic implementation"]}
    md = GC.determinism_markdown(doc)
    assert "| masks | 0 | 1 | 0 | expected identical |" in md and "foo does not have a deterministic" in md


def test_shortening_note_goes_under_the_preset_line(tmp_path):
    info = {"mode": "gpu", "device": "NVIDIA H200", "torch": "2.11.0", "date": "2026-12-01", "epochs": 12,
            "preset_epochs": 40, "lr": 0.1, "lr_drops": GC.lr_drop_epochs(preset("force-check")["train"], 12),
            "batch": 128, "data": "CIFAR-10 (JPEG q75 copy)", "missing": [], "collapse_added": True, "budget_min": 7.5}
    note = GC.shortening_note(info)
    assert "**12 training epochs**" in note and "×0.1 from epochs 6, 10" in note and "allow_collapse" in note
    report = tmp_path / "r.md"
    report.write_text("# Replication report\n\nPreset: **force-check** · results: `x`\n\nGenerated by ...\n")
    GC.add_note(report, note)
    lines = report.read_text().splitlines()
    assert lines[2].startswith("Preset:") and lines[4] == "> **Shortened run.**" and lines[-1] == "Generated by ..."


# -- the whole script, CPU smoke mode ------------------------------------------------------------------------------

@pytest.mark.e2e
def test_gpu_check_cpu_smoke_runs_every_part(data_sources, tmp_path):
    work, out = tmp_path / "work", tmp_path / "out"
    env = {**os.environ, "PYTHON": sys.executable}
    env.pop("PRUNEBENCH_DATA_SOURCES", None)
    proc = subprocess.run(["bash", str(REPO / "benchmarks" / "gpu_check.sh"), "--cpu-smoke", "--data-sources",
                           str(data_sources), "--work", str(work), "--out", str(out)],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    summary = json.loads((out / "summary.json").read_text())
    parts = summary["parts"]
    assert {p: r["status"] for p, r in parts.items()} == {"throughput": "done", "determinism": "done", "force": "done"}
    # part 1: every item measured; only the CUDA-only ones skipped
    tp = json.loads((work / "throughput.json").read_text())
    assert tp["mode"] == "tiny" and not tp["errors"]
    assert all(s["reason"].startswith("needs CUDA") for s in tp["skipped"])
    assert tp["train"] and tp["flops"] and tp["reference"] and tp["concurrency"]["aggregate_img_s"] > 0
    assert [r["processes"] for r in tp["concurrency"]["rounds"]] == [1, 2] and tp["concurrency"]["best_k"] in (1, 2)
    assert {r["method"] for r in tp["prune"]} >= {"random", "magnitude", "snip", "grasp", "synflow", "iter_snip",
                                                  "force", "prospr", "force2_over_2x_snip", "force_over_iter_snip"}
    assert [v["variant"] for v in tp["variants"]] == ["eager", "loop_plain", "loop_graph", "compile"]
    assert all("img_s" in v for v in tp["variants"]) and tp["variants"][-1]["backend"] == "eager"
    assert tp["graph_bytes"]["all_identical"] and tp["graph_bytes"]["graph_mode"] == "graph-emulated"
    assert {r["row"] for r in parts["throughput"]["table"]} == {r["row"] for r in GC.issue19_table({})}
    # part 2: two runs on the CPU are byte-identical except for timings and logs
    det = json.loads((work / "determinism.json").read_text())
    assert det["verdict"]["masks"].startswith("bit-identical") and det["verdict"]["metrics"].startswith("bit-identical")
    for name, c in det["categories"].items():
        assert not c["only_in_a"] and not c["only_in_b"]
        if name not in ("timings", "logs"):
            assert not c["different"], (name, c["different"])
    # part 3: every cell, the three figures and the report with the shortening stated
    assert parts["force"]["epochs"] == 1 and not parts["force"]["missing_cells"]
    report = (work / "force" / "paper" / "replication-force-check.md").read_text()
    assert "CPU smoke run of benchmarks/gpu_check.py: not a result" in report and "## force" in report
    with tarfile.open(out / "gpu-check.tar.gz") as tf:
        names = set(tf.getnames())
    assert {"benchmarks/results/cpu-smoke.json", "benchmarks/results/cpu-smoke-determinism.md",
            "benchmarks/results/cpu-smoke-gpu-check.json", "paper/replication-force-check.md",
            "results/force-check/summary.csv", "figures/force-check/force_acc_vs_sparsity.png",
            "figures/force-check/force_walltime.pdf", "figures/force-check/force_layer_density.png"} <= names
    assert (out / "gpu_check.log").read_text().count("SUMMARY") == 1
    print(f"gpu_check --cpu-smoke: {summary['elapsed_s']} s")
