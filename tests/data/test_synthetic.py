"""The synthetic test data (tests/synthetic.py): deterministic, in the real formats, labelled as not official."""
from __future__ import annotations

import hashlib
import time

from prunebench.library import data as D
from synthetic import CIFAR_SIZES, MNIST_SIZES, make_sources


def digest(root) -> dict:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_sources_are_deterministic_and_fast(data_sources, tmp_path, monkeypatch):
    t0 = time.perf_counter()
    again = make_sources(tmp_path / "again")
    monkeypatch.setenv(D.ENV_SOURCES, str(again))
    caches = [D.prepare(name, tmp_path / "cache", download=False) for name in ("mnist", "cifar10")]
    elapsed = time.perf_counter() - t0
    assert digest(again) == digest(data_sources)  # byte-identical on every run
    assert elapsed < 5, f"synthetic sources took {elapsed:.1f} s to write and prepare"
    monkeypatch.setenv(D.ENV_SOURCES, str(data_sources))
    assert [D.prepare(name, tmp_path / "cache2", download=False).read_bytes() for name in ("mnist", "cifar10")] == \
        [c.read_bytes() for c in caches]


def test_found_like_real_sources_and_labelled_unofficial(data_sources, tmp_path, monkeypatch):
    monkeypatch.setenv(D.ENV_SOURCES, str(data_sources))
    assert D.resolve_source("mnist") == data_sources / "mnist"
    assert D.resolve_source("cifar10") == data_sources / "cifar10.tar.gz"
    for name, (n_train, n_test), shape in (("mnist", MNIST_SIZES, (1, 28, 28)), ("cifar10", CIFAR_SIZES, (3, 32, 32))):
        d = D.load(name, D.prepare(name, tmp_path, download=False))
        m = d.metadata
        assert m["counts"] == {"train": n_train, "test": n_test} and tuple(d.train_x.shape[1:]) == shape
        assert m["class_counts"] == {"train": [n_train // 10] * 10, "test": [n_test // 10] * 10}
        assert m["source"]["verified"] == "none" and m["source"]["origin"] == "local"
        display = D.DISPLAY_NAMES[name]
        assert d.source_note == f'{display}-format data "synthetic" (unverified; not the official {display} files)'
        # not a constant image: classes differ, images within a class differ
        x = d.train_x.float()
        assert x.std() > 20 and not d.train_x[0].equal(d.train_x[1])
