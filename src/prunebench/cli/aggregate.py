"""prunebench aggregate: collect every run of a preset into tidy CSV tables."""
from __future__ import annotations

from pathlib import Path

from prunebench.cli.args import log
from prunebench.pipeline.aggregate import aggregate


def add_arguments(p) -> None:
    p.add_argument("--config", required=True, help="preset YAML")
    p.add_argument("--results-root", default="results", help="results root")
    p.add_argument("--command", default=None,
                   help="the command that ran the pipeline, recorded in run.json (default: $PRUNEBENCH_COMMAND)")


def run(args) -> None:
    paths = aggregate(args.config, Path(args.results_root), command=args.command)
    log("wrote " + ", ".join(str(p) for p in paths))
