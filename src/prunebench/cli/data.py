"""prunebench data: download or read a data set and prepare its uint8 cache."""
from __future__ import annotations

import time
from pathlib import Path

from prunebench.cli.args import check_distinct, check_out_dir, check_output, log, outputs_of_failed_run_removed
from prunebench.library.data import cache_path, cached_metadata, prepare, write_manifest
from prunebench.library.datasets import DATASETS, dataset_spec
from prunebench.library.errors import PrunebenchError


def add_arguments(p) -> None:
    p.add_argument("--dataset", required=True, help=", ".join(DATASETS))
    p.add_argument("--cache-dir", default="data", help="folder of prepared caches (created if missing)")
    p.add_argument("--source", default=None, help="local source: folder of official archives, ImageFolder tree, "
                   "or .tar/.tar.xz of one (default: $PRUNEBENCH_DATA_SOURCES, then the official download)")
    p.add_argument("--no-download", action="store_true", help="fail instead of downloading")
    p.add_argument("--manifest", default=None, help="also write a JSON manifest (cache path, content hash; missing "
                   "folders are created)")


def run(args) -> None:
    dataset_spec(args.dataset)
    if args.source is not None and not Path(args.source).exists():
        raise PrunebenchError(f"missing local source {args.source!r}")
    cache_dir = Path(args.cache_dir)
    if cache_dir.exists() and not cache_dir.is_dir():
        raise PrunebenchError(f"--cache-dir {args.cache_dir!r} is a file, not a folder")
    check_out_dir(cache_dir, "--cache-dir")
    cache = cache_path(args.dataset, cache_dir)
    check_distinct({"--source": args.source}, {"--manifest": args.manifest, "the cache": cache})
    if args.manifest:
        check_output(args.manifest, "manifest")
    t0 = time.perf_counter()
    with outputs_of_failed_run_removed([cache, args.manifest], folders=[cache_dir]):
        cache = prepare(args.dataset, cache_dir, source=args.source, download=not args.no_download)
        meta = cached_metadata(cache) or {}
        log(f"{args.dataset}: {cache} ({meta.get('source_note', '')}) in {time.perf_counter() - t0:.1f}s")
        if args.manifest:
            write_manifest(args.manifest, args.dataset, cache, args.source, not args.no_download)
    print(cache)
