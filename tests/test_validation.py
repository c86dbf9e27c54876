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
    return {"init": d / "init.safetensors", "data": d / "data" / "mnist.json", "cache": d / "data" / "mnist.safetensors",
            "source": data_sources / "mnist", "mask": d / "mask.safetensors", "othermask": d / "other_mask.safetensors",
            "garbage": d / "garbage.safetensors", "truncmask": d / "truncated_mask.safetensors",
            "truncinit": d / "truncated_init.safetensors", "flipmask": d / "flipped_mask.safetensors",
            "flipinit": d / "flipped_init.safetensors", "badrun": d / "badrun", "badcache": d / "bad" / "mnist.safetensors",
            "badmanifest": d / "bad" / "mnist.json", "nocache": d / "nocache" / "mnist.json",
            "brokenjson": d / "broken.json", "results": d / "results" / "quick",
            "badresults": d / "badresults" / "quick", "config": REPO / "config" / "quick.yaml",
            "claims": REPO / "paper" / "reference" / "force.yaml", "root": d}


def snapshot(*roots) -> dict:
    out = {}
    for r in roots:
        for dirpath, dirnames, filenames in os.walk(r):
            for n in dirnames + filenames:
                p = os.path.join(dirpath, n)
                st = os.stat(p)
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
