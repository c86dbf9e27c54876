"""Presets: schema validation with one-line errors, cell expansion, readable paths, pinned config hashes."""
import copy

import pytest
import yaml

from conftest import REPO
from prunebench.library.errors import PrunebenchError
from prunebench.pipeline.grid import cell_hash, expand, load_config, validate
from prunebench.pipeline.paths import cell_dir

SMOKE = yaml.safe_load((REPO / "config" / "smoke.yaml").read_text())


def test_smoke_cells_and_paths():
    cells = expand(SMOKE)
    dirs = [cell_dir(c) for c in cells]
    assert len(dirs) == len(set(dirs))
    assert "results/smoke/mnist/lenet300/kaiming_normal/snip/s0.9/seed0" in dirs
    assert "results/smoke/mnist/lenet300/kaiming_normal/dense/s0/seed0" in dirs   # dense: one cell per seed
    force = next(c for c in cells if c["arm"] == "force")
    assert force["options"] == {"steps": 3} and force["seeds"] == {"init": 0, "data": 10000, "prune": 20000, "isometry": 30000, "reinit": 40000}


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
    (lambda c: c["arms"]["force"].update(options={"stepz": 3}), "stepz"),          # method options, typed
    (lambda c: c["arms"]["snip"].update(options={"loss": "mse"}), "mse"),
    (lambda c: c["arms"]["fggp"]["options"].update(update_interval=0), "update_interval"),
    (lambda c: c["arms"]["fggp"]["options"].update(initial_density=0.05), "initial_density"),  # below 1 - 0.99
    (lambda c: c["arms"]["dense"].update(options={"x": 1}), "takes no options"),
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


def test_every_method_of_the_table_is_accepted_and_nothing_else():
    from prunebench.library.methods import METHODS

    for name in METHODS:
        cfg = copy.deepcopy(SMOKE)
        cfg["arms"]["x"] = {"method": name}
        cfg["grid"][0]["arms"].append("x")
        validate(cfg)


def test_init_files_are_named_by_their_own_seed_whatever_the_offset(monkeypatch):
    """The init rule passes the seed in the file name to `prunebench init`: that must be the cell's init seed
    for any offset (it used to work only because the init offset was 0)."""
    import re

    from prunebench.pipeline import grid
    from prunebench.pipeline.paths import init_path

    monkeypatch.setitem(grid.SEED_OFFSETS, "init", 7)
    for c in expand(SMOKE):
        seed_in_name = int(re.search(r"seed(\d+)\.safetensors$", init_path(c)).group(1))
        assert seed_in_name == c["seeds"]["init"] == c["seed"] + 7


def test_ablation_arms_inherit_their_base_arm():
    cfg = copy.deepcopy(SMOKE)
    cfg["arms"].update(force_shuffle={"of": "force", "ablation": "shuffle"}, force_invert={"of": "force", "ablation": "invert"},
                       force_reinit={"of": "force", "ablation": "reinit"})
    cfg["grid"][0]["arms"] += ["force_shuffle", "force_invert", "force_reinit"]
    cells = {c["arm"]: c for c in expand(validate(cfg)) if c["sparsity"] == 0.9}
    assert cells["force_shuffle"]["method"] == "force" and cells["force_shuffle"]["options"] == {"steps": 3, "shuffle": True}
    assert cells["force_invert"]["options"] == {"steps": 3, "invert": True}
    assert cells["force_reinit"]["options"] == {"steps": 3} and cells["force_reinit"]["reinit"]
    from prunebench.pipeline.paths import init_path, train_init_path

    assert train_init_path(cells["force_reinit"]) != init_path(cells["force_reinit"])
    assert train_init_path(cells["force"]) == init_path(cells["force"])
    for bad, needle in [({"of": "nope", "ablation": "shuffle"}, "not an arm"), ({"of": "force", "ablation": "x"}, "ablation"),
                        ({"of": "fggp", "ablation": "shuffle"}, "at initialization"),
                        ({"method": "snip", "of": "force"}, "exactly one"), ({"of": "snip_ai", "ablation": "reinit"}, "isometry")]:
        c2 = copy.deepcopy(SMOKE)
        c2["arms"]["x"] = bad
        with pytest.raises(PrunebenchError, match=needle):
            validate(c2)


def test_preset_isometry_lr_has_the_command_line_range():
    """A preset's isometry lr is bounded as `prunebench isometry --lr` is: a bad value fails at validation,
    not when the isometry step runs."""
    for lr in (0.0, 11.0):
        c2 = copy.deepcopy(SMOKE)
        c2["arms"]["x"] = {"method": "snip", "isometry": {"steps": 10, "lr": lr}}
        with pytest.raises(PrunebenchError, match="lr"):
            validate(c2)
    c2 = copy.deepcopy(SMOKE)
    c2["arms"]["x"] = {"method": "snip", "isometry": {"steps": 10, "lr": 10.0}}
    validate(c2)
