"""prunebench figure: draw one paper figure from results/<preset>/summary.csv."""
from __future__ import annotations

from pathlib import Path

from prunebench.cli.args import check_creatable
from prunebench.report.figures import make_figure


def add_arguments(p) -> None:
    p.add_argument("--name", required=True, help="figure name (see README 'Figures')")
    p.add_argument("--results-dir", required=True, help="results/<preset>")
    p.add_argument("--out-stem", required=True, help="output path without extension (.pdf and .png written)")
    p.add_argument("--preset", default="", help="preset name for titles")


def run(args) -> None:
    for ext in (".pdf", ".png"):
        check_creatable(f"{args.out_stem}{ext}", "figure")
    make_figure(args.name, Path(args.results_dir), Path(args.out_stem), preset=args.preset or None)
