"""End to end: the smoke preset through snakemake in a temp copy of the repo.

Checks every expected file, one summary row per cell, that a second run does nothing, that a changed
pruning option reruns only the affected cells, that two runs from scratch give byte-identical outputs,
the DVC round trip: push -> fresh clone -> pull -> `snakemake figures` runs no prune/train job and
gives byte-identical figures, `prunebench verify` (passes, reproduces cells, catches a tampered metrics file
and a flipped bit in a mask), and crash safety: SIGKILL during training, aggregation and figure drawing,
then the same command, gives the same bytes as an uninterrupted run.
"""
import csv
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from conftest import REPO
from prunebench.report.replication import without_compute

pytestmark = pytest.mark.e2e
BIN = Path(sys.executable).parent
PRESET = "smoke"
# Timings are the only non-deterministic numbers; they live in timing files and the wall-time figure.
NONDETERMINISTIC = {"timing.csv", "timing.json", "prune_timing.json", "manifest.json", "force_walltime.pdf",
                    "force_walltime.png", "config.yaml", "timing.csv.sha256", "run.json"}  # run.json: commits, command
DATA_SOURCES = {}  # "path": the synthetic data sources (conftest `data_sources`), set by `synthetic_data` below


@pytest.fixture(scope="module", autouse=True)
def synthetic_data(data_sources):
    DATA_SOURCES["path"] = data_sources


def env():
    e = dict(os.environ, PRUNEBENCH_DATA_SOURCES=str(DATA_SOURCES["path"]), DVC_NO_ANALYTICS="1",
             PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}", GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@t",
             GIT_COMMITTER_NAME="t", GIT_COMMITTER_EMAIL="t@t")
    e.pop("PYTHONPATH", None)
    return e


def sh(args, cwd, check=True):
    r = subprocess.run(args, cwd=cwd, env=env(), capture_output=True, text=True)
    if check and r.returncode != 0:
        raise AssertionError(f"{' '.join(map(str, args))} failed ({r.returncode}):\n{r.stdout[-4000:]}\n{r.stderr[-4000:]}")
    return r


def copy_repo(dest: Path) -> Path:
    files = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                           capture_output=True, text=True, check=True).stdout.split("\0")
    for f in filter(None, files):
        src = REPO / f
        if src.is_file():
            (dest / f).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / f)
    sh(["git", "init", "-q"], dest)
    sh(["git", "add", "-A"], dest)
    sh(["git", "commit", "-qm", "snapshot"], dest)
    return dest


def snakemake(cwd, *args, check=True):
    return sh([BIN / "snakemake", "--cores", "2", *args, "--configfile", f"config/{PRESET}.yaml"], cwd, check)


def job_counts(out: str) -> dict:
    """Rule -> job count from snakemake's 'Job stats' table (empty when nothing is to be done)."""
    counts, table = {}, False
    for line in out.splitlines():
        if line.startswith("Job stats"):
            table = True
            continue
        m = re.match(r"^(\w+)\s+(\d+)$", line.strip())
        if table and m and m.group(1) != "total":
            counts[m.group(1)] = int(m.group(2))
    return counts


def outputs(root: Path) -> dict:
    files = {}
    for top in (f"results/{PRESET}", f"figures/{PRESET}"):
        for p in sorted((root / top).rglob("*")):
            if p.is_file() and "logs" not in p.parts and p.name not in NONDETERMINISTIC \
                    and p.name != "checkpoint.safetensors":
                files[str(p.relative_to(root))] = p.read_bytes()
    rep = root / f"paper/replication-{PRESET}.md"
    files[str(rep.relative_to(root))] = without_compute(rep.read_bytes())  # measured times differ per run
    return files


@pytest.fixture(scope="module")
def first_run(tmp_path_factory):
    repo = copy_repo(tmp_path_factory.mktemp("run1"))
    r = snakemake(repo, "figures")
    return repo, r


def test_every_expected_file_and_one_row_per_cell(first_run):
    repo, _ = first_run
    from prunebench.pipeline.grid import cell_dir, expand, load_config

    cfg = load_config(repo / "config" / f"{PRESET}.yaml")
    cells = expand(cfg)
    for c in cells:
        d = repo / cell_dir(c)
        assert (d / "metrics.json").exists(), d
        if c["method"] not in ("dense", "fggp", "gmp", "mfgn_annealed"):
            assert (d / "mask.safetensors").exists() and (d / "prune.json").exists()
        if c["isometry"]:
            assert (d / "weights_ai.safetensors").exists()
    with open(repo / f"results/{PRESET}/summary.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == len(cells)
    for name in cfg["figures"]:
        for ext in ("pdf", "png"):
            assert (repo / f"figures/{PRESET}/{name}.{ext}").stat().st_size > 0
    assert (repo / f"paper/replication-{PRESET}.md").exists()
    assert (repo / f"results/{PRESET}/logs/train").is_dir()


def test_second_run_does_nothing(first_run):
    repo, _ = first_run
    r = snakemake(repo, "figures", "-n")
    assert job_counts(r.stdout) == {}, r.stdout[-3000:]


def test_changed_pruning_option_reruns_only_affected_cells(first_run, tmp_path):
    repo, _ = first_run
    cfg_path = repo / "config" / f"{PRESET}.yaml"
    original = cfg_path.read_text()
    cfg = yaml.safe_load(original)
    cfg["arms"]["force"]["options"]["steps"] = 2
    cfg_path.write_text(yaml.safe_dump(cfg))
    try:
        counts = job_counts(snakemake(repo, "figures", "-n").stdout)
    finally:
        cfg_path.write_text(original)
    n_force = sum(1 for b in cfg["grid"] if "force" in b["arms"] for _ in b["sparsities"] for _ in b["seeds"])
    assert counts.get("prune") == n_force and counts.get("train") == n_force, counts
    assert "data" not in counts and "init" not in counts and "isometry" not in counts


def test_two_runs_from_scratch_are_byte_identical(first_run, tmp_path_factory):
    repo1, _ = first_run
    repo2 = copy_repo(tmp_path_factory.mktemp("run2"))
    snakemake(repo2, "figures")
    a, b = outputs(repo1), outputs(repo2)
    assert sorted(a) == sorted(b)
    differ = [k for k in a if a[k] != b[k]]
    assert differ == [], differ


def test_dvc_push_clone_pull_runs_no_training(first_run, tmp_path_factory):
    repo, _ = first_run
    remote = tmp_path_factory.mktemp("remote")
    dvc = str(BIN / "dvc")
    sh([dvc, "remote", "add", "-d", "store", str(remote)], repo)
    sh([dvc, "commit", "-f", PRESET], repo)
    sh([dvc, "push", "-q", PRESET], repo)  # this stage only: dvc.lock may hold other presets, not cached here
    sh(["git", "add", "-A"], repo)
    sh(["git", "commit", "-qm", "results"], repo)
    clone = tmp_path_factory.mktemp("clone") / "repo"
    sh(["git", "clone", "-q", str(repo), str(clone)], repo.parent)
    sh([dvc, "pull", "-q", PRESET], clone)
    r = snakemake(clone, "figures")
    assert "Nothing to be done" in r.stdout + r.stderr, (r.stdout + r.stderr)[-3000:]
    # figures regenerated from the pulled tables are byte-identical to the pushed ones
    snakemake(clone, "figures", "--forcerun", "figure", "report")
    for p in sorted((repo / f"figures/{PRESET}").iterdir()):
        assert (clone / f"figures/{PRESET}" / p.name).read_bytes() == p.read_bytes(), p.name
    assert (clone / f"paper/replication-{PRESET}.md").read_bytes() == (repo / f"paper/replication-{PRESET}.md").read_bytes()


@pytest.mark.parametrize("preset", ["force", "spp", "prospr", "fggp", "force-check"])
def test_paper_presets_pass_a_dry_run(first_run, preset):
    repo, _ = first_run
    r = sh([BIN / "snakemake", "-n", "figures", "--configfile", f"config/{preset}.yaml"], repo)
    counts = job_counts(r.stdout)
    assert counts.get("train", 0) > 0 and counts.get("figure", 0) > 0, r.stdout[-2000:]


# ------------------------------------------------------------------------------------------------------
# prunebench verify on the smoke preset (issue 12): passes on honest results, catches tampering.

def verify(repo, *args):
    """`prunebench verify` with the copy's own code (as its Snakefile uses), not the editable install's."""
    return subprocess.run([BIN / "prunebench", "verify", "--preset", PRESET, *args], cwd=repo, capture_output=True,
                          text=True, env={**env(), "PYTHONPATH": str(repo / "src")})


def test_verify_passes_and_reproduces_cells_byte_for_byte(first_run):
    repo, _ = first_run
    r = verify(repo, "--reproduce", "3", "--seed", "7")
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    out = r.stdout + r.stderr
    assert "with --seed 7" in out and "reproduced: 3 of 3 cell(s) identical" in out and "result:     OK" in out
    assert "0 output(s) would rerun" in out


@pytest.mark.parametrize("tamper", ["metrics", "mask"])
def test_verify_catches_tampering(first_run, tmp_path, tamper):
    repo, _ = first_run
    copy = tmp_path / "repo"
    shutil.copytree(repo, copy, symlinks=True, ignore=shutil.ignore_patterns(".dvc", ".git"))
    cell = sorted((copy / f"results/{PRESET}").rglob("mask.safetensors"))[0].parent
    rel = cell.relative_to(copy)
    if tamper == "metrics":
        m = json.loads((cell / "metrics.json").read_text())
        m["final_acc"] = round((m["final_acc"] or 0) + 0.01, 6)
        (cell / "metrics.json").write_text(json.dumps(m, sort_keys=True, indent=2) + "\n")
        needle = str(rel).split(f"results/{PRESET}/", 1)[1].rsplit("/s", 1)[0]  # the cell, named in the table check
    else:
        data = bytearray((cell / "mask.safetensors").read_bytes())
        data[-1] ^= 0x01
        (cell / "mask.safetensors").write_bytes(bytes(data))
        needle = f"{rel}/mask.safetensors"
    r = verify(copy)
    out = r.stdout + r.stderr
    assert r.returncode == 1, out[-3000:]
    assert "MISMATCH" in out and needle in out, out[-3000:]


# ------------------------------------------------------------------------------------------------------
# Crash safety (issue 12): SIGKILL the whole pipeline mid-step, run the same command again, same bytes.

def _kill_when(repo: Path, pattern: str, delay: float = 0.0, timeout: float = 600) -> bool:
    """Start `snakemake figures`, SIGKILL its whole process group as soon as a file matching `pattern`
    appears (plus `delay` seconds); return whether the pipeline was killed before it finished."""
    proc = subprocess.Popen([BIN / "snakemake", "--cores", "2", "figures", "--configfile", f"config/{PRESET}.yaml"],
                            cwd=repo, env=env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    t0 = time.monotonic()
    while proc.poll() is None and time.monotonic() - t0 < timeout:
        if list(repo.glob(pattern)):
            time.sleep(delay)
            break
        time.sleep(0.01)
    killed = proc.poll() is None
    if killed:
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    return killed


def _same(got: dict, want: dict, when: str) -> None:
    differ = sorted(k for k in set(got) | set(want) if got.get(k) != want.get(k))
    assert not differ, f"after a SIGKILL during {when} and a rerun, {len(differ)} output(s) differ: {differ[:10]}"


def test_sigkill_during_train_aggregate_and_figures_then_the_same_command(first_run, tmp_path_factory):
    reference = outputs(first_run[0])
    repo = copy_repo(tmp_path_factory.mktemp("crash"))
    res = repo / f"results/{PRESET}"
    report = repo / f"paper/replication-{PRESET}.md"
    # 1. during training: killed once a train job has run for a moment (its log exists)
    assert _kill_when(repo, f"results/{PRESET}/logs/train/*.log", delay=1.0)
    assert not report.exists() and list(res.rglob("mask.safetensors"))
    snakemake(repo, "figures")  # the same command: stale locks and incomplete jobs are handled
    _same(outputs(repo), reference, "train")
    # 2. during aggregation, 3. during figure drawing: remove those outputs (and logs) and kill again
    for step, outs in (("aggregate", [res / n for n in ("summary.csv", "layers.csv", "history.csv")]),
                       ("figures", sorted((repo / f"figures/{PRESET}").glob("*.p*")))):  # log folders
        for p in outs + [report]:
            p.unlink()
        shutil.rmtree(res / "logs" / step)
        assert _kill_when(repo, f"results/{PRESET}/logs/{step}/*.log")
        assert not report.exists()
        snakemake(repo, "figures")
        _same(outputs(repo), reference, step)
    r = snakemake(repo, "figures", "-n")
    assert job_counts(r.stdout) == {}
