"""prunebench isometry: enforce approximate isometry on the kept weights (SPP, data-free; docs/methods.md A.7)."""
from __future__ import annotations

import math

from prunebench.cli.args import (add_device, check_distinct, check_input, check_int, check_number, check_output,
                                 check_threads, log, setup, staged_outputs)
from prunebench.library import limits
from prunebench.library.artifacts import recorded_checksum, write_json
from prunebench.library.data import open_data
from prunebench.library.data.manifest import data_dataset
from prunebench.library.errors import PrunebenchError
from prunebench.library.init import init_metadata, model_from_init, save_init
from prunebench.library.masks import Mask
from prunebench.library.signalprop import approximate_isometry, data_jsv, isometry_objective


def add_arguments(p) -> None:
    p.add_argument("--init", required=True, help="initialization file")
    p.add_argument("--mask", required=True, help="mask file")
    p.add_argument("--steps", type=int, default=10000, help=f"SGD steps (at most {limits.MAX_ISOMETRY_STEPS})")
    p.add_argument("--lr", type=float, default=0.1, help="SGD learning rate")
    p.add_argument("--data", default=None, help="data manifest, for --jsv only")
    p.add_argument("--jsv", action="store_true", help="measure Jacobian singular values after isometry")
    p.add_argument("--jsv-examples", type=int, default=10, help="examples for --jsv")
    p.add_argument("--out", required=True, help="output weights (.safetensors, loadable as --init; missing folders "
                   "are created)")
    p.add_argument("--report", required=True, help="output report (.json)")
    add_device(p)


def validate(args):
    """Every number, file and combination, then the model and the mask (read, checksummed, fitted), before the
    isometry run. Returns (model, init metadata, mask)."""
    check_int(args.steps, "--steps", 0, limits.MAX_ISOMETRY_STEPS)
    check_number(args.lr, "--lr", 0.0, 10.0, lo_open=True)  # the official setting is 0.1; above 10 it blows up
    check_int(args.jsv_examples, "--jsv-examples", 1, limits.MAX_EXAMPLES)
    check_threads(args)
    check_distinct({"--init": args.init, "--mask": args.mask, "--data": args.data},
                   {"--out": args.out, "--report": args.report})
    check_output(args.out, "weights")
    check_output(args.report, "report")
    meta = init_metadata(check_input(args.init, "init file"))
    check_input(args.mask, "mask")
    if args.jsv and not args.data:
        raise PrunebenchError("--jsv needs data: pass --data")
    if args.data:
        dataset = data_dataset(check_input(args.data, "data manifest"))
        if dataset != meta["dataset"]:
            raise PrunebenchError(f"the init file {args.init!r} is {meta['model']} for {meta['dataset']}, the data "
                                  f"{args.data!r} is {dataset}")
    model, meta = model_from_init(args.init)
    return model, meta, Mask.load(args.mask, model)


def run(args) -> None:
    model, meta, mask = validate(args)
    device = setup(args)
    model = model.to(device)
    data = None
    if args.jsv:  # read (and checksum) the data before the long isometry run, not after it
        data = open_data(args.data, device)
    mask.apply(model)
    before = float(isometry_objective(model, mask))
    hist = approximate_isometry(model, mask, steps=args.steps, lr=args.lr, progress=True)
    # what these weights were made from: the cell (its config hash, recorded in the mask) and both inputs
    identity = {"cell_hash": mask.metadata.get("cell_hash", ""), "init_sha256": recorded_checksum(args.init, "init file"),
                "mask_sha256": recorded_checksum(args.mask, "mask file")}
    report = {"steps": args.steps, "lr": args.lr, "objective_before": before,
              "objective_after": float(hist[-1]) if len(hist) else before, **identity}
    if not math.isfinite(report["objective_after"]):
        raise PrunebenchError(f"isometry diverged (objective {report['objective_after']}) with --lr {args.lr}: "
                              f"nothing written; try a smaller --lr")
    if args.jsv:
        report["jsv_isometry"] = data_jsv(model, data, args.jsv_examples, device)
    with staged_outputs({"weights": args.out, "report": args.report}) as out:
        save_init(out["weights"], model, **{**meta, "isometry_steps": args.steps, "isometry_lr": args.lr, **identity})
        write_json(out["report"], report, "report")
    log(f"isometry: objective {before:.4f} -> {report['objective_after']:.4f} -> {args.out}")
