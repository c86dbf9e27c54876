"""The Snakemake workflow itself is lint-clean (CI runs this)."""
import subprocess
import sys
from pathlib import Path

from conftest import REPO

SNAKEMAKE = Path(sys.executable).parent / "snakemake"


def test_snakemake_lint_is_clean():
    r = subprocess.run([str(SNAKEMAKE), "--lint", "--configfile", "config/smoke.yaml"], cwd=REPO,
                       capture_output=True, text=True)
    out = r.stdout + r.stderr
    assert "Lints for" not in out, out[-3000:]
    assert r.returncode == 0, out[-3000:]

