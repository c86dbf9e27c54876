"""prunebench report: write the replication report (claims and checks with verdicts), from a results folder
(the pipeline) or from a git-tracked data folder alone (a reviewer).

    prunebench report --results-dir results/P --out paper/replication-P.md --figures-dir figures/P \\
        --embed-dir paper/figures/P --data-dir paper/data/P [--claims paper/reference/*.yaml]
    prunebench report --data paper/data/P                 # report + PNGs from the per-seed data alone
    prunebench report --data paper/data/P --wall-time-s 6300 --alone --machine "2-core CPU"   # record, redo
"""
from __future__ import annotations

from pathlib import Path

from prunebench.cli.args import check_creatable, check_distinct, check_number, log
from prunebench.library.errors import PrunebenchError
from prunebench.pipeline.paths import report_path
from prunebench.report.data import record_run
from prunebench.report.replication import default_outputs, regenerate, write_report


def add_arguments(p) -> None:
    p.add_argument("--results-dir", default=None, help="results/<preset> (the pipeline's tables)")
    p.add_argument("--data", default=None,
                   help="paper/data/<preset>: regenerate the report and its PNGs from this data folder alone")
    p.add_argument("--claims", nargs="+", default=None,
                   help="claim files (default: the preset's `claims:` from paper/reference/)")
    p.add_argument("--out", default=None,
                   help="output markdown (default: paper/replication-<preset>.md, the --preset's or the data's)")
    p.add_argument("--preset", default="", help="preset name")
    p.add_argument("--figures-dir", default=None, help="figures/<preset>, embedded in the report")
    p.add_argument("--embed-dir", default=None,
                   help="copy the PNGs here (git-tracked, e.g. paper/figures/<preset>) and link them from the report")
    p.add_argument("--data-dir", default=None,
                   help="export the tables here (git-tracked, e.g. paper/data/<preset>) and render from that copy")
    p.add_argument("--figures-out", default=None,
                   help="with --data: where the PNGs are drawn (default: paper/figures/<preset>)")
    p.add_argument("--wall-time-s", type=float, default=None,
                   help="with --data: record the run's measured wall time (seconds) in run.json first")
    p.add_argument("--alone", action="store_true", default=None,
                   help="with --wall-time-s: the run had the machine to itself")
    p.add_argument("--not-alone", dest="alone", action="store_false", help="with --wall-time-s: it shared the machine")
    p.add_argument("--machine", default=None, help="with --wall-time-s: the machine, in words")


def run(args) -> None:
    if (args.results_dir is None) == (args.data is None):
        raise PrunebenchError("give exactly one of --results-dir (results of a run) and --data (a data folder)")
    if args.data is not None:
        for flag, v in (("--results-dir", args.results_dir), ("--figures-dir", args.figures_dir),
                        ("--embed-dir", args.embed_dir), ("--data-dir", args.data_dir), ("--claims", args.claims)):
            if v is not None:
                raise PrunebenchError(f"{flag} does not go with --data (the data folder holds everything)")
        out, figs = default_outputs(args.data)
        out, figs = Path(args.out or out), Path(args.figures_out or figs)
        check_creatable(out, "report")
        check_creatable(figs / "x.png", "--figures-out")
        if args.wall_time_s is not None:
            check_number(args.wall_time_s, "--wall-time-s", 0.0, lo_open=True)
            record_run(args.data, wall_time_s=args.wall_time_s, alone=args.alone, machine=args.machine)
        elif args.alone is not None or args.machine is not None:
            raise PrunebenchError("--alone / --not-alone / --machine describe --wall-time-s: give it too")
        regenerate(args.data, out, figs)
        log(f"wrote {out} and the PNGs in {figs} from {args.data}")
        return
    for flag, v in (("--figures-out", args.figures_out), ("--wall-time-s", args.wall_time_s),
                    ("--machine", args.machine)):
        if v is not None:
            raise PrunebenchError(f"{flag} goes with --data only")
    if args.out is None and not args.preset:
        raise PrunebenchError("give --out or --preset (the report is paper/replication-<preset>.md)")
    out = Path(args.out or report_path(args.preset))
    check_creatable(out, "report")
    check_distinct({f"--claims {c}": c for c in args.claims or ()}, {"--out": out})
    if args.embed_dir:
        check_creatable(Path(args.embed_dir) / "x.png", "--embed-dir")
    if args.data_dir:
        check_creatable(Path(args.data_dir) / "summary.csv", "--data-dir")
    write_report(Path(args.results_dir), [Path(p) for p in args.claims] if args.claims else None, out=out,
                 preset=args.preset or None, figures_dir=Path(args.figures_dir) if args.figures_dir else None,
                 results_label=args.data_dir or args.results_dir,
                 embed_dir=Path(args.embed_dir) if args.embed_dir else None,
                 data_dir=Path(args.data_dir) if args.data_dir else None)
