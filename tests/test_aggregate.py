"""The aggregator: one row per cell, cells differing only by init kept apart, diverged seeds visible."""
import json
from pathlib import Path

import pandas as pd
import yaml

from prunebench.pipeline.aggregate import aggregate
from prunebench.pipeline.grid import cell_dir, expand, load_config
from prunebench.library.artifacts import write_json
from prunebench.report.tables import SUMMARY

CONFIG = {
    "preset": "agg", "description": "aggregator test", "data_dir": "data", "device": "cpu",
    "train": {"epochs": 1, "batch_size": 10, "lr": 0.1},
    "arms": {"snip": {"method": "snip"}},
    "grid": [{"dataset": "mnist", "model": "mlp-3-tanh", "inits": ["xavier_normal", "orthogonal"],
              "sparsities": [0.9], "seeds": [0, 1], "arms": ["snip"], "jsv": True,
              "pruning": {"jsv_examples": 7}}],
}
ACC = {"xavier_normal": 0.5, "orthogonal": 0.9}


def _fake_run(tmp_path: Path, diverge=()):
    cfg_path = tmp_path / "agg.yaml"
    cfg_path.write_text(yaml.safe_dump(CONFIG))
    root = tmp_path / "results"
    for cell in expand(load_config(cfg_path)):
        d = Path(cell_dir(cell, str(root)))
        d.mkdir(parents=True)
        failed = (cell["init"], cell["seed"]) in diverge
        write_json(d / "metrics.json", {
            "final_acc": None if failed else ACC[cell["init"]] + 0.01 * cell["seed"], "best_acc": 0.5,
            "final_loss": None if failed else 1.0, "density": 0.1, "epochs": 1, "collapsed": 0,
            "history": [{"epoch": 1, "step": 10, "lr": 0.1, "train_loss": 1.0, "test_acc": 0.5, "density": 0.1}],
            **({"diverged": {"epoch": 1, "step": 5, "lr": 0.1}} if failed else {})})
    return cfg_path, root


def test_metrics_json_keeps_cells_that_differ_only_by_init(tmp_path):
    cfg, root = _fake_run(tmp_path)
    aggregate(cfg, root)
    means = json.loads((root / "agg" / "metrics.json").read_text())["final_acc_mean"]
    assert means == {"mnist/mlp-3-tanh/orthogonal/snip/s0.9": 0.905,
                     "mnist/mlp-3-tanh/xavier_normal/snip/s0.9": 0.505}


def test_diverged_seeds_are_a_column_and_counted(tmp_path):
    cfg, root = _fake_run(tmp_path, diverge={("orthogonal", 1)})
    aggregate(cfg, root)
    s = pd.read_csv(root / "agg" / "summary.csv")
    assert list(s.columns) == list(SUMMARY)
    bad = s[s["diverged"]]
    assert len(bad) == 1 and bad.iloc[0]["init"] == "orthogonal" and bad.iloc[0]["seed"] == 1
    assert bad["final_acc"].isna().all()
    assert set(s["jsv_examples"]) == {7}
    m = json.loads((root / "agg" / "metrics.json").read_text())
    assert m["final_acc_mean"]["mnist/mlp-3-tanh/orthogonal/snip/s0.9"] == 0.9  # the seed that did not diverge
    assert m["diverged"] == {"mnist/mlp-3-tanh/orthogonal/snip/s0.9": 1}


def test_every_seed_diverged_is_no_mean(tmp_path):
    cfg, root = _fake_run(tmp_path, diverge={("orthogonal", 0), ("orthogonal", 1)})
    aggregate(cfg, root)
    m = json.loads((root / "agg" / "metrics.json").read_text())
    assert m["final_acc_mean"]["mnist/mlp-3-tanh/orthogonal/snip/s0.9"] is None
    assert m["diverged"]["mnist/mlp-3-tanh/orthogonal/snip/s0.9"] == 2


def test_arms_are_columns_and_sweep_cells_need_no_training(tmp_path):
    """What the grid knows of a cell is written as columns (issue 18 s3): the ablated arm, the resolved options;
    a `trained: false` cell (prune + JSV only) is aggregated from its prune.json; run.json has the commits."""
    cfg = {**CONFIG, "arms": {"snip": {"method": "snip"}, "snip_shuffle": {"of": "snip", "ablation": "shuffle"}},
           "grid": [dict(CONFIG["grid"][0], arms=["snip", "snip_shuffle"], inits=["orthogonal"], seeds=[0]),
                    dict(CONFIG["grid"][0], arms=["snip"], inits=["orthogonal"], seeds=[0], sparsities=[0.5],
                         trained=False)]}
    cfg_path = tmp_path / "agg.yaml"
    cfg_path.write_text(yaml.safe_dump(cfg))
    root = tmp_path / "results"
    jsv = {"mean": 0.5, "std": 0.1, "min": 0.1, "max": 0.9, "n": 70}          # 7 examples x 10 singular values
    for cell in expand(load_config(cfg_path)):
        d = Path(cell_dir(cell, str(root)))
        d.mkdir(parents=True)
        write_json(d / "prune.json", {"jsv_init": jsv, "jsv_prune": jsv, "density": 0.5, "cell_hash": "h"})
        if cell.get("trained", True):
            write_json(d / "metrics.json", {"final_acc": 0.9, "best_acc": 0.91, "density": 0.1, "epochs": 1,
                                            "history": [{"epoch": 1, "step": 10, "test_acc": 0.9}]})
            write_json(d / "manifest.json", {"git_commit": "abc123", "device": "cpu"})
    aggregate(cfg_path, root, command="snakemake figures")
    s = pd.read_csv(root / "agg" / "summary.csv")
    shuffle = s[s["arm"] == "snip_shuffle"].iloc[0]
    assert (shuffle["ablation"], shuffle["ablation_of"], shuffle["method"]) == ("shuffle", "snip", "snip")
    options = json.loads(shuffle["options"])
    assert options["shuffle"] is True and "bn_mode" in options          # every option, defaults filled in
    sweep = s[s["sparsity"] == 0.5].iloc[0]
    assert not sweep["trained"] and pd.isna(sweep["final_acc"]) and sweep["jsv_prune_examples"] == 7
    assert bool(s[s["sparsity"] == 0.9]["trained"].all())
    run = json.loads((root / "agg" / "run.json").read_text())
    assert run["commits"] == ["abc123"] and run["cells_without_commit"] == 1 and run["command"] == "snakemake figures"
    assert {r["method"] for r in run["paper_vs_code"]} == {"snip"}
    m = json.loads((root / "agg" / "metrics.json").read_text())
    assert list(m["final_acc_mean"]) == ["mnist/mlp-3-tanh/orthogonal/snip/s0.9",
                                         "mnist/mlp-3-tanh/orthogonal/snip_shuffle/s0.9"]
