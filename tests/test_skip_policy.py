"""The CI skip policy (tests/skip_policy.py, loaded by tests/conftest.py), run in a subprocess pytest."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

TESTS = Path(__file__).resolve().parent

EXAMPLE = '''
import pytest

def test_passes():
    pass

@pytest.mark.skipif(True, reason="no CUDA device")
def test_gpu_only():
    pass

@pytest.mark.real_data
def test_real_copy_check():
    pytest.skip("no local copy of the real data")

@pytest.mark.xfail(reason="known")
def test_expected_failure():
    assert False
'''
SKIPPING = EXAMPLE + '''
def test_needs_data():
    pytest.skip("no local data")
'''


def run_pytest(tmp_path: Path, source: str, ci: bool):
    (tmp_path / "test_example.py").write_text(source)
    env = {k: v for k, v in os.environ.items() if k not in ("PRUNEBENCH_CI", "PYTEST_ADDOPTS")}
    env["PYTHONPATH"] = os.pathsep.join([str(TESTS), env.get("PYTHONPATH", "")])
    if ci:
        env["PRUNEBENCH_CI"] = "1"
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "skip_policy", "-p", "no:cacheprovider",
                           "--rootdir", str(tmp_path), "-q", str(tmp_path)],
                          cwd=tmp_path, env=env, capture_output=True, text=True)


def test_ci_fails_on_a_skip_unless_it_is_about_cuda(tmp_path):
    r = run_pytest(tmp_path, SKIPPING, ci=True)
    assert r.returncode == 1, r.stdout
    assert "SKIPPED test_example.py::test_needs_data: no local data" in r.stdout
    policy = r.stdout.split("PRUNEBENCH_CI=1")[-1]
    assert "test_gpu_only:" not in policy  # the CUDA skip is allowed
    assert "test_real_copy_check:" not in policy  # and so is a real-data copy's own check
    assert "1 passed, 3 skipped, 1 xfailed" in r.stdout


def test_ci_passes_with_only_cuda_skips_and_outside_ci_nothing_changes(tmp_path):
    r = run_pytest(tmp_path, EXAMPLE, ci=True)
    assert r.returncode == 0 and "PRUNEBENCH_CI=1" not in r.stdout, r.stdout
    r = run_pytest(tmp_path, SKIPPING, ci=False)
    assert r.returncode == 0 and "PRUNEBENCH_CI=1" not in r.stdout, r.stdout


def test_a_module_skipped_at_collection_counts(tmp_path):
    r = run_pytest(tmp_path, 'import pytest\npytest.skip("not here", allow_module_level=True)\n', ci=True)
    assert r.returncode == 1 and "SKIPPED test_example.py: not here" in r.stdout, r.stdout
