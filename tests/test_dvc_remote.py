"""Publishing results to a DVC remote and pulling them on another clone (docs/dvc-remote.md), through the make
targets a lab uses, with a local-folder remote: `make remote`, `make figures`, `make publish`, then on a fresh
clone `make pull` and `make figures`, which trains nothing and leaves the same bytes. dvc.yaml has one stage
per preset. The make calls never (re)build a venv: `make -o <stamp>` with this test's own interpreter."""
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from checkout import checkout_copy
from conftest import REPO

BIN = Path(sys.executable).parent
TINY = """\
# A tiny stand-in for the CI preset (same name, so that the dvc.yaml stage `smoke` versions it).
preset: smoke
description: two cells, one figure, the report (tests/test_dvc_remote.py)
device: cpu
threads: 1
train: {epochs: 1, batch_size: 50, lr: 0.1, momentum: 0.9, schedule: constant, steps_per_epoch: 4}
pruning: {batch_size: 50}
arms:
  snip: {method: snip}
  force: {method: force, options: {steps: 2}}
grid:
  - {dataset: mnist, model: lenet300, sparsities: [0.9], seeds: [0], arms: [snip, force]}
figures: [force_acc_vs_sparsity]
claims: [force]
"""


def test_dvc_yaml_has_one_stage_per_preset_with_its_outputs():
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    presets = sorted(p.stem for p in (REPO / "config").glob("*.yaml"))
    assert sorted(stages) == presets
    for name, st in stages.items():
        assert f"--configfile config/{name}.yaml" in st["cmd"] and st["cmd"].split()[0] == "snakemake"
        assert f"config/{name}.yaml" in st["deps"] and "src/prunebench" in st["deps"]
        outs = {next(iter(o)): o[next(iter(o))] for o in st["outs"]}
        assert set(outs) == {f"results/{name}", f"figures/{name}", f"paper/replication-{name}.md",
                             f"paper/figures/{name}", f"paper/data/{name}"}
        # the report, its PNGs and its per-seed data are git-tracked (cache: false) exactly where .gitignore
        # does not ignore them
        for out, probe in ((f"paper/replication-{name}.md", f"paper/replication-{name}.md"),
                           (f"paper/figures/{name}", f"paper/figures/{name}/x.png"),
                           (f"paper/data/{name}", f"paper/data/{name}/summary.csv")):
            ignored = subprocess.run(["git", "check-ignore", "-q", "--no-index", probe], cwd=REPO).returncode == 0
            assert outs[out].get("cache", True) == ignored, (name, out)


def env(data_sources):
    e = dict(os.environ, PRUNEBENCH_DATA_SOURCES=str(data_sources), DVC_NO_ANALYTICS="1",
             GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@t", GIT_COMMITTER_NAME="t", GIT_COMMITTER_EMAIL="t@t")
    e.pop("PYTHONPATH", None)  # the checkout's Snakefile puts its own src/ first
    return e


def sh(args, cwd, e, check=True):
    r = subprocess.run([str(a) for a in args], cwd=cwd, env=e, capture_output=True, text=True)
    if check and r.returncode != 0:
        raise AssertionError(f"{' '.join(map(str, args))} failed ({r.returncode}):\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}")
    return r


def make(cwd, e, *args, check=True):
    """A make target of the checkout, with this interpreter's venv and never a venv (re)build (-o stamp)."""
    stamp = cwd / ".no-venv-build"
    stamp.touch()
    return sh(["make", "-s", "-o", stamp, f"STAMP={stamp}", f"BIN={BIN}", "CORES=2", *args], cwd, e, check)


@pytest.mark.e2e
def test_publish_then_pull_on_another_clone_trains_nothing(tmp_path, data_sources):
    e = env(data_sources)
    repo = checkout_copy(tmp_path / "lab")
    (repo / "config" / "smoke.yaml").write_text(TINY)
    (repo / ".gitignore").write_text((repo / ".gitignore").read_text() + "/.no-venv-build\n")
    sh(["git", "init", "-q"], repo, e)
    sh(["git", "add", "-A"], repo, e)
    sh(["git", "commit", "-qm", "checkout"], repo, e)

    # no remote yet: publishing is refused in one line, before any DVC work
    r = make(repo, e, "publish", "PRESET=smoke", check=False)
    assert r.returncode != 0 and "no DVC remote configured; add one first: make remote URL=" in r.stderr
    remote = tmp_path / "shared-folder" / "prunebench"
    r = make(repo, e, "remote", f"URL={remote}")
    assert "DVC remote 'store'" in r.stdout and str(remote) in (repo / ".dvc" / "config").read_text()

    r = make(repo, e, "figures", "PRESET=smoke")
    assert "prunebench smoke: finished in" in r.stderr and "2 run, 0 reused, 0 failed" in r.stderr
    r = make(repo, e, "publish", "PRESET=smoke")
    assert "now: git commit" in r.stdout
    staged = sh(["git", "diff", "--cached", "--name-only"], repo, e).stdout.split()
    assert "dvc.lock" in staged and not any(p.startswith("paper/") for p in staged)  # smoke's report: DVC only
    sh([BIN / "dvc", "remote", "modify", "--local", "store", "url", remote], repo, e)  # where credentials go
    untracked = sh(["git", "status", "--porcelain", "--untracked-files=all"], repo, e).stdout.split("\n")
    # DVC's cache, temp files and the local config (credentials) stay out of git; only the remote's address is new
    assert [l for l in untracked if l and not l.startswith(("M ", "A "))] == [" M .dvc/config"], untracked
    sh(["git", "add", ".dvc/config"], repo, e)
    sh(["git", "commit", "-qm", "results: smoke"], repo, e)
    assert any(remote.rglob("*")), "nothing was pushed"

    clone = tmp_path / "reviewer"
    sh(["git", "clone", "-q", repo, clone], tmp_path, e)
    assert not (clone / "results").exists()
    r = make(clone, e, "pull", "PRESET=smoke")
    assert "Pulled preset smoke" in r.stdout
    r = make(clone, e, "figures", "PRESET=smoke")
    assert "Nothing to be done" in r.stderr, r.stderr[-3000:]
    for rel in ("results/smoke/summary.csv", "figures/smoke/force_acc_vs_sparsity.pdf",
                "paper/replication-smoke.md", "paper/figures/smoke/force_acc_vs_sparsity.png"):
        assert (clone / rel).read_bytes() == (repo / rel).read_bytes(), rel
