"""`prunebench` command line: data | init | prune | isometry | train | aggregate | figure | report | grid | bench | methods.

Every subcommand prints a one-line error and exits 2 on bad input (unknown name, invalid sparsity,
corrupt or missing file), and writes its outputs atomically, so a failure leaves no partial file.
The Snakemake rules call these commands; `prunebench <cmd> --help` explains every option.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from prunebench.errors import PrunebenchError


def _json_arg(text: str, what: str) -> dict:
    if not text:
        return {}
    try:
        val = json.loads(text)
    except json.JSONDecodeError as e:
        raise PrunebenchError(f"{what} is not valid JSON: {e.msg} in {text!r}") from None
    if not isinstance(val, dict):
        raise PrunebenchError(f"{what} must be a JSON object, got {text!r}")
    return val


def _setup(args) -> str:
    from prunebench.runtime import resolve_device, setup_determinism

    device = resolve_device(getattr(args, "device", "cpu"))
    setup_determinism(getattr(args, "threads", 1), device)
    return device


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------------
# data

def open_data(path, device="cpu", val_fraction=0.0, val_seed=0):
    """Load a prepared data set from a cache file or a data manifest written by `prunebench data`."""
    from prunebench import data as D
    from prunebench.io import read_json

    path = Path(path)
    if path.suffix == ".json":
        man = read_json(path)
        cache = Path(man["cache"])
        if not cache.exists():  # caches are not versioned: rebuild from the recorded source
            _log(f"data cache {cache} missing; preparing {man['dataset']} again")
            D.prepare(man["dataset"], cache.parent, source=man.get("source"), download=man.get("download", True))
        data = D.load(man["dataset"], cache, device=device, val_fraction=val_fraction, val_seed=val_seed)
        got = data.metadata.get("content_sha256")
        if got != man["content_sha256"]:
            raise PrunebenchError(f"data cache {str(cache)!r} has content {got}, the manifest expects {man['content_sha256']}")
        return data
    from prunebench.io import load_tensors

    _, meta = load_tensors(path, what="data cache")
    return D.load(meta.get("dataset"), path, device=device, val_fraction=val_fraction, val_seed=val_seed)


def cmd_data(args):
    from prunebench import data as D
    from prunebench.io import write_json

    t0 = time.perf_counter()
    cache = D.prepare(args.dataset, Path(args.cache_dir), source=args.source, download=not args.no_download)
    from prunebench.io import load_tensors

    _, meta = load_tensors(cache, what="data cache")
    _log(f"{args.dataset}: {cache} ({meta.get('source_note', '')}) in {time.perf_counter() - t0:.1f}s")
    if args.manifest:
        write_json(args.manifest, {"dataset": args.dataset, "cache": str(cache), "source": args.source,
                                   "download": not args.no_download,
                                   "content_sha256": meta["content_sha256"],
                                   "source_note": meta.get("source_note", args.dataset)})
    print(cache)


# ---------------------------------------------------------------------------------------------------
# init

def cmd_init(args):
    from prunebench.init import initialize, save_init
    from prunebench.models import build_model, count_prunable

    model = build_model(args.model, args.dataset)
    initialize(model, args.scheme, args.seed)
    save_init(args.out, model, model=args.model, dataset=args.dataset, scheme=args.scheme, seed=args.seed)
    _log(f"init {args.model}/{args.dataset} {args.scheme} seed {args.seed}: {count_prunable(model)} prunable weights -> {args.out}")


def _model_from_init(path, device="cpu"):
    from prunebench.init import load_init
    from prunebench.io import load_tensors
    from prunebench.models import build_model

    _, meta = load_tensors(path, what="init file")
    if "model" not in meta:
        raise PrunebenchError(f"init file {str(path)!r} has no model metadata (not written by prunebench init)")
    model = build_model(meta["model"], meta["dataset"])
    load_init(path, model)
    return model.to(device), meta


# ---------------------------------------------------------------------------------------------------
# prune

def _jsv(model, data, n, device):
    from prunebench import data as D
    from prunebench.signal import jacobian_singular_values

    x, _ = next(iter(D.eval_batches(data, "train", n)))
    return jacobian_singular_values(model, x[:n].to(device))


def cmd_prune(args):
    import copy

    from prunebench import data as D
    from prunebench.errors import check_sparsity
    from prunebench.io import write_json
    from prunebench.pruners import prune

    check_sparsity(args.sparsity)
    device = _setup(args)
    options = _json_arg(args.options, "--options")
    model, meta = _model_from_init(args.init, device)
    data = open_data(args.data, device) if args.data else None
    batches = None
    if data is not None:
        if args.samples_per_class is not None and args.samples_per_class < 1:
            raise PrunebenchError(f"invalid --samples-per-class {args.samples_per_class}: must be >= 1")
        if args.samples_per_class is not None:  # GraSP's class-balanced batches, concatenated class by class (A.4)
            batches = D.pruning_batches(data, None, seed=args.seed, augment=not args.no_augment,
                                        class_balanced_per_class=args.samples_per_class)
        else:
            batches = D.pruning_batches(data, args.batch_size, seed=args.seed, augment=not args.no_augment)
    report = {"method": args.method, "sparsity": args.sparsity, "seed": args.seed, "scope": args.scope,
              "options": options, "model": meta["model"], "dataset": meta["dataset"], "init": meta.get("scheme")}
    if args.jsv:
        report["jsv_init"] = _jsv(model, data, args.jsv_examples, device)
    t0 = time.perf_counter()
    mask = prune(model, args.method, args.sparsity, batches, scope=args.scope, seed=args.seed,
                 allow_collapse=args.allow_collapse, **options)
    wall = time.perf_counter() - t0
    if args.jsv:
        pruned = copy.deepcopy(model)
        mask.apply(pruned)
        report["jsv_prune"] = _jsv(pruned, data, args.jsv_examples, device)
    collapsed = mask.collapsed()
    if collapsed:
        _log(f"WARNING: layer collapse: {len(collapsed)} fully pruned layer(s): {', '.join(collapsed)}")
    report.update({"density": mask.density, "kept": mask.kept, "total": mask.total, "collapsed": collapsed,
                   "layers": mask.layer_report(), "cell_hash": args.cell_hash})
    prof = getattr(mask, "profile", {}) or {}
    peak = prof.get("peak_memory_bytes")
    timing = {"wall_s": wall, "scoring_s": prof.get("wall_time_s", wall), "peak_mb": peak / 2**20 if peak else None,
              "memory_measure": prof.get("memory_measure"), "device": prof.get("device")}
    mask.save(args.out, method=args.method, sparsity=args.sparsity, seed=args.seed, cell_hash=args.cell_hash,
              init=str(Path(args.init).name))
    write_json(args.report, report)
    if args.timing:
        write_json(args.timing, timing)
    _log(f"{args.method} s={args.sparsity}: kept {mask.kept}/{mask.total} (density {mask.density:.5f}) in {wall:.2f}s -> {args.out}")


def cmd_isometry(args):
    from prunebench.io import write_json
    from prunebench.init import save_init
    from prunebench.masks import Mask
    from prunebench.signal import approximate_isometry, isometry_objective

    device = _setup(args)
    model, meta = _model_from_init(args.init, device)
    mask = Mask.load(args.mask, model)
    mask.apply(model)
    before = float(isometry_objective(model, mask))
    hist = approximate_isometry(model, mask, steps=args.steps, lr=args.lr, progress=True)
    report = {"steps": args.steps, "lr": args.lr, "objective_before": before, "objective_after": float(hist[-1]) if len(hist) else before}
    if args.jsv and args.data:
        data = open_data(args.data, device)
        report["jsv_isometry"] = _jsv(model, data, args.jsv_examples, device)
    save_init(args.out, model, **{**meta, "isometry_steps": args.steps, "isometry_lr": args.lr})
    write_json(args.report, report)
    _log(f"isometry: objective {before:.4f} -> {report['objective_after']:.4f} -> {args.out}")


# ---------------------------------------------------------------------------------------------------
# train

def cmd_train(args):
    from prunebench.io import write_json
    from prunebench.masks import Mask
    from prunebench.runtime import manifest
    from prunebench.train import TrainConfig, train

    device = _setup(args)
    cfg_dict = _json_arg(args.config, "--config")
    for k in ("epochs", "batch_size", "lr", "weight_decay", "momentum", "label_smoothing", "steps_per_epoch"):
        v = getattr(args, k)
        if v is not None:
            cfg_dict[k] = v
    if args.seed is not None:
        cfg_dict["seed"] = args.seed
    if args.nesterov:
        cfg_dict["nesterov"] = True
    if args.schedule:
        cfg_dict["schedule"] = args.schedule
    cfg = TrainConfig.from_dict(cfg_dict)
    model, meta = _model_from_init(args.init, device)
    data = open_data(args.data, device, val_fraction=args.val_fraction, val_seed=args.val_seed)
    if args.val_fraction > 0 and "val" not in cfg.metrics:
        cfg = TrainConfig.from_dict({**cfg.to_dict(), "metrics": list(cfg.metrics) + ["val"]})
    mask = Mask.load(args.mask, model) if args.mask else None
    during = None
    if args.during:
        from prunebench.errors import check_sparsity
        from prunebench.pruners.gradual import make_during_training

        check_sparsity(args.target_sparsity)
        during = make_during_training(args.during, args.target_sparsity, **_json_arg(args.during_options, "--during-options"))
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "manifest.json", manifest(
        {"train": cfg.to_dict(), "init": str(args.init), "mask": args.mask, "during": args.during,
         "target_sparsity": args.target_sparsity, "during_options": _json_arg(args.during_options, "--during-options"),
         "data": str(args.data), "cell_hash": args.cell_hash, "init_meta": meta},
        {"data": cfg.seed, "init": meta.get("seed"), "val": args.val_seed}, device, args.threads))
    m = train(model, data, cfg, mask=mask, during=during, out_dir=out, device=device,
              progress=not args.no_progress, log=_log)
    _log(f"final test acc {m['final_acc']:.4f}, best {m['best_acc']:.4f} -> {out / 'metrics.json'}")


# ---------------------------------------------------------------------------------------------------
# grid / aggregate / figures / report / methods

def cmd_grid(args):
    from prunebench.grid import cell_dir, expand, load_config

    cfg = load_config(args.config)
    cells = expand(cfg)
    if args.list:
        for c in cells:
            print(cell_dir(c))
    _log(f"{args.config}: valid; {len(cells)} cells")


def cmd_aggregate(args):
    from prunebench.aggregate import aggregate

    paths = aggregate(args.config, Path(args.results_root))
    _log("wrote " + ", ".join(str(p) for p in paths))


def cmd_figure(args):
    from prunebench.figures import make_figure

    make_figure(args.name, Path(args.results_dir), Path(args.out_stem), preset=args.preset or None)


def cmd_report(args):
    from prunebench.report import write_report

    write_report(Path(args.results_dir), [Path(p) for p in args.claims], out=Path(args.out), preset=args.preset or None,
                 figures_dir=Path(args.figures_dir) if args.figures_dir else None, results_label=args.results_dir)


def cmd_bench(args):
    import runpy

    script = Path(__file__).resolve().parents[2] / "benchmarks" / "run.py"
    if not script.exists():
        raise PrunebenchError(f"benchmarks need a source checkout: {str(script)!r} not found")
    sys.argv = [str(script)] + args.bench_args
    runpy.run_path(str(script), run_name="__main__")


def cmd_methods(args):
    from prunebench.grid import AT_INIT, DURING

    print("at initialization: " + ", ".join(AT_INIT))
    print("during training:   " + ", ".join(DURING))
    print("plus 'dense' (no pruning); see README 'Methods' for options")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="prunebench", description=__doc__.splitlines()[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True, metavar="COMMAND")
    F = argparse.ArgumentDefaultsHelpFormatter

    def common(sp, device=True):
        sp.add_argument("--threads", type=int, default=1, help="CPU threads (pinned: results depend on it)")
        if device:
            sp.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto")

    s = sub.add_parser("data", help="download or read a data set and prepare its uint8 cache", formatter_class=F)
    s.add_argument("--dataset", required=True, help="mnist, cifar10, cifar100 or tiny-imagenet")
    s.add_argument("--cache-dir", default="data", help="folder of prepared caches")
    s.add_argument("--source", default=None, help="local source: folder of official archives, ImageFolder tree, "
                   "or .tar/.tar.xz of one (default: $PRUNEBENCH_DATA_SOURCES, then the official download)")
    s.add_argument("--no-download", action="store_true", help="fail instead of downloading")
    s.add_argument("--manifest", default=None, help="also write a JSON manifest (cache path, content hash)")
    s.set_defaults(fn=cmd_data)

    s = sub.add_parser("init", help="build a model and save a seeded initialization (safetensors)", formatter_class=F)
    s.add_argument("--model", required=True, help="model name (see README 'Models')")
    s.add_argument("--dataset", required=True, help="data set the model is shaped for")
    s.add_argument("--scheme", default="kaiming_normal", help="kaiming_normal, kaiming_normal_fan_out, "
                   "xavier_normal, lecun_normal, orthogonal, delta_orthogonal, default")
    s.add_argument("--seed", type=int, default=0, help="init seed")
    s.add_argument("--out", required=True, help="output .safetensors")
    s.set_defaults(fn=cmd_init)

    s = sub.add_parser("prune", help="compute a pruning mask at initialization", formatter_class=F)
    s.add_argument("--method", required=True, help="random, magnitude, snip, grasp, synflow, iter_snip, force, prospr")
    s.add_argument("--sparsity", type=float, required=True, help="fraction of prunable weights removed, in [0, 1)")
    s.add_argument("--init", required=True, help="initialization file from `prunebench init`")
    s.add_argument("--data", default=None, help="data manifest (.json) or cache (.safetensors); data-free methods need none")
    s.add_argument("--batch-size", type=int, default=128, help="pruning batch size")
    s.add_argument("--no-augment", action="store_true", help="pruning batches without crop/flip")
    s.add_argument("--samples-per-class", type=int, default=None,
                   help="class-balanced batches of this many examples per class, concatenated class by class "
                        "(GraSP's data, methods.md A.4); replaces --batch-size")
    s.add_argument("--seed", type=int, default=0, help="seed of the pruning batches and of random scores")
    s.add_argument("--scope", default="global", help="global or layerwise")
    s.add_argument("--options", default="", help="method options as JSON, e.g. '{\"steps\": 60}'")
    s.add_argument("--allow-collapse", action="store_true", help="accept a mask with fully pruned layers")
    s.add_argument("--jsv", action="store_true", help="also measure Jacobian singular values after init and after pruning")
    s.add_argument("--jsv-examples", type=int, default=10, help="examples for --jsv")
    s.add_argument("--cell-hash", default="", help="config hash recorded in the mask metadata")
    s.add_argument("--out", required=True, help="output mask (.safetensors)")
    s.add_argument("--report", required=True, help="output report (.json): per-layer density, collapse")
    s.add_argument("--timing", default=None, help="output wall time / peak memory (.json; not deterministic)")
    common(s)
    s.set_defaults(fn=cmd_prune)

    s = sub.add_parser("isometry", help="enforce approximate isometry on the kept weights (SPP, data-free)", formatter_class=F)
    s.add_argument("--init", required=True, help="initialization file")
    s.add_argument("--mask", required=True, help="mask file")
    s.add_argument("--steps", type=int, default=10000, help="SGD steps")
    s.add_argument("--lr", type=float, default=0.1, help="SGD learning rate")
    s.add_argument("--data", default=None, help="data manifest, for --jsv only")
    s.add_argument("--jsv", action="store_true", help="measure Jacobian singular values after isometry")
    s.add_argument("--jsv-examples", type=int, default=10, help="examples for --jsv")
    s.add_argument("--out", required=True, help="output weights (.safetensors, loadable as --init)")
    s.add_argument("--report", required=True, help="output report (.json)")
    common(s)
    s.set_defaults(fn=cmd_isometry)

    s = sub.add_parser("train", help="train a (masked) model; checkpoints every epoch and resumes", formatter_class=F)
    s.add_argument("--init", required=True, help="initialization file")
    s.add_argument("--data", required=True, help="data manifest (.json) or cache (.safetensors)")
    s.add_argument("--mask", default=None, help="fixed mask from `prunebench prune`")
    s.add_argument("--during", default=None, help="prune during training: fggp, gmp or mfgn_annealed")
    s.add_argument("--target-sparsity", type=float, default=None, help="final sparsity for --during")
    s.add_argument("--during-options", default="", help="options of --during as JSON")
    s.add_argument("--config", default="", help="training options as JSON (TrainConfig fields)")
    s.add_argument("--epochs", type=int, default=None, help="override: epochs")
    s.add_argument("--batch-size", type=int, default=None, help="override: batch size")
    s.add_argument("--lr", type=float, default=None, help="override: learning rate")
    s.add_argument("--momentum", type=float, default=None, help="override: momentum")
    s.add_argument("--nesterov", action="store_true", help="override: Nesterov momentum")
    s.add_argument("--weight-decay", type=float, default=None, help="override: weight decay")
    s.add_argument("--schedule", default=None, help="override: step, cosine or constant")
    s.add_argument("--label-smoothing", type=float, default=None, help="override: label smoothing")
    s.add_argument("--steps-per-epoch", type=int, default=None, help="override: cap on steps per epoch (0 = all)")
    s.add_argument("--seed", type=int, default=None, help="data order / augmentation seed")
    s.add_argument("--val-fraction", type=float, default=0.0, help="hold out this fraction of train as validation")
    s.add_argument("--val-seed", type=int, default=1, help="seed of the validation split")
    s.add_argument("--cell-hash", default="", help="config hash recorded in the manifest")
    s.add_argument("--no-progress", action="store_true", help="no progress bar")
    s.add_argument("--out-dir", required=True, help="folder for metrics.json, checkpoint, manifest")
    common(s)
    s.set_defaults(fn=cmd_train)

    s = sub.add_parser("grid", help="validate a preset and count (or list) its cells", formatter_class=F)
    s.add_argument("--config", required=True, help="preset YAML")
    s.add_argument("--list", action="store_true", help="print every cell's result folder")
    s.set_defaults(fn=cmd_grid)

    s = sub.add_parser("aggregate", help="collect every run of a preset into tidy CSV tables", formatter_class=F)
    s.add_argument("--config", required=True, help="preset YAML")
    s.add_argument("--results-root", default="results", help="results root")
    s.set_defaults(fn=cmd_aggregate)

    s = sub.add_parser("figure", help="draw one paper figure from results/<preset>/summary.csv", formatter_class=F)
    s.add_argument("--name", required=True, help="figure name (see README 'Figures')")
    s.add_argument("--results-dir", required=True, help="results/<preset>")
    s.add_argument("--out-stem", required=True, help="output path without extension (.pdf and .png written)")
    s.add_argument("--preset", default="", help="preset name for titles")
    s.set_defaults(fn=cmd_figure)

    s = sub.add_parser("report", help="write the replication report (claims with verdicts)", formatter_class=F)
    s.add_argument("--results-dir", required=True, help="results/<preset>")
    s.add_argument("--claims", nargs="+", required=True, help="paper/reference/*.yaml")
    s.add_argument("--out", default="paper/replication.md", help="output markdown")
    s.add_argument("--preset", default="", help="preset name")
    s.add_argument("--figures-dir", default=None, help="figures/<preset>, embedded in the report")
    s.set_defaults(fn=cmd_report)

    s = sub.add_parser("bench", help="run benchmarks/run.py (speed and memory; see benchmarks/README.md)",
                       formatter_class=F)
    s.add_argument("bench_args", nargs=argparse.REMAINDER, help="arguments for benchmarks/run.py, e.g. --suite train")
    s.set_defaults(fn=cmd_bench)

    s = sub.add_parser("methods", help="list the pruning methods", formatter_class=F)
    s.set_defaults(fn=cmd_methods)
    return p


def main(argv=None) -> int:
    os.environ.setdefault("DVC_NO_ANALYTICS", "1")
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["bench"] and not {"-h", "--help"} & set(argv[1:2]):
        args = argparse.Namespace(cmd="bench", fn=cmd_bench, bench_args=argv[1:])  # options belong to run.py
    else:
        args = build_parser().parse_args(argv)
    try:
        args.fn(args)
    except PrunebenchError as e:
        print(f"prunebench {args.cmd}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"prunebench {args.cmd}: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
