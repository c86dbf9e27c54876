"""Set-up files stay in step: environment.yml pins == pyproject pins; presets validate; CLI help works."""
import subprocess
import sys
import tomllib

import pytest
import yaml

from conftest import REPO


def _pyproject_pins():
    data = tomllib.loads((REPO / "pyproject.toml").read_text())
    pins = data["project"]["dependencies"] + data["project"]["optional-dependencies"]["dev"]
    return dict(p.split("==") for p in pins)


def test_environment_yml_matches_pyproject():
    env = yaml.safe_load((REPO / "environment.yml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    conda_pins = dict(p.split("==") for p in pip if "==" in p)
    assert conda_pins == _pyproject_pins()


def test_torch_pair_pinned():
    pins = _pyproject_pins()
    assert pins["torch"] == "2.14.1" and pins["torchvision"] == "0.29.1"


@pytest.mark.parametrize("preset", ["smoke", "quick", "force", "spp", "prospr", "fggp", "force-check"])
def test_presets_validate(preset):
    from prunebench.grid import expand, load_config

    cfg = load_config(REPO / "config" / f"{preset}.yaml")
    assert cfg["preset"] == preset and len(expand(cfg)) > 0


@pytest.mark.parametrize("cmd", ["data", "init", "prune", "isometry", "train", "grid", "aggregate", "figure", "report", "bench"])
def test_cli_help_explains_every_option(cmd):
    out = subprocess.run([sys.executable, "-m", "prunebench.cli", cmd, "--help"], capture_output=True, text=True)
    assert out.returncode == 0
    # every option line carries a help text
    from prunebench.cli import build_parser

    sub = build_parser()._subparsers._group_actions[0].choices[cmd]
    for action in sub._actions:
        if action.dest != "help":
            assert action.help, f"{cmd} --{action.dest} has no help"
