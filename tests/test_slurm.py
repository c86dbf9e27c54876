"""The pipeline on a real (single-node) SLURM cluster through snakemake-executor-plugin-slurm.

The cluster (munged + slurmctld + slurmd, Debian's slurm-wlm) is started and stopped by these tests
(tests/slurm_cluster.py); they need root and the binaries (.ci/system-deps installs them in CI) and skip
with the reason otherwise. The main test runs the smoke preset once through `--profile profiles/slurm`
on the cluster and once locally (`--cores 2`) in two copies of the repository, and checks that every
deterministic output (masks, metrics, tables, figures, report) is byte-identical.

The cluster has no accounting database, so `sacct` cannot answer; the tests pass
`--slurm-status-command squeue` (the cluster keeps finished jobs visible to squeue for MinJobAge=3600 s),
and a short first status check so the test is not dominated by the plugin's 40 s default.
"""

from __future__ import annotations

import fnmatch
import importlib.util
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from prunebench.report.replication import without_compute  # noqa: E402
from slurm_cluster import SlurmCluster, slurm_version, unavailable_reason  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
PROFILE = REPO / "profiles" / "slurm"
PRESET = "smoke"
# `figures` also draws every figure and writes the report (the DAG's whole shape).
TARGET = os.environ.get("PRUNEBENCH_SLURM_TEST_TARGET", "figures")
# Status polling for the tests: squeue (no accounting here), first check after 2 s.
STATUS_ARGS = ["--slurm-status-command", "squeue", "--slurm-init-seconds-before-status-checks", "2"]
RUN_TIMEOUT_S = 1200

# Outputs that legitimately differ between two runs of the same config: wall-clock timings (and the
# figure drawn from them), logs, and the run record (run.json: the command that ran the pipeline). Everything
# else (masks, metrics, manifests, tables, figures, the report) must be byte-identical.
VARIABLE = (
    "*/logs/*",
    "*/run.json",
    "*timing.json",
    "*/timing.csv",
    "*/timing.csv.sha256",
    "*walltime*",
)


def _plugin_reason() -> str | None:
    if importlib.util.find_spec("snakemake_executor_plugin_slurm") is None:
        return "snakemake-executor-plugin-slurm is not installed (pip install -e '.[slurm]')"
    return None


needs_plugin = pytest.mark.skipif(_plugin_reason() is not None, reason=str(_plugin_reason()))


@pytest.fixture(scope="module")
def cluster():
    reason = unavailable_reason() or _plugin_reason()
    if reason:
        pytest.skip(reason)
    # Declare at least 16 GB so the smoke preset's mem_mb requests fit on a small CI runner (memory is
    # not consumed by this cluster's scheduler; see slurm_cluster.py).
    mem = max(16000, int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**20 * 0.9))
    c = SlurmCluster(real_memory_mb=mem)
    c.start()
    try:
        yield c
    finally:
        c.stop()


def _copy_repo(dest: Path) -> Path:
    """The working tree as git sees it (tracked + untracked, not ignored files) copied to `dest`."""
    files = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO, capture_output=True, check=True,
    ).stdout.decode().split("\0")
    for rel in filter(None, files):
        src = REPO / rel
        if src.is_file():  # a tracked file deleted in the working tree is skipped
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)
    return dest


def _env(base: dict[str, str], workdir: Path, data_sources: Path | None = None) -> dict[str, str]:
    env = dict(base)
    # The rules call the `prunebench` console script and the jobs run this interpreter: put the venv
    # first on PATH (jobs inherit it), and make the copy's sources the ones imported.
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env["PYTHONPATH"] = str(workdir / "src")
    env.pop("PRUNEBENCH_DATA_SOURCES", None)
    if data_sources is not None:  # the synthetic data sets (conftest `data_sources`)
        env["PRUNEBENCH_DATA_SOURCES"] = str(data_sources)
    env.pop("SNAKEMAKE_PROFILE", None)
    return env


class _Run:
    """One snakemake process (output in <cwd>/snakemake.out); records when it ended."""

    def __init__(self, args: list[str], cwd: Path, env: dict[str, str]):
        self.cwd, self.t0, self.t1 = cwd, time.monotonic(), None
        with open(cwd / "snakemake.out", "w") as log:
            self.proc = subprocess.Popen([sys.executable, "-m", "snakemake", *args], cwd=cwd, env=env,
                                         stdout=log, stderr=subprocess.STDOUT)
        self._waiter = threading.Thread(target=self._wait, daemon=True)
        self._waiter.start()

    def _wait(self) -> None:
        self.proc.wait()
        self.t1 = time.monotonic()

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait()

    def finish(self, timeout: float = RUN_TIMEOUT_S) -> float:
        """Wait for it; fail with the tail of its output unless it succeeded; return its wall time."""
        self._waiter.join(max(1.0, timeout - (time.monotonic() - self.t0)))
        if self._waiter.is_alive():
            self.kill()
        rc = self.proc.returncode if self.t1 is not None else None
        if rc != 0:
            out = (self.cwd / "snakemake.out").read_text(errors="replace")[-8000:]
            what = "did not finish in time" if rc is None else f"exited {rc}"
            pytest.fail(f"snakemake {' '.join(map(str, self.proc.args[3:]))} in {self.cwd} {what}:\n{out}")
        return self.t1 - self.t0


def _snakemake(args: list[str], cwd: Path, env: dict[str, str]) -> float:
    return _Run(args, cwd, env).finish()


def _outputs(root: Path) -> dict[str, bytes]:
    found = {}
    for top in (root / "results" / PRESET, root / "figures" / PRESET, root / "paper"):
        if not top.is_dir():
            continue
        for p in sorted(top.rglob("*")):
            if p.is_file() and (top.name != "paper" or p.name == f"replication-{PRESET}.md"):
                data = p.read_bytes()
                # the report's measured-time block is the one part that differs from run to run
                found[p.relative_to(root).as_posix()] = without_compute(data) if top.name == "paper" else data
    return found


def _variable(rel: str) -> bool:
    return any(fnmatch.fnmatch(rel, pat) for pat in VARIABLE)


# --------------------------------------------------------------------------------------------------
@needs_plugin
def test_profile_settings():
    """The profile parses with this Snakemake + plugin, and yields what the README promises."""
    from snakemake.cli import parse_args

    argv = ["--profile", str(PROFILE), "--workflow-profile", "none", "figures",
            "--configfile", str(REPO / "config" / "smoke.yaml")]
    saved = sys.argv
    sys.argv = ["snakemake", *argv]  # the profile reads the preset from the command line
    try:
        _, args = parse_args(argv)
    finally:
        sys.argv = saved
    assert args.executor == "slurm"
    assert str(args.slurm_logdir) == f"results/{PRESET}/logs/slurm"
    assert args.slurm_requeue and args.retries == 2 and args.keep_going
    assert args.slurm_jobname_prefix == "prunebench"
    assert {"mem_mb", "runtime"} <= set(args.default_resources)
    assert "slurm_partition" not in args.default_resources


@pytest.mark.slurm
def test_cluster_runs_batch_jobs(cluster, tmp_path):
    """sbatch/squeue/sinfo work, and a job step (srun, as the plugin's jobs use) runs in a job."""
    info = cluster.run("sinfo", "-h", "-o", "%P %a %D %T %c").stdout.split()
    assert info[:4] == ["debug*", "up", "1", "idle"], info
    out = tmp_path / "job.out"
    job = cluster.run(
        "sbatch", "--parsable", "--ntasks=1", "-t", "1", f"--output={out}", "--chdir", str(tmp_path),
        "--wrap", "srun -n1 hostname && echo done",
    ).stdout.strip().split(";")[0]
    assert cluster.run("squeue", "-h", "--states=all", "-j", job, "-o", "%i").stdout.strip() == job
    assert cluster.wait_job(job, timeout=60) == "COMPLETED", out.read_text(errors="replace")
    assert out.read_text().splitlines()[-1] == "done"
    print(f"SLURM: {slurm_version()}")


@pytest.mark.slurm
def test_profile_runs_toy_workflow(cluster, tmp_path):
    """The profile + plugin on a three-job workflow: cells become jobs, logs land in the logdir, and
    a job that fails once is resubmitted (retries)."""
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "toy.yaml").write_text("preset: toy\n")
    (tmp_path / "Snakefile").write_text(
        "rule all:\n"
        "    input: expand('results/toy/{x}.txt', x=['a', 'b', 'c'])\n"
        "rule cell:\n"
        "    output: 'results/toy/{x}.txt'\n"
        "    resources: mem_mb=100, runtime=2\n"
        "    shell: 'if [ {wildcards.x} = b ] && [ ! -e flaky ]; then touch flaky; exit 1; fi; '\n"
        "           'echo {wildcards.x} $SLURM_JOB_ID > {output}'\n"
    )
    env = _env(cluster.env, tmp_path)
    _snakemake(["--profile", str(PROFILE), "--configfile", "config/toy.yaml",
                "--slurm-keep-successful-logs", *STATUS_ARGS], tmp_path, env)
    for x in "abc":
        name, job_id = (tmp_path / "results" / "toy" / f"{x}.txt").read_text().split()
        assert name == x and job_id.isdigit()  # it ran inside a SLURM job
        # results/<preset>/logs/slurm/rule_<rule>/<wildcard values>/<job id>.log
        assert (tmp_path / "results/toy/logs/slurm/rule_cell" / x / f"{job_id}.log").is_file()
    assert (tmp_path / "flaky").is_file()  # b failed once, then its retry succeeded
    assert len(list((tmp_path / "results/toy/logs/slurm/rule_cell/b").glob("*.log"))) == 2


@pytest.mark.slurm
@pytest.mark.e2e
def test_smoke_preset_on_slurm_matches_local(cluster, tmp_path, data_sources):
    if not (REPO / "Snakefile").is_file() or not (REPO / "config" / f"{PRESET}.yaml").is_file():
        pytest.skip("the pipeline (Snakefile, config/smoke.yaml) is not there yet")
    on_slurm = _copy_repo(tmp_path / "slurm")
    local = _copy_repo(tmp_path / "local")
    # The target first: --configfile takes every following word as a config file.
    common = [TARGET, "--configfile", f"config/{PRESET}.yaml"]

    # Both at once: the local run leaves CPU idle (and the SLURM run waits on status polls), so this
    # takes little longer than the SLURM run alone; identical bytes under contention is a bonus.
    local_run = _Run(["--cores", "2", *common], local, _env(dict(os.environ), local, data_sources))
    try:
        t_slurm = _snakemake(["--profile", "profiles/slurm", "--slurm-keep-successful-logs",
                              *STATUS_ARGS, *common], on_slurm, _env(cluster.env, on_slurm, data_sources))
    except BaseException:
        local_run.kill()
        raise
    t_local = local_run.finish()
    print(f"\nsmoke `{TARGET}`: SLURM {t_slurm:.0f} s, local {t_local:.0f} s (concurrently)")
    # The cells ran as SLURM jobs: one sbatch log per job, by rule and cell.
    slurm_logs = on_slurm / "results" / PRESET / "logs" / "slurm"
    ran = {p.parent.parent.name for p in slurm_logs.glob("rule_*/*/*.log")}
    assert {"rule_prune", "rule_train"} <= ran, sorted(ran)

    a, b = _outputs(on_slurm), _outputs(local)
    logs = f"results/{PRESET}/logs/"
    only = sorted((set(a) ^ set(b)) - {k for k in set(a) | set(b) if k.startswith(logs)})
    assert not only, f"outputs made by only one of the runs: {only[:20]}"
    compared = sorted(k for k in a if not _variable(k))
    assert any(k.endswith("mask.safetensors") for k in compared)
    assert any(k.endswith("summary.csv") for k in compared)
    differ = [k for k in compared if a[k] != b[k]]
    assert not differ, f"{len(differ)} of {len(compared)} outputs differ between SLURM and local: {differ[:20]}"
