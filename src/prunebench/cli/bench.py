"""prunebench bench: run benchmarks/run.py (speed and memory; see benchmarks/README.md)."""
from __future__ import annotations

import argparse
import runpy
import sys
from pathlib import Path

HELP = "run benchmarks/run.py (speed and memory; see benchmarks/README.md)"


def add_arguments(p) -> None:
    p.add_argument("bench_args", nargs=argparse.REMAINDER, help="arguments for benchmarks/run.py, e.g. --suite train")


def parse(argv):
    """Everything after `bench` belongs to benchmarks/run.py (its own --help included, after `--`)."""
    if argv[:1] in (["-h"], ["--help"]):
        from prunebench.cli import command_parser

        command_parser("bench").print_help()
        raise SystemExit(0)
    return argparse.Namespace(bench_args=list(argv))


def run(args) -> None:
    from prunebench.errors import PrunebenchError

    script = Path(__file__).resolve().parents[3] / "benchmarks" / "run.py"
    if not script.exists():
        raise PrunebenchError(f"benchmarks need a source checkout: {str(script)!r} not found")
    sys.argv = [str(script)] + args.bench_args
    runpy.run_path(str(script), run_name="__main__")
