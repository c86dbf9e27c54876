"""The Snakemake workflow (lint-clean, its config) and prunebench.pipeline.workflow: each step's command line, the
default preset under --config overrides."""
import json
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

from conftest import REPO
from prunebench.library.methods import at_init, during
from prunebench.pipeline import workflow
from prunebench.pipeline.grid import expand, load_config
from prunebench.pipeline.provenance import STEPS
from prunebench.pipeline.workflow import argv_builders, prune_argv, resolve_config, train_argv

SNAKEMAKE = Path(sys.executable).parent / "snakemake"
QUICK = REPO / "config" / "quick.yaml"


def test_snakemake_lint_is_clean():
    r = subprocess.run([str(SNAKEMAKE), "--lint", "--configfile", "config/smoke.yaml"], cwd=REPO,
                       capture_output=True, text=True)
    out = r.stdout + r.stderr
    assert "Lints for" not in out, out[-3000:]
    assert r.returncode == 0, out[-3000:]


# ------------------------------------------------------------------------------------------------------
# Command lines.

def test_one_command_line_builder_per_step_and_the_rules_use_them():
    rules = "".join((REPO / "rules" / f).read_text() for f in ("common.smk", "run.smk", "report.smk"))
    for step in STEPS:
        assert callable(getattr(workflow, f"{step}_argv")), step
        assert f"{step}_argv(" in rules, step
    assert "exec(" not in Path(workflow.__file__).read_text()


def test_cell_command_lines():
    cfg = load_config(REPO / "config" / "smoke.yaml")
    cells = expand(cfg)
    snip = next(c for c in cells if c["method"] == "snip")
    argv = prune_argv(cfg, snip, init="i", data="d", mask="m", report="r", timing="t", device="cpu", threads=2)
    assert argv[:3] == ["prune", "--method", "snip"] and argv[argv.index("--threads") + 1] == 2
    assert argv[argv.index("--out") + 1] == "m" and argv[argv.index("--device") + 1] == "cpu"
    fggp = next(c for c in cells if c["method"] in during())
    argv = train_argv(cfg, fggp, init="i", data="d", device="cpu", threads=1)
    assert argv[argv.index("--during") + 1] == fggp["method"] and "--mask" not in argv
    argv = train_argv(cfg, snip, init="i", data="d", device="cpu", threads=1)
    assert argv[argv.index("--mask") + 1].endswith("/snip/s0.9/seed0/mask.safetensors") and "--during" not in argv
    assert json.loads(argv[argv.index("--config") + 1])["seed"] == snip["seeds"]["data"]


def test_argv_builders_call_the_same_functions():
    """The form `verify --reproduce` and benchmarks/gpu_pipeline.py call: the same command lines."""
    cfg = load_config(REPO / "config" / "spp-mnist.yaml")
    fn = argv_builders(cfg, "cuda")
    files = SimpleNamespace(init="i", data="d", mask="m", report="r", timing="t", weights="w")
    for c in expand(cfg)[:40]:
        if c["method"] in at_init():
            assert fn["prune_argv"](c, files, files, 3) == prune_argv(
                cfg, c, init="i", data="d", mask="m", report="r", timing="t", device="cuda", threads=3)
        if c["isometry"]:
            assert fn["isometry_argv"](c, files, files, 3) == workflow.isometry_argv(
                cfg, c, init="i", mask="m", data="d", weights="w", report="r", device="cuda", threads=3)
        assert fn["train_argv"](c, files, 3) == train_argv(cfg, c, init="i", data="d", device="cuda", threads=3)
    assert set(fn) == set(workflow.FUNCTIONS)


# ------------------------------------------------------------------------------------------------------
# The config: without --configfile, the quick preset under the --config overrides.

def test_resolve_config_keeps_overrides_over_the_default_preset():
    quick = load_config(QUICK)
    cfg = resolve_config({"threads": 3, "device": "cpu", "train": {"epochs": 1}}, QUICK)
    assert cfg["preset"] == "quick" and cfg["threads"] == 3 and cfg["device"] == "cpu"
    assert cfg["train"] == {**quick["train"], "epochs": 1}          # nested: one key overridden, the rest kept
    assert resolve_config({}, QUICK) == quick
    given = {"preset": "x", "threads": 2}
    assert resolve_config(given, QUICK) is given                    # a --configfile: taken as it is


def test_snakefile_keeps_config_overrides_without_a_configfile(tmp_path):
    """`snakemake --config threads=3` (no --configfile) runs the quick preset with 3 threads per job."""
    r = subprocess.run([str(SNAKEMAKE), "-n", "results", "-s", str(REPO / "Snakefile"), "-d", str(tmp_path),
                        "--cores", "4", "--config", "threads=3"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, (r.stdout + r.stderr)[-3000:]
    assert "rule prune:" in r.stdout and "threads: 3" in r.stdout, r.stdout[-3000:]
