"""prunebench aggregate: collect every run of a preset into tidy CSV tables."""
from __future__ import annotations

from pathlib import Path

from prunebench.cli.args import log

HELP = "collect every run of a preset into tidy CSV tables"


def add_arguments(p) -> None:
    p.add_argument("--config", required=True, help="preset YAML")
    p.add_argument("--results-root", default="results", help="results root")
    p.add_argument("--command", default=None,
                   help="the command that ran the pipeline, recorded in run.json (default: $PRUNEBENCH_COMMAND)")


def parse(argv):
    """Arguments; a usage error is one line and exit status 2 (prunebench.cli.args.parse_args)."""
    from prunebench.cli.args import parse_args  # lazy: `prunebench --help` imports every command's module

    return parse_args('aggregate', argv)


def run(args) -> None:
    from prunebench.pipeline.aggregate import aggregate  # lazy: it imports the pruners (torch)

    paths = aggregate(args.config, Path(args.results_root), command=args.command)
    log("wrote " + ", ".join(str(p) for p in paths))
