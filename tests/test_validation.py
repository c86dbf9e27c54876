"""Issue 12, "validate, then work" and "bad input list": every command checks its names, numbers, files and
option combinations before it reads data, builds a model or writes anything. Bad input is one line on stderr,
"prunebench <cmd>: error: ...", exit status 2, and nothing written anywhere: not in the output folders, not
in the fixtures' folders, not in the working directory (no data cache prepared there).

`test_readme_bad_input_table` runs every row of README.md's "### Bad input" table, so the table cannot
drift from the code."""
import json
import os
import re
import shlex
import shutil
from pathlib import Path

import pytest

from prunebench.cli import main

REPO = Path(__file__).resolve().parents[1]


def flip_bit(src: Path, dst: Path, offset: int = -100) -> Path:
    data = bytearray(src.read_bytes())
    data[offset] ^= 1
    dst.write_bytes(bytes(data))
    return dst


@pytest.fixture(scope="module")
def fx(tmp_path_factory, data_sources):
    """Every file the bad-input rows need (placeholders of the README table), built once: good ones and
    damaged ones (garbage, truncated, one flipped bit)."""
    import sys

    sys.path.insert(0, str(Path(__file__).parent))
    from fake_results import write_fake_results

    d = tmp_path_factory.mktemp("fx")
    (d / "data").mkdir()
    ok = lambda argv: main([str(a) for a in argv]) == 0  # noqa: E731
    assert ok(["data", "--dataset", "mnist", "--cache-dir", d / "data", "--source", data_sources / "mnist",
               "--manifest", d / "data" / "mnist.json"])
    assert ok(["init", "--model", "lenet300", "--dataset", "mnist", "--out", d / "init.safetensors"])
    assert ok(["init", "--model", "conv4", "--dataset", "mnist", "--out", d / "other_init.safetensors"])
    for init, mask in (("init", "mask"), ("other_init", "other_mask")):
        assert ok(["prune", "--method", "magnitude", "--sparsity", "0.9", "--init", d / f"{init}.safetensors",
                   "--out", d / f"{mask}.safetensors", "--report", d / f"{mask}.json"])
    assert ok(["train", "--init", d / "init.safetensors", "--data", d / "data" / "mnist.json", "--epochs", "2",
               "--steps-per-epoch", "2", "--batch-size", "16", "--no-progress", "--out-dir", d / "run"])
    (d / "garbage.safetensors").write_bytes(b"garbage")
    mask = (d / "mask.safetensors").read_bytes()
    (d / "truncated_mask.safetensors").write_bytes(mask[: len(mask) // 2])
    (d / "truncated_init.safetensors").write_bytes((d / "init.safetensors").read_bytes()[:1000])
    flip_bit(d / "mask.safetensors", d / "flipped_mask.safetensors")
    flip_bit(d / "init.safetensors", d / "flipped_init.safetensors")
    (d / "badrun").mkdir()
    flip_bit(d / "run" / "checkpoint.safetensors", d / "badrun" / "checkpoint.safetensors", -50)
    (d / "bad").mkdir()
    flip_bit(d / "data" / "mnist.safetensors", d / "bad" / "mnist.safetensors")
    man = json.loads((d / "data" / "mnist.json").read_text())
    (d / "bad" / "mnist.json").write_text(json.dumps(man))  # names the flipped cache beside it
    (d / "nocache").mkdir()  # a manifest whose cache is gone: opening it would prepare the cache again
    (d / "nocache" / "mnist.json").write_text(json.dumps({**man, "source": str(data_sources / "mnist")}))
    (d / "broken.json").write_text("{not json")
    write_fake_results(d / "results" / "quick")
    shutil.copytree(d / "results" / "quick", d / "badresults" / "quick")
    flip_bit(d / "results" / "quick" / "summary.csv", d / "badresults" / "quick" / "summary.csv", 50)
    assert ok(["init", "--model", "lenet300", "--dataset", "cifar10", "--out", d / "cifar_init.safetensors"])
    (d / "initlink.safetensors").symlink_to(d / "init.safetensors")
    (d / "loop.a").symlink_to(d / "loop.b")
    (d / "loop.b").symlink_to(d / "loop.a")
    forge_mask(d / "mask.safetensors", d / "forged_mask.safetensors")
    presets = write_bad_presets(d / "presets")
    return {**presets, "cifarinit": d / "cifar_init.safetensors", "initlink": d / "initlink.safetensors",
            "loop": d / "loop.a", "forgedmask": d / "forged_mask.safetensors", "run": d / "run",
            "init": d / "init.safetensors", "data": d / "data" / "mnist.json", "cache": d / "data" / "mnist.safetensors",
            "source": data_sources / "mnist", "mask": d / "mask.safetensors", "othermask": d / "other_mask.safetensors",
            "garbage": d / "garbage.safetensors", "truncmask": d / "truncated_mask.safetensors",
            "truncinit": d / "truncated_init.safetensors", "flipmask": d / "flipped_mask.safetensors",
            "flipinit": d / "flipped_init.safetensors", "badrun": d / "badrun", "badcache": d / "bad" / "mnist.safetensors",
            "badmanifest": d / "bad" / "mnist.json", "nocache": d / "nocache" / "mnist.json",
            "brokenjson": d / "broken.json", "results": d / "results" / "quick",
            "badresults": d / "badresults" / "quick", "config": REPO / "config" / "quick.yaml",
            "claims": REPO / "paper" / "reference" / "force.yaml", "root": d}


def forge_mask(src: Path, dst: Path) -> None:
    """A mask whose layout metadata lists a parameter it does not hold, with its checksum recomputed (what a
    broken tool or a forger writes): it passes the checksum and must still be refused."""
    from prunebench.library.artifacts import load_tensors, save_tensors

    tensors, meta = load_tensors(src)
    meta["order"] = list(meta["order"]) + ["ghost.weight"]
    save_tensors(dst, tensors, meta)


SMOKE = REPO / "config" / "smoke.yaml"


def _preset(mutate) -> str:
    import yaml

    cfg = yaml.safe_load(SMOKE.read_text())
    mutate(cfg)
    return yaml.safe_dump(cfg, sort_keys=False)


def _bomb() -> str:
    """An unused arm whose options hold aliases expanding to 10**10 values."""
    text = _preset(lambda c: c["arms"].update(unused="BOMB"))
    levels = ["l0: &l0 [0, 0, 0, 0, 0, 0, 0, 0, 0, 0]"] + [
        f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 10)}]" for i in range(1, 10)]
    return text.replace("unused: BOMB", "unused: {method: snip, options: {" + ", ".join(levels) + "}}")


# Preset defects (issue 17, 3, 4, 6, 7), each a file {preset_<name>} for the README table's rows.
BAD_PRESETS = {
    "nan_lr": lambda c: c["train"].update(lr=float("nan")),
    "inf_lr": lambda c: c["train"].update(lr=float("inf")),
    "momentum2": lambda c: c["train"].update(momentum=2),
    "arm_momentum": lambda c: c["arms"]["snip"].update(train={"momentum": 1.5}),
    "model": lambda c: c["grid"][0].update(model="lenet301"),
    "mlp_depth": lambda c: c["grid"][2].update(model="mlp-100000-tanh"),
    "init": lambda c: c["grid"][2].update(inits=["he_uniform"]),
    "top_init": lambda c: c.update(init="he_uniform"),
    "scheme": lambda c: c["grid"][0].update(model="resnet50", inits=["spp_orthogonal"]),
    "figure": lambda c: c["figures"].append("fig9"),
    "claims": lambda c: c["claims"].append("nosuch"),
    "unused_option": lambda c: c["arms"].update(unused={"method": "force", "options": {"stepz": 3}}),
    "unused_train": lambda c: c["arms"].update(unused={"method": "snip", "train": {"lr": 0.0}}),
    "steps_float": lambda c: c["arms"]["snip_ai"]["isometry"].update(steps=1e12),
    "steps_huge": lambda c: c["arms"]["snip_ai"]["isometry"].update(steps=10**12),
    "epochs": lambda c: c["train"].update(epochs=10**12),
    "sparsity_name": lambda c: c["grid"][1].update(sparsities=[0.9999999999]),
    "sparsity_layers": lambda c: c["grid"][1].update(sparsities=[0.999999]),
    "seed": lambda c: c["grid"][1].update(seeds=[2**64]),
    "threads": lambda c: c.update(threads=10**12),
    "resources": lambda c: c.update(resources={"train": {"mem_mb": 10**30}}),
    "date": lambda c: c.update(description=__import__("datetime").date(2024, 1, 1)),
    "arm_name": lambda c: c["arms"].update(**{"snip-2": {"method": "snip"}}),
    "data_source": lambda c: c.update(data_sources={"svhn": "/data"}),
}


def write_bad_presets(folder: Path) -> dict:
    folder.mkdir()
    out = {}
    for name, mutate in BAD_PRESETS.items():
        (folder / f"{name}.yaml").write_text(_preset(mutate))
        out[f"preset_{name}"] = folder / f"{name}.yaml"
    (folder / "bomb.yaml").write_text(_bomb())
    (folder / "nonutf8.yaml").write_bytes(SMOKE.read_bytes().replace(b"CI smoke run", b"CI smoke \xff\xfe run"))
    return {**out, "preset_bomb": folder / "bomb.yaml", "preset_nonutf8": folder / "nonutf8.yaml"}


def snapshot(*roots) -> dict:
    out = {}
    for r in roots:
        for dirpath, dirnames, filenames in os.walk(r):
            for n in dirnames + filenames:
                p = os.path.join(dirpath, n)
                st = os.lstat(p)  # a symlink loop among the fixtures is not followed
                out[p] = (st.st_size, st.st_mtime_ns)
    return out


def fill(template: str, fx: dict, tmp: Path) -> list:
    for k, v in {**fx, "tmp": tmp}.items():
        template = template.replace("{" + k + "}", str(v))
    assert "{" not in re.sub(r"'[^']*'", "", template), f"unfilled placeholder in {template}"
    argv = shlex.split(template)
    assert argv[0] == "prunebench"
    return argv[1:]


def run_bad(capsys, argv):
    capsys.readouterr()
    try:
        code = main(argv)
    except SystemExit as e:  # argparse usage errors
        code = e.code
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    return code, err


def check_nothing_written(capsys, fx, tmp, cwd, command, needle):
    argv = fill(command, fx, tmp)
    for k, v in {**fx, "tmp": tmp}.items():  # a message naming a fixture file names it by its path
        needle = needle.replace("{" + k + "}", str(v))
    before = snapshot(fx["root"], tmp, cwd)
    code, err = run_bad(capsys, argv)
    assert code == 2, (command, err)
    assert len(err) == 1, (command, err)
    from prunebench.cli import COMMANDS

    prefix = f"prunebench {argv[0]}: error: " if argv[0] in COMMANDS else "prunebench: error: "
    assert err[0].startswith(prefix) and needle in err[0], (command, err)
    assert snapshot(fx["root"], tmp, cwd) == before, f"{command} wrote something"


# One bad input per command. The data-reading ones name a manifest whose cache is gone ({nocache}): had the
# command opened the data before failing, it would have prepared the cache again (and the snapshot differs).
PER_COMMAND = [
    ("prunebench data --dataset mnst", "unknown dataset 'mnst'"),  # default --cache-dir: data/ in the cwd
    ("prunebench init --model lenet300 --dataset mnist --seed -1 --out {tmp}/i.safetensors", "invalid --seed -1"),
    ("prunebench prune --method snipp --sparsity 0.9 --init {init} --data {nocache} --out {tmp}/m.safetensors "
     "--report {tmp}/r.json", "unknown pruning method 'snipp'"),
    ("prunebench isometry --init {init} --mask {othermask} --jsv --data {nocache} --steps 1 --out {tmp}/w.safetensors "
     "--report {tmp}/r.json", "mask does not fit the model"),
    ("prunebench train --init {init} --data {nocache} --lr nan --out-dir {tmp}/run", "invalid lr nan"),
    ("prunebench grid --config {brokenjson}", "not valid YAML"),
    ("prunebench aggregate --config {config} --results-root {tmp}/nowhere", "missing results of cell"),
    ("prunebench figure --name fig1 --results-dir {results} --out-stem {tmp}/f", "unknown figure 'fig1'"),
    ("prunebench report --results-dir {badresults} --claims {claims} --out {tmp}/r.md",
     "checksum mismatch in results table"),
    ("prunebench verify --preset quick --config {config} --root {tmp}", "no results for preset 'quick'"),
    ("prunebench bench --suite nosuch", "unknown benchmark suite 'nosuch'"),
    ("prunebench methods --verbose", "unrecognized arguments: --verbose"),
    ("prunebench plan --preset nosuch", "unknown preset 'nosuch'"),
]


def test_per_command_list_covers_every_command():
    from prunebench.cli import COMMANDS

    assert sorted(c.split()[1] for c, _ in PER_COMMAND) == sorted(COMMANDS)


@pytest.mark.parametrize("command, needle", PER_COMMAND, ids=[c.split()[1] for c, _ in PER_COMMAND])
def test_bad_input_writes_nothing(capsys, monkeypatch, tmp_path, fx, command, needle):
    cwd, tmp = tmp_path / "cwd", tmp_path / "out"
    cwd.mkdir()
    tmp.mkdir()
    monkeypatch.chdir(cwd)
    check_nothing_written(capsys, fx, tmp, cwd, command, needle)


def test_failed_train_leaves_no_partial_run(capsys, monkeypatch, tmp_path, fx):
    """A run that fails with any exception part-way (after writing a checkpoint) leaves no folder behind,
    not even the parents it created; a diverged run is a recorded result (metrics.json, diverged)."""
    import prunebench.library.train as T

    real = T.train

    def failing(*a, **kw):
        real(*a, **{**kw, "stop_after_epoch": 1})
        assert (Path(kw["out_dir"]) / "checkpoint.safetensors").exists()
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(T, "train", failing)
    args = ["train", "--init", str(fx["init"]), "--data", str(fx["data"]), "--epochs", "2", "--steps-per-epoch", "2",
            "--batch-size", "16", "--no-progress", "--out-dir", str(tmp_path / "a" / "b" / "run")]
    with pytest.raises(RuntimeError, match="disk on fire"):
        main(args)
    assert list(tmp_path.iterdir()) == []
    monkeypatch.setattr(T, "train", real)
    out = tmp_path / "div"
    assert main(args[:-1] + [str(out), "--lr", "10", "--momentum", "0.99", "--steps-per-epoch", "10"]) == 0
    assert json.loads((out / "metrics.json").read_text())["diverged"]
    assert (out / "manifest.json").exists()


def readme_rows():
    text = (REPO / "README.md").read_text()
    section = text.split("\n### Bad input\n", 1)[1].split("\n## ", 1)[0]
    rows = []
    for line in section.splitlines():
        spans = re.findall(r"`([^`]+)`", line)
        if line.startswith("|") and len(spans) >= 2 and spans[0].startswith("prunebench "):
            rows.append((spans[0], spans[-1]))
    return rows


def test_readme_bad_input_table(capsys, monkeypatch, tmp_path, fx):
    """Every row of README's "### Bad input" table: exit 2, one line holding the row's message, nothing written."""
    rows = readme_rows()
    assert len(rows) >= 40
    from prunebench.cli import COMMANDS

    assert {c.split()[1] for c, _ in rows} >= set(COMMANDS)
    cwd, tmp = tmp_path / "cwd", tmp_path / "out"
    cwd.mkdir()
    tmp.mkdir()
    monkeypatch.chdir(cwd)
    for command, needle in rows:
        check_nothing_written(capsys, fx, tmp, cwd, command, needle)


# ------------------------------------------------------------------------------------------------------
# Issue 17: failures while writing, leftovers of killed runs, folders an output needs.

def _enospc(*a, **k):
    import errno

    raise OSError(errno.ENOSPC, "No space left on device")


@pytest.mark.parametrize("command, patch", [
    ("prunebench init --model lenet300 --dataset mnist --out {tmp}/new/i.st", "safetensors.torch.save_file"),
    ("prunebench data --dataset mnist --cache-dir {tmp}/c --source {source} --manifest {tmp}/m/mnist.json",
     "safetensors.torch.save_file"),
    ("prunebench data --dataset mnist --cache-dir {tmp}/c --source {source} --manifest {tmp}/m/mnist.json",
     "pathlib.Path.write_text"),
    ("prunebench train --init {init} --data {data} --epochs 1 --steps-per-epoch 2 --batch-size 16 --no-progress "
     "--out-dir {tmp}/a/run", "safetensors.torch.save_file"),
    ("prunebench train --init {init} --data {data} --epochs 1 --steps-per-epoch 2 --batch-size 16 --no-progress "
     "--out-dir {tmp}/a/run", "pathlib.Path.write_text"),
    ("prunebench prune --method magnitude --sparsity 0.9 --init {init} --out {tmp}/p/m.st --report {tmp}/p/r.json",
     "pathlib.Path.write_text"),
])
def test_a_full_disk_is_a_one_line_error_and_leaves_nothing(capsys, monkeypatch, tmp_path, fx, command, patch):
    """ENOSPC while writing any output (the tensors, or a JSON file after them): exit 2, one line naming the
    file and the cause, and nothing left: no output, no temporary file, no folder the command created."""
    import importlib

    cwd, tmp = tmp_path / "cwd", tmp_path / "out"
    cwd.mkdir()
    tmp.mkdir()
    monkeypatch.chdir(cwd)
    module, name = patch.rsplit(".", 1)
    owner = importlib.import_module(module) if module != "pathlib.Path" else Path
    monkeypatch.setattr(owner, name, _enospc)
    argv = fill(command, fx, tmp)
    before = snapshot(fx["root"], cwd)
    code, err = run_bad(capsys, argv)
    errors = [line for line in err if ": error: " in line]  # (a command may have logged its progress before)
    assert code == 2 and errors == err[-1:], err
    assert "cannot write" in err[-1] and "No space left on device" in err[-1], err
    assert list(tmp.iterdir()) == [] and snapshot(fx["root"], cwd) == before


def test_a_killed_writers_temporary_file_is_removed_by_the_next_run(capsys, tmp_path, fx):
    """SIGKILL leaves `.<name>.<host>-<pid>.*.tmp`; the next `prunebench data` (even one with nothing to do)
    removes those of dead processes on this host, and keeps a live writer's."""
    import socket
    import subprocess
    import sys

    from prunebench.library.artifacts import _HOST

    cache = tmp_path / "c"
    cache.mkdir()
    shutil.copy(fx["cache"], cache / "mnist.safetensors")
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stale = cache / f".mnist.safetensors.{_HOST}-{dead.stdout.strip()}.abc123.tmp"
    live_proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    live = cache / f".mnist.safetensors.{_HOST}-{live_proc.pid}.def456.tmp"
    other_host = cache / f".mnist.safetensors.{_HOST}x-{dead.stdout.strip()}.ghi789.tmp"
    try:
        for f in (stale, live, other_host):
            f.write_bytes(b"partial")
        assert main(["data", "--dataset", "mnist", "--cache-dir", str(cache), "--source", str(fx["source"])]) == 0
        assert not stale.exists() and live.exists() and other_host.exists()
    finally:
        live_proc.kill()
        live_proc.wait()
    assert socket.gethostname()


def test_the_readme_first_example_creates_the_folders_it_needs(capsys, monkeypatch, tmp_path, fx):
    """`prunebench data ... --manifest data/mnist.json` in an empty folder (README, "Command line"), and the
    other commands' outputs in folders that do not exist yet."""
    monkeypatch.chdir(tmp_path)
    assert main(["data", "--dataset", "mnist", "--cache-dir", "data", "--source", str(fx["source"]),
                 "--manifest", "data/mnist.json"]) == 0
    assert (tmp_path / "data" / "mnist.json").is_file() and (tmp_path / "data" / "mnist.safetensors").is_file()
    assert main(["init", "--model", "lenet300", "--dataset", "mnist", "--out", "inits/a/init.st"]) == 0
    assert main(["prune", "--method", "magnitude", "--sparsity", "0.9", "--init", "inits/a/init.st",
                 "--out", "masks/m.st", "--report", "reports/r.json", "--timing", "timing/t.json"]) == 0
    assert main(["isometry", "--init", "inits/a/init.st", "--mask", "masks/m.st", "--steps", "1",
                 "--out", "ai/w.st", "--report", "ai/r.json"]) == 0
    assert all((tmp_path / p).is_file() for p in ("masks/m.st", "reports/r.json", "timing/t.json", "ai/w.st"))


def test_a_failure_between_two_outputs_removes_the_first(capsys, monkeypatch, tmp_path, fx):
    """prune writes the mask, then the report: if the report cannot be written, the mask is not written either
    (and the folders made for them go); files that were there before stay as they were."""
    import prunebench.cli.prune as cli_prune
    import prunebench.library.artifacts as A

    def failing(path, obj, what="file"):
        raise A.write_error(path, OSError(28, "No space left on device"), what)

    monkeypatch.setattr(cli_prune, "write_json", failing)
    out = tmp_path / "new" / "dir"
    code, err = run_bad(capsys, ["prune", "--method", "magnitude", "--sparsity", "0.9", "--init", str(fx["init"]),
                                 "--out", str(out / "m.st"), "--report", str(out / "r.json")])
    assert code == 2 and "cannot write report" in err[0] and not (tmp_path / "new").exists()
    (tmp_path / "keep").mkdir()
    (tmp_path / "keep" / "m.st").write_bytes(b"an older file")
    code, err = run_bad(capsys, ["prune", "--method", "magnitude", "--sparsity", "0.9", "--init", str(fx["init"]),
                                 "--out", str(tmp_path / "keep" / "m.st"), "--report", str(tmp_path / "keep" / "r.json")])
    assert code == 2 and (tmp_path / "keep" / "m.st").read_bytes() == b"an older file"
    assert sorted(p.name for p in (tmp_path / "keep").iterdir()) == ["m.st"]  # no report, no temporary file
