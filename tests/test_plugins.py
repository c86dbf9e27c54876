"""Methods from other packages (docs/plugins.md): the documented example package, built from the page's own
`# file:` blocks and installed with pip into a temporary folder, is seen by `prunebench methods`,
`prunebench.prune`, a preset with its sanity-check ablations, and (e2e) the whole Snakemake pipeline;
`register()` at run time; bad plugins are one-line errors naming them."""
import csv
import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from conftest import REPO
from prunebench import build_model, prune
from prunebench.library import methods as M
from prunebench.library.errors import PrunebenchError
from prunebench.library.pruners.during import make_during_training

DOC = REPO / "docs" / "plugins.md"
BIN = Path(sys.executable).parent


def doc_blocks(text: str) -> list:
    """(language, body) of every fenced block of the page."""
    return re.findall(r"^```(\w*)\n(.*?)^```", text, flags=re.M | re.S)


def doc_files(text: str) -> dict:
    """path -> content of the blocks whose first line is `# file: <path>`."""
    out = {}
    for _, body in doc_blocks(text):
        first, _, rest = body.partition("\n")
        m = re.match(r"# file: (\S+)$", first)
        if m:
            out[m.group(1)] = rest
    return out


def install(pkg_files: dict, dest: Path) -> Path:
    """Write the package and `pip install --target` it (no deps, no network): returns the site folder."""
    pkg = dest / "pkg"
    for rel, content in pkg_files.items():
        (pkg / rel).parent.mkdir(parents=True, exist_ok=True)
        (pkg / rel).write_text(content)
    site = dest / "site"
    r = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                        "--no-index", "--target", str(site), str(pkg)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-3000:]
    return site


@pytest.fixture(scope="module")
def plugin_site(tmp_path_factory):
    files = doc_files(DOC.read_text())
    assert set(files) == {"pyproject.toml", "src/prunebench_normmag/__init__.py",
                          "src/prunebench_normmag/plugin.py", "src/prunebench_normmag/pruner.py"}
    return install(files, tmp_path_factory.mktemp("normmag"))


def env_with(site: Path) -> dict:
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "src"), str(site)])}


def run(args, site, cwd=None):
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, env=env_with(site), cwd=cwd)


def test_the_installed_plugin_is_listed_by_prunebench_methods(plugin_site, tmp_path):
    r = run(["-m", "prunebench", "methods", "--options"], plugin_site, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    line = next(l for l in r.stdout.splitlines() if l.strip().startswith("normmag "))
    assert "NormMag" in line and "prunebench-normmag README" in line and "layer-normalised magnitude" in line
    assert "power = 1.0" in r.stdout and "shuffle = False" in r.stdout


def test_prune_runs_the_plugin_with_its_options_and_ablations(plugin_site):
    code = textwrap.dedent("""
        import hashlib, json, torch
        from prunebench import build_model, prune
        from prunebench.library import methods as M
        from prunebench.library.pruners.registry import scores
        model = build_model("lenet300", "mnist")
        out = {}
        for kw in ({}, {"power": 2.0}, {"invert": True}, {"shuffle": True}):
            m = prune(model, "normmag", 0.9, **kw)
            out[json.dumps(kw)] = {"method": m.metadata["method"], "density": m.density, "kept": m.kept,
                                   "options": m.metadata["options"], "section": m.metadata["section"],
                                   "bytes": hashlib.sha256(b"".join(t.numpy().tobytes() for _, t in m.items())).hexdigest()}
        s = scores(model, "normmag", power=2.0)
        w = dict(model.named_parameters())["net.0.weight"].detach().abs().pow(2.0)
        out["score_ok"] = bool(torch.allclose(s["net.0.weight"], w / w.mean()))
        info = M.METHODS["normmag"]
        out["dist"], out["file"] = info.dist, str(M.module_file("normmag"))
        print(json.dumps(out))
    """)
    r = run(["-c", code], plugin_site)
    assert r.returncode == 0, r.stderr[-3000:]
    out = json.loads(r.stdout.strip().splitlines()[-1])
    plain, sq, inv, shuf = (out[k] for k in ('{}', '{"power": 2.0}', '{"invert": true}', '{"shuffle": true}'))
    assert plain["method"] == "normmag" and abs(plain["density"] - 0.1) < 1e-9
    assert plain["kept"] == sq["kept"] == inv["kept"] == shuf["kept"]
    assert sq["options"]["power"] == 2.0 and inv["options"]["invert"] and shuf["options"]["shuffle"]
    assert len({plain["bytes"], inv["bytes"], shuf["bytes"]}) == 3  # the ablations give other masks
    assert plain["section"] == "prunebench-normmag README" and out["score_ok"]
    assert out["dist"] == "prunebench-normmag 0.1.0"
    assert out["file"] == str(plugin_site / "prunebench_normmag" / "pruner.py")


def _preset_yaml() -> str:
    """The preset of the page (the yaml block headed `# config/normmag.yaml`)."""
    return next(body for lang, body in doc_blocks(DOC.read_text())
                if lang == "yaml" and body.startswith("# config/normmag.yaml"))


def test_the_documented_preset_validates_with_its_ablations(plugin_site, tmp_path):
    cfg = tmp_path / "normmag.yaml"
    cfg.write_text(_preset_yaml())
    r = run(["-m", "prunebench", "grid", "--config", str(cfg), "--list"], plugin_site)
    assert r.returncode == 0, r.stderr
    assert f"{cfg}: valid; 27 cells" in r.stderr  # dense: one cell per seed
    assert "/normmag_shuffle/s0.99/seed2" in r.stdout and "/normmag_invert/s0.9/seed0" in r.stdout
    bad = tmp_path / "bad.yaml"
    bad.write_text(_preset_yaml().replace("options: {power: 2.0}", "options: {power: -1}"))
    r = run(["-m", "prunebench", "grid", "--config", str(bad)], plugin_site)
    assert r.returncode == 2 and "invalid option power=-1 for method 'normmag'" in r.stderr
    # without the plugin installed the same preset is a one-line error naming the method
    r = run(["-m", "prunebench", "grid", "--config", str(cfg)], tmp_path / "nothing-installed")
    assert r.returncode == 2 and "unknown method 'normmag'" in r.stderr


@pytest.mark.parametrize("case,expect", [
    ("missing-module", "plugin 'brokenpb' (no_such_module_xyz:METHOD, from prunebench-broken 1.0) failed to load: "
                       "ModuleNotFoundError"),
    ("not-a-row", "expected a prunebench.library.methods.MethodInfo, got dict"),
    ("wrong-name", "the entry point's name must be the method's name 'other'"),
    ("clash", "plugin method 'snip' (prunebench-broken 1.0) clashes with a built-in method"),
])
def test_a_bad_plugin_is_a_one_line_error_naming_it(tmp_path, case, expect):
    name = "snip" if case == "clash" else "brokenpb"
    value = {"missing-module": "no_such_module_xyz:METHOD"}.get(case, "brokenpb_mod:METHOD")
    body = {"not-a-row": "METHOD = {'name': 'brokenpb'}\n",
            "wrong-name": "from prunebench.library.methods import MethodInfo\nMETHOD = MethodInfo('other', 'at_init', 'x')\n",
            "clash": "from prunebench.library.methods import MethodInfo\nMETHOD = MethodInfo('snip', 'at_init', 'x')\n",
            }.get(case, "")
    site = install({
        "pyproject.toml": textwrap.dedent(f"""
            [build-system]
            requires = ["setuptools>=77"]
            build-backend = "setuptools.build_meta"
            [project]
            name = "prunebench-broken"
            version = "1.0"
            [project.entry-points."prunebench.methods"]
            {name} = "{value}"
            [tool.setuptools]
            py-modules = ["brokenpb_mod"]
        """),
        "brokenpb_mod.py": body,
    }, tmp_path)
    r = run(["-m", "prunebench", "methods"], site)
    assert r.returncode == 2, r.stdout + r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and expect in lines[0], r.stderr


# ------------------------------------------------------------------------------------------------------
# register() in this process (what a notebook does)

@pytest.fixture
def local_module(tmp_path, monkeypatch):
    (tmp_path / "pb_local_methods.py").write_text(textwrap.dedent("""
        from dataclasses import dataclass
        from prunebench.library.models import prunable_parameters
        from prunebench.library.pruners.base import Pruner
        from prunebench.library.pruners.during import DuringOptions, DuringTraining, count, pick

        class Smallest(Pruner):
            name = "smallest_local"
            needs_data = False

            def scores(self, model, batches=None, seed=0):
                return {n: -w.detach().abs() for n, w in prunable_parameters(model).items()}

        class LocalGMP(DuringTraining):
            name = "gmp_local"

            @dataclass(frozen=True)
            class Options(DuringOptions):
                method = "gmp_local"

            def _decide(self, step, params, pool, wanted, remain):
                mag = self.magnitudes(params)
                return pick({n: -mag[n] for n in pool}, pool, min(wanted, count(pool))), {}
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    yield "pb_local_methods"
    M.unregister("smallest_local")
    M.unregister("gmp_local")


def test_register_adds_methods_of_both_kinds_for_this_process(local_module):
    info = M.register(M.MethodInfo("smallest_local", M.AT_INIT_KIND, local_module))
    assert info.label == "smallest_local" and info.color in M.PALETTE and info.dist == "local"
    assert M.register(M.MethodInfo("smallest_local", M.AT_INIT_KIND, local_module)) == info  # idempotent
    assert "smallest_local" in M.at_init() and M.TABLE[-1].name == "smallest_local"
    assert M.method_info("smallest_local").spec == "plugin local"
    model = build_model("lenet300", "mnist")
    mask = prune(model, "smallest_local", 0.5)
    w = dict(model.named_parameters())["net.0.weight"].detach().abs()
    kept = w[mask["net.0.weight"]]
    assert kept.max() <= w[~mask["net.0.weight"]].min() + 1e-12  # it keeps the smallest magnitudes
    M.register(M.MethodInfo("gmp_local", M.DURING_KIND, local_module))
    pruner = make_during_training("gmp_local", 0.9, update_interval=5)
    assert type(pruner).__name__ == "LocalGMP" and "gmp_local" in M.during()
    with pytest.raises(PrunebenchError, match="clashes with the method from local"):
        M.register(M.MethodInfo("smallest_local", M.AT_INIT_KIND, "another_module"))


@pytest.mark.parametrize("row,match", [
    (M.MethodInfo("snip", M.AT_INIT_KIND, "x"), "clashes with a built-in method"),
    (M.MethodInfo("Bad-Name", M.AT_INIT_KIND, "x"), "invalid method name 'Bad-Name'"),
    (M.MethodInfo("mine_shuffle", M.AT_INIT_KIND, "x"), "invalid method name 'mine_shuffle'"),
    (M.MethodInfo("mine_m3", M.AT_INIT_KIND, "x"), "invalid method name 'mine_m3'"),
    (M.MethodInfo("mine_ai", M.AT_INIT_KIND, "x"), "invalid method name 'mine_ai'"),
    (M.MethodInfo("mine", M.DENSE_KIND, "x"), "a plugin method is at_init or during"),
    (M.MethodInfo("mine", M.AT_INIT_KIND, ""), "needs `module`"),
    ({"name": "mine"}, "expected a prunebench.library.methods.MethodInfo"),
])
def test_register_rejects_rows_a_preset_could_not_carry(row, match):
    with pytest.raises(PrunebenchError, match=re.escape(match)):
        M.register(row)
    assert "mine" not in M.METHODS


def test_built_in_rows_are_built_in_and_point_at_their_spec():
    assert all(m.builtin and m.spec == f"docs/methods.md {m.section}" for m in M.BUILTIN)
    assert M.module_file("snip") == REPO / "src" / "prunebench" / "library" / "pruners" / "snip.py"


# ------------------------------------------------------------------------------------------------------
# End to end: a preset naming the plugin, through Snakemake (the temporary package on PYTHONPATH)

TINY = """\
preset: plugintest
description: a plugin method and its sanity checks through the whole pipeline (tests/test_plugins.py)
device: cpu
threads: 1
train: {epochs: 1, batch_size: 50, lr: 0.1, momentum: 0.9, schedule: constant, steps_per_epoch: 4}
pruning: {batch_size: 50}
arms:
  snip: {method: snip}
  normmag: {method: normmag, options: {power: 2.0}}
  normmag_shuffle: {of: normmag, ablation: shuffle}
grid:
  - {dataset: mnist, model: lenet300, sparsities: [0.9], seeds: [0], arms: [snip, normmag, normmag_shuffle]}
figures: [sanity_checks]
claims: [force]
"""


@pytest.mark.e2e
def test_a_preset_naming_the_plugin_runs_through_the_pipeline(plugin_site, data_sources, tmp_path):
    repo = tmp_path / "repo"
    for rel in ("Snakefile", "rules", "profiles", "report", "paper/reference", "src/prunebench"):
        src = REPO / rel
        if src.is_dir():
            shutil.copytree(src, repo / rel, symlinks=True, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            (repo / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, repo / rel)
    shutil.copytree(REPO / "config", repo / "config")
    (repo / "config" / "plugintest.yaml").write_text(TINY)
    env = {**env_with(plugin_site), "PYTHONPATH": str(plugin_site), "PRUNEBENCH_DATA_SOURCES": str(data_sources),
           "DVC_NO_ANALYTICS": "1"}
    r = subprocess.run([BIN / "snakemake", "--cores", "2", "figures", "--configfile", "config/plugintest.yaml"],
                       cwd=repo, env=env, capture_output=True, text=True)
    out = r.stdout + r.stderr
    assert r.returncode == 0, out[-4000:]
    cell = repo / "results/plugintest/mnist/lenet300/kaiming_normal/normmag/s0.9/seed0"
    meta = json.loads((cell / "prune.json").read_text())
    assert (cell / "metrics.json").exists()
    assert meta["method"] == "normmag" and meta["options"] == {"power": 2.0} and meta["density"] == 0.1
    with open(repo / "results/plugintest/summary.csv") as f:
        arms = sorted(row["arm"] for row in csv.DictReader(f))
    assert arms == ["normmag", "normmag_shuffle", "snip"]
    assert (repo / "figures/plugintest/sanity_checks.png").stat().st_size > 0
    report = (repo / "paper/replication-plugintest.md").read_text()
    others = report[report.index("## Other arms of this preset"):]  # the plugin's arms: no paper claims them
    assert "NormMag" in others and "layer-wise shuffle" in others, others[:3000]
    # the run's summary, and no per-job chatter on the terminal (it is in Snakemake's log)
    assert "prunebench plugintest: finished in" in out and "3 run, 0 reused, 0 failed, 0 not reached (of 3)" in out
    assert "localrule" not in out and "Finished jobid" not in out
    log = next((repo / ".snakemake" / "log").glob("*.snakemake.log")).read_text()
    assert "localrule train:" in log and "prunebench plugintest: finished in" in log
