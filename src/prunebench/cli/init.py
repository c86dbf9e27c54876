"""prunebench init: build a model and save a seeded initialization (safetensors)."""
from __future__ import annotations

from prunebench.cli.args import add_device, check_int, check_output, check_threads, log, setup

HELP = "build a model and save a seeded initialization (safetensors)"


def add_arguments(p) -> None:
    p.add_argument("--model", required=True, help="model name (see README 'Models')")
    p.add_argument("--dataset", required=True, help="data set the model is shaped for")
    p.add_argument("--scheme", default="kaiming_normal", help="kaiming_normal, kaiming_normal_fan_out, "
                   "xavier_normal, lecun_normal, orthogonal, delta_orthogonal, default")
    p.add_argument("--seed", type=int, default=0, help="init seed")
    p.add_argument("--out", required=True, help="output .safetensors")
    add_device(p, device=False)  # pinned: the orthogonal schemes' QR gives other bits with other thread counts


def parse(argv):
    """Arguments; a usage error is one line and exit status 2 (prunebench.cli.args.parse_args)."""
    from prunebench.cli.args import parse_args

    return parse_args('init', argv)


def run(args) -> None:
    from prunebench.library.errors import choose
    from prunebench.library.init import SCHEMES, initialize, save_init
    from prunebench.library.models import build_model, count_prunable

    choose("init scheme", args.scheme, SCHEMES)
    check_int(args.seed, "--seed", 0)
    check_output(args.out, "init file")
    check_threads(args)
    setup(args)
    model = build_model(args.model, args.dataset)  # validates the model and data set names
    initialize(model, args.scheme, args.seed)
    save_init(args.out, model, model=args.model, dataset=args.dataset, scheme=args.scheme, seed=args.seed)
    log(f"init {args.model}/{args.dataset} {args.scheme} seed {args.seed}: {count_prunable(model)} prunable weights "
        f"-> {args.out}")
