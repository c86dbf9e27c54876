"""Packaging (issue 21): ranges for the library, the exact lock that make / CI / conda install, extras for the
report and the pipeline, package data found from an installed wheel outside the checkout, the set-up files in
step with each other. CI also runs .ci/wheel-check (a fresh venv with the wheel and its real dependencies)."""
import re
import subprocess
import sys
import tomllib
import zipfile

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet

from checkout import checkout_copy
from conftest import REPO
from fake_results import write_fake_results
from prunebench.library.errors import PrunebenchError
from prunebench.library.extras import OPTIONAL, missing_extra
from prunebench.pipeline.grid import expand, load_config
from prunebench.pipeline.resources import preset_file, shipped_presets
from prunebench.report.resources import claims_path, schema_path, shipped_papers

sys.path.insert(0, str(REPO / "requirements"))
import lock  # noqa: E402  (requirements/lock.py: the closure of the extras, as `make lock` computes it)

PROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
LOCK = REPO / "requirements" / "constraints.txt"
# What the library imports (tests/test_architecture.py keeps it from importing the other wings).
LIBRARY = {"torch", "numpy", "safetensors", "tqdm", "pillow"}


def norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def locked() -> dict:
    out = {}
    for line in LOCK.read_text().splitlines():
        if line and not line.startswith("#"):
            name, version = line.split("==")
            out[norm(name)] = version
    return out


def extra_requirements(extra: str) -> list:
    """The requirements an extra adds, self-references (prunebench[report]) expanded."""
    out = []
    for text in PROJECT["optional-dependencies"][extra]:
        r = Requirement(text)
        if norm(r.name) == "prunebench":
            for e in r.extras:
                out += extra_requirements(e)
        else:
            out.append(r)
    return out


def test_the_library_installs_lean_and_the_rest_are_extras():
    base = {norm(Requirement(r).name) for r in PROJECT["dependencies"]}
    assert base == LIBRARY
    report = {norm(r.name) for r in extra_requirements("report")}
    pipeline = {norm(r.name) for r in extra_requirements("pipeline")}
    assert {"pandas", "matplotlib", "seaborn", "scipy", "pyyaml", "jsonschema"} <= report
    assert {"snakemake", "dvc"} <= pipeline and report <= pipeline
    assert "snakemake-executor-plugin-slurm" in {norm(r.name) for r in extra_requirements("slurm")}
    dev = {norm(r.name) for r in extra_requirements("dev")}
    assert pipeline <= dev and {"pytest", "torchvision"} <= dev


def test_ranges_admit_the_lock_and_the_gpu_hosts_torch():
    pins = locked()
    reqs = [Requirement(r) for r in PROJECT["dependencies"]]
    for extra in PROJECT["optional-dependencies"]:
        reqs += extra_requirements(extra)
    for r in reqs:
        assert norm(r.name) in pins, f"{r.name} is not in {LOCK.name}"
        assert r.specifier.contains(pins[norm(r.name)], prereleases=True), f"{r} excludes the locked {pins[norm(r.name)]}"
        assert "==" not in str(r.specifier), f"{r}: exact pins belong in {LOCK.name}"
    spec = {norm(r.name): r.specifier for r in reqs}
    assert spec["torch"].contains("2.11.0") and spec["torchvision"].contains("0.26.0")  # GPU hosts lag


def test_the_lock_pins_the_torch_pair_and_covers_everything_installed_here():
    pins = locked()
    assert pins["torch"] == "2.14.1" and pins["torchvision"] == "0.29.1"
    need = {norm(n): v for n, v in lock.closure(lock.project_requirements()).items()}
    missing = sorted(set(need) - set(pins))
    assert not missing, f"not in {LOCK.name}: {missing} (make lock)"
    differ = {n: (need[n], pins[n]) for n in need if need[n] != pins[n]}
    assert not differ, f"installed here vs locked: {differ}"
    assert not set(pins) - set(need), f"locked but not needed: {sorted(set(pins) - set(need))}"


def test_python_floor_is_the_locks_and_setuptools_floor_builds_a_license_expression():
    assert PROJECT["requires-python"] == ">=3.11"
    build = tomllib.loads((REPO / "pyproject.toml").read_text())["build-system"]["requires"]
    assert build == ["setuptools>=77"] and PROJECT["license"] == "MIT"
    assert (REPO / "LICENSE").read_text().startswith("MIT License")
    assert SpecifierSet(PROJECT["requires-python"]).contains(f"{sys.version_info[0]}.{sys.version_info[1]}")
    makefile = (REPO / "Makefile").read_text()
    assert "PY_FLOOR := 3.11" in makefile


def test_environment_yml_installs_the_lock():
    env = yaml.safe_load((REPO / "environment.yml").read_text())
    deps = env["dependencies"]
    python = next(d for d in deps if isinstance(d, str) and d.startswith("python="))
    assert SpecifierSet(PROJECT["requires-python"]).contains(python.split("=")[1])
    pip = next(d["pip"] for d in deps if isinstance(d, dict))
    assert pip == ["--constraint requirements/constraints.txt", "--editable .[dev]"]
    assert "dev" in PROJECT["optional-dependencies"]


def test_make_and_ci_install_the_lock_and_run_the_readme_test_command():
    makefile = (REPO / "Makefile").read_text()
    assert "LOCK   := requirements/constraints.txt" in makefile
    assert "pip install -q --disable-pip-version-check -c $(LOCK) -e '.[dev]'" in makefile
    assert "$(STAMP): pyproject.toml $(LOCK)" in makefile
    ci = (REPO / ".ci" / "run").read_text()
    assert "make test" in ci and ".ci/wheel-check" in ci


def test_make_refuses_a_python_below_the_floor(tmp_path):
    r = subprocess.run(["make", "-s", "venv", f"VENV={tmp_path}/venv", "PY_FLOOR=3.99"], cwd=REPO,
                       capture_output=True, text=True)
    assert r.returncode != 0 and "prunebench needs Python >= 3.99" in r.stderr
    assert not (tmp_path / "venv").exists()


def test_citation_matches_the_package():
    """CITATION.cff's version and license are the package's (its papers: tests/test_docs_facts.py)."""
    cff = yaml.safe_load((REPO / "CITATION.cff").read_text())
    assert cff["cff-version"] == "1.2.0" and cff["type"] == "software"
    assert cff["version"] == PROJECT["version"] and cff["license"] == PROJECT["license"]
    assert len(cff["references"]) == 4


def test_extras_table_matches_pyproject():
    for module, (dist, extra) in OPTIONAL.items():
        assert dist in {norm(r.name) for r in extra_requirements(extra)}, (module, extra)
    assert missing_extra("snakemake.api") == ("this command needs snakemake, which `pip install prunebench` leaves "
                                              "out: pip install 'prunebench[pipeline]'")
    assert missing_extra("torch") is None


def test_a_command_missing_an_extra_says_which_in_one_line():
    code = ("import sys; sys.modules['yaml'] = None\n"
            "from prunebench.cli import main\nsys.exit(main(['grid', '--config', 'smoke']))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 2 and r.stderr == ("prunebench grid: error: this command needs pyyaml, which `pip install "
                                              "prunebench` leaves out: pip install 'prunebench[report]'\n")


@pytest.mark.parametrize("preset", sorted(p.stem for p in (REPO / "config").glob("*.yaml")))
def test_presets_validate_by_path_and_by_name(preset):
    cfg = load_config(REPO / "config" / f"{preset}.yaml")
    assert cfg["preset"] == preset and len(expand(cfg)) > 0
    assert load_config(preset) == cfg  # a bare name is the shipped preset


def test_the_preset_and_claims_lookups():
    assert shipped_presets() == tuple(sorted(p.stem for p in (REPO / "config").glob("*.yaml")))
    assert shipped_papers() == ("fggp", "force", "prospr", "spp")
    assert schema_path().read_bytes() == (REPO / "paper/reference/schema.yaml").read_bytes()
    assert claims_path("force").read_bytes() == (REPO / "paper/reference/force.yaml").read_bytes()
    assert claims_path("nosuch") == claims_path("nosuch") and str(claims_path("nosuch")) == "nosuch"
    assert str(preset_file("config/nosuch.yaml")) == "config/nosuch.yaml"
    with pytest.raises(PrunebenchError, match="missing config file 'nosuch'"):
        load_config("nosuch")


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


# ------------------------------------------------------------------------------------------------------
# The built wheel: what it holds, and the commands run from it outside the checkout

@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    out = tmp_path_factory.mktemp("wheel")
    src = checkout_copy(tmp_path_factory.mktemp("tree"))  # setuptools builds in the tree (build/): not in ours
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                        str(out), str(src)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return next(out.glob("prunebench-*.whl"))


def test_the_wheel_ships_presets_claims_schemas_docs_and_license(wheel):
    z = zipfile.ZipFile(wheel)
    names = set(z.namelist())
    assert "prunebench/pipeline/schemas/preset.yaml" in names
    assert "prunebench/cli/prune.py" in names and "prunebench/library/pruners/fggp.py" in names
    for p in (REPO / "config").glob("*.yaml"):
        assert z.read(f"prunebench/pipeline/presets/{p.name}") == p.read_bytes()
    for p in (REPO / "paper" / "reference").glob("*.yaml"):
        assert z.read(f"prunebench/report/reference/{p.name}") == p.read_bytes()
    for p in (REPO / "docs").glob("*.md"):
        assert z.read(f"prunebench/library/docs/{p.name}") == p.read_bytes()
    meta = z.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)
    assert "Requires-Python: >=3.11" in meta and "License-Expression: MIT" in meta
    unconditional = {norm(Requirement(l.split(": ", 1)[1]).name) for l in meta.splitlines()
                     if l.startswith("Requires-Dist:") and "extra ==" not in l}
    assert unconditional == LIBRARY
    assert {"report", "pipeline", "slurm", "bench", "dev"} <= {l.split(": ")[1] for l in meta.splitlines()
                                                               if l.startswith("Provides-Extra:")}


def test_commands_run_from_the_installed_wheel_outside_the_checkout(wheel, tmp_path):
    """The wheel's own files (its dependencies from this environment), from a folder that is no checkout."""
    site = tmp_path / "site"
    r = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-index", "--target",
                        str(site), str(wheel)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    work = tmp_path / "elsewhere"
    work.mkdir()
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(site), "HOME": str(tmp_path)}

    def pb(*args):
        return subprocess.run([sys.executable, "-m", "prunebench", *args], cwd=work, env=env, capture_output=True,
                              text=True)

    where = subprocess.run([sys.executable, "-c", "import prunebench; print(prunebench.__file__)"], cwd=work,
                           env=env, capture_output=True, text=True).stdout
    assert where.startswith(str(site))
    r = pb("grid", "--config", "smoke")
    assert r.returncode == 0 and "smoke: valid; 25 cells" in r.stderr, r.stderr
    r = pb("methods")
    assert r.returncode == 0 and r.stdout.rstrip().endswith(str(site / "prunebench/library/docs/methods.md"))
    write_fake_results(work / "results" / "quick", preset="quick")
    r = pb("report", "--results-dir", "results/quick", "--claims", "force", "spp", "prospr", "fggp", "--out",
           "report.md", "--preset", "quick")
    assert r.returncode == 0, r.stderr
    assert "## Verdicts at a glance" in (work / "report.md").read_text()
    r = pb("verify", "--preset", "smoke", "--root", ".")
    assert r.returncode == 2 and "no results for preset 'smoke'" in r.stderr, r.stderr
