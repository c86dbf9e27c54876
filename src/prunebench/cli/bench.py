"""prunebench bench: run benchmarks/run.py (speed and memory; see benchmarks/README.md)."""
from __future__ import annotations

import argparse
import runpy
import sys
from pathlib import Path

from prunebench.cli import command_parser
from prunebench.cli.args import check_creatable, check_int, check_threads
from prunebench.library.errors import PrunebenchError, choose


def add_arguments(p) -> None:
    p.add_argument("bench_args", nargs=argparse.REMAINDER, help="arguments for benchmarks/run.py, e.g. --suite train")


def parse(argv):
    """Everything after `bench` belongs to benchmarks/run.py (its own --help included, after `--`)."""
    if argv[:1] in (["-h"], ["--help"]):
        command_parser("bench").print_help()
        raise SystemExit(0)
    return argparse.Namespace(bench_args=list(argv))


def run(args) -> None:
    script = Path(__file__).resolve().parents[3] / "benchmarks" / "run.py"
    if not script.exists():
        raise PrunebenchError(f"benchmarks need a source checkout: {str(script)!r} not found")
    bench = runpy.run_path(str(script), run_name="prunebench_bench")  # defines, runs nothing
    argv = list(args.bench_args[1:] if args.bench_args[:1] == ["--"] else args.bench_args)
    if not {"-h", "--help"} & set(argv):
        check_bench_args(argv, list(bench["SUITES"]) + ["all"])
    sys.argv = [str(script)] + argv
    bench["main"](argv)


def check_bench_args(argv, suites) -> None:
    """benchmarks/run.py's arguments, checked before any benchmark runs (one-line errors, exit 2)."""
    p = argparse.ArgumentParser(prog="prunebench bench", add_help=False)
    p.add_argument("--suite", default="all")
    p.add_argument("--device", default="auto")
    p.add_argument("--threads", default="1")
    p.add_argument("--full", action="store_true")
    p.add_argument("--out", default=None)
    ns, rest = p.parse_known_args(argv)
    if rest:
        raise PrunebenchError(f"unrecognized arguments: {' '.join(rest)} (see prunebench bench -- --help)")
    choose("benchmark suite", ns.suite, suites)
    try:
        ns.threads = int(ns.threads)
    except ValueError:
        raise PrunebenchError(f"invalid --threads {ns.threads!r}: must be an integer >= 1") from None
    check_int(ns.threads, "--threads", 1)
    check_threads(ns)
    if ns.out:
        check_creatable(ns.out, "benchmark results")
