"""The prunebench.library.data package: its public names, and that importing it stays light."""
from __future__ import annotations

import subprocess
import sys

import prunebench.library.data as D

USED_ELSEWHERE = ("prepare", "load", "Data", "Batches", "pruning_batches", "train_batches", "eval_batches",
                  "num_batches", "split_indices", "normalize", "derive_seed", "crop_flip", "random_crop_flip",
                  "resolve_source", "find_source", "env_source_dirs", "OFFICIAL_FILES", "OfficialFile", "ENV_SOURCES",
                  "SOURCE_NAMES", "CACHE_FORMAT", "TENSOR_NAMES", "cache_path", "cached_metadata", "content_sha256",
                  "verify_file", "download_official", "write_manifest", "open_data")


def test_public_names():
    assert set(USED_ELSEWHERE) <= set(D.__all__)
    for name in D.__all__:
        assert hasattr(D, name), name


def test_import_does_not_load_the_readers():
    code = ("import sys, prunebench.library.data; "
            "print(sorted(m for m in sys.modules if m in ('PIL', 'prunebench.library.data.archives', "
            "'prunebench.library.data.formats', 'prunebench.library.data.images')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
