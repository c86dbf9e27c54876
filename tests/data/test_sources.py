"""prunebench.library.data.sources: source precedence, $PRUNEBENCH_DATA_SOURCES, checksums, the official download
(file:// URLs stand in for the network)."""
from __future__ import annotations

import gzip
import hashlib
import os

import pytest

from prunebench.library import data as D
from prunebench.library.errors import PrunebenchError
from synthetic import (assert_cache_equals, files_under, image_tree, make_cifar_tarball, md5, mnist_files,
                       random_arrays, with_official, write_files)


def test_env_sources_and_precedence(data_sources, tmp_path, monkeypatch):
    root = tmp_path / "copies" / "cifar10"
    expected = image_tree(root, n_train=1, n_test=1)
    monkeypatch.setenv(D.ENV_SOURCES, os.pathsep.join([str(tmp_path / "absent"), str(root.parent), str(data_sources)]))
    assert D.env_source_dirs() == [tmp_path / "absent", root.parent, data_sources]
    assert D.resolve_source("mnist") == data_sources / "mnist"
    assert D.resolve_source("cifar10") == root  # `cifar10/` in the first folder that has an entry
    assert D.resolve_source("cifar10", source=tmp_path) == tmp_path  # explicit wins
    assert D.resolve_source("cifar10", source="download") == "download"
    monkeypatch.setenv(D.ENV_SOURCES, str(data_sources))
    assert D.resolve_source("cifar10") == data_sources / "cifar10.tar.gz"
    assert D.resolve_source("cifar100") == "download"  # nothing local: the official download
    monkeypatch.setenv(D.ENV_SOURCES, str(root.parent))
    assert_cache_equals(D.prepare("cifar10", tmp_path / "cache", download=False), expected)
    monkeypatch.delenv(D.ENV_SOURCES)
    with pytest.raises(PrunebenchError, match=r"no local source for cifar100 \(searched \(\$PRUNEBENCH_DATA_SOURCES"):
        D.prepare("cifar100", tmp_path / "cache", download=False)


def test_mnist_files_directly_in_a_sources_folder(tmp_path, monkeypatch):
    write_files(tmp_path / "flat", mnist_files(random_arrays(2, 2, (28, 28)), prefix=""))
    monkeypatch.setenv(D.ENV_SOURCES, str(tmp_path / "flat"))
    assert D.find_source("mnist") == tmp_path / "flat"  # the "." entry of SOURCE_NAMES["mnist"]
    assert D.find_source("cifar10") is None


def test_verify_file(tmp_path):
    data = gzip.compress(b"content", mtime=0)
    f = tmp_path / "train-images-idx3-ubyte.gz"
    f.write_bytes(data)
    official = D.OfficialFile(f.name, (), hashlib.md5(data).hexdigest(), hashlib.md5(b"content").hexdigest())
    assert D.verify_file(f, official) == "md5"
    f.write_bytes(gzip.compress(b"content", compresslevel=1, mtime=5))  # another wrapper, same content
    assert D.verify_file(f, official) == "content-md5"
    f.write_bytes(gzip.compress(b"other", mtime=0))
    with pytest.raises(PrunebenchError, match=r"checksum mismatch for .*: decompressed md5 .* expected") as e:
        D.verify_file(f, official)
    assert "\n" not in str(e.value)
    f.write_bytes(b"not gzip")
    with pytest.raises(PrunebenchError, match="corrupt gzip file"):
        D.verify_file(f, official)
    plain = D.OfficialFile("x.tar.gz", (), hashlib.md5(b"x").hexdigest())
    with pytest.raises(PrunebenchError, match=r"md5 [0-9a-f]{32}, expected .*not the official x\.tar\.gz"):
        D.verify_file(f, plain, shown="shown-name")


def test_download_path(tmp_path, monkeypatch):
    served = tmp_path / "served" / "cifar-10-python.tar.gz"
    expected = make_cifar_tarball(served)
    missing = (tmp_path / "served" / "gone.tar.gz").as_uri()
    with_official(monkeypatch, "cifar10", served, urls=(missing, served.as_uri()))  # first mirror fails
    cache = tmp_path / "cache"
    d = assert_cache_equals(D.prepare("cifar10", cache), expected)
    assert d.metadata["source"]["origin"] == "download" and d.metadata["source"]["verified"] == "md5"
    assert files_under(cache) == [cache / "cifar10.safetensors", cache / "downloads" / "cifar-10-python.tar.gz"]
    assert D.prepare("cifar10", cache, source="download") == cache / "cifar10.safetensors"  # cache reused


def test_corrupt_download_leaves_nothing(tmp_path, monkeypatch):
    served = tmp_path / "served" / "cifar-10-python.tar.gz"
    make_cifar_tarball(served)
    good_md5 = md5(served)
    served.write_bytes(served.read_bytes()[:500])  # truncated transfer
    monkeypatch.setitem(D.OFFICIAL_FILES, "cifar10", (D.OfficialFile(served.name, (served.as_uri(),), good_md5),))
    cache = tmp_path / "cache"
    with pytest.raises(PrunebenchError, match="could not download cifar-10-python.tar.gz.*checksum mismatch") as e:
        D.prepare("cifar10", cache)
    assert "\n" not in str(e.value) and files_under(cache) == []
    with pytest.raises(PrunebenchError, match="download is off"):
        D.prepare("cifar10", cache, download=False)


def test_mnist_download_verifies_content(tmp_path, monkeypatch):
    """Served .gz files with another gzip wrapper than the published ones are accepted on their content MD5."""
    arrays = random_arrays(20, 10, (28, 28), seed=4)
    published = mnist_files(arrays, prefix="")
    served = write_files(tmp_path / "served", {k: gzip.compress(gzip.decompress(v), compresslevel=1, mtime=7)
                                               for k, v in published.items()})
    files = tuple(D.OfficialFile(f.name, ((tmp_path / "gone" / f.name).as_uri(), (served / f.name).as_uri()),
                                 hashlib.md5(published[f.name]).hexdigest(),
                                 hashlib.md5(gzip.decompress(published[f.name])).hexdigest())
                  for f in D.OFFICIAL_FILES["mnist"])
    monkeypatch.setitem(D.OFFICIAL_FILES, "mnist", files)
    d = D.load("mnist", D.prepare("mnist", tmp_path / "cache"))
    assert d.metadata["source"]["origin"] == "download" and d.metadata["source"]["verified"] == "content-md5"
    assert d.source_note == "MNIST" and d.train_x.shape == (20, 1, 28, 28)
    assert len(files_under(tmp_path / "cache" / "downloads" / "mnist")) == 4
