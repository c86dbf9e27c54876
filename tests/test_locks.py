"""prunebench.pipeline.locks: after a crash, the locks of a dead run are removed; a live run's, or a run's on
another host (a second login node over a shared file system), stay, and `snakemake --unlock` releases them."""
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import REPO
from prunebench.pipeline.locks import clear_stale_locks, register_run

SNAKEMAKE = Path(sys.executable).parent / "snakemake"

HOST = {"host": "node1", "boot": "boot-a"}


def _locked(root: Path) -> Path:
    locks = root / ".snakemake" / "locks"
    locks.mkdir(parents=True, exist_ok=True)
    (locks / "0.output.lock").write_text("x")
    return locks


def _register(root: Path, pid: int, host: dict) -> Path:
    runs = root / ".snakemake" / "prunebench-runs"
    runs.mkdir(parents=True, exist_ok=True)
    f = runs / f"{host['host']}.{pid}.json"
    f.write_text(json.dumps({**host, "pid": pid}))
    return f


def _dead_pid() -> int:
    return int(subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                              text=True).stdout)


@pytest.fixture
def live_snakemake():
    """A live process whose command line names snakemake (as a running pipeline's does)."""
    p = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", "snakemake"])
    for _ in range(500):  # until the child has exec'd
        if b"snakemake" in Path(f"/proc/{p.pid}/cmdline").read_bytes():
            break
        time.sleep(0.01)
    yield p.pid
    p.kill()
    p.wait()


def test_locks_of_a_dead_run_of_this_host_are_removed(tmp_path):
    locks = _locked(tmp_path)
    dead = _register(tmp_path, _dead_pid(), HOST)
    assert clear_stale_locks(tmp_path, host=HOST) is True
    assert not locks.exists() and not dead.exists()
    locks = _locked(tmp_path)  # after a reboot of this host, every run registered before it is dead
    rebooted = _register(tmp_path, os.getpid(), {**HOST, "boot": "boot-before"})
    assert clear_stale_locks(tmp_path, host=HOST) is True and not locks.exists() and not rebooted.exists()
    locks = _locked(tmp_path)  # a registration written by an earlier version: a process id of this host
    legacy = tmp_path / ".snakemake" / "prunebench-runs" / str(_dead_pid())
    legacy.touch()
    assert clear_stale_locks(tmp_path, host=HOST) is True and not locks.exists() and not legacy.exists()


def test_locks_of_a_live_run_of_this_host_stay(tmp_path, live_snakemake):
    locks = _locked(tmp_path)
    live = _register(tmp_path, live_snakemake, HOST)
    dead = _register(tmp_path, _dead_pid(), HOST)
    assert clear_stale_locks(tmp_path, host=HOST) is False
    assert locks.exists() and live.exists() and not dead.exists()


def test_locks_of_a_run_on_another_host_stay_and_unlock_is_explained(tmp_path):
    """A second login node over a shared file system: a process id of another host proves nothing here (the
    same number may well be dead on this host), so its locks and its registration stay."""
    locks = _locked(tmp_path)
    other = _register(tmp_path, _dead_pid(), {"host": "node2", "boot": "boot-b"})
    told = []
    assert clear_stale_locks(tmp_path, host=HOST, log=told.append) is False
    assert locks.exists() and other.exists()
    assert len(told) == 1 and "node2" in told[0] and "snakemake --unlock" in told[0] and str(other.parent) in told[0]
    told.clear()  # without locks there is nothing to release, and nothing to say
    (locks / "0.output.lock").unlink()
    assert clear_stale_locks(tmp_path, host=HOST, log=told.append) is False and not told and other.exists()


def test_unlock_releases_the_locks_of_a_run_on_another_host(tmp_path):
    """The way out this module leaves to the user: `snakemake --unlock`, through the Snakefile (whose
    stale-lock check keeps another host's locks and says so), then the same command again."""
    locks = _locked(tmp_path)
    (locks / "0.output.lock").write_text("results/smoke/data/mnist.json\n")  # an output of the DAG, as Snakemake has it
    _register(tmp_path, _dead_pid(), {"host": "another-login-node", "boot": "b"})
    base = [str(SNAKEMAKE), "-s", str(REPO / "Snakefile"), "-d", str(tmp_path), "--configfile",
            str(REPO / "config" / "smoke.yaml"), "--cores", "1"]
    r = subprocess.run(base + ["results"], capture_output=True, text=True, timeout=300)
    out = r.stdout + r.stderr
    assert r.returncode != 0 and "cannot be locked" in out and "another-login-node" in out, out[-3000:]
    assert (locks / "0.output.lock").exists()
    r = subprocess.run(base + ["--unlock"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and not (locks.exists() and any(locks.iterdir())), r.stderr[-3000:]
    r = subprocess.run(base + ["-n", "results"], capture_output=True, text=True, timeout=300)
    # the dry run plans the prune jobs (its job counts name the rule; per-job lines go to the log file)
    assert r.returncode == 0 and re.search(r"^prune\s+\d+", r.stdout, re.M), r.stdout[-3000:]


def test_a_run_registers_itself_until_it_exits(tmp_path):
    code = ("import sys; from prunebench.pipeline.locks import register_run; "
            "f = register_run(sys.argv[1]); print(f, flush=True); assert f.exists(); {}")
    env = dict(os.environ, PYTHONPATH=str(REPO / "src"))
    done = subprocess.run([sys.executable, "-c", code.format("pass"), str(tmp_path)], capture_output=True,
                          text=True, env=env)
    assert done.returncode == 0 and not Path(done.stdout.strip()).exists()   # a normal exit: gone
    kill = "import os, signal; os.kill(os.getpid(), signal.SIGKILL)"
    killed = subprocess.run([sys.executable, "-c", code.format(kill), str(tmp_path)], capture_output=True, text=True,
                            env=env)
    assert killed.returncode == -9 and Path(killed.stdout.strip()).exists()  # killed: left for the next run
    f = register_run(tmp_path, pid=12345, host=HOST)
    assert json.loads(f.read_text()) == {**HOST, "pid": 12345}
