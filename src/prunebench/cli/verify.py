"""prunebench verify: check a preset's results (checksums, identities, tables, provenance) and reproduce some
cells byte for byte."""
from __future__ import annotations

from prunebench.cli.args import check_int, check_seed, log
from prunebench.library.errors import PrunebenchError
from prunebench.pipeline.verify import summary, verify


def add_arguments(p) -> None:
    p.add_argument("--preset", required=True, help="preset name (config/<preset>.yaml, results/<preset>/)")
    p.add_argument("--config", default=None, help="preset YAML (default: config/<preset>.yaml)")
    p.add_argument("--root", default=".", help="the checkout whose results/ and .snakemake/ are checked")
    p.add_argument("--reproduce", type=int, default=0, metavar="K", help="rerun K cells and compare them byte for "
                   "byte: the only check that catches a file forged with its checksum recomputed")
    p.add_argument("--seed", type=int, default=0, help="seed of the random choice of cells to reproduce (printed)")
    p.add_argument("--cheapest", action="store_true", help="reproduce the K cells with the smallest recorded "
                   "compute time instead of K random ones")
    p.add_argument("--no-train", action="store_true", help="reproduce the steps before training only (prune, "
                   "approximate isometry), of cells that prune at initialization: seconds per cell")


def run(args) -> int:
    if args.reproduce < 0:
        raise PrunebenchError(f"--reproduce must be >= 0, got {args.reproduce}")
    check_int(args.reproduce, "--reproduce", 0, 1_000_000)
    check_seed(args.seed)
    found = verify(args.preset, args.root, args.config, args.reproduce, args.seed, log=log,
                   cheapest=args.cheapest, train=not args.no_train)
    print(summary(args.preset, found))
    return 0 if found.ok else 1
