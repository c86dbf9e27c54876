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
