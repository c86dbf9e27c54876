"""The end-of-run summary and the quiet terminal (prunebench.pipeline.runsummary; the Snakefile's onsuccess /
onerror). The whole thing through Snakemake: tests/test_plugins.py's end-to-end run."""
import logging
import os
import re
import subprocess
import time

import pytest

from conftest import REPO
from fake_results import write_fake_results
from prunebench.pipeline import runsummary as RS
from prunebench.pipeline.grid import expand, load_config
from prunebench.pipeline.paths import cell_dir, log_path, report_path
from prunebench.report.replication import write_report


def record(msg="", **extra):
    r = logging.LogRecord("snakemake.logging", logging.INFO, __file__, 1, msg, (), None)
    for k, v in extra.items():
        setattr(r, k, v)
    return r


def test_the_terminal_filter_drops_per_job_records_and_thins_progress():
    f = RS.TerminalFilter()
    for event in ("job_info", "job_started", "job_finished", "shellcmd"):
        assert not f.filter(record("x", event=event))
    assert not f.filter(record("Select jobs to execute..."))
    for event in ("run_info", "job_error", "error", "workflow_started"):
        assert f.filter(record("x", event=event))
    assert f.filter(record("Nothing to be done (all requested files are present and up to date)."))
    shown = [d for d in range(1, 66) if f.filter(record(event="progress", done=d, total=65))]
    assert shown == [1, 7, 13, 20, 26, 33, 39, 46, 52, 59, 65]  # the first of each 10 %, and the last
    RS._STATE["summary_printed"] = False
    assert f.filter(record("Elapsed time: 0:00:21"))
    RS._STATE["summary_printed"] = True
    assert not f.filter(record("Elapsed time: 0:00:21")) and not f.filter(record("Complete log(s): x.log"))
    RS._STATE["summary_printed"] = False


def test_quiet_terminal_filters_the_stream_handler_only_unless_verbose():
    logger = logging.getLogger(RS.SNAKEMAKE_LOGGER)
    stream, logfile = logging.StreamHandler(), logging.NullHandler()
    stream.name, logfile.name = RS.STREAM_HANDLER, "DefaultLogFileHandler"
    logger.addHandler(stream)
    logger.addHandler(logfile)
    try:
        assert not RS.quiet_terminal({RS.VERBOSE_ENV: "1"}) and not stream.filters
        assert RS.quiet_terminal({}) and RS.quiet_terminal({})  # idempotent
        assert len(stream.filters) == 1 and isinstance(stream.filters[0], RS.TerminalFilter) and not logfile.filters
    finally:
        logger.removeHandler(stream)
        logger.removeHandler(logfile)
    assert not RS.quiet_terminal({})  # no Snakemake handler: nothing to do


def test_job_names_are_the_rules_log_names():
    common = (REPO / "rules" / "common.smk").read_text()
    pattern = re.search(r'^JOB = "(.*)"$', common, flags=re.M).group(1)
    cfg = load_config("smoke")
    for c in expand(cfg):
        assert RS.job_name(c) == pattern.format(**{**c, "sparsity": RS.fmt_sparsity(c["sparsity"])})


def _touch(path, t):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("{}")
    os.utime(path, (t, t))


def test_cells_are_run_reused_failed_or_not_reached(tmp_path):
    cfg = load_config("smoke")
    cells = expand(cfg)
    since = time.time() - 100
    old, new = since - 1000, since + 10
    run, reused, failed, failed_early, unreached = cells[:5]
    _touch(tmp_path / cell_dir(run) / "metrics.json", new)
    _touch(tmp_path / cell_dir(reused) / "metrics.json", old)
    _touch(tmp_path / log_path("smoke", "train", RS.job_name(failed)), new)
    _touch(tmp_path / log_path("smoke", "prune", RS.job_name(failed)), new - 5)
    _touch(tmp_path / log_path("smoke", "prune", RS.job_name(failed_early)), new)
    _touch(tmp_path / log_path("smoke", "train", RS.job_name(unreached)), old)  # an earlier run's log
    st = RS.cell_statuses(cfg, since, tmp_path)
    assert [st[cell_dir(c)] for c in cells[:5]] == ["run", "reused", "failed", "failed", "not reached"]
    assert RS.failed_logs(cfg, st, tmp_path) == [log_path("smoke", "train", RS.job_name(failed)),
                                                 log_path("smoke", "prune", RS.job_name(failed_early))]
    text = RS.summary(cfg, since, ok=False, logs=["x.log"], root=tmp_path, now=since + 75)
    n = len(cells)
    assert text.splitlines()[0] == "prunebench smoke: FAILED after 1 min 15 s"
    assert f"  cells    1 run, 1 reused, 2 failed, {n - 4} not reached (of {n})" in text
    assert f"  report   {report_path('smoke')}: not written" in text
    assert "  figures  figures/smoke/: 0 of 12" in text and "x.log (Snakemake)" in text


def test_the_verdict_counts_are_the_reports(tmp_path):
    cfg = {**load_config("quick"), "claims": ["force", "spp", "prospr", "fggp"]}
    start = time.time()
    write_fake_results(tmp_path / "results" / "quick", preset="quick")
    (tmp_path / "paper").mkdir()
    (tmp_path / "paper" / "reference").symlink_to(REPO / "paper" / "reference")
    verdicts = write_report(tmp_path / "results" / "quick", [REPO / "paper" / "reference"],
                            out=tmp_path / report_path("quick"), preset="quick")
    counts = RS.verdict_counts(cfg, tmp_path)
    statuses = [v.status for v in verdicts.values()]
    assert counts == {s: statuses.count(s) for s in RS.VERDICTS} and sum(counts.values()) == len(verdicts) > 10
    text = RS.summary(cfg, start, ok=True, root=tmp_path)
    assert (f"  report   {report_path('quick')}: {len(verdicts)} claims: " + ", ".join(
        f"{counts[s]} {s}" for s in RS.VERDICTS)) in text
    assert RS.verdict_counts({**cfg, "claims": []}, tmp_path) == {}


def test_finish_prints_once_and_appends_to_the_log(tmp_path, capsys):
    cfg = load_config("smoke")
    log = tmp_path / "snake.log"
    log.write_text("earlier\n")
    assert RS.finish(cfg, None, ok=True, log=[str(log)]) is None  # not the main process
    text = RS.finish(cfg, time.time(), ok=True, log=[str(log)])
    assert capsys.readouterr().err == text + "\n" and log.read_text() == "earlier\n" + text + "\n"
    assert text.startswith("prunebench smoke: finished in 0 s")
    RS._STATE["summary_printed"] = False


@pytest.mark.parametrize("path,ignored", [
    ("paper/replication-smoke.md", True), ("paper/figures/smoke/x.png", True),
    ("paper/replication-mine.md", True), ("paper/figures/mine/x.png", True),
    ("paper/README.md", False), ("paper/reference/force.yaml", False),
] + [(f"paper/replication-{p.stem}.md", p.stem == "smoke") for p in sorted((REPO / "config").glob("*.yaml"))]
  + [(f"paper/figures/{p.stem}/x.png", p.stem == "smoke") for p in sorted((REPO / "config").glob("*.yaml"))])
def test_git_ignores_the_reports_of_smoke_and_ad_hoc_presets_only(path, ignored):
    r = subprocess.run(["git", "check-ignore", "-q", "--no-index", path], cwd=REPO)
    assert (r.returncode == 0) == ignored, path
