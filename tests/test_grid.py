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


# ------------------------------------------------------------------------------------------------------
# Issue 17 §3, §4: the whole preset, before any job (the README's "Bad input" table runs one file per
# defect through `prunebench grid`; these check the classes behind them).

def _bad(text_or_cfg, tmp_path, needle):
    p = tmp_path / "p.yaml"
    p.write_text(text_or_cfg if isinstance(text_or_cfg, str) else yaml.safe_dump(text_or_cfg))
    with pytest.raises(PrunebenchError) as e:
        load_config(p)
    assert needle in str(e.value) and "\n" not in str(e.value), str(e.value)


def test_alias_bombs_and_self_references_are_refused_quickly(tmp_path):
    import time

    head = yaml.safe_dump({k: v for k, v in SMOKE.items() if k != "arms"})
    arms = yaml.safe_dump({"arms": SMOKE["arms"]})
    maps = ["m0: &m0 {a: 0, b: 0, c: 0, d: 0, e: 0, f: 0, g: 0, h: 0, i: 0, j: 0}"] + [
        f"m{i}: &m{i} {{{', '.join(f'k{j}: *m{i - 1}' for j in range(10))}}}" for i in range(1, 12)]
    t0 = time.perf_counter()
    _bad(head + arms + "  unused: {method: snip, options: {" + ", ".join(maps) + "}}\n", tmp_path, "expands to more than")
    _bad(head + arms + "  unused: {method: snip, options: {x: &x [1, *x]}}\n", tmp_path, "nested more than")  # itself
    deep = "[" * 40 + "]" * 40
    _bad(head + arms + f"  unused: {{method: snip, options: {{x: {deep}}}}}\n", tmp_path, "nested more than")
    assert time.perf_counter() - t0 < 10


def test_every_number_is_finite_wherever_it_is(tmp_path):
    for where in (lambda c: c["arms"]["force"]["options"].update(steps=float("nan")),
                  lambda c: c["grid"][0]["sparsities"].append(float("-inf")),
                  lambda c: c["arms"]["snip_ai"]["isometry"].update(lr=float("inf")),
                  lambda c: c.update(val_fraction=float("nan"))):
        cfg = copy.deepcopy(SMOKE)
        where(cfg)
        with pytest.raises(PrunebenchError, match="is not a finite number"):
            validate(cfg)


def test_integers_must_be_written_as_integers():
    for mutate in (lambda c: c["train"].update(epochs=2.0), lambda c: c["grid"][0].update(seeds=[0.0]),
                   lambda c: c.update(threads=1.0)):
        cfg = copy.deepcopy(SMOKE)
        mutate(cfg)
        with pytest.raises(PrunebenchError, match="is not of type 'integer'"):
            validate(cfg)


def test_names_come_from_their_tables():
    """The schema's enums are filled from the name tables, never written as lists of names."""
    from prunebench.library.init import SCHEMES
    from prunebench.library.methods import ABLATIONS
    from prunebench.pipeline.grid import schema

    text = (REPO / "src/prunebench/pipeline/schemas/preset.yaml").read_text()
    assert "kaiming_normal" not in text and "shuffle, invert" not in text and "cifar100" not in text
    s = schema()
    assert s["properties"]["init"]["enum"] == list(SCHEMES)
    assert s["properties"]["arms"]["additionalProperties"]["properties"]["ablation"]["enum"] == list(ABLATIONS)


def test_the_snakefile_refuses_a_bad_preset_before_any_job(tmp_path):
    """The Snakefile validates the preset first: nothing is written (no data cache, no init, no .snakemake)."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    snakemake = Path(sys.executable).parent / "snakemake"
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    cases = {"figure": (lambda c: c["figures"].append("fig9"), "unknown figure 'fig9'"),
             "nan": (lambda c: c["train"].update(lr=float("nan")), "nan is not a finite number"),
             "unused": (lambda c: c["arms"].update(unused={"method": "force", "options": {"stepz": 1}}), "'stepz'")}
    for name, (mutate, needle) in cases.items():
        cfg = copy.deepcopy(SMOKE)
        mutate(cfg)
        work = tmp_path / name
        work.mkdir()
        (work / "p.yaml").write_text(yaml.safe_dump(cfg))
        r = subprocess.run([snakemake, "--cores", "1", "figures", "--snakefile", REPO / "Snakefile", "--directory",
                            work, "--configfile", work / "p.yaml"], capture_output=True, text=True, env=env, cwd=work)
        assert r.returncode != 0 and needle in r.stdout + r.stderr, (r.stdout + r.stderr)[-2000:]
        assert sorted(p.name for p in work.iterdir() if p.name != ".snakemake") == ["p.yaml"]  # no data, no results
        assert {p.name for p in (work / ".snakemake").iterdir()} <= {"log"}                    # Snakemake's own log
