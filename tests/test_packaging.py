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
    from prunebench.pipeline.grid import expand, load_config

    cfg = load_config(REPO / "config" / f"{preset}.yaml")
    assert cfg["preset"] == preset and len(expand(cfg)) > 0


def test_cli_lists_every_command():
    out = subprocess.run([sys.executable, "-m", "prunebench", "--help"], capture_output=True, text=True)
    from prunebench.cli import COMMANDS

    assert out.returncode == 0 and all(f"  {c} " in out.stdout for c in COMMANDS)
    bad = subprocess.run([sys.executable, "-m", "prunebench", "trian"], capture_output=True, text=True)
    assert bad.returncode == 2 and "unknown command 'trian'" in bad.stderr


@pytest.mark.parametrize("cmd", __import__("prunebench.cli", fromlist=["COMMANDS"]).COMMANDS)
def test_cli_help_explains_every_option(cmd):
    out = subprocess.run([sys.executable, "-m", "prunebench", cmd, "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.startswith("usage: prunebench " + cmd)
    from prunebench.cli import command_parser

    for action in command_parser(cmd)._actions:  # every option line carries a help text
        if action.dest != "help":
            assert action.help, f"{cmd} --{action.dest} has no help"


def test_wheel_ships_the_schemas(tmp_path):
    """Package data is found from an installed wheel, not only from a checkout."""
    import zipfile

    r = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                        str(tmp_path), str(REPO)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    names = zipfile.ZipFile(next(tmp_path.glob("prunebench-*.whl"))).namelist()
    assert "prunebench/pipeline/schemas/preset.yaml" in names
    assert "prunebench/cli/prune.py" in names and "prunebench/library/pruners/fggp.py" in names
