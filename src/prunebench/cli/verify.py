"""prunebench verify: check a preset's results (checksums, provenance) and reproduce some cells byte for byte."""
from __future__ import annotations

from prunebench.cli.args import log

HELP = "check a preset's results: checksums, provenance keys, and (--reproduce K) K cells rerun byte for byte"


def add_arguments(p) -> None:
    p.add_argument("--preset", required=True, help="preset name (config/<preset>.yaml, results/<preset>/)")
    p.add_argument("--config", default=None, help="preset YAML (default: config/<preset>.yaml)")
    p.add_argument("--root", default=".", help="the checkout whose results/ and .snakemake/ are checked")
    p.add_argument("--reproduce", type=int, default=0, metavar="K", help="rerun K randomly chosen cells and compare")
    p.add_argument("--seed", type=int, default=0, help="seed of the choice of cells to reproduce (printed)")


def parse(argv):
    """Arguments; a usage error is one line and exit status 2 (prunebench.cli.args.parse_args)."""
    from prunebench.cli.args import parse_args

    return parse_args("verify", argv)


def run(args) -> int:
    from prunebench.library.errors import PrunebenchError
    from prunebench.pipeline.verify import summary, verify

    if args.reproduce < 0:
        raise PrunebenchError(f"--reproduce must be >= 0, got {args.reproduce}")
    found = verify(args.preset, args.root, args.config, args.reproduce, args.seed, log=log)
    print(summary(args.preset, found))
    return 0 if found.ok else 1
