"""prunebench methods: list the pruning methods (from the method table)."""
from __future__ import annotations

from prunebench.library.methods import TABLE
from prunebench.library.resources import methods_spec


def add_arguments(p) -> None:
    p.add_argument("--options", action="store_true", help="also list each method's options with their defaults")


def run(args) -> None:
    for kind, title in (("at_init", "at initialization"), ("during", "during training"), ("dense", "baseline")):
        print(f"{title}:")
        for m in TABLE:
            if m.kind == kind:
                print(f"  {m.name:<14} {m.label:<16} {m.spec:<20} {m.summary}")
                if args.options and kind != "dense":
                    for name, default in _options(m).items():
                        print(f"      {name} = {default!r}")
    print(f"options: see README 'Methods' and {methods_spec()}")


def _options(m) -> dict:
    if m.at_init:
        from prunebench.library.pruners.registry import pruner_class  # torch: only for --options (the list: no torch)

        return pruner_class(m.name).Options.defaults()
    from prunebench.library.pruners.during import during_class  # torch: only for --options

    return during_class(m.name).Options.defaults()
