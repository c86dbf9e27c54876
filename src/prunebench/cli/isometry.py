"""prunebench isometry: enforce approximate isometry on the kept weights (SPP, data-free; docs/methods.md A.7)."""
from __future__ import annotations

import math

from prunebench.cli.args import add_device, check_input, check_int, check_number, check_output, check_threads, log, setup

HELP = "enforce approximate isometry on the kept weights (SPP, data-free)"


def add_arguments(p) -> None:
    p.add_argument("--init", required=True, help="initialization file")
    p.add_argument("--mask", required=True, help="mask file")
    p.add_argument("--steps", type=int, default=10000, help="SGD steps")
    p.add_argument("--lr", type=float, default=0.1, help="SGD learning rate")
    p.add_argument("--data", default=None, help="data manifest, for --jsv only")
    p.add_argument("--jsv", action="store_true", help="measure Jacobian singular values after isometry")
    p.add_argument("--jsv-examples", type=int, default=10, help="examples for --jsv")
    p.add_argument("--out", required=True, help="output weights (.safetensors, loadable as --init)")
    p.add_argument("--report", required=True, help="output report (.json)")
    add_device(p)


def parse(argv):
    """Arguments; a usage error is one line and exit status 2 (prunebench.cli.args.parse_args)."""
    from prunebench.cli.args import parse_args

    return parse_args('isometry', argv)


def run(args) -> None:
    from prunebench.library.errors import PrunebenchError
    from prunebench.library.init import init_metadata, model_from_init, save_init
    from prunebench.library.artifacts import write_json
    from prunebench.library.masks import Mask
    from prunebench.library.signalprop import approximate_isometry, isometry_objective

    check_int(args.steps, "--steps", 0)
    check_number(args.lr, "--lr", 0.0, 10.0, lo_open=True)  # the official setting is 0.1; above 10 it blows up
    check_int(args.jsv_examples, "--jsv-examples", 1)
    check_threads(args)
    check_output(args.out, "weights")
    check_output(args.report, "report")
    init_metadata(check_input(args.init, "init file"))
    check_input(args.mask, "mask")
    if args.jsv and not args.data:
        raise PrunebenchError("--jsv needs data: pass --data")
    if args.data:
        check_input(args.data, "data manifest")
    device = setup(args)
    model, meta = model_from_init(args.init, device)
    mask = Mask.load(args.mask, model)
    data = None
    if args.jsv:  # read (and checksum) the data before the long isometry run, not after it
        from prunebench.library.data import open_data

        data = open_data(args.data, device)
    mask.apply(model)
    before = float(isometry_objective(model, mask))
    hist = approximate_isometry(model, mask, steps=args.steps, lr=args.lr, progress=True)
    report = {"steps": args.steps, "lr": args.lr, "objective_before": before,
              "objective_after": float(hist[-1]) if len(hist) else before}
    if not math.isfinite(report["objective_after"]):
        raise PrunebenchError(f"isometry diverged (objective {report['objective_after']}) with --lr {args.lr}: "
                              f"nothing written; try a smaller --lr")
    if args.jsv:
        from prunebench.library.signalprop import data_jsv

        report["jsv_isometry"] = data_jsv(model, data, args.jsv_examples, device)
    save_init(args.out, model, **{**meta, "isometry_steps": args.steps, "isometry_lr": args.lr})
    write_json(args.report, report)
    log(f"isometry: objective {before:.4f} -> {report['objective_after']:.4f} -> {args.out}")
