"""prunebench grid: validate a preset and count (or list) its cells."""
from __future__ import annotations

from prunebench.cli.args import log
from prunebench.pipeline.grid import expand, load_config
from prunebench.pipeline.paths import cell_dir


def add_arguments(p) -> None:
    p.add_argument("--config", required=True, help="preset YAML")
    p.add_argument("--list", action="store_true", help="print every cell's result folder")


def run(args) -> None:
    cfg = load_config(args.config)
    cells = expand(cfg)
    if args.list:
        for c in cells:
            print(cell_dir(c))
    log(f"{args.config}: valid; {len(cells)} cells")
