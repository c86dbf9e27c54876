"""Data sets: where they come from, one-time preparation into a uint8 cache, loading, seeded batches.

Four data sets (`specs.DATASETS`): mnist, cifar10, cifar100, tiny-imagenet (docs/methods.md B.3).

Modules (everything public is re-exported here):

* `prunebench.library.data.sources`: the official files, their published checksums, the official download, and
  the search for local sources ($PRUNEBENCH_DATA_SOURCES);
* `prunebench.library.data.archives`: a folder, a tar or a zip archive seen as a tree of files (read in memory);
* `prunebench.library.data.formats`: MNIST IDX files, CIFAR python batches (restricted unpickler), layout detection
  and reading a whole source; `prunebench.library.data.images`: ImageFolder trees and Tiny-ImageNet;
* `prunebench.library.data.cache`: the uint8 cache: `prepare`, `content_sha256`, `load` (hash checked), `Data`;
* `prunebench.library.data.manifest`: the pipeline's data manifests (`write_manifest`, `open_data`);
* `prunebench.library.data.batches`: normalisation, augmentation and seeded train / eval / pruning batches.

Importing this package loads neither the readers (tarfile, zipfile, pickle) nor PIL: `prepare` imports
them when it has a source to read, so a training job that only loads a cache stays light.
"""
from __future__ import annotations

from prunebench.library.data.batches import (AUGMENT_PADDING, Batches, crop_flip, derive_seed, eval_batches, normalize,
                                     num_batches, pruning_batches, random_crop_flip, train_batches)
from prunebench.library.data.cache import (CACHE_FORMAT, TENSOR_NAMES, Data, cache_path, cached_metadata, content_sha256, load,
                                   prepare, split_indices)
from prunebench.library.data.basics import DISPLAY_NAMES
from prunebench.library.data.manifest import MANIFEST_FORMAT, open_data, write_manifest
from prunebench.library.data.sources import (ENV_SOURCES, OFFICIAL_FILES, SOURCE_NAMES, OfficialFile, download_official,
                                     env_source_dirs, find_source, resolve_source, verify_file)

__all__ = [
    "CACHE_FORMAT", "ENV_SOURCES", "OFFICIAL_FILES", "SOURCE_NAMES", "OfficialFile", "Data", "Batches",
    "prepare", "load", "download_official", "verify_file", "resolve_source", "find_source", "env_source_dirs",
    "cache_path", "cached_metadata", "content_sha256", "split_indices", "normalize", "derive_seed",
    "crop_flip", "random_crop_flip", "num_batches", "train_batches", "eval_batches", "pruning_batches",
    "TENSOR_NAMES", "DISPLAY_NAMES", "AUGMENT_PADDING", "MANIFEST_FORMAT", "write_manifest", "open_data",
]
