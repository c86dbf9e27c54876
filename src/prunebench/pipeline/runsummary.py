"""How a pipeline run went, in one summary at its end; Snakemake's per-job chatter in its log file only.

The Snakefile calls `start(workflow)` while it is parsed (main process) and `finish(...)` from its
`onsuccess:` / `onerror:` handlers. `start` hides, on the terminal only, what Snakemake prints per job (the
rule block, "Execute N jobs", "Finished jobid", every progress line) and keeps a progress line every 10 %,
the job-stats table, warnings and errors (a failed job's block and log); Snakemake's log file
(`.snakemake/log/`) keeps everything, and every job's own output is in `results/<preset>/logs/<step>/`.
`PRUNEBENCH_VERBOSE=1` (or `--verbose`) shows Snakemake's full output; a dry run (`-n`) is never filtered.

`finish` prints, e.g.:

    prunebench smoke: finished in 1 min 09 s
      cells    25 run, 0 reused, 0 failed, 0 not reached (of 25)
      report   paper/replication-smoke.md: 15 claims: 2 holds, 0 contradicted, 10 inconclusive, 3 not run
      figures  figures/smoke/: 12 of 12
      logs     results/smoke/logs/ (per job), .snakemake/log/<time>.snakemake.log (Snakemake)

A cell is *run* when its metrics.json was written during this run, *reused* when it was there before (a
rerun after `dvc pull`, or an unchanged cell), *failed* when one of its jobs (prune, isometry, train) wrote
its log during this run but the cell has no metrics.json, and *not reached* otherwise (a failure upstream,
or the run was stopped). Verdict counts are the claims' statuses on the run's summary table, as the report
computes them.
"""
from __future__ import annotations

import logging
import os
import sys
import time
from pathlib import Path

from prunebench.pipeline.grid import expand
from prunebench.pipeline.paths import cell_dir, figure_path, fmt_sparsity, log_path, preset_dir, report_path

SNAKEMAKE_LOGGER = "snakemake.logging"
STREAM_HANDLER = "DefaultStreamHandler"   # Snakemake's terminal handler; its file handler is left alone
VERBOSE_ENV = "PRUNEBENCH_VERBOSE"
# Snakemake's LogEvent values (snakemake_interface_logger_plugins.common.LogEvent) hidden on the terminal.
HIDDEN_EVENTS = frozenset({"job_info", "job_started", "job_finished", "shellcmd", "group_info"})
HIDDEN_MESSAGES = ("Select jobs to execute...",)
REPLACED_MESSAGES = ("Complete log(s):", "Elapsed time:")  # the summary names the log and the wall time
CELL_STEPS = ("prune", "isometry", "train")
STATUSES = ("run", "reused", "failed", "not reached")
VERDICTS = ("holds", "contradicted", "inconclusive", "not run")

_STATE = {"summary_printed": False}


class TerminalFilter(logging.Filter):
    """Drops Snakemake's per-job records from the terminal; keeps a progress line every `every` percent."""

    def __init__(self, every: int = 10, workflow=None):
        super().__init__()
        self.every = every
        self.workflow = workflow  # a dry run is known only once Snakemake has chosen its executor
        self._bucket = -1

    def filter(self, record: logging.LogRecord) -> bool:
        if self.workflow is not None and self.workflow.dryrun:
            return True  # a dry run's job listing is its whole point: never filtered
        event = str(getattr(record, "event", "") or "")
        if event in HIDDEN_EVENTS:
            return False
        if event == "progress":
            done, total = getattr(record, "done", None), getattr(record, "total", None)
            if not total:
                return True
            bucket = (100 * int(done) // int(total)) // self.every
            if bucket <= self._bucket and done != total:
                return False
            self._bucket = bucket
            return True
        if not event:
            msg = record.getMessage()
            if msg in HIDDEN_MESSAGES:
                return False
            if _STATE["summary_printed"] and msg.startswith(REPLACED_MESSAGES):
                return False
        return True


def quiet_terminal(env=None, workflow=None) -> bool:
    """Install the filter on Snakemake's terminal handler; False when verbose output was asked for or the
    handler is not there (another Snakemake version: its output is then left as it is)."""
    env = os.environ if env is None else env
    if env.get(VERBOSE_ENV, "") not in ("", "0"):
        return False
    for handler in logging.getLogger(SNAKEMAKE_LOGGER).handlers:
        if handler.name == STREAM_HANDLER:
            if not any(isinstance(f, TerminalFilter) for f in handler.filters):
                handler.addFilter(TerminalFilter(workflow=workflow))
            return True
    return False


def start(workflow) -> float | None:
    """Called while the Snakefile is parsed: the run's start time (None outside the main process)."""
    if not workflow.is_main_process:
        return None
    if not workflow.output_settings.verbose:
        quiet_terminal(workflow=workflow)
    _STATE["summary_printed"] = False
    return time.time()


# ------------------------------------------------------------------------------------------------------
# What the run did

def job_name(c: dict) -> str:
    """A cell's job name in its log paths (rules/common.smk JOB)."""
    return f"{c['dataset']}_{c['model']}_{c['init']}_{c['arm']}_s{fmt_sparsity(c['sparsity'])}_seed{c['seed']}"


def _mtime(p: Path):
    try:
        return p.stat().st_mtime
    except FileNotFoundError:
        return None


def cell_statuses(cfg: dict, since: float, root=".") -> dict:
    """cell dir -> run | reused | failed | not reached (see the module docstring)."""
    root = Path(root)
    out = {}
    for c in expand(cfg):
        d = cell_dir(c)
        t = _mtime(root / d / ("metrics.json" if c.get("trained", True) else "prune.json"))  # sweep: prune only
        if t is not None:
            out[d] = "run" if t >= since else "reused"
            continue
        logs = [_mtime(root / log_path(cfg["preset"], step, job_name(c))) for step in CELL_STEPS]
        out[d] = "failed" if any(t is not None and t >= since for t in logs) else "not reached"
    return out


def failed_logs(cfg: dict, statuses: dict, root=".") -> list:
    """The newest job log of each failed cell (where to look first)."""
    root = Path(root)
    out = []
    for c in expand(cfg):
        if statuses.get(cell_dir(c)) != "failed":
            continue
        logs = [log_path(cfg["preset"], step, job_name(c)) for step in CELL_STEPS]
        logs = [p for p in logs if _mtime(root / p) is not None]
        out.append(max(logs, key=lambda p: _mtime(root / p)))
    return out


def verdict_counts(cfg: dict, root=".") -> dict:
    """Claim status -> count on the preset's summary table (what the report's "Verdicts at a glance" says)."""
    # Imported here, not at the top: the Snakefile imports this module in every Snakemake process (cluster
    # jobs too), and pandas/scipy are only needed once, for the summary at the end of the main process.
    from prunebench.report.claims import load_claims
    from prunebench.report.replication import claim_verdicts
    from prunebench.report.tables import load_results

    root = Path(root)
    if not cfg.get("claims"):
        return {}
    papers = load_claims([root / "paper" / "reference" / f"{c}.yaml" for c in cfg.get("claims", [])])
    _, verdicts = claim_verdicts(load_results(root / preset_dir(cfg["preset"]), cfg["preset"]), papers)
    counts = dict.fromkeys(VERDICTS, 0)
    for v in verdicts.values():
        counts[v.status] = counts.get(v.status, 0) + 1
    return counts


def _duration(seconds: float) -> str:
    s = int(round(seconds))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {s % 3600 // 60:02d} min"


def summary(cfg: dict, since: float, ok: bool, logs=(), root=".", now: float | None = None) -> str:
    root = Path(root)
    preset = cfg["preset"]
    wall = (time.time() if now is None else now) - since
    statuses = cell_statuses(cfg, since, root)
    n = {s: sum(1 for v in statuses.values() if v == s) for s in STATUSES}
    lines = [f"prunebench {preset}: {'finished in' if ok else 'FAILED after'} {_duration(wall)}",
             f"  cells    {', '.join(f'{n[s]} {s}' for s in STATUSES)} (of {len(statuses)})"]
    for p in failed_logs(cfg, statuses, root)[:5]:
        lines.append(f"  failed   {p}")
    rep = report_path(preset)
    t = _mtime(root / rep)
    if t is None:
        lines.append(f"  report   {rep}: not written")
    else:
        when = "" if t >= since else " (from an earlier run)"
        try:
            counts = verdict_counts(cfg, root)
            total = sum(counts.values())
            verdicts = (f"{total} claims: " + ", ".join(f"{counts[v]} {v}" for v in counts)) if counts else "no claims"
        except Exception as e:  # a summary must never hide the run's own result: say why, in one line
            verdicts = f"verdicts not counted ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})"
        lines.append(f"  report   {rep}{when}: {verdicts}")
    figures = cfg.get("figures", [])
    drawn = sum(1 for f in figures if (root / figure_path(preset, f, "pdf")).exists())
    lines.append(f"  figures  {Path(figure_path(preset, 'x', 'pdf')).parent}/: {drawn} of {len(figures)}")
    snake_logs = ", ".join(str(Path(p)) for p in logs)
    lines.append(f"  logs     {preset_dir(preset)}/logs/ (per job)"
                 + (f", {snake_logs} (Snakemake)" if snake_logs else ""))
    return "\n".join(lines)


def finish(cfg: dict, since: float | None, ok: bool, log=(), stream=None) -> str | None:
    """Print the summary on the terminal and append it to Snakemake's log file(s); returns it."""
    if since is None:
        return None
    logs = [log] if isinstance(log, (str, os.PathLike)) else list(log or ())
    text = summary(cfg, since, ok, logs)
    print(text, file=stream or sys.stderr, flush=True)
    for p in logs:
        try:
            with open(p, "a") as f:
                f.write(text + "\n")
        except OSError:
            pass  # the terminal has it; a log file that vanished is not the run's failure
    _STATE["summary_printed"] = True
    return text
