"""Presets: schema validation with one-line errors, cell expansion, readable paths, pinned config hashes."""
import copy

import pytest
import yaml

from conftest import REPO
from prunebench.errors import PrunebenchError
from prunebench.grid import cell_dir, cell_hash, expand, load_config, module_closure, validate

SMOKE = yaml.safe_load((REPO / "config" / "smoke.yaml").read_text())


def test_smoke_cells_and_paths():
    cells = expand(SMOKE)
    dirs = [cell_dir(c) for c in cells]
    assert len(dirs) == len(set(dirs))
    assert "results/smoke/mnist/lenet300/kaiming_normal/snip/s0.9/seed0" in dirs
    assert "results/smoke/mnist/lenet300/kaiming_normal/dense/s0/seed0" in dirs   # dense: one cell per seed
    force = next(c for c in cells if c["arm"] == "force")
    assert force["options"] == {"steps": 3} and force["seeds"] == {"init": 0, "data": 10000, "prune": 20000, "isometry": 30000}


def test_cell_hash_is_pinned():
    # A regression pin: changing how a cell is described changes every result path's recorded hash.
    cell = {"preset": "p", "dataset": "mnist", "model": "lenet300", "init": "kaiming_normal", "arm": "snip",
            "method": "snip", "sparsity": 0.9, "seed": 0, "options": {}, "isometry": None, "jsv": False,
            "train": {"epochs": 1}, "pruning": {}, "seeds": {"init": 0}}
    assert cell_hash(cell) == "522fbce3cddfe2c1"
    assert cell_hash({**cell, "options": {"a": 1}}) != cell_hash(cell)
    assert cell_hash(dict(reversed(list(cell.items())))) == cell_hash(cell)   # canonical JSON


@pytest.mark.parametrize("mutate, needle", [
    (lambda c: c.update(epochz=3), "epochz"),
    (lambda c: c["train"].update(lrr=0.1), "lrr"),
    (lambda c: c["arms"].update(bad={"method": "snipp"}), "snipp"),
    (lambda c: c["grid"][0]["arms"].append("nonexistent_arm"), "nonexistent_arm"),
    (lambda c: c["grid"][0].update(sparsities=[1.0]), "sparsities"),
    (lambda c: c["grid"][0].update(dataset="imagenet"), "imagenet"),
])
def test_bad_config_gives_one_line_error_naming_it(mutate, needle):
    cfg = copy.deepcopy(SMOKE)
    mutate(cfg)
    with pytest.raises(PrunebenchError) as e:
        validate(cfg)
    assert needle in str(e.value) and "\n" not in str(e.value)


def test_overlapping_blocks_rejected():
    cfg = copy.deepcopy(SMOKE)
    cfg["grid"].append(copy.deepcopy(cfg["grid"][0]))
    with pytest.raises(PrunebenchError, match="share the result path"):
        validate(cfg)


def test_missing_and_broken_config_files(tmp_path):
    with pytest.raises(PrunebenchError, match="missing config"):
        load_config(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("preset: [unclosed\n")
    with pytest.raises(PrunebenchError, match="not valid YAML"):
        load_config(bad)


def test_module_closure_follows_imports():
    files = module_closure("prunebench.train")
    assert "src/prunebench/train.py" in files and "src/prunebench/masks.py" in files
    assert "src/prunebench/figures.py" not in files


def test_provenance_keys_follow_the_dag():
    from prunebench.grid import init_key, prune_key, tables_key, train_key

    cells = expand(SMOKE)
    force = next(c for c in cells if c["arm"] == "force")
    snip = next(c for c in cells if c["arm"] == "snip" and c["sparsity"] == force["sparsity"])
    changed = copy.deepcopy(SMOKE)
    changed["arms"]["force"]["options"]["steps"] = 2
    force2 = next(c for c in expand(changed) if c["arm"] == "force" and c["sparsity"] == force["sparsity"])
    snip2 = next(c for c in expand(changed) if c["arm"] == "snip" and c["sparsity"] == force["sparsity"])
    assert init_key(SMOKE, force) == init_key(changed, force2)            # upstream: unchanged
    assert prune_key(SMOKE, force) != prune_key(changed, force2)          # the changed option
    assert train_key(SMOKE, force) != train_key(changed, force2)          # and what depends on it
    assert prune_key(SMOKE, snip) == prune_key(changed, snip2)            # other cells: unchanged
    assert train_key(SMOKE, snip) == train_key(changed, snip2)
    assert tables_key(SMOKE) != tables_key(changed)


def test_step_sources_are_exactly_what_a_step_runs():
    from prunebench.grid import METHOD_MODULES, step_sources
    from prunebench.pruners.registry import METHODS

    for name, m in METHODS.items():
        assert METHOD_MODULES[name] == m.prune_mask.__module__
    snip = step_sources("prune", "snip")
    assert "src/prunebench/pruners/snip.py" in snip and "src/prunebench/pruners/grasp.py" not in snip
    train = step_sources("train", "snip")
    assert "src/prunebench/train.py" in train and "src/prunebench/figures.py" not in train
    assert "src/prunebench/pruners/gradual.py" in step_sources("train", "fggp")
    assert "src/prunebench/train.py" not in step_sources("figure")


def test_settle_times_orders_outputs_along_the_dag(tmp_path):
    import os

    from prunebench.grid import SETTLED_EPOCH, output_ranks, settle_times

    ranks = output_ranks(SMOKE)
    some = [p for p, r in ranks.items() if r in (1, 3, 5, 8)][:4] + [p for p, r in ranks.items() if r == 5][:1]
    for p in some:
        (tmp_path / p).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / p).write_text("x")
    assert settle_times(SMOKE, base=tmp_path) == len(set(some))
    for p in some:
        assert os.stat(tmp_path / p).st_mtime == SETTLED_EPOCH + ranks[p]
