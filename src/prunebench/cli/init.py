"""prunebench init: build a model and save a seeded initialization (safetensors)."""
from __future__ import annotations

from prunebench.cli.args import (add_device, check_output, check_seed, check_threads, log,
                                 outputs_of_failed_run_removed, setup)
from prunebench.library.errors import choose
from prunebench.library.init import SCHEMES, check_scheme, initialize, meta_model, save_init
from prunebench.library.models import build_model, count_prunable


def add_arguments(p) -> None:
    p.add_argument("--model", required=True, help="model name (see README 'Models')")
    p.add_argument("--dataset", required=True, help="data set the model is shaped for")
    p.add_argument("--scheme", default="kaiming_normal", help="an init scheme of prunebench.library.init.SCHEMES "
                   "(README 'Models'; an unknown name lists them)")
    p.add_argument("--seed", type=int, default=0, help="init seed")
    p.add_argument("--out", required=True, help="output .safetensors (missing folders are created)")
    add_device(p, device=False)  # pinned: the orthogonal schemes' QR gives other bits with other thread counts


def run(args) -> None:
    choose("init scheme", args.scheme, SCHEMES)
    check_seed(args.seed)
    check_output(args.out, "init file")
    check_threads(args)
    model = meta_model(args.model, args.dataset)  # the names and the scheme, before any work
    check_scheme(model, args.scheme)
    setup(args)
    model = build_model(args.model, args.dataset)
    with outputs_of_failed_run_removed([args.out]):
        initialize(model, args.scheme, args.seed)
        save_init(args.out, model, model=args.model, dataset=args.dataset, scheme=args.scheme, seed=args.seed)
    log(f"init {args.model}/{args.dataset} {args.scheme} seed {args.seed}: {count_prunable(model)} prunable weights "
        f"-> {args.out}")
