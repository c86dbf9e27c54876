"""prunebench.library.data.manifest: data manifests resolve their paths against their own folder, from any working
directory; a missing cache is rebuilt where the manifest says; older cwd-relative manifests still open."""
from __future__ import annotations

import json
import shutil

import pytest

from prunebench.library import data as D
from prunebench.library.errors import PrunebenchError
from synthetic import files_under


@pytest.fixture
def tree(data_sources, tmp_path, monkeypatch):
    """A pipeline-like tree: data/ (caches) and results/p/data/mnist.json, written from its root."""
    root = tmp_path / "repo"
    root.mkdir()
    monkeypatch.chdir(root)
    cache = D.prepare("mnist", "data", source=data_sources / "mnist")
    man = D.write_manifest("results/p/data/mnist.json", "mnist", cache, None, True)
    return root, man


def test_manifest_records_paths_relative_to_itself(tree):
    root, man = tree
    on_disk = json.loads((root / "results/p/data/mnist.json").read_text())
    assert on_disk == man
    assert man["cache"] == "../../../data/mnist.safetensors" and man["source"] is None and man["download"] is True
    assert man["format"] == D.MANIFEST_FORMAT and man["dataset"] == "mnist"
    assert man["content_sha256"] == D.cached_metadata(root / "data/mnist.safetensors")["content_sha256"]
    assert man["source_note"].startswith("MNIST-format data")


def test_open_from_any_working_directory_and_any_copy(tree, tmp_path, monkeypatch):
    root, man = tree
    want = D.load("mnist", root / "data").train_x
    monkeypatch.chdir(tmp_path)  # another working directory
    d = D.open_data(root / "results/p/data/mnist.json", val_fraction=0.1, val_seed=1)
    assert len(d.val_y) == 200 and d.metadata["content_sha256"] == man["content_sha256"]
    monkeypatch.chdir(root / "results")
    assert D.open_data("p/data/mnist.json").train_x.equal(want)
    copy = tmp_path / "moved"
    shutil.copytree(root, copy)  # the whole tree moved: the manifest still names its own cache
    shutil.rmtree(root)
    monkeypatch.chdir(tmp_path)
    assert D.open_data(copy / "results/p/data/mnist.json").train_x.equal(want)


def test_missing_cache_is_rebuilt_beside_the_manifest_not_in_the_cwd(data_sources, tmp_path, monkeypatch):
    root = tmp_path / "repo"
    root.mkdir()
    monkeypatch.chdir(root)
    # the source given relative to the working directory is recorded relative to the manifest
    shutil.copytree(data_sources / "mnist", root / "sources" / "mnist")
    cache = D.prepare("mnist", "data", source="sources/mnist")
    man = D.write_manifest("results/p/data/mnist.json", "mnist", cache, "sources/mnist", False)
    assert man["source"] == "../../../sources/mnist" and man["download"] is False
    cache.unlink()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    d = D.open_data(root / "results/p/data/mnist.json")
    assert d.metadata["content_sha256"] == man["content_sha256"]
    assert (root / "data/mnist.safetensors").is_file() and files_under(elsewhere) == []


def test_legacy_manifest_relative_to_the_working_directory(tree, tmp_path, monkeypatch):
    root, man = tree
    legacy = {k: v for k, v in man.items() if k not in ("format", "paths")}
    legacy["cache"] = "data/mnist.safetensors"  # as the old CLI wrote it, relative to the cwd (the repo root)
    path = root / "results/p/data/old.json"
    path.write_text(json.dumps(legacy))
    assert D.open_data(path).metadata["content_sha256"] == man["content_sha256"]  # cwd is the repo root
    # a new-format manifest never falls back to the working directory
    path.write_text(json.dumps({**legacy, "format": D.MANIFEST_FORMAT, "download": False}))
    with pytest.raises(PrunebenchError, match="no local source for mnist"):
        D.open_data(path)
    assert not (root / "results/p/data/data").exists()


def test_content_mismatch_and_bad_manifests(tree, data_sources, tmp_path):
    root, man = tree
    path = root / "results/p/data/mnist.json"
    path.write_text(json.dumps({**man, "content_sha256": "0" * 64}))
    with pytest.raises(PrunebenchError, match="the manifest expects 0000"):
        D.open_data(path)
    path.write_text("{not json")
    with pytest.raises(PrunebenchError, match="corrupt JSON file"):
        D.open_data(path)
    path.write_text(json.dumps({"dataset": "mnist"}))
    with pytest.raises(PrunebenchError, match="corrupt data manifest"):
        D.open_data(path)
    path.write_text(json.dumps({**man, "format": "prunebench-data-manifest/99"}))
    with pytest.raises(PrunebenchError, match="has format 'prunebench-data-manifest/99'"):
        D.open_data(path)
    with pytest.raises(PrunebenchError, match="missing or incomplete data cache"):
        D.write_manifest(tmp_path / "m.json", "mnist", tmp_path / "nope.safetensors")
    with pytest.raises(PrunebenchError, match="holds 'mnist', not 'cifar10'"):
        D.write_manifest(tmp_path / "m.json", "cifar10", root / "data/mnist.safetensors")


def test_open_a_cache_file_directly(tree, tmp_path):
    root, man = tree
    d = D.open_data(root / "data/mnist.safetensors")
    assert d.spec.name == "mnist" and d.metadata["content_sha256"] == man["content_sha256"]
    with pytest.raises(PrunebenchError, match="missing data cache"):
        D.open_data(tmp_path / "none.safetensors")
    (tmp_path / "junk.safetensors").write_bytes(b"junk")
    with pytest.raises(PrunebenchError, match=r"corrupt data cache .*junk\.safetensors"):
        D.open_data(tmp_path / "junk.safetensors")
