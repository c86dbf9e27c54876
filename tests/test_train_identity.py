"""Issue 17 §1, by hand: `prunebench train --out-dir run` resumes a checkpoint only when every input of the run
that wrote it is the same (init, mask, data and its validation split, during-training options, training
config, code); after any change it starts over, its metrics are those of a fresh run with the new inputs
(byte for byte), and its manifest records the inputs it trained on. The pipeline's version of the same
scenario (an option added to an arm of a finished smoke run) is in tests/test_pipeline.py."""
import json
import shutil
from pathlib import Path

import pytest

from prunebench.cli import main
from prunebench.library.artifacts import load_tensors, recorded_checksum, save_tensors
from prunebench.library.data import content_sha256

BASE = ["--epochs", "2", "--steps-per-epoch", "2", "--batch-size", "16", "--no-progress"]


@pytest.fixture(scope="module")
def inputs(tmp_path_factory, data_sources):
    d = tmp_path_factory.mktemp("identity")
    ok = lambda *argv: main([str(a) for a in argv]) == 0  # noqa: E731
    assert ok("data", "--dataset", "mnist", "--cache-dir", d / "data", "--source", data_sources / "mnist",
              "--manifest", d / "data" / "mnist.json")
    for seed in (0, 1):
        assert ok("init", "--model", "lenet300", "--dataset", "mnist", "--seed", seed, "--out", d / f"init{seed}.st")
    for name, method in (("mask_a", "magnitude"), ("mask_b", "random")):
        assert ok("prune", "--method", method, "--sparsity", "0.9", "--init", d / "init0.st", "--out", d / f"{name}.st",
                  "--report", d / f"{name}.json")
    # the same images with other training labels: another content hash, a valid cache
    tensors, meta = load_tensors(d / "data" / "mnist.safetensors")
    tensors["train_y"] = (tensors["train_y"] + 1) % 10
    (d / "data2").mkdir()
    save_tensors(d / "data2" / "mnist.safetensors", tensors, {**meta, "content_sha256": content_sha256(tensors)})
    man = json.loads((d / "data" / "mnist.json").read_text())
    man["content_sha256"] = content_sha256(tensors)
    (d / "data2" / "mnist.json").write_text(json.dumps(man))
    return d


def train(capsys, d: Path, out: Path, *extra) -> tuple:
    """Run `prunebench train` into `out`; (metrics.json bytes, manifest, stderr)."""
    capsys.readouterr()
    args = {"--init": d / "init0.st", "--data": d / "data" / "mnist.json"}
    extra = list(map(str, extra))
    for flag in list(args):
        if flag in extra:
            i = extra.index(flag)
            args[flag] = extra[i + 1]
            del extra[i:i + 2]
    argv = ["train", *[str(x) for kv in args.items() for x in kv], *BASE, *extra, "--out-dir", str(out)]
    assert main(argv) == 0
    err = capsys.readouterr().err
    return (out / "metrics.json").read_bytes(), json.loads((out / "manifest.json").read_text()), err


VAL = ["--val-fraction", "0.1", "--val-seed", "1"]
CHANGES = {  # (the first run's arguments, the second's), both into the same folder
    "init": lambda d: ([], ["--init", d / "init1.st"]),
    "mask": lambda d: ([], ["--mask", d / "mask_b.st"]),
    "data": lambda d: ([], ["--data", d / "data2" / "mnist.json"]),
    "validation split": lambda d: (VAL, VAL[:2] + ["--val-seed", "2"]),
    "config": lambda d: ([], ["--lr", "0.05"]),
}


@pytest.mark.parametrize("change", list(CHANGES))
def test_a_changed_input_never_resumes_the_old_run(capsys, tmp_path, inputs, change):
    d = inputs
    run = tmp_path / "run"
    first, second = CHANGES[change](d)
    mask_a = [] if "--mask" in map(str, second) else ["--mask", d / "mask_a.st"]
    old, _, _ = train(capsys, d, run, *mask_a, *first)
    new_args = mask_a + second
    new, manifest, err = train(capsys, d, run, *new_args)
    assert "resumed" not in err and "starting over" in err, err
    fresh, fresh_manifest, _ = train(capsys, d, tmp_path / "fresh", *new_args)
    assert new == fresh and new != old       # the new inputs' result, not the old one
    ident = manifest["config"]["identity"]
    assert ident == fresh_manifest["config"]["identity"]
    init = dict(zip(map(str, new_args[::2]), new_args[1::2])).get("--init", d / "init0.st")
    assert ident["init_sha256"] == recorded_checksum(init)
    mask = dict(zip(map(str, new_args[::2]), new_args[1::2])).get("--mask")
    assert ident["mask_sha256"] == recorded_checksum(mask)


def test_the_same_run_resumes_and_ends_in_the_same_bytes(capsys, tmp_path, inputs):
    d = inputs
    run = tmp_path / "run"
    first, manifest, _ = train(capsys, d, run, "--mask", d / "mask_a.st")
    again, manifest2, err = train(capsys, d, run, "--mask", d / "mask_a.st")
    assert "resumed" in err and again == first
    assert manifest["config"]["identity"] == manifest2["config"]["identity"]
    ident = manifest["config"]["identity"]
    assert ident["data_sha256"] == json.loads((d / "data" / "mnist.json").read_text())["content_sha256"]
    outputs = manifest2["config"]["outputs_sha256"]  # the run that wrote the files there now
    from prunebench.library.artifacts import sha256_file

    assert outputs == {"metrics.json": sha256_file(run / "metrics.json")}
    assert json.loads((run / "timing.json").read_text())["cell_hash"] == ""  # the --cell-hash given (none here)


def test_changed_code_or_during_options_start_over(capsys, tmp_path, inputs, monkeypatch):
    d = inputs
    run = tmp_path / "run"
    during = ["--during", "gmp", "--target-sparsity", "0.9"]
    old, _, _ = train(capsys, d, run, *during, "--during-options", '{"update_interval": 1}')
    new, _, err = train(capsys, d, run, *during, "--during-options", '{"update_interval": 2}')
    assert "starting over" in err and new != old
    fresh, _, _ = train(capsys, d, tmp_path / "fresh", *during, "--during-options", '{"update_interval": 2}')
    assert new == fresh
    # the code that trains: a checkpoint written by other code is not resumed
    import prunebench.cli.train as T

    monkeypatch.setattr(T, "code_sha256", lambda: "0" * 64)
    again, manifest, err = train(capsys, d, run, *during, "--during-options", '{"update_interval": 2}')
    assert "starting over" in err and again == fresh and manifest["config"]["identity"]["code_sha256"] == "0" * 64


def test_an_interrupted_run_is_not_resumed_with_another_mask(capsys, tmp_path, inputs, monkeypatch):
    """A killed run keeps its checkpoint; rerun with another mask, it starts over instead of finishing the old
    mask's training under the new mask's name."""
    import prunebench.library.train as LT

    d = inputs
    run = tmp_path / "run"
    real = LT.train
    monkeypatch.setattr(LT, "train", lambda *a, **kw: (real(*a, **{**kw, "stop_after_epoch": 1}), exit(1))[1])
    with pytest.raises(SystemExit):
        main(["train", "--init", str(d / "init0.st"), "--data", str(d / "data" / "mnist.json"), "--mask",
              str(d / "mask_a.st"), *BASE, "--out-dir", str(run)])
    monkeypatch.setattr(LT, "train", real)
    assert (run / "checkpoint.safetensors").exists() and not (run / "metrics.json").exists()
    new, manifest, err = train(capsys, d, run, "--mask", d / "mask_b.st")
    assert "starting over" in err
    fresh, _, _ = train(capsys, d, tmp_path / "fresh", "--mask", d / "mask_b.st")
    assert new == fresh and manifest["config"]["mask"] == str(d / "mask_b.st")
    shutil.rmtree(run)


def test_a_run_without_during_leaves_no_final_mask_of_another_run(capsys, tmp_path, inputs):
    d = inputs
    run = tmp_path / "run"
    train(capsys, d, run, "--during", "gmp", "--target-sparsity", "0.9", "--during-options", '{"update_interval": 1}')
    assert (run / "final_mask.safetensors").exists()
    train(capsys, d, run, "--mask", d / "mask_a.st")
    assert not (run / "final_mask.safetensors").exists()
