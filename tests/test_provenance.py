"""Provenance: what a pipeline step runs and what makes it rerun (prunebench.pipeline.provenance)."""
import copy
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import REPO
from prunebench.library.methods import (AT_INIT_KIND, DURING_KIND, METHODS, MethodInfo, at_init, during, names, register,
                                        unregister)
from prunebench.pipeline import provenance
from prunebench.pipeline.grid import expand
from prunebench.pipeline.paths import report_figure_path, report_path
from prunebench.pipeline.provenance import (COMMON, SETTLED_EPOCH, STEPS, figure_key, init_key, module_file,
                                            output_ranks, prune_key, settle_times, step_code, step_modules,
                                            step_sources, tables_key, train_key)

SMOKE = yaml.safe_load((REPO / "config" / "smoke.yaml").read_text())


def _file(module: str) -> str:
    return str(module_file(module).relative_to(REPO))


# ------------------------------------------------------------------------------------------------------
# The declarations against what the steps really import.

def _trace_config(sources: Path) -> dict:
    """The smoke preset, every method of the table in it (an arm with its defaults where the preset has
    none), one training epoch of a few steps: every kind of job of the pipeline, in seconds."""
    cfg = copy.deepcopy(SMOKE)
    cfg["preset"] = "trace"
    cfg["train"].update(epochs=1, steps_per_epoch=4)
    have = {a["method"] for a in cfg["arms"].values() if "method" in a}
    missing = [m for m in names() if m not in have]
    cfg["arms"].update({m: {"method": m} for m in missing})
    cfg["grid"][0]["arms"] += missing
    cfg["data_sources"] = {"mnist": str(sources / "mnist")}
    return cfg


@pytest.fixture(scope="module")
def traced(tmp_path_factory, data_sources):
    """Every job of the trace preset, run by tests/step_trace.py: step, method, status, modules imported."""
    tmp = tmp_path_factory.mktemp("trace")
    (tmp / "preset.yaml").write_text(yaml.safe_dump(_trace_config(data_sources)))
    (tmp / "work").mkdir()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    r = subprocess.run([sys.executable, str(REPO / "tests" / "step_trace.py"), tmp / "preset.yaml", tmp / "work",
                        tmp / "jobs.json"], capture_output=True, text=True, env=env, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    jobs = json.loads((tmp / "jobs.json").read_text())
    failed = [j for j in jobs if j["status"] != 0]
    assert not failed, (failed[0]["argv"], r.stdout[-2000:], r.stderr[-3000:])
    return jobs


def test_the_trace_runs_every_step_and_every_method(traced):
    assert {j["step"] for j in traced} == set(STEPS)
    ran = {(j["step"], j["method"]) for j in traced}
    assert all(("prune", m) in ran for m in at_init()) and all(("train", m) in ran for m in during())
    assert ("train", "dense") in ran and ("isometry", "snip") in ran


def test_every_job_imports_only_what_its_step_declares(traced):
    """Fails on any project module a job imports that its step does not declare (provenance.STEPS)."""
    missing = {}
    for j in traced:
        extra = set(j["modules"]) - set(step_modules(j["step"], j["method"]))
        for m in extra:
            missing.setdefault((j["step"], m), []).append(j["method"])
    assert not missing, "undeclared (declare them in prunebench.pipeline.provenance.STEPS): " + "; ".join(
        f"{step} imports {m} (methods: {sorted({str(x) for x in ms})})" for (step, m), ms in sorted(missing.items()))


def _matches(entry: str, module: str) -> bool:
    return module == entry or (entry.endswith(".*") and (module == entry[:-2] or module.startswith(entry[:-1])))


def test_every_declaration_is_used(traced):
    """A declared module no job of its step imports is stale (it would rerun jobs for nothing)."""
    stale = []
    for name, step in STEPS.items():
        jobs = [j for j in traced if j["step"] == name]
        used = set().union(*(j["modules"] for j in jobs))
        stale += [f"{name}: {e}" for e in COMMON + step.modules if not any(_matches(e, m) for m in used)]
        kind_jobs = [j for j in jobs if provenance.job_method(name, j["method"])]
        kind_used = set().union(*(j["modules"] for j in kind_jobs)) if kind_jobs else set()
        stale += [f"{name} ({step.method_kind}): {e}" for e in step.method_modules if e not in kind_used]
        for j in kind_jobs:  # the method's own module: the documented exception, loaded through the table
            assert METHODS[j["method"]].module in j["modules"], (name, j["method"])
        if step.every_method:
            assert used & {m.module for m in METHODS.values() if m.kind != "dense"}, name
    assert not stale, "declared but imported by no job: " + "; ".join(stale)


# ------------------------------------------------------------------------------------------------------
# Fine-grained: what a change reruns.

def test_declared_modules_exist():
    for step in STEPS:
        for m in set(step_modules(step)) | {m for meth in METHODS for m in step_modules(step, meth)}:
            assert module_file(m).is_file(), (step, m)


def test_each_method_job_hashes_its_own_module_only():
    modules = {m: _file(METHODS[m].module) for m in METHODS}
    for m in at_init():
        files = step_sources("prune", m)
        assert modules[m] in files
        others = {modules[o] for o in at_init() + during() if modules[o] != modules[m]}
        assert not others & set(files), (m, others & set(files))
    for m in during():
        files = step_sources("train", m)
        assert modules[m] in files
        assert not {modules[o] for o in at_init() + during() if modules[o] != modules[m]} & set(files)
    dense = step_sources("train", "dense")
    assert "src/prunebench/library/train.py" in dense and "src/prunebench/library/runtime.py" in dense
    assert not any("/pruners/" in f for f in step_sources("train", "snip"))           # a fixed mask: no pruner code
    assert "src/prunebench/cli/report.py" not in step_sources("prune", "snip")         # another command's code
    for step in ("data", "init", "prune", "isometry", "train"):                        # no report code upstream
        assert not any("/report/" in f for m in [None, *METHODS] for f in step_sources(step, m)), step


@pytest.fixture
def edited(monkeypatch, tmp_path):
    """edit(module): the provenance now reads `module` with one more line (a copy; the checkout is untouched)."""
    real, copies = provenance.module_file, {}

    def module_file(module):
        return copies.get(module) or real(module)

    def edit(module):
        f = tmp_path / module
        f.write_bytes(real(module).read_bytes() + b"\n# edited\n")
        copies[module] = f
        step_code.cache_clear()

    monkeypatch.setattr(provenance, "module_file", module_file)
    step_code.cache_clear()
    yield edit
    step_code.cache_clear()


def test_an_edit_reruns_exactly_the_jobs_that_run_the_edited_code(edited):
    cells = expand(SMOKE)
    before = {(c["arm"], c["sparsity"], c["model"]): (prune_key(SMOKE, c) if c["method"] in at_init() else None,
                                                      train_key(SMOKE, c)) for c in cells}
    figures = {n: figure_key(SMOKE, n) for n in SMOKE["figures"]}
    edited(METHODS["snip"].module)  # SNIP's file: the SNIP cells (and their ablations, the _ai arm) only
    for c in cells:
        k = (c["arm"], c["sparsity"], c["model"])
        pk = prune_key(SMOKE, c) if c["method"] in at_init() else None
        assert (pk != before[k][0]) == (c["method"] == "snip"), k
        assert (train_key(SMOKE, c) != before[k][1]) == (c["method"] == "snip"), k
    edited("prunebench.report.figures.look")  # a figure module: no training, no pruning reruns
    prunes = {k: prune_key(SMOKE, c) for c in cells if c["method"] in at_init()
              for k in [(c["arm"], c["sparsity"], c["model"])]}
    trains = {(c["arm"], c["sparsity"], c["model"]): train_key(SMOKE, c) for c in cells}
    tables = tables_key(SMOKE)
    edited("prunebench.report.figures.look")  # edited again: only the figures' keys move
    assert all(prune_key(SMOKE, c) == prunes[(c["arm"], c["sparsity"], c["model"])] for c in cells
               if c["method"] in at_init())
    assert all(train_key(SMOKE, c) == trains[(c["arm"], c["sparsity"], c["model"])] for c in cells)
    assert tables_key(SMOKE) == tables
    assert all(figure_key(SMOKE, n) != figures[n] for n in SMOKE["figures"])


def test_a_method_module_outside_the_package_is_hashed_from_its_file(monkeypatch, tmp_path):
    """A plugin method (its module not in prunebench) joins the provenance like any other: its file."""
    plugin = tmp_path / "toy_plugin_gradnorm.py"
    plugin.write_text("# a toy pruner module outside the package\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    row = MethodInfo("toy_gradnorm", AT_INIT_KIND, "toy_plugin_gradnorm", "-", "GradNorm", "#000000", "o")
    register(row)
    for f in (step_modules, step_sources, step_code):
        f.cache_clear()
    try:
        assert str(plugin) in step_sources("prune", "toy_gradnorm")
        code = step_code("prune", "toy_gradnorm")
        assert code != step_code("prune", "snip") and step_code("train", "toy_gradnorm") == step_code("train")
        plugin.write_text("# a toy pruner module outside the package, edited\n")
        step_code.cache_clear()
        assert step_code("prune", "toy_gradnorm") != code
    finally:
        unregister("toy_gradnorm")
        for f in (step_modules, step_sources, step_code):
            f.cache_clear()


def test_an_unknown_module_is_a_one_line_error():
    from prunebench.library.errors import PrunebenchError

    with pytest.raises(PrunebenchError, match="no source file for module 'prunebench.nowhere'"):
        module_file("prunebench.nowhere")
    for name in ("no_such_plugin_module", "no_such_plugin_package.pruner"):
        with pytest.raises(PrunebenchError, match=f"no source file for module '{name}'"):
            module_file(name)


def test_provenance_keys_follow_the_dag():
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


# ------------------------------------------------------------------------------------------------------
# File times (§6: only what `dvc pull` restores).

def test_settle_times_orders_outputs_along_the_dag(tmp_path):
    ranks = output_ranks(SMOKE)
    some = [p for p, r in ranks.items() if r in (1, 3, 5, 7)][:4] + [p for p, r in ranks.items() if r == 5][:1]
    for p in some:
        (tmp_path / p).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / p).write_text("x")
    assert settle_times(SMOKE, base=tmp_path) == len(set(some))
    for p in some:
        assert os.stat(tmp_path / p).st_mtime == SETTLED_EPOCH + ranks[p]


def test_settle_times_never_touches_git_tracked_outputs(tmp_path):
    """The report and its figure copies are git-tracked (dvc.yaml: cache false): their times are git's."""
    tracked = [report_path("smoke")] + [report_figure_path("smoke", n) for n in SMOKE["figures"]]
    for p in tracked:
        (tmp_path / p).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / p).write_text("x")
        os.utime(tmp_path / p, (1.7e9, 1.7e9))
    assert settle_times(SMOKE, base=tmp_path) == 0
    assert all(os.stat(tmp_path / p).st_mtime == 1.7e9 for p in tracked)


def test_settled_outputs_are_what_dvc_restores():
    """Every settled path lies under an output the preset's DVC stage caches (restored by `dvc pull`), none
    under an output it leaves to git."""
    # quick: a stage whose report and PNGs are git-tracked (smoke's are cached by DVC, git ignores them)
    stage = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]["quick"]
    outs = [(next(iter(o)), o[next(iter(o))]) for o in stage["outs"]]
    cached = [p for p, opt in outs if opt.get("cache", True)]
    git = [p for p, opt in outs if not opt.get("cache", True)]
    assert cached and git
    quick = yaml.safe_load((REPO / "config" / "quick.yaml").read_text())
    for path in output_ranks(quick):
        assert any(path == c or path.startswith(c + "/") for c in cached), path
        assert not any(path == g or path.startswith(g + "/") for g in git), path
