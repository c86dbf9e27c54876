"""prunebench train: train a (masked) model; checkpoints every epoch and resumes."""
from __future__ import annotations

import importlib
import os
import shutil
from pathlib import Path

from prunebench.cli.args import (add_device, check_input, check_int, check_number, check_threads, json_arg, log,
                                   setup)

HELP = "train a (masked) model; checkpoints every epoch and resumes"
OVERRIDES = ("epochs", "batch_size", "lr", "weight_decay", "momentum", "label_smoothing", "steps_per_epoch")


def add_arguments(p) -> None:
    p.add_argument("--init", required=True, help="initialization file")
    p.add_argument("--data", required=True, help="data manifest (.json) or cache (.safetensors)")
    p.add_argument("--mask", default=None, help="fixed mask from `prunebench prune`")
    p.add_argument("--during", default=None, help="prune during training: fggp, gmp or mfgn_annealed")
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
    p.add_argument("--out-dir", required=True, help="folder for metrics.json, checkpoint, manifest")
    add_device(p)


def train_config(args):
    """The TrainConfig of the command line: --config JSON, then the explicit overrides (all validated)."""
    from prunebench.library.train import TrainConfig

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
    return TrainConfig.from_dict(cfg)


def during_pruner(args):
    """The during-training pruner of --during (its module is imported by name through the method table, so
    a dense or at-init training job does not import, nor hash, the during-training code)."""
    from prunebench.library.errors import PrunebenchError

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
    from prunebench.library.init import init_metadata, model_from_init
    from prunebench.library.masks import Mask

    cfg = train_config(args)
    during = during_pruner(args)
    check_number(args.val_fraction, "--val-fraction", 0.0, 0.5)
    check_int(args.val_seed, "--val-seed", 0)
    check_threads(args)
    init_metadata(check_input(args.init, "init file"))
    check_input(args.data, "data manifest")
    out = Path(args.out_dir)
    if out.exists() and not out.is_dir():
        from prunebench.library.errors import PrunebenchError

        raise PrunebenchError(f"--out-dir {args.out_dir!r} is a file")
    base = out
    while not base.exists() and base.parent != base:
        base = base.parent
    if not base.is_dir() or not os.access(base, os.W_OK):
        from prunebench.library.errors import PrunebenchError

        raise PrunebenchError(f"cannot write --out-dir {args.out_dir!r}: {str(base)!r} is not a writable folder")
    model, meta = model_from_init(args.init)
    mask = Mask.load(check_input(args.mask, "mask"), model) if args.mask else None
    return cfg, during, model, meta, mask


def parse(argv):
    """Arguments; a usage error is one line and exit status 2 (prunebench.cli.args.parse_args)."""
    from prunebench.cli.args import parse_args

    return parse_args('train', argv)


def run(args) -> None:
    from prunebench.library.data import open_data
    from prunebench.library.artifacts import write_json
    from prunebench.library.runtime import manifest
    from prunebench.library.train import train

    cfg, during, model, meta, mask = validate(args)
    device = setup(args)
    model = model.to(device)
    data = open_data(args.data, device, val_fraction=args.val_fraction, val_seed=args.val_seed)
    out = Path(args.out_dir)
    before = set(out.iterdir()) if out.is_dir() else None
    created = out  # the topmost folder this run creates (removed whole if the run fails)
    while not created.parent.exists() and created.parent != created:
        created = created.parent
    out.mkdir(parents=True, exist_ok=True)
    try:
        m = train(model, data, cfg, mask=mask, during=during, out_dir=out, device=device,
                  progress=not args.no_progress, log=log)
        write_json(out / "manifest.json", manifest(
            {"train": cfg.to_dict(), "init": str(args.init), "mask": args.mask, "during": args.during,
             "target_sparsity": args.target_sparsity, "during_options": json_arg(args.during_options, "--during-options"),
             "data": str(args.data), "cell_hash": args.cell_hash, "init_meta": meta},
            {"data": cfg.seed, "init": meta.get("seed"), "val": args.val_seed}, device, args.threads))
    except Exception:  # a failed run leaves nothing behind (a killed one keeps its checkpoint to resume from)
        if before is None:
            shutil.rmtree(created, ignore_errors=True)
        else:
            for p in set(out.iterdir()) - before:
                shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink(missing_ok=True)
        raise
    fmt = lambda v: "n/a" if v is None else f"{v:.4f}"  # noqa: E731  (a diverged run has no final accuracy)
    log(f"final test acc {fmt(m['final_acc'])}, best {fmt(m['best_acc'])} -> {out / 'metrics.json'}")
