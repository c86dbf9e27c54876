"""End to end on one smoke run (issue 17 §1 and §5):
- a finished cell whose mask changes (an option added to its arm) is retrained from scratch by the
  pipeline, never resumed from the old mask's checkpoint;
- `prunebench verify` names every tampering of §5 (masks swapped between cells, init seeds swapped, an arm
  removed from the saved config.yaml then the tables aggregated again, a timing.csv row removed with its
  checksum sidecar regenerated, a metrics.json moved from another cell), and a consistent forgery (the file
  and every checksum and table recomputed) passes every check but reproduction, which catches it;
- `--reproduce K --cheapest --no-train` is cheap and passes on honest results.
The smoke run itself and the other pipeline checks are in tests/test_pipeline.py (this module runs its own)."""
import csv
import io
import json
import shutil
import subprocess

import pytest
import yaml

from test_pipeline import BIN, PRESET, copy_repo, env, job_counts, snakemake

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module", autouse=True)
def synthetic_data(data_sources):
    import test_pipeline

    test_pipeline.DATA_SOURCES["path"] = data_sources


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    repo = copy_repo(tmp_path_factory.mktemp("verify-run"))
    snakemake(repo, "figures")
    return repo


def clone(repo, tmp_path):
    copy = tmp_path / "repo"
    shutil.copytree(repo, copy, symlinks=True)
    return copy


def verify(repo, *args):
    r = subprocess.run([BIN / "prunebench", "verify", "--preset", PRESET, *args], cwd=repo, capture_output=True,
                       text=True, env={**env(), "PYTHONPATH": str(repo / "src")})
    return r.returncode, r.stdout + r.stderr


def cells(repo, arm):
    return sorted((repo / f"results/{PRESET}").glob(f"mnist/lenet300/kaiming_normal/{arm}/s*/seed0"))


def test_a_changed_mask_is_trained_again_not_resumed(smoke_run, tmp_path):
    repo = clone(smoke_run, tmp_path)
    snip = cells(repo, "snip")
    old = {d: (d / "metrics.json").read_bytes() for d in snip}
    assert all((d / "checkpoint.safetensors").exists() for d in snip)  # what a resume would pick up
    cfg_path = repo / "config" / f"{PRESET}.yaml"
    cfg = yaml.safe_load(cfg_path.read_text())
    cfg["arms"]["snip"]["options"] = {"num_batches": 2}
    cfg_path.write_text(yaml.safe_dump(cfg))
    r = snakemake(repo, "figures")
    counts = job_counts(r.stdout + r.stderr)
    assert counts.get("prune", 0) >= len(snip) and counts.get("train", 0) >= len(snip), counts
    from prunebench.library.artifacts import recorded_checksum

    for d in snip:
        log = repo / f"results/{PRESET}/logs/train" / ("_".join(d.relative_to(repo / f"results/{PRESET}").parts) + ".log")
        text = log.read_text()
        assert "resumed" not in text and "starting over" in text, text[-2000:]
        assert (d / "metrics.json").read_bytes() != old[d], d
        manifest = json.loads((d / "manifest.json").read_text())
        assert manifest["config"]["identity"]["mask_sha256"] == recorded_checksum(d / "mask.safetensors")
    code, out = verify(repo)
    assert code == 0, out[-3000:]


def _swap(a, b):
    tmp = a.with_name(a.name + ".swap")
    a.rename(tmp)
    b.rename(a)
    tmp.rename(b)


def _tamper_masks(repo):
    a, b = cells(repo, "snip")[0], cells(repo, "random")[0]
    _swap(a / "mask.safetensors", b / "mask.safetensors")
    return f"{a.relative_to(repo)}/mask.safetensors: the mask records cell_hash"


def _tamper_inits(repo):
    folder = repo / f"results/{PRESET}/mnist/lenet300/kaiming_normal/init"
    _swap(folder / "seed0.safetensors", folder / "seed40000.safetensors")
    return f"{folder.relative_to(repo)}/seed0.safetensors: the init file records seed 40000"


def _tamper_config(repo):
    res = repo / f"results/{PRESET}"
    cfg = yaml.safe_load((res / "config.yaml").read_text())
    del cfg["arms"]["gmp"]
    for block in cfg["grid"]:
        block["arms"] = [a for a in block["arms"] if a != "gmp"]
    (res / "config.yaml").write_text(yaml.safe_dump(cfg))
    r = subprocess.run([BIN / "prunebench", "aggregate", "--config", res / "config.yaml", "--results-root", "results"],
                       cwd=repo, capture_output=True, text=True, env={**env(), "PYTHONPATH": str(repo / "src")})
    assert r.returncode == 0, r.stderr
    return "summary.csv: 23 rows, the cells' files give 25; not in the table: mnist/lenet300/kaiming_normal/gmp"


def _tamper_timing(repo):
    from prunebench.library.artifacts import write_checked_text

    path = repo / f"results/{PRESET}/timing.csv"
    rows = list(csv.reader(io.StringIO(path.read_text())))
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows(rows[:3] + rows[4:])
    write_checked_text(path, buf.getvalue())  # its sha256 sidecar regenerated: the checksum passes
    return f"results/{PRESET}/timing.csv: {len(rows) - 2} rows, the cells' files give {len(rows) - 1}"


def _tamper_metrics(repo):
    a, b = cells(repo, "snip")[0], cells(repo, "synflow")[0]
    _swap(a / "metrics.json", b / "metrics.json")
    return f"{a.relative_to(repo)}/metrics.json: is not the metrics.json its run wrote"


@pytest.mark.parametrize("tamper", [_tamper_masks, _tamper_inits, _tamper_config, _tamper_timing, _tamper_metrics],
                         ids=["masks swapped", "init seeds swapped", "arm removed + aggregate", "timing row removed",
                              "metrics swapped"])
def test_verify_names_each_tampering(smoke_run, tmp_path, tamper):
    repo = clone(smoke_run, tmp_path)
    needle = tamper(repo)
    code, out = verify(repo)
    assert code == 1 and "MISMATCH" in out and needle in out, out[-4000:]


def test_a_consistent_forgery_is_caught_only_by_reproduction(smoke_run, tmp_path):
    """metrics.json edited, the manifest's checksum of it recomputed, the tables aggregated again: every check
    passes but reproduction, which names the cell (the README's "what only --reproduce can catch")."""
    from prunebench.pipeline.grid import load_config
    from prunebench.pipeline.paths import cell_dir
    from prunebench.pipeline.verify import choose_cells
    from prunebench.library.artifacts import sha256_file

    repo = clone(smoke_run, tmp_path)
    cfg = load_config(repo / "config" / f"{PRESET}.yaml")
    target = repo / cell_dir(choose_cells(cfg, 1, 0, root=repo, cheapest=True)[0])
    m = json.loads((target / "metrics.json").read_text())
    m["final_acc"] = round((m["final_acc"] or 0) + 0.05, 6)
    (target / "metrics.json").write_text(json.dumps(m, sort_keys=True, indent=2) + "\n")
    man = json.loads((target / "manifest.json").read_text())
    man["config"]["outputs_sha256"]["metrics.json"] = sha256_file(target / "metrics.json")
    (target / "manifest.json").write_text(json.dumps(man, sort_keys=True, indent=2) + "\n")
    r = subprocess.run([BIN / "prunebench", "aggregate", "--config", f"config/{PRESET}.yaml", "--results-root", "results"],
                       cwd=repo, capture_output=True, text=True, env={**env(), "PYTHONPATH": str(repo / "src")})
    assert r.returncode == 0, r.stderr
    code, out = verify(repo)
    assert code == 0, out[-3000:]                      # consistent: the checks without reproduction pass
    code, out = verify(repo, "--reproduce", "1", "--cheapest")
    assert code == 1 and f"{target.relative_to(repo)}: metrics.json: bytes differ" in out, out[-3000:]


def test_cheap_reproduction_passes_on_honest_results(smoke_run):
    import time

    t0 = time.perf_counter()
    code, out = verify(smoke_run, "--reproduce", "3", "--cheapest", "--no-train")
    assert code == 0 and "reproduced: 3 of 3 cell(s) identical" in out and "without training" in out, out[-3000:]
    assert "the cheapest by recorded time" in out and time.perf_counter() - t0 < 300
