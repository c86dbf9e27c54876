"""CLI bad input: one line naming the bad value, exit status 2, nothing half-written. Plus a tiny happy path."""
import json

import pytest

from prunebench.cli import main


def run(capsys, *argv):
    code = main(list(map(str, argv)))
    err = capsys.readouterr().err.strip().splitlines()
    return code, err


@pytest.fixture(scope="module")
def mnist(tmp_path_factory, data_sources):
    d = tmp_path_factory.mktemp("data")
    assert main(["data", "--dataset", "mnist", "--cache-dir", str(d), "--source", str(data_sources / "mnist"),
                 "--manifest", str(d / "mnist.json")]) == 0
    return d / "mnist.json"


@pytest.fixture(scope="module")
def init_file(tmp_path_factory):
    p = tmp_path_factory.mktemp("init") / "init.safetensors"
    assert main(["init", "--model", "lenet300", "--dataset", "mnist", "--seed", "0", "--out", str(p)]) == 0
    return p


def one_line_error(code, err, needle):
    assert code == 2, err
    assert len(err) == 1 and "error" in err[0] and needle in err[0], err


@pytest.mark.parametrize("argv, needle", [
    (["init", "--model", "vgg18", "--dataset", "cifar10"], "vgg18"),
    (["init", "--model", "lenet300", "--dataset", "svhn"], "svhn"),
    (["init", "--model", "lenet300", "--dataset", "mnist", "--scheme", "he_uniform"], "he_uniform"),
])
def test_unknown_names(capsys, tmp_path, argv, needle):
    code, err = run(capsys, *argv, "--out", tmp_path / "x.safetensors")
    one_line_error(code, err, needle)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("sparsity", ["1.0", "-0.1", "1.5"])
def test_invalid_sparsity(capsys, tmp_path, init_file, sparsity):
    code, err = run(capsys, "prune", "--method", "magnitude", "--sparsity", sparsity, "--init", init_file,
                    "--out", tmp_path / "m.safetensors", "--report", tmp_path / "r.json")
    one_line_error(code, err, sparsity)
    assert list(tmp_path.iterdir()) == []


def test_unknown_method_and_option(capsys, tmp_path, init_file):
    code, err = run(capsys, "prune", "--method", "snipp", "--sparsity", "0.9", "--init", init_file,
                    "--out", tmp_path / "m.safetensors", "--report", tmp_path / "r.json")
    one_line_error(code, err, "snipp")
    code, err = run(capsys, "prune", "--method", "magnitude", "--sparsity", "0.9", "--init", init_file,
                    "--options", '{"stepz": 3}', "--out", tmp_path / "m.safetensors", "--report", tmp_path / "r.json")
    one_line_error(code, err, "stepz")
    assert list(tmp_path.iterdir()) == []


def test_missing_source_and_corrupt_archive(capsys, tmp_path):
    code, err = run(capsys, "data", "--dataset", "mnist", "--cache-dir", tmp_path / "c", "--source", tmp_path / "nowhere")
    one_line_error(code, err, "nowhere")
    bad = tmp_path / "src"
    bad.mkdir()
    (bad / "cifar-10-python.tar.gz").write_bytes(b"\x1f\x8b truncated")
    code, err = run(capsys, "data", "--dataset", "cifar10", "--cache-dir", tmp_path / "c", "--source", bad)
    one_line_error(code, err, "cifar-10-python.tar.gz")
    assert not (tmp_path / "c").exists() or list((tmp_path / "c").iterdir()) == []


def test_mask_that_does_not_fit(capsys, tmp_path, init_file, mnist):
    other = tmp_path / "other.safetensors"
    assert main(["init", "--model", "conv4", "--dataset", "mnist", "--out", str(other)]) == 0
    mask = tmp_path / "m.safetensors"
    assert main(["prune", "--method", "magnitude", "--sparsity", "0.9", "--init", str(other), "--out", str(mask),
                 "--report", str(tmp_path / "r.json")]) == 0
    capsys.readouterr()
    code, err = run(capsys, "train", "--init", init_file, "--mask", mask, "--data", mnist, "--epochs", "1",
                    "--out-dir", tmp_path / "run")
    one_line_error(code, err, "does not fit")
    assert not (tmp_path / "run" / "metrics.json").exists()


def test_corrupt_init_file(capsys, tmp_path):
    bad = tmp_path / "init.safetensors"
    bad.write_bytes(b"garbage")
    code, err = run(capsys, "prune", "--method", "magnitude", "--sparsity", "0.9", "--init", bad,
                    "--out", tmp_path / "m.safetensors", "--report", tmp_path / "r.json")
    one_line_error(code, err, "init.safetensors")


def test_prune_then_train_happy_path(capsys, tmp_path, init_file, mnist):
    mask, rep = tmp_path / "m.safetensors", tmp_path / "r.json"
    assert main(["prune", "--method", "snip", "--sparsity", "0.95", "--init", str(init_file), "--data", str(mnist),
                 "--batch-size", "64", "--out", str(mask), "--report", str(rep), "--timing", str(tmp_path / "t.json")]) == 0
    report = json.loads(rep.read_text())
    assert report["kept"] == round(0.05 * report["total"]) and report["collapsed"] == []
    assert json.loads((tmp_path / "t.json").read_text())["wall_s"] > 0
    assert main(["train", "--init", str(init_file), "--mask", str(mask), "--data", str(mnist), "--epochs", "1",
                 "--steps-per-epoch", "5", "--batch-size", "32", "--out-dir", str(tmp_path / "run"), "--no-progress"]) == 0
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["density"] == pytest.approx(0.05, abs=1e-5) and len(metrics["history"]) == 1
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert {"config", "seeds", "versions", "device", "git_commit"} <= set(manifest)


def test_grasp_with_class_balanced_batches(capsys, tmp_path, init_file, mnist):
    mask, rep = tmp_path / "m.safetensors", tmp_path / "r.json"
    assert main(["prune", "--method", "grasp", "--sparsity", "0.9", "--init", str(init_file), "--data", str(mnist),
                 "--samples-per-class", "3", "--out", str(mask), "--report", str(rep)]) == 0
    assert json.loads(rep.read_text())["kept"] == round(0.1 * 266200)
    capsys.readouterr()
    code, err = run(capsys, "prune", "--method", "grasp", "--sparsity", "0.9", "--init", init_file, "--data", mnist,
                    "--samples-per-class", "0", "--out", tmp_path / "x.safetensors", "--report", tmp_path / "x.json")
    one_line_error(code, err, "samples-per-class")
