"""prunebench prune: compute a pruning mask at initialization (one cell of the pipeline)."""
from __future__ import annotations

import copy
import time
from pathlib import Path

from prunebench.cli.args import (add_device, check_distinct, check_input, check_int, check_number, check_output,
                                 check_seed, check_threads, json_arg, log, setup, staged_outputs)
from prunebench.library import limits
from prunebench.library.artifacts import recorded_checksum, write_json
from prunebench.library.data import eval_batches, open_data, pruning_batches
from prunebench.library.data.manifest import data_dataset
from prunebench.library.errors import PrunebenchError, check_sparsity, choose
from prunebench.library.init import init_metadata, meta_model, model_from_init
from prunebench.library.methods import at_init
from prunebench.library.models import prunable_parameters
from prunebench.library.pruners.registry import EPOCH, has_option, prune, pruner_class
from prunebench.library.pruners.topk import SCOPES, keep_count
from prunebench.library.signalprop import data_jsv


def add_arguments(p) -> None:
    p.add_argument("--method", required=True, help=", ".join(at_init()))
    p.add_argument("--sparsity", type=float, required=True, help="fraction of prunable weights removed, in [0, 1)")
    p.add_argument("--init", required=True, help="initialization file from `prunebench init`")
    p.add_argument("--data", default=None, help="data manifest (.json) or cache (.safetensors); data-free methods need none")
    p.add_argument("--batch-size", type=int, default=128, help="pruning batch size")
    p.add_argument("--no-augment", action="store_true", help="pruning batches without crop/flip")
    p.add_argument("--samples-per-class", type=int, default=None,
                   help="class-balanced batches of this many examples per class, concatenated class by class "
                        "(GraSP's data, docs/methods.md A.4); replaces --batch-size")
    p.add_argument("--epoch", action="store_true",
                   help="score on one pass over the training split in order, in batches of --batch-size, no "
                        "augmentation (SPP's epoch-long connection sensitivity, docs/methods.md A.7); the method's "
                        "num_batches defaults to that many batches (the library's num_batches='epoch')")
    p.add_argument("--val-fraction", type=float, default=0.0,
                   help="the validation fraction held out of train (pruning sees the training split only)")
    p.add_argument("--val-seed", type=int, default=1, help="seed of the validation split")
    p.add_argument("--seed", type=int, default=0, help="seed of the pruning batches and of random scores")
    p.add_argument("--scope", default="global", help="global or layerwise")
    p.add_argument("--options", default="", help="method options as JSON, e.g. '{\"steps\": 60}'")
    p.add_argument("--allow-collapse", action="store_true", help="accept a mask with fully pruned layers")
    p.add_argument("--jsv", action="store_true", help="also measure Jacobian singular values after init and after pruning")
    p.add_argument("--jsv-examples", type=int, default=10, help="examples for --jsv")
    p.add_argument("--cell-hash", default="", help="config hash recorded in the mask metadata")
    p.add_argument("--out", required=True, help="output mask (.safetensors; missing folders are created)")
    p.add_argument("--report", required=True, help="output report (.json): per-layer density, collapse")
    p.add_argument("--timing", default=None, help="output wall time / peak memory (.json; not deterministic)")
    add_device(p)


def validate(args) -> tuple:
    """Every name, number, option and file, before any data is read or any model is built. Returns the
    method's options (defaults filled in) and the init file's metadata."""
    cls = pruner_class(args.method)
    options = cls.Options.from_dict(json_arg(args.options, "--options")).to_dict()
    check_sparsity(args.sparsity)
    choose("scope", args.scope, SCOPES)
    check_seed(args.seed)
    check_int(args.batch_size, "--batch-size", 1, limits.MAX_BATCH)
    check_int(args.samples_per_class, "--samples-per-class", 1, limits.MAX_PER_CLASS)
    check_int(args.jsv_examples, "--jsv-examples", 1, limits.MAX_EXAMPLES)
    check_number(args.val_fraction, "--val-fraction", 0.0, 0.5)
    check_seed(args.val_seed, "--val-seed")
    if args.epoch and args.samples_per_class is not None:
        raise PrunebenchError("--epoch and --samples-per-class exclude each other")
    check_threads(args)
    outputs = {"--out": args.out, "--report": args.report, "--timing": args.timing}
    check_distinct({"--init": args.init, "--data": args.data}, outputs)
    for (flag, path), what in zip(outputs.items(), ("mask", "report", "timing file")):
        if path:
            check_output(path, what)
    meta = init_metadata(check_input(args.init, "init file"))
    check_keeps_a_weight_per_layer(args, meta)
    if args.data:
        dataset = data_dataset(check_input(args.data, "data manifest"))
        if dataset != meta["dataset"]:
            raise PrunebenchError(f"the init file {args.init!r} is {meta['model']} for {meta['dataset']}, the data "
                                  f"{args.data!r} is {dataset}: initialise the model for {dataset}")
    elif cls.needs_data or args.jsv:
        raise PrunebenchError(f"method {args.method!r} needs data: pass --data" if cls.needs_data
                              else "--jsv needs data: pass --data")
    return options, meta


def check_keeps_a_weight_per_layer(args, meta) -> None:
    """A sparsity that keeps fewer weights than the model has prunable layers is certain layer collapse: an
    error now (naming the count), not after the scoring, unless --allow-collapse."""
    sizes = [p.numel() for p in prunable_parameters(meta_model(meta["model"], meta["dataset"])).values()]
    kept = keep_count(sum(sizes), 1.0 - args.sparsity)
    if kept < len(sizes) and not args.allow_collapse:
        raise PrunebenchError(f"invalid sparsity {args.sparsity!r}: it keeps {kept} of {sum(sizes)} weights of "
                              f"{meta['model']}, fewer than its {len(sizes)} prunable layers (certain layer collapse; "
                              f"--allow-collapse to run it anyway)")


def run(args) -> None:
    options, _ = validate(args)
    given = json_arg(args.options, "--options")
    device = setup(args)
    model, meta = model_from_init(args.init, device)
    data = open_data(args.data, device, val_fraction=args.val_fraction, val_seed=args.val_seed) if args.data else None
    batches = None
    if data is not None:
        if args.epoch:  # one ordered pass over the training split; num_batches = its length unless given
            batches = eval_batches(data, "train", args.batch_size)
            if has_option(args.method, "num_batches") and "num_batches" not in given:
                options["num_batches"] = EPOCH
        elif args.samples_per_class is not None:  # GraSP's class-balanced batches, concatenated class by class (A.4)
            batches = pruning_batches(data, None, seed=args.seed, augment=not args.no_augment,
                                        class_balanced_per_class=args.samples_per_class)
        else:
            batches = pruning_batches(data, args.batch_size, seed=args.seed, augment=not args.no_augment)
    report = {"method": args.method, "sparsity": args.sparsity, "seed": args.seed, "scope": args.scope,
              "options": given, "model": meta["model"], "dataset": meta["dataset"], "init": meta.get("scheme")}
    if args.jsv:
        report["jsv_init"] = data_jsv(model, data, args.jsv_examples, device)
    t0 = time.perf_counter()
    mask = prune(model, args.method, args.sparsity, batches, scope=args.scope, seed=args.seed,
                 allow_collapse=args.allow_collapse, **options)
    wall = time.perf_counter() - t0
    if args.jsv:
        pruned = copy.deepcopy(model)
        mask.apply(pruned)
        report["jsv_prune"] = data_jsv(pruned, data, args.jsv_examples, device)
    if mask.collapsed():
        log(f"WARNING: layer collapse: {len(mask.collapsed())} fully pruned layer(s): {', '.join(mask.collapsed())}")
    report.update(mask.report(), cell_hash=args.cell_hash)
    prof = getattr(mask, "profile", {}) or {}
    peak = prof.get("peak_memory_bytes")
    timing = {"wall_s": wall, "scoring_s": prof.get("wall_time_s", wall), "peak_mb": peak / 2**20 if peak else None,
              "memory_measure": prof.get("memory_measure"), "device": prof.get("device"), "cell_hash": args.cell_hash}
    with staged_outputs({"mask": args.out, "report": args.report, "timing": args.timing}) as out:
        mask.save(out["mask"], method=args.method, sparsity=args.sparsity, seed=args.seed, cell_hash=args.cell_hash,
                  init=Path(args.init).name, init_sha256=recorded_checksum(args.init, "init file"),
                  model=meta["model"], dataset=meta["dataset"])
        write_json(out["report"], report, "report")
        if args.timing:
            write_json(out["timing"], timing, "timing file")
    log(f"{args.method} s={args.sparsity}: kept {mask.kept}/{mask.total} (density {mask.density:.5f}) in {wall:.2f}s "
        f"-> {args.out}")
