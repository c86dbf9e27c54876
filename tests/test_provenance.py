"""Provenance: what a pipeline step runs and what makes it rerun (prunebench.pipeline.provenance)."""
import copy
import os
import subprocess
import sys

import pytest
import yaml

from conftest import REPO
from prunebench.pipeline.grid import expand
from prunebench.library.methods import METHODS, at_init, during
from prunebench.pipeline.provenance import (SETTLED_EPOCH, STEP_MODULES, init_key, module_closure, output_ranks, prune_key,
                                   settle_times, step_sources, tables_key, train_key)

SMOKE = yaml.safe_load((REPO / "config" / "smoke.yaml").read_text())


def test_module_closure_follows_imports_and_package_inits():
    files = module_closure("prunebench.library.train")
    assert "src/prunebench/library/train.py" in files and "src/prunebench/library/masks.py" in files
    assert "src/prunebench/__init__.py" in files          # the package __init__ runs on import
    assert not any("figures" in f for f in files)
    during_files = module_closure("prunebench.library.pruners.fggp")
    assert "src/prunebench/library/pruners/__init__.py" in during_files
    assert "src/prunebench/library/pruners/registry.py" not in during_files   # the package __init__ is lazy


def test_each_method_job_hashes_its_own_module_only():
    modules = {m: METHODS[m].module.replace(".", "/") for m in METHODS}
    for m in at_init():
        files = step_sources("prune", m)
        own = f"src/{modules[m]}.py"
        assert own in files
        others = {f"src/{modules[o]}.py" for o in at_init() + during() if modules[o] != modules[m]}
        assert not others & set(files), (m, others & set(files))
    for m in during():
        files = step_sources("train", m)
        assert f"src/{modules[m]}.py" in files
        assert not {f"src/{modules[o]}.py" for o in at_init()} & set(files)
    dense = step_sources("train", "dense")
    assert "src/prunebench/library/train.py" in dense and "src/prunebench/library/runtime.py" in dense   # determinism is code run
    assert not any("/pruners/" in f for f in step_sources("train", "snip"))           # a fixed mask: no pruner code
    assert "src/prunebench/cli/report.py" not in step_sources("prune", "snip")         # another command's code
    assert "src/prunebench/library/train.py" not in step_sources("figure")


_TRACE = """
import atexit, json, runpy, sys
OUT = sys.argv[1]
def dump():
    mods = sorted({m.__file__ for n, m in list(sys.modules.items())
                   if n.startswith("prunebench") and getattr(m, "__file__", None)})
    open(OUT, "w").write(json.dumps(mods))
atexit.register(dump)
sys.argv = ["prunebench"] + sys.argv[2:]
runpy.run_module("prunebench", run_name="__main__")
"""


def _run_traced(tmp_path, *args):
    out = tmp_path / "modules.json"
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    r = subprocess.run([sys.executable, "-c", _TRACE, str(out), *map(str, args)], capture_output=True, text=True,
                       cwd=tmp_path, env=env)
    assert r.returncode == 0, r.stderr
    import json

    src = REPO / "src"
    return {os.path.relpath(f, REPO) for f in json.loads(out.read_text()) if f.startswith(str(src))}


@pytest.mark.parametrize("method", ["magnitude", "random", "synflow"])
def test_a_real_prune_job_imports_only_declared_sources(tmp_path, method):
    """Runs real steps (init, then a data-free prune) and checks every prunebench file they import is declared."""
    init = tmp_path / "init.safetensors"
    assert _run_traced(tmp_path, "init", "--model", "lenet300", "--dataset", "mnist", "--out", init) <= set(step_sources("init"))
    opts = '{"iterations": 2}' if method == "synflow" else ""
    ran = _run_traced(tmp_path, "prune", "--method", method, "--sparsity", "0.5", "--init", init, "--options", opts,
                      "--out", tmp_path / "m.safetensors", "--report", tmp_path / "r.json")
    declared = set(step_sources("prune", method))
    assert ran <= declared, ran - declared
    assert f"src/{METHODS[method].module.replace('.', '/')}.py" in ran


def test_step_modules_cover_every_rule():
    rules = "".join((REPO / "rules" / f).read_text() for f in ("common.smk", "run.smk", "report.smk"))
    for step in STEP_MODULES:
        assert f"{step}_argv(" in rules
        assert (REPO / "src" / "prunebench" / "cli" / f"{step}.py").exists()


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


def test_settle_times_orders_outputs_along_the_dag(tmp_path):
    import os

    ranks = output_ranks(SMOKE)
    some = [p for p, r in ranks.items() if r in (1, 3, 5, 8)][:4] + [p for p, r in ranks.items() if r == 5][:1]
    for p in some:
        (tmp_path / p).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / p).write_text("x")
    assert settle_times(SMOKE, base=tmp_path) == len(set(some))
    for p in some:
        assert os.stat(tmp_path / p).st_mtime == SETTLED_EPOCH + ranks[p]
