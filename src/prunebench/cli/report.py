"""prunebench report: write the replication report (claims with verdicts)."""
from __future__ import annotations

from pathlib import Path

HELP = "write the replication report (claims with verdicts)"


def add_arguments(p) -> None:
    p.add_argument("--results-dir", required=True, help="results/<preset>")
    p.add_argument("--claims", nargs="+", required=True, help="paper/reference/*.yaml")
    p.add_argument("--out", default="paper/replication.md", help="output markdown")
    p.add_argument("--preset", default="", help="preset name")
    p.add_argument("--figures-dir", default=None, help="figures/<preset>, embedded in the report")
    p.add_argument("--embed-dir", default=None,
                   help="copy the PNGs here (git-tracked, e.g. paper/figures/<preset>) and link them from the report")


def parse(argv):
    """Arguments; a usage error is one line and exit status 2 (prunebench.cli.args.parse_args)."""
    from prunebench.cli.args import parse_args

    return parse_args('report', argv)


def run(args) -> None:
    from prunebench.cli.args import check_creatable
    from prunebench.report.replication import write_report

    check_creatable(args.out, "report")
    if args.embed_dir:
        check_creatable(Path(args.embed_dir) / "x.png", "--embed-dir")
    write_report(Path(args.results_dir), [Path(p) for p in args.claims], out=Path(args.out), preset=args.preset or None,
                 figures_dir=Path(args.figures_dir) if args.figures_dir else None, results_label=args.results_dir,
                 embed_dir=Path(args.embed_dir) if args.embed_dir else None)
