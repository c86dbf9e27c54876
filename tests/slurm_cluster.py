"""A throw-away single-node SLURM cluster on this machine, for tests (and manual checks).

munged + slurmctld + slurmd run as root in the foreground (children of this process), with every
key, socket, state, spool, pid and log file in one directory; nothing under /etc, /var or /run is
touched and the daemons use free TCP ports, so a system SLURM (if any) is left alone.
Clients (sbatch, squeue, scontrol, and the Snakemake SLURM executor plugin that calls them) find the
cluster through the environment variable SLURM_CONF (see `SlurmCluster.env`; its PATH also puts an
`srun` wrapper first, because the plugin's job step strips SLURM_CONF before calling srun).
stop() cancels all jobs and stops the daemons; if this process dies without calling it (even by
SIGKILL), the kernel sends the daemons SIGTERM (PR_SET_PDEATHSIG).

    with SlurmCluster() as cluster:              # or cluster.start() ... cluster.stop()
        subprocess.run(["sbatch", "--wrap", "hostname"], env=cluster.env, check=True)

Manual use (as root, Debian's slurm-wlm + munge installed, e.g. by .ci/system-deps):

    python tests/slurm_cluster.py                      # start, open $SHELL with SLURM_CONF set, stop
    python tests/slurm_cluster.py -- sinfo             # start, run one command, stop

Configuration choices (Debian 12's slurm-wlm 22.05):
- ProctrackType=proctrack/linuxproc, TaskPlugin=task/none, JobAcctGatherType=jobacct_gather/none:
  no cgroups needed (containers and CI runners often have none).
- SelectType=select/cons_tres with CR_Core: cores are scheduled (CPUs = nproc); memory is not a
  consumable, but sbatch still rejects a job whose --mem exceeds the node's RealMemory. RealMemory is
  this machine's MemTotal less 10% unless the caller passes real_memory_mb (with
  SlurmdParameters=config_overrides the configured value stands even when it exceeds the machine),
  so a workflow whose rules declare more mem_mb than a small CI runner has can still be scheduled.
- AccountingStorageType=accounting_storage/none: there is no slurmdbd, so `sacct` fails ("Slurm
  accounting storage is disabled"). Job status must come from `squeue`, which only lists finished
  jobs for MinJobAge seconds: MinJobAge is long (default 3600 s).
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

DAEMONS = ("munged", "slurmctld", "slurmd")
CLIENTS = ("sbatch", "squeue", "sinfo", "scontrol", "scancel", "srun")


class SlurmClusterError(RuntimeError):
    """The cluster could not be started (the message names the daemon and its log)."""


def _which(name: str) -> str | None:
    # The daemons live in /usr/sbin, which a non-login PATH may lack.
    return shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/local/sbin:/sbin")


def unavailable_reason() -> str | None:
    """None when a cluster can be started here, else a one-line reason (for pytest.skip)."""
    if not sys.platform.startswith("linux"):
        return "a single-node SLURM cluster needs Linux"
    if os.geteuid() != 0:
        return "starting slurmctld/slurmd/munged needs root (CI runs as root)"
    missing = [name for name in DAEMONS + CLIENTS if _which(name) is None]
    if missing:
        return (
            f"SLURM/munge binaries not found: {', '.join(missing)} "
            "(install Debian's slurm-wlm and munge, e.g. with .ci/system-deps)"
        )
    return None


def slurm_version() -> str:
    out = subprocess.run(
        [_which("slurmd") or "slurmd", "-V"], capture_output=True, text=True, check=False
    )
    return out.stdout.strip() or out.stderr.strip()


def _die_with_parent() -> None:
    """preexec_fn: have the kernel SIGTERM this daemon when the process that started it dies, even
    by SIGKILL (a CI timeout), so a crashed test never leaves a cluster running."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM, 0, 0, 0)  # PR_SET_PDEATHSIG
    except Exception:  # not Linux/glibc: stop() is still the normal teardown
        pass
    os.setsid()  # its own session: a Ctrl-C at the terminal reaches the test, not the daemons


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _mem_total_mb() -> int:
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) // 1024
    raise SlurmClusterError("cannot read MemTotal from /proc/meminfo")


def _tail(path: Path, lines: int = 15) -> str:
    try:
        text = path.read_text(errors="replace").splitlines()
    except OSError:
        return f"(no log at {path})"
    return "\n".join(text[-lines:])


class SlurmCluster:
    """One node (this machine: nproc CPUs, its memory) and one default partition `debug`."""

    def __init__(
        self,
        root: str | os.PathLike | None = None,
        *,
        cpus: int | None = None,
        real_memory_mb: int | None = None,
        min_job_age_s: int = 3600,
        partition: str = "debug",
        cluster_name: str = "prunebench",
    ):
        self._own_root = root is None
        self.root = Path(root) if root is not None else None
        self.cpus = cpus or len(os.sched_getaffinity(0)) or 1  # what `nproc` says
        # slurmd drains a node whose configured RealMemory exceeds what it measures: keep a margin.
        self.real_memory_mb = real_memory_mb or max(256, int(_mem_total_mb() * 0.9))
        self.min_job_age_s = min_job_age_s
        self.partition = partition
        self.cluster_name = cluster_name
        self.node = socket.gethostname().split(".")[0] or "localhost"
        self._procs: dict[str, subprocess.Popen] = {}
        self.started = False

    # ------------------------------------------------------------------ paths and environment
    @property
    def conf(self) -> Path:
        return self.root / "etc" / "slurm.conf"

    @property
    def munge_socket(self) -> Path:
        return self.root / "munge" / "munge.socket"

    @property
    def env(self) -> dict[str, str]:
        """os.environ plus SLURM_CONF and PATH (the srun wrapper, /usr/sbin): pass it to clients and
        Snakemake; jobs inherit it (the plugin submits with --export=ALL)."""
        env = dict(os.environ)
        env["SLURM_CONF"] = str(self.conf)
        path = [p for p in env.get("PATH", "/usr/bin:/bin").split(":") if p]
        if "/usr/sbin" not in path:
            path.append("/usr/sbin")
        env["PATH"] = ":".join([str(self.root / "bin")] + path)  # the srun wrapper (see above)
        # A caller that itself runs inside a SLURM job must not leak that job's settings.
        for var in list(env):
            if var.startswith(("SLURM_", "SBATCH_", "SRUN_")) and var != "SLURM_CONF":
                del env[var]
        return env

    def log(self, daemon: str) -> Path:
        """The daemon's log file (munged logs to its captured stdout in foreground mode)."""
        log = self.root / "log" / f"{daemon}.log"
        return log if log.exists() else self.root / "log" / f"{daemon}.stdout"

    # ------------------------------------------------------------------ configuration
    def _write_config(self) -> None:
        r = self.root
        for sub in ("etc", "munge", "state", "spool", "log", "run", "bin"):
            (r / sub).mkdir(parents=True, exist_ok=True)
            os.chmod(r / sub, 0o700)
        os.chmod(r / "munge", 0o711)  # munged wants its socket directory traversable by all
        key = r / "munge" / "munge.key"
        key.write_bytes(secrets.token_bytes(1024))
        os.chmod(key, 0o600)
        self.ctld_port = _free_port()
        self.slurmd_port = _free_port()
        while self.slurmd_port == self.ctld_port:
            self.slurmd_port = _free_port()
        conf = f"""\
# Generated by tests/slurm_cluster.py: one node, no accounting, no cgroups, all files under {r}
ClusterName={self.cluster_name}
SlurmctldHost={self.node}(127.0.0.1)
SlurmctldPort={self.ctld_port}
SlurmdPort={self.slurmd_port}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={self.munge_socket}
StateSaveLocation={r}/state
SlurmdSpoolDir={r}/spool
SlurmctldPidFile={r}/run/slurmctld.pid
SlurmdPidFile={r}/run/slurmd.pid
SlurmctldLogFile={r}/log/slurmctld.log
SlurmdLogFile={r}/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=none
MailProg=/bin/true
SwitchType=switch/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
# The node is what this file says (a test may declare more memory than the machine has, see below).
SlurmdParameters=config_overrides
MinJobAge={self.min_job_age_s}
InactiveLimit=0
KillWait=5
Waittime=0
SlurmctldTimeout=30
SlurmdTimeout=60
NodeName={self.node} NodeAddr=127.0.0.1 NodeHostname={self.node} CPUs={self.cpus} RealMemory={self.real_memory_mb} State=UNKNOWN
PartitionName={self.partition} Nodes={self.node} Default=YES MaxTime=INFINITE State=UP
"""
        self.conf.write_text(conf)
        os.chmod(self.conf, 0o644)
        # snakemake-executor-plugin-slurm-jobstep (0.6.1) deletes every SLURM_* variable except a few
        # job-identity ones before it runs the job's inner `srun`, SLURM_CONF included; that srun
        # then looks for /etc/slurm/slurm.conf and fails ("Could not establish a configuration
        # source"). Real clusters keep slurm.conf there (or run configless); this cluster's conf is
        # in a temp dir, so an `srun` first on PATH puts SLURM_CONF back.
        real_srun = _which("srun")
        wrapper = r / "bin" / "srun"
        wrapper.write_text(
            f'#!/bin/sh\nSLURM_CONF="{self.conf}"\nexport SLURM_CONF\nexec "{real_srun}" "$@"\n'
        )
        os.chmod(wrapper, 0o755)

    # ------------------------------------------------------------------ start / stop
    def _spawn(self, name: str, argv: list[str]) -> None:
        with open(self.root / "log" / f"{name}.stdout", "ab") as out:
            self._procs[name] = subprocess.Popen(
                argv,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=self.env,
                preexec_fn=_die_with_parent,
            )

    def _check_alive(self, name: str) -> None:
        proc = self._procs[name]
        if proc.poll() is not None:
            raise SlurmClusterError(
                f"{name} exited with status {proc.returncode} during start-up; "
                f"last lines of {self.log(name)}:\n{_tail(self.log(name))}"
            )

    def _wait(self, what: str, name: str, ok, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            self._check_alive(name)
            if ok():
                return
            if time.monotonic() > deadline:
                raise SlurmClusterError(
                    f"timed out after {timeout:.0f} s waiting for {what}; "
                    f"last lines of {self.log(name)}:\n{_tail(self.log(name))}"
                )
            time.sleep(0.2)

    def _client(self, *argv: str, timeout: float = 20) -> subprocess.CompletedProcess:
        return subprocess.run(
            list(argv), env=self.env, capture_output=True, text=True, timeout=timeout, check=False
        )

    def _node_state(self) -> str:
        try:
            out = self._client("sinfo", "-h", "-N", "-o", "%T", timeout=10)
        except subprocess.TimeoutExpired:
            return ""
        return out.stdout.strip().lower() if out.returncode == 0 else ""

    def start(self, timeout: float = 60) -> "SlurmCluster":
        reason = unavailable_reason()
        if reason:
            raise SlurmClusterError(reason)
        if self.started:
            return self
        if self.root is None:
            # Short path: unix sockets have a ~108-byte limit.
            self.root = Path(tempfile.mkdtemp(prefix="slurm-"))
        self.root.mkdir(parents=True, exist_ok=True)
        self.started = True  # from here on stop() cleans up whatever did start
        try:
            self._write_config()
            m = self.root / "munge"
            self._spawn(
                "munged",
                [
                    _which("munged"), "--foreground", "--force",
                    f"--socket={self.munge_socket}", f"--key-file={m / 'munge.key'}",
                    f"--log-file={self.root / 'log' / 'munged.log'}",
                    f"--pid-file={self.root / 'run' / 'munged.pid'}",
                    f"--seed-file={m / 'munged.seed'}",
                ],
            )
            self._wait("munged's socket", "munged", self.munge_socket.exists, timeout)
            self._spawn("slurmctld", [_which("slurmctld"), "-D", "-i", "-f", str(self.conf)])

            def ctld_up() -> bool:
                try:
                    return self._client("scontrol", "ping", timeout=10).stdout.count("UP") > 0
                except subprocess.TimeoutExpired:
                    return False

            self._wait("slurmctld to answer `scontrol ping`", "slurmctld", ctld_up, timeout)
            self._spawn("slurmd", [_which("slurmd"), "-D", "-f", str(self.conf), "-N", self.node])

            def node_idle() -> bool:
                state = self._node_state()
                return state.startswith(("idle", "mixed", "alloc"))

            self._wait(f"node {self.node} to become idle (sinfo)", "slurmd", node_idle, timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def _our_stepds(self) -> list[int]:
        """slurmstepd processes started for this cluster (their environment has our SLURM_CONF)."""
        mine = f"SLURM_CONF={self.conf}".encode()
        pids = []
        for d in Path("/proc").iterdir():
            if not d.name.isdigit():
                continue
            try:
                if not (d / "comm").read_text().startswith("slurmstepd"):
                    continue
                if mine in (d / "environ").read_bytes().split(b"\0"):
                    pids.append(int(d.name))
            except OSError:
                continue
        return pids

    def stop(self, timeout: float = 30) -> None:
        """Cancel all jobs, stop the daemons (TERM, then KILL), remove the temp directory.

        Never raises; safe to call twice and after a failed start."""
        if not self.started:
            return
        self.started = False
        ctld = self._procs.get("slurmctld")
        if ctld is not None and ctld.poll() is None:
            try:
                self._client("scancel", "--full", "--user", "root", timeout=10)
                deadline = time.monotonic() + min(timeout, 20)
                while time.monotonic() < deadline:
                    q = self._client("squeue", "-h", "-t", "PD,R,CG,CF,S", "-o", "%i", timeout=10)
                    if q.returncode != 0 or not q.stdout.strip():
                        break
                    time.sleep(0.5)
            except (subprocess.TimeoutExpired, OSError):
                pass
        for name in ("slurmd", "slurmctld", "munged"):  # reverse start order
            proc = self._procs.get(name)
            if proc is None or proc.poll() is not None:
                continue
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=timeout / 3)
            except subprocess.TimeoutExpired:
                proc.kill()
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    pass
        if self.root is not None:
            for pid in self._our_stepds():
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
        self._procs.clear()
        if self._own_root and self.root is not None and os.environ.get("KEEP_SLURM_DIR") != "1":
            shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> "SlurmCluster":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # ------------------------------------------------------------------ small helpers for tests
    def run(self, *argv: str, timeout: float = 60, check: bool = True) -> subprocess.CompletedProcess:
        """Run a client command against this cluster; raise with its output on failure."""
        res = self._client(*argv, timeout=timeout)
        if check and res.returncode != 0:
            raise SlurmClusterError(
                f"`{' '.join(argv)}` exited {res.returncode}:\n{res.stdout}{res.stderr}"
            )
        return res

    def wait_job(self, job_id: str, timeout: float = 60) -> str:
        """Wait until job `job_id` leaves the queue's active states; return its final state."""
        deadline = time.monotonic() + timeout
        state = ""
        while time.monotonic() < deadline:
            out = self.run("squeue", "-h", "--states=all", "-j", job_id, "-o", "%T", check=False)
            state = out.stdout.strip()
            if state and state not in ("PENDING", "CONFIGURING", "RUNNING", "COMPLETING"):
                return state
            time.sleep(0.3)
        raise SlurmClusterError(f"job {job_id} still {state or 'unknown'} after {timeout:.0f} s")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dir", help="directory for the cluster's files (default: a new temp dir)")
    p.add_argument("command", nargs="*", help="command to run against the cluster (default: $SHELL)")
    args = p.parse_args(argv)
    reason = unavailable_reason()
    if reason:
        print(f"slurm_cluster: {reason}", file=sys.stderr)
        return 2
    # SIGTERM (e.g. `timeout`) unwinds through the `with` block, so the cluster is stopped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    with SlurmCluster(args.dir) as cluster:
        print(f"slurm_cluster: {slurm_version()} up; export SLURM_CONF={cluster.conf}", file=sys.stderr)
        cmd = args.command or [os.environ.get("SHELL", "/bin/bash")]
        return subprocess.call(cmd, env=cluster.env)


if __name__ == "__main__":
    sys.exit(main())
