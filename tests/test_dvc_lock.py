"""The committed results are the committed code's (issue 20 §5): for every stage dvc.lock records, `dvc status`
finds no dependency changed (code, rules, preset, claims, profile) and no git-tracked output (the report, its
PNGs, its per-seed data) changed. The DVC-cached outputs (results/, figures/) are not in a checkout: those may
be missing ("not in cache", "deleted"), nothing else."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import yaml

from conftest import REPO

DVC = Path(sys.executable).parent / "dvc"
MISSING = {"not in cache", "deleted"}


def locked_stages() -> list:
    return sorted(yaml.safe_load((REPO / "dvc.lock").read_text())["stages"])


def status(stages) -> dict:
    r = subprocess.run([str(DVC), "status", "--json", *stages], cwd=REPO, capture_output=True, text=True,
                       timeout=600, env={**os.environ, "DVC_NO_ANALYTICS": "1"})
    assert r.returncode == 0, r.stderr[-2000:]
    return json.loads(r.stdout or "{}")


def stale(report: dict) -> list:
    """What `dvc status --json` says beyond missing cached outputs."""
    out = []
    for stage, entries in report.items():
        for entry in entries:
            if not isinstance(entry, dict):
                out.append(f"{stage}: {entry}")
                continue
            for kind, changes in entry.items():
                for path, what in (changes.items() if isinstance(changes, dict) else [(changes, "")]):
                    if kind == "changed outs" and what in MISSING:
                        continue
                    out.append(f"{stage}: {kind}: {path} {what}")
    return out


def test_the_locked_stages_match_the_checkout():
    stages = locked_stages()
    assert stages, "dvc.lock records no stage"
    problems = stale(status(stages))
    assert not problems, "dvc.lock does not describe this checkout (rerun the stage and `dvc commit` it):\n" + \
        "\n".join(problems)


def test_the_check_reads_a_changed_dependency():
    """The filter above can fail: a changed dependency or a modified git-tracked output is reported, a cached
    output missing from a checkout is not."""
    report = {"quick": [{"changed deps": {"src/prunebench": "modified"}},
                        {"changed outs": {"results/quick": "not in cache", "paper/replication-quick.md": "modified"}}]}
    assert stale(report) == ["quick: changed deps: src/prunebench modified",
                             "quick: changed outs: paper/replication-quick.md modified"]
    assert stale({"quick": [{"changed outs": {"results/quick": "deleted"}}]}) == []
