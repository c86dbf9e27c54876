"""A preset's DAG without Snakemake, under a deadline: data -> init -> prune (-> isometry) -> train ->
aggregate -> figures -> report, as the same `prunebench` commands with the same arguments.

benchmarks/gpu_check.py runs the smoke and force-check presets this way on a lent GPU machine, where the
project's Python packages must travel as wheels and Snakemake + DVC (dozens of packages, one with
binaries) would not be worth carrying: the commands themselves need only jsonschema besides what the
machine has. What is the same as `snakemake --cores N figures --configfile <preset>`:

- every step's argument list comes from the functions of prunebench.pipeline.workflow that the rules in
  rules/run.smk and rules/report.smk call (`data_argv`, `init_argv`, the per-cell `argv_builders`,
  `aggregate_argv`, `figure_argv`, `report_argv`), so the commands are exactly the DAG's (the data command
  gets `--no-download` in addition: the GPU machine has no network);
- every command runs in a pool of long-lived worker processes through `prunebench.cli.run_logged`, as the
  rules' `run_pooled` does, with its log at the DAG's log path (results/<preset>/logs/<step>/<job>.log);
- the resolved config is written to results/<preset>/config.yaml before `aggregate`, as the rule does
  (`write_resolved_config`).

What differs: no provenance keys and no up-to-date checks (every job runs), and a deadline: when it
passes, the running commands are killed and the jobs not started are reported as skipped. Jobs run in
the working directory given (the pool's workers chdir there), so two runs of one preset can sit side by
side (the determinism check).
"""
from __future__ import annotations

import concurrent.futures as cf
import multiprocessing as mp
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from prunebench.pipeline import grid  # noqa: E402  (no torch)
from prunebench.library import methods  # noqa: E402
from prunebench.pipeline import paths  # noqa: E402

from prunebench.pipeline.workflow import (aggregate_argv, argv_builders, data_argv, figure_argv,  # noqa: E402
                                           init_argv, report_argv, write_resolved_config)


@dataclass
class Job:
    name: str                    # step/job, e.g. "train/cifar10_vgg19_kaiming_normal_force_s0.99_seed0"
    argv: list
    log: str                     # relative to the run's working directory
    deps: tuple = ()
    outputs: tuple = ()          # files whose folders are created before the job runs
    cell: dict | None = None
    before: object = None        # callable run in the parent just before submission (writes config.yaml)


@dataclass
class RunResult:
    done: list = field(default_factory=list)
    failed: dict = field(default_factory=dict)      # name -> last lines of its log
    skipped: dict = field(default_factory=dict)     # name -> why
    elapsed: float = 0.0
    deadline_hit: bool = False

    def to_dict(self) -> dict:
        return {"done": len(self.done), "failed": self.failed, "skipped": self.skipped,
                "elapsed_s": round(self.elapsed, 2), "deadline_hit": self.deadline_hit}


def _job_name(c: dict) -> str:
    return f"{c['dataset']}_{c['model']}_{c['init']}_{c['arm']}_s{paths.fmt_sparsity(c['sparsity'])}_seed{c['seed']}"


class Pipeline:
    """The jobs of one preset (a validated config dict) in working directory `cwd`."""

    def __init__(self, config: dict, cwd, claims_dir: Path = REPO / "paper" / "reference"):
        self.config = grid.validate(config, where="config")
        self.cwd = Path(cwd)
        self.claims_dir = Path(claims_dir)
        self.preset = config["preset"]
        self.device = config.get("device", "auto")
        self.threads = config.get("threads", 1)
        self.cells = grid.expand(self.config)
        self.fn = argv_builders(self.config, self.device)

    # -- the jobs ---------------------------------------------------------------------------------------
    def cell_jobs(self) -> list:
        cfg, pre, fn, th = self.config, self.preset, self.fn, self.threads
        jobs, inits = [], {}
        datasets = sorted({c["dataset"] for c in self.cells})
        for ds in datasets:
            man = paths.data_manifest(pre, ds)
            jobs.append(Job(f"data/{ds}", data_argv(cfg, ds, man) + ["--no-download"], paths.log_path(pre, "data", ds),
                            outputs=(man,)))
        for c in self.cells:
            for concern in ("init", "reinit") if c.get("reinit") else ("init",):
                path = paths.init_path(c, concern=concern)
                if path not in inits:
                    seed = c["seeds"][concern]
                    argv = init_argv(c["model"], c["dataset"], c["init"], seed, path, th)
                    inits[path] = Job(f"init/{c['dataset']}_{c['model']}_{c['init']}_seed{seed}", argv,
                                      paths.log_path(pre, "init", f"{c['dataset']}_{c['model']}_{c['init']}_seed{seed}"),
                                      outputs=(path,))
        jobs += list(inits.values())
        for c in self.cells:
            d, job, info = paths.cell_dir(c), _job_name(c), methods.method_info(c["method"])
            data = paths.data_manifest(pre, c["dataset"])
            init = paths.init_path(c)
            train_deps = [f"data/{c['dataset']}", inits[paths.train_init_path(c)].name]
            if info.at_init:
                inp = SimpleNamespace(init=init, data=data)
                out = SimpleNamespace(mask=f"{d}/mask.safetensors", report=f"{d}/prune.json",
                                      timing=f"{d}/prune_timing.json")
                jobs.append(Job(f"prune/{job}", fn["prune_argv"](c, inp, out, th), paths.log_path(pre, "prune", job),
                                deps=(f"data/{c['dataset']}", inits[init].name), outputs=(out.mask,), cell=c))
                train_deps.append(f"prune/{job}")
            train_init = paths.train_init_path(c)
            if c["isometry"]:
                inp = SimpleNamespace(init=init, mask=f"{d}/mask.safetensors", data=data)
                out = SimpleNamespace(weights=f"{d}/weights_ai.safetensors", report=f"{d}/isometry.json")
                jobs.append(Job(f"isometry/{job}", fn["isometry_argv"](c, inp, out, th),
                                paths.log_path(pre, "isometry", job), deps=(f"prune/{job}",), outputs=(out.weights,),
                                cell=c))
                train_deps.append(f"isometry/{job}")
                train_init = out.weights
            inp = SimpleNamespace(init=train_init, data=data)
            jobs.append(Job(f"train/{job}", fn["train_argv"](c, inp, th), paths.log_path(pre, "train", job),
                            deps=tuple(train_deps), outputs=(f"{d}/metrics.json",), cell=c))
        return jobs

    def report_jobs(self, config: dict | None = None, figures=True, report=True) -> list:
        """aggregate (+ figures, report) over `config` (default: the whole preset; pass a restricted one when
        some cells did not finish)."""
        config = self.config if config is None else config
        pre = self.preset
        after = tuple(f"train/{_job_name(c)}" for c in grid.expand(config))
        cfgfile = paths.table_path(pre, paths.RESOLVED_CONFIG)
        jobs = [Job("aggregate/aggregate", aggregate_argv(cfgfile), paths.log_path(pre, "aggregate", "aggregate"),
                    deps=after, outputs=(cfgfile,), before=lambda: write_resolved_config(config, self.cwd / cfgfile))]
        names = list(config.get("figures", [])) if figures else []
        for n in names:
            jobs.append(Job(f"figures/{n}", figure_argv(pre, n), paths.log_path(pre, "figures", n),
                            deps=("aggregate/aggregate",), outputs=(paths.figure_path(pre, n, "png"),)))
        claims = [str(self.claims_dir / f"{c}.yaml") for c in config.get("claims", [])]
        if report and claims:
            out = paths.report_path(pre)
            jobs.append(Job("report/report", report_argv(pre, claims, out), paths.log_path(pre, "report", "report"),
                            deps=("aggregate/aggregate",) + tuple(f"figures/{n}" for n in names), outputs=(out,)))
        return jobs

    def restricted_config(self, finished_cells) -> dict:
        """The preset cut down to the arms all of whose cells finished (per grid block); blocks left with no
        arm are dropped. What `aggregate` can tabulate when the deadline stopped some cells."""
        import copy

        done = {paths.cell_dir(c) for c in finished_cells}
        cfg = copy.deepcopy(self.config)
        blocks = []
        for i, block in enumerate(cfg["grid"]):
            one = {**cfg, "grid": [block]}
            keep = [a for a in block["arms"]
                    if all(paths.cell_dir(c) in done for c in grid.expand({**one, "grid": [{**block, "arms": [a]}]}))]
            if keep:
                blocks.append({**block, "arms": keep})
        cfg["grid"] = blocks
        return cfg


# -- running jobs -----------------------------------------------------------------------------------------

def _init_worker(cwd: str, parent: int) -> None:
    os.chdir(cwd)
    from prunebench.cli import _worker_init

    _worker_init(parent)


def _run_job(argv, log) -> int:
    from prunebench.cli import run_logged

    return run_logged(argv, log)


def tail(path: Path, n: int = 15) -> str:
    try:
        return "\n".join(Path(path).read_text(errors="replace").splitlines()[-n:])
    except OSError:
        return "(no log)"


class Pool:
    """Worker processes (spawned, chdir'd to `cwd`, torch imported once each) that run prunebench commands."""

    def __init__(self, cwd, workers: int):
        self.cwd = Path(cwd).resolve()
        self.cwd.mkdir(parents=True, exist_ok=True)
        self.workers = max(1, int(workers))
        self.ex = cf.ProcessPoolExecutor(max_workers=self.workers, mp_context=mp.get_context("spawn"),
                                         initializer=_init_worker, initargs=(str(self.cwd), os.getpid()))

    def kill(self) -> None:
        """End the workers now (they are this process's children; nothing else is touched)."""
        procs = list(getattr(self.ex, "_processes", {}).values())
        for p in procs:
            try:
                p.kill()
            except Exception:
                pass
        self.ex.shutdown(wait=False, cancel_futures=True)

    def close(self) -> None:
        self.ex.shutdown(wait=True, cancel_futures=True)

    def run(self, jobs, deadline: float, log=print, label: str = "") -> RunResult:
        """Run `jobs` (respecting deps) until done or `deadline` (time.time()); never raises for a job."""
        res = RunResult()
        t0 = time.time()
        pending = {j.name: j for j in jobs}
        known = set(pending)
        running = {}
        done, bad = set(), set()
        while pending or running:
            now = time.time()
            if now >= deadline:
                res.deadline_hit = True
                break
            progress = False
            for name in list(pending):
                j = pending[name]
                missing = [d for d in j.deps if d in known and d not in done]
                if any(d in bad for d in j.deps):
                    res.skipped[name] = "an upstream job failed or was skipped: " + ", ".join(
                        d for d in j.deps if d in bad)
                    bad.add(name)
                    del pending[name]
                    progress = True
                elif not missing:
                    for o in j.outputs + (j.log,):
                        (self.cwd / o).parent.mkdir(parents=True, exist_ok=True)
                    try:
                        if j.before is not None:
                            j.before()
                        running[self.ex.submit(_run_job, [str(a) for a in j.argv], j.log)] = j
                    except Exception as e:  # a broken pool, an unwritable config
                        res.failed[name] = f"could not start: {e!r}"
                        bad.add(name)
                    del pending[name]
                    progress = True
            if not running:
                if pending and not progress:  # only a cycle could leave jobs waiting on nothing
                    for name in pending:
                        res.skipped[name] = "its dependencies can never finish"
                    pending.clear()
                if not pending:
                    break
                continue
            finished, _ = cf.wait(list(running), timeout=max(0.05, min(1.0, deadline - time.time())),
                                  return_when=cf.FIRST_COMPLETED)
            for fut in finished:
                j = running.pop(fut)
                try:
                    status = fut.result()
                except Exception as e:  # the worker died (killed, out of memory)
                    status = f"worker died: {e!r}"
                if status == 0:
                    done.add(j.name)
                    res.done.append(j.name)
                else:
                    bad.add(j.name)
                    res.failed[j.name] = f"status {status}; log {j.log}:\n" + tail(self.cwd / j.log)
                    log(f"  {label}FAILED {j.name} (status {status}); last lines of {j.log}:\n"
                        + "\n".join("    " + line for line in tail(self.cwd / j.log).splitlines()))
        if res.deadline_hit:
            for fut, j in running.items():
                res.skipped[j.name] = "killed: the time budget ran out while it ran"
            for name in pending:
                res.skipped[name] = "not started: the time budget ran out"
            if running:
                self.kill()
        res.elapsed = time.time() - t0
        return res


def finished_cells(pipeline: Pipeline, result: RunResult) -> list:
    ok = set(result.done)
    return [c for c in pipeline.cells if f"train/{_job_name(c)}" in ok]
