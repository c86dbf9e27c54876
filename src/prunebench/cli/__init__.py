"""`prunebench` command line: one module per subcommand (prunebench/cli/<command>.py).

Each command module defines HELP (one line), `add_arguments(parser)` and `run(args)`. The dispatcher imports
only the module of the command being run, so a pipeline step's provenance (prunebench.provenance) hashes
exactly the code that step runs: editing the `report` command does not rerun training.

Every subcommand validates all its inputs before it reads data or builds a model, prints a one-line error
and exits 2 on bad input, and writes its outputs atomically, so a failure leaves no partial file.
"""
from __future__ import annotations

import argparse
import importlib
import os
import sys

COMMANDS = ("data", "init", "prune", "isometry", "train", "grid", "aggregate", "figure", "report", "bench",
            "methods")


def command_module(cmd: str):
    return importlib.import_module(f"prunebench.cli.{cmd.replace('-', '_')}")


def command_parser(cmd: str) -> argparse.ArgumentParser:
    mod = command_module(cmd)
    p = argparse.ArgumentParser(prog=f"prunebench {cmd}", description=mod.HELP,
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    mod.add_arguments(p)
    return p


def _top_help() -> str:
    lines = ["usage: prunebench COMMAND [options]   (prunebench COMMAND --help for its options)", "", "commands:"]
    for c in COMMANDS:
        lines.append(f"  {c:<10} {command_module(c).HELP}")
    return "\n".join(lines)


def main(argv=None) -> int:
    os.environ.setdefault("DVC_NO_ANALYTICS", "1")
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(_top_help())
        return 0 if argv else 2
    cmd = argv[0]
    if cmd not in COMMANDS:
        print(f"prunebench: error: unknown command {cmd!r}; choose one of: {', '.join(COMMANDS)}", file=sys.stderr)
        return 2
    mod = command_module(cmd)
    args = mod.parse(argv[1:]) if hasattr(mod, "parse") else command_parser(cmd).parse_args(argv[1:])
    args.cmd = cmd
    from prunebench.errors import PrunebenchError

    try:
        mod.run(args)
    except PrunebenchError as e:
        print(f"prunebench {cmd}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"prunebench {cmd}: interrupted", file=sys.stderr)
        return 130
    return 0
