"""prunebench train: train a (masked) model; checkpoints every epoch and resumes.

A checkpoint is resumed only by the run that wrote it: its key (`prunebench.library.train.train`'s
`identity`) holds the content checksums of the init and the mask, the data's content hash and validation
split, a hash of the code that trains, the during-training pruner and its options, the thread count and
the device kind, beside the training config. A run folder holding another run's checkpoint starts over, and
`manifest.json` records the identity of the run whose metrics it sits beside.
"""
from __future__ import annotations

import functools
import hashlib
import importlib
from pathlib import Path

from prunebench.cli.args import (add_device, check_distinct, check_input, check_number, check_out_dir, check_seed,
                                 check_threads, json_arg, log, outputs_of_failed_run_removed, setup)
from prunebench.library import limits
from prunebench.library import train  # the module: its train() is looked up when a run starts
from prunebench.library.artifacts import read_json, recorded_checksum, sha256_file, write_json
from prunebench.library.data import open_data
from prunebench.library.data.manifest import data_dataset
from prunebench.library.errors import PrunebenchError
from prunebench.library.init import init_metadata, model_from_init
from prunebench.library.masks import Mask
from prunebench.library.methods import during as during_methods
from prunebench.library.runtime import manifest

OVERRIDES = ("epochs", "batch_size", "lr", "weight_decay", "momentum", "label_smoothing", "steps_per_epoch")
# The files a run writes into --out-dir (prunebench.library.train and this command).
RUN_FILES = ("metrics.json", "timing.json", "manifest.json", "checkpoint.safetensors", "final_mask.safetensors")


def add_arguments(p) -> None:
    p.add_argument("--init", required=True, help="initialization file")
    p.add_argument("--data", required=True, help="data manifest (.json) or cache (.safetensors)")
    p.add_argument("--mask", default=None, help="fixed mask from `prunebench prune`")
    p.add_argument("--during", default=None, help="prune during training: " + ", ".join(during_methods()))
    p.add_argument("--target-sparsity", type=float, default=None, help="final sparsity for --during")
    p.add_argument("--during-options", default="", help="options of --during as JSON")
    p.add_argument("--config", default="", help="training options as JSON (TrainConfig fields)")
    p.add_argument("--epochs", type=int, default=None, help="override: epochs")
    p.add_argument("--batch-size", type=int, default=None, help="override: batch size")
    p.add_argument("--lr", type=float, default=None, help="override: learning rate")
    p.add_argument("--momentum", type=float, default=None, help="override: momentum")
    p.add_argument("--nesterov", action="store_true", help="override: Nesterov momentum")
    p.add_argument("--weight-decay", type=float, default=None, help="override: weight decay")
    p.add_argument("--schedule", default=None, help="override: step, cosine or constant")
    p.add_argument("--label-smoothing", type=float, default=None, help="override: label smoothing")
    p.add_argument("--steps-per-epoch", type=int, default=None, help="override: cap on steps per epoch (0 = all)")
    p.add_argument("--seed", type=int, default=None, help="data order / augmentation seed")
    p.add_argument("--val-fraction", type=float, default=0.0, help="hold out this fraction of train as validation")
    p.add_argument("--val-seed", type=int, default=1, help="seed of the validation split")
    p.add_argument("--cell-hash", default="", help="config hash recorded in the manifest")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--out-dir", required=True, help="folder for metrics.json, checkpoint, manifest (created if missing)")
    add_device(p)


def train_config(args):
    """The TrainConfig of the command line: --config JSON, then the explicit overrides, every value checked
    (types, finiteness, ranges, `prunebench.library.limits`' bounds)."""
    cfg = json_arg(args.config, "--config")
    for k in OVERRIDES:
        if getattr(args, k) is not None:
            cfg[k] = getattr(args, k)
    if args.seed is not None:
        cfg["seed"] = args.seed
    if args.nesterov:
        cfg["nesterov"] = True
    if args.schedule:
        cfg["schedule"] = args.schedule
    if args.val_fraction > 0 and "val" not in cfg.get("metrics", ["test"]):
        cfg["metrics"] = list(cfg.get("metrics", ["test"])) + ["val"]
    return limits.train_options(cfg, train.TrainConfig)


def during_pruner(args):
    """The during-training pruner of --during (its module is imported by name through the method table, so
    a dense or at-init training job does not import, nor hash, the during-training code)."""

    if args.during is None:
        if args.target_sparsity is not None or args.during_options:
            raise PrunebenchError("--target-sparsity and --during-options need --during")
        return None
    if args.target_sparsity is None:
        raise PrunebenchError(f"--during {args.during} needs --target-sparsity")
    if args.mask:
        raise PrunebenchError("--mask and --during exclude each other: a fixed mask, or pruning during training")
    during = importlib.import_module("prunebench.library.pruners.during")
    return during.make_during_training(args.during, args.target_sparsity,
                                       **json_arg(args.during_options, "--during-options"))


def validate(args):
    """Every name, number, option and file, before any data is read or any model is trained."""
    cfg = train_config(args)
    during = during_pruner(args)
    check_number(args.val_fraction, "--val-fraction", 0.0, 0.5)
    check_seed(args.val_seed, "--val-seed")
    check_threads(args)
    out = check_out_dir(args.out_dir, "--out-dir")
    check_distinct({"--init": args.init, "--mask": args.mask, "--data": args.data},
                   {f"--out-dir's {name}": out / name for name in RUN_FILES})
    meta = init_metadata(check_input(args.init, "init file"))
    dataset = data_dataset(check_input(args.data, "data manifest"))
    if dataset != meta["dataset"]:
        raise PrunebenchError(f"the init file {args.init!r} is {meta['model']} for {meta['dataset']}, the data "
                              f"{args.data!r} is {dataset}: initialise the model for {dataset}")
    model, meta = model_from_init(args.init)
    mask = Mask.load(check_input(args.mask, "mask"), model) if args.mask else None
    return cfg, during, model, meta, mask


@functools.lru_cache(maxsize=None)
def code_sha256() -> str:
    """A hash of the code that trains: every source file of the library (`prunebench.library`, whatever
    method it runs: conservative, a change anywhere starts a resumed run over) and this command's own."""
    library = Path(importlib.import_module("prunebench.library").__file__).parent
    files = sorted(library.rglob("*.py")) + [Path(__file__), Path(__file__).with_name("args.py")]
    h = hashlib.sha256()
    for f in files:
        h.update(f.relative_to(library.parent).as_posix().encode() + b"\0" + f.read_bytes() + b"\0")
    return h.hexdigest()


def run_identity(args, data, during, device) -> dict:
    """Everything besides the training config that decides this run's bytes: the inputs' content checksums
    (init, mask, data and its validation split), the code, the pruner of --during with its options, the
    thread count and the device kind. Part of the checkpoint's key and recorded in the manifest."""

    return {"init_sha256": recorded_checksum(args.init, "init file"),
            "mask_sha256": recorded_checksum(args.mask, "mask file") if args.mask else None,
            "data_sha256": data.metadata.get("content_sha256"), "val": data.metadata.get("val"),
            "code_sha256": code_sha256(),
            "during": None if during is None else {"method": during.name, "target_sparsity": during.target_sparsity,
                                                   "options": during.options.to_dict()},
            "threads": args.threads, "device": str(device).split(":")[0]}


def run(args) -> None:
    cfg, during, model, meta, mask = validate(args)
    device = setup(args)
    model = model.to(device)
    data = open_data(args.data, device, val_fraction=args.val_fraction, val_seed=args.val_seed)
    identity = run_identity(args, data, during, device)
    out = Path(args.out_dir)
    # a failed run leaves nothing behind (a killed one keeps its checkpoint to resume from)
    with outputs_of_failed_run_removed([out / name for name in RUN_FILES], folders=[out], keep_on_interrupt=True):
        out.mkdir(parents=True, exist_ok=True)
        if during is None:  # only a --during run writes one: one left there is another run's, not this one's
            (out / "final_mask.safetensors").unlink(missing_ok=True)
        m = train.train(model, data, cfg, mask=mask, during=during, out_dir=out, device=device,
                  progress=not args.no_progress, log=log, identity=identity)
        timing = read_json(out / "timing.json", "timing file")  # the cell it belongs to, as prune_timing.json says
        write_json(out / "timing.json", {**timing, "cell_hash": args.cell_hash}, "timing file")
        outputs = {"metrics.json": sha256_file(out / "metrics.json")}  # (timing.json varies run to run)
        write_json(out / "manifest.json", manifest(
            {"train": cfg.to_dict(), "init": str(args.init), "mask": args.mask, "during": args.during,
             "target_sparsity": args.target_sparsity, "during_options": json_arg(args.during_options, "--during-options"),
             "data": str(args.data), "cell_hash": args.cell_hash, "init_meta": meta, "identity": identity,
             "outputs_sha256": outputs},
            {"data": cfg.seed, "init": meta.get("seed"), "val": args.val_seed}, device, args.threads), "manifest")
    fmt = lambda v: "n/a" if v is None else f"{v:.4f}"  # noqa: E731  (a diverged run has no final accuracy)
    log(f"final test acc {fmt(m['final_acc'])}, best {fmt(m['best_acc'])} -> {out / 'metrics.json'}")
