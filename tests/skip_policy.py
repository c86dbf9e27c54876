"""Skip policy for CI: with PRUNEBENCH_CI=1, a skipped test fails the session unless its reason mentions CUDA
or it is one of the real-data copies' own checks (marked ``real_data``).

Tests never pass by skipping: everything runs on synthetic data when the real copies are absent
(tests/synthetic.py), so in CI the only acceptable skips are a GPU-only check on a machine without one and
the checks of the offline real-data copies themselves (tests/data/test_real_data.py) where those copies are
absent. The
hooks below are imported into tests/conftest.py (and can be loaded into any pytest run with
``-p skip_policy`` when this folder is on sys.path). A skip of a test or of a whole module (collection)
is recorded with its reason; at the end, the session's exit status becomes 1 (tests failed) and the
terminal summary lists every offending skip with its reason. Without PRUNEBENCH_CI=1 nothing changes.
"""
from __future__ import annotations

import os

import pytest

ENV = "PRUNEBENCH_CI"
ALLOWED = "cuda"  # a skip whose reason mentions this (any case) is allowed
ALLOWED_MARK = "real_data"  # as is a skip of a test with this marker (the real copies' own checks)


def enabled() -> bool:
    return os.environ.get(ENV) == "1"


def _reason(report) -> str:
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        reason = str(longrepr[2])
    else:
        reason = str(longrepr)
    return reason.removeprefix("Skipped: ")


_FORBIDDEN: list = []


def _record(report) -> None:
    if not enabled() or not report.skipped or hasattr(report, "wasxfail"):
        return
    reason = _reason(report)
    if ALLOWED_MARK in getattr(report, "keywords", {}):
        return
    if ALLOWED not in reason.lower():
        _FORBIDDEN.append((report.nodeid, reason))


def pytest_runtest_logreport(report):
    _record(report)


def pytest_collectreport(report):
    _record(report)


def pytest_sessionfinish(session, exitstatus):
    if _FORBIDDEN and session.exitstatus in (pytest.ExitCode.OK, pytest.ExitCode.NO_TESTS_COLLECTED):
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    if not _FORBIDDEN:
        return
    tr = terminalreporter
    tr.section(f"{ENV}=1: skipped tests fail the run (only CUDA-only skips and the real-data copies' own checks are allowed)", sep="=", red=True)
    for nodeid, reason in _FORBIDDEN:
        tr.line(f"SKIPPED {nodeid}: {reason}", red=True)
