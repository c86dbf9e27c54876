"""Every committed replication report regenerates from its git-tracked per-seed data alone, on a fresh clone
without results/ or any DVC remote, byte-identical (issue 20 item 5)."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

from prunebench.report import data as data_mod
from prunebench.report.replication import default_outputs

REPO = Path(__file__).resolve().parents[1]
DATA = sorted(p for p in (REPO / "paper" / "data").glob("*") if (p / data_mod.SUMS).is_file())


def _git(*args, cwd):
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout


def test_there_is_committed_data_and_every_report_has_its_data():
    assert DATA, "no paper/data/<preset>/ committed"
    tracked = set(_git("ls-files", "paper", cwd=REPO).split())
    for d in DATA:
        report, figs = default_outputs(d)
        rel = d.relative_to(REPO)
        assert f"{rel}/{data_mod.SUMS}" in tracked and f"{rel}/summary.csv" in tracked and f"{rel}/history.csv" in tracked
        assert str(report.relative_to(REPO)) in tracked
        data_mod.verify(d)
        text = report.read_text()
        assert f"prunebench report --data {rel}" in text     # the report names the command that regenerates it


@pytest.mark.e2e
@pytest.mark.parametrize("data", DATA, ids=[d.name for d in DATA])
def test_a_fresh_clone_regenerates_the_report_and_its_pngs_byte_identically(data, tmp_path):
    clone = tmp_path / "clone"
    _git("clone", "--quiet", str(REPO), str(clone), cwd=tmp_path)
    assert not (clone / "results").exists()
    rel = data.relative_to(REPO)
    env = dict(os.environ, PYTHONPATH=str(clone / "src"))
    env.pop("PRUNEBENCH_COMMAND", None)
    r = subprocess.run([sys.executable, "-m", "prunebench", "report", "--data", str(rel)], cwd=clone, env=env,
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    report, figs = default_outputs(clone / rel)
    changed = _git("status", "--porcelain", "--untracked-files=all", "paper", cwd=clone)
    assert changed == "", f"regenerating {rel} changed the committed files:\n{changed}"
    assert report.is_file() and any(figs.glob("*.png"))
