"""The method table: every pruning method the project knows, in one place (imports no torch).

One row per method: its kind (pruned once at initialization, pruned during training, or the dense
baseline), the module that implements it, the section of docs/methods.md that specifies it, its display
label and its plotting style. Everything that needs a list of methods reads this table: the preset
validation (`grid`), the pruner registry, the during-training factory, the figures, the aggregator, the
provenance of pipeline steps and `prunebench methods`.

Adding a method = one module (a `Pruner` subclass, see `prunebench.library.pruners.base`, or a `DuringTraining`
subclass for pruning during training) plus one row here.

Methods from other packages (plugins, docs/plugins.md) join the table without editing prunebench:
- an installed distribution declares an entry point in the group `prunebench.methods` whose name is the
  method's name and whose object is its `MethodInfo` (e.g. `mymag = "my_pkg.plugin:METHOD"`); every entry
  point is loaded the first time anything reads the table (`METHODS`, `TABLE`, `names()`, `method_info()`), so
  presets, the Snakemake pipeline, the CLI and `prunebench.prune` all see the method;
- or `register(MethodInfo(...))` at run time (a notebook, a script calling `prunebench.prune`).
A plugin method is a `Pruner` (or `DuringTraining`) subclass in its `module`, exactly as a built-in one; an
at-initialization plugin method gets the sanity-check ablations (`ABLATIONS`) like every other. Its
`MethodInfo.dist` names the distribution it came from, and `module_file(name)` gives the file its module is
loaded from (what a pipeline step's provenance hashes: the method's code).
"""
from __future__ import annotations

import importlib.metadata
import importlib.util
import re
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from prunebench.library.errors import PrunebenchError, choose

AT_INIT_KIND, DURING_KIND, DENSE_KIND = "at_init", "during", "dense"
KINDS = (AT_INIT_KIND, DURING_KIND, DENSE_KIND)

# seaborn's "colorblind" palette, as hex so that the colours never move with a library version.
PALETTE = ("#0173b2", "#de8f05", "#029e73", "#d55e00", "#cc78bc", "#ca9161", "#fbafe4", "#949494", "#ece133",
           "#56b4e9")
DARK_GREY = "#4d4d4d"


@dataclass(frozen=True)
class MethodInfo:
    name: str
    kind: str            # at_init | during | dense
    module: str          # the module implementing it (what a job of this method runs, besides the step)
    section: str = ""    # where it is specified: a section of docs/methods.md (built in), or a plugin's reference
    label: str = ""      # display label in figures and reports (default: the name)
    color: str = ""      # line colour (default for a plugin: one of PALETTE, from its name)
    marker: str = "o"    # matplotlib marker ("" = none)
    linestyle: str = "-"
    summary: str = ""    # one line for `prunebench methods` and the README
    dist: str = ""       # "<distribution> <version>" of a plugin method; "" for a built-in one

    @property
    def builtin(self) -> bool:
        return not self.dist

    @property
    def spec(self) -> str:
        """Where the method is specified, for people: "docs/methods.md A.1", or a plugin's own reference."""
        return f"docs/methods.md {self.section}" if self.builtin else (self.section or f"plugin {self.dist}")

    @property
    def at_init(self) -> bool:
        return self.kind == AT_INIT_KIND

    @property
    def during(self) -> bool:
        return self.kind == DURING_KIND

    @property
    def style(self) -> dict:
        return {"color": self.color, "marker": self.marker, "linestyle": self.linestyle}


_P = "prunebench.library.pruners."
BUILTIN = (
    MethodInfo("dense", DENSE_KIND, "prunebench.library.train", "B.2", "Dense", "#000000", "", ":",
               "no pruning: the unpruned baseline"),
    MethodInfo("random", AT_INIT_KIND, _P + "rand", "A.6", "Random", PALETTE[7], "x", "-",
               "i.i.d. random scores, exact top-k (uniform global, layer-wise, or given per-layer densities)"),
    MethodInfo("magnitude", AT_INIT_KIND, _P + "magnitude", "A.0", "Magnitude", DARK_GREY, "v", "-",
               "|theta| at initialisation"),
    MethodInfo("snip", AT_INIT_KIND, _P + "snip", "A.1", "SNIP", PALETTE[0], "o", "-",
               "connection sensitivity |theta * dL/dtheta| on one (or a few) batches"),
    MethodInfo("grasp", AT_INIT_KIND, _P + "grasp", "A.4", "GraSP", PALETTE[2], "s", "-",
               "remove the largest -theta * Hg (gradient-flow preservation)"),
    MethodInfo("synflow", AT_INIT_KIND, _P + "synflow", "A.5", "SynFlow", PALETTE[5], "P", "-",
               "data-free iterative synaptic flow |theta * dR/dtheta| with |theta| and an all-ones input"),
    MethodInfo("iter_snip", AT_INIT_KIND, _P + "iterative", "A.2", "Iter SNIP", PALETTE[9], "D", "-",
               "iterative SNIP on the pruned network, pruned weights never come back"),
    MethodInfo("force", AT_INIT_KIND, _P + "iterative", "A.3", "FORCE", PALETTE[3], "^", "-",
               "foresight connection sensitivity |theta0 * dL(theta0*m)/dtheta|, mask recomputed each step"),
    MethodInfo("prospr", AT_INIT_KIND, _P + "prospr", "A.8", "ProsPr", PALETTE[4], "*", "-",
               "meta-gradient of the loss after M inner SGD steps w.r.t. the mask"),
    MethodInfo("fggp", DURING_KIND, _P + "fggp", "A.9", "FGGP", PALETTE[1], "o", "-",
               "gradient-first, magnitude-next gradual pruning at a fixed selection rate"),
    MethodInfo("gmp", DURING_KIND, _P + "gmp", "A.9", "GMP", PALETTE[5], "s", "-",
               "gradual magnitude pruning on the same schedule"),
    MethodInfo("mfgn_annealed", DURING_KIND, _P + "mfgn", "A.9", "MFGN (annealed)", PALETTE[2], "D", "-",
               "magnitude-first, gradient-next with a cosine-annealed regrowth fraction"),
)


@dataclass(frozen=True)
class AblationInfo:
    """A sanity-check ablation of an at-initialization method (Frankle et al., ICLR 2021; Su et al., NeurIPS
    2020), a preset arm `{of: <arm>, ablation: <name>}` named `<arm>_<name>`."""
    name: str
    label: str           # display label ("SNIP, layer-wise shuffle")
    linestyle: str       # drawn in the colour of the method it ablates, with this line style and marker
    marker: str
    summary: str
    pruning_option: bool = False  # the ablation is the at-init pruning option of the same name (prune(..., shuffle=True))


ABLATION_TABLE = (
    AblationInfo("shuffle", "layer-wise shuffle", "--", "s",
                 "the arm's per-layer densities with random positions (pruning option `shuffle`)", True),
    AblationInfo("invert", "inverted scores", ":", "v",
                 "keep the lowest-scored weights instead of the highest (pruning option `invert`)", True),
    AblationInfo("reinit", "reinitialized", "-.", "D",
                 "the arm's mask trained from a fresh draw of the same init scheme (the `reinit` seed)"),
)
ABLATIONS = {a.name: a for a in ABLATION_TABLE}


# ---------------------------------------------------------------------------------------------------
# The registry: the built-in rows, then plugins (entry points, loaded on first read, and register() calls).

ENTRY_POINT_GROUP = "prunebench.methods"
PLUGIN_KINDS = (AT_INIT_KIND, DURING_KIND)
# Arm names are parsed right to left (prunebench.report.arms): a method name must not end like a variant.
_NAME = re.compile(r"^[a-z][a-z0-9_]{0,47}$")
_SUFFIXES = re.compile(r"_(ai|sparse|m\d+|" + "|".join(a.name for a in ABLATION_TABLE) + r")$")

_ROWS: dict = {m.name: m for m in BUILTIN}
_LOADED = False


def _check(info: MethodInfo, where: str) -> MethodInfo:
    """A plugin row, defaults filled in; anything a preset, a path or a figure could not carry is an error."""
    if not isinstance(info, MethodInfo):
        raise PrunebenchError(f"{where}: expected a prunebench.library.methods.MethodInfo, got {type(info).__name__}")
    if not _NAME.match(info.name) or _SUFFIXES.search(info.name):
        raise PrunebenchError(f"{where}: invalid method name {info.name!r}: lower-case letters, digits and _ "
                              f"(at most 48, starting with a letter), not ending in _ai, _sparse, _m<N> or "
                              f"_{'/_'.join(ABLATIONS)}")
    if info.kind not in PLUGIN_KINDS:
        raise PrunebenchError(f"{where}: method {info.name!r} has kind {info.kind!r}; a plugin method is "
                              f"{' or '.join(PLUGIN_KINDS)}")
    if not isinstance(info.module, str) or not info.module or info.module.startswith("."):
        raise PrunebenchError(f"{where}: method {info.name!r} needs `module`, the absolute name of the module "
                              f"defining its class")
    color = info.color or PALETTE[zlib.crc32(info.name.encode()) % len(PALETTE)]
    return replace(info, label=info.label or info.name, color=color, dist=info.dist or "local")


def _add(info: MethodInfo) -> MethodInfo:
    old = _ROWS.get(info.name)
    if old is not None and old != info:
        whose = "a built-in method" if old.builtin else f"the method from {old.dist}"
        raise PrunebenchError(f"plugin method {info.name!r} ({info.dist}) clashes with {whose} of that name")
    _ROWS[info.name] = info
    return info


def _entry_points() -> list:
    return sorted(importlib.metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda ep: (ep.name, ep.value))


def load_plugins() -> None:
    """Load every `prunebench.methods` entry point once (reading the table calls this). A plugin that fails to
    load, or whose row is invalid or clashes, is a one-line error naming its distribution."""
    global _LOADED
    if _LOADED:
        return
    _LOADED = True  # set first: a plugin module may read the table while it is being imported
    for ep in _entry_points():
        dist = f"{ep.dist.name} {ep.dist.version}" if ep.dist is not None else "an unknown distribution"
        where = f"plugin {ep.name!r} ({ep.value}, from {dist})"
        try:
            obj = ep.load()
        except Exception as e:  # any import failure of someone else's package: name it, in one line
            raise PrunebenchError(f"{where} failed to load: {type(e).__name__}: {e}") from None
        info = _check(obj, where)
        if info.name != ep.name:
            raise PrunebenchError(f"{where}: the entry point's name must be the method's name {info.name!r}")
        _add(replace(info, dist=dist))


def register(info: MethodInfo) -> MethodInfo:
    """Add a method from outside prunebench (docs/plugins.md) and return its row, defaults filled in. Its class
    is found in `info.module` when first used. Registering the same row twice is a no-op; another row under a
    taken name is an error. A Snakemake run sees only entry-point plugins (its jobs run in other processes)."""
    load_plugins()
    return _add(_check(info, "register()"))


def unregister(name: str) -> None:
    """Remove a plugin method (tests, notebooks); built-in methods stay."""
    info = _ROWS.get(name)
    if info is not None and not info.builtin:
        del _ROWS[name]


class _Methods(Mapping):
    """name -> MethodInfo, built-in rows first, plugins loaded on first read."""

    def __getitem__(self, name):
        load_plugins()
        return _ROWS[name]

    def __iter__(self):
        load_plugins()
        return iter(list(_ROWS))

    def __len__(self):
        load_plugins()
        return len(_ROWS)

    def __contains__(self, name):
        load_plugins()
        return name in _ROWS

    def __repr__(self):
        return f"METHODS({', '.join(self)})"


class _Table(Sequence):
    """The rows in table order (built-in, then plugins), plugins loaded on first read."""

    def __getitem__(self, i):
        load_plugins()
        return list(_ROWS.values())[i]

    def __len__(self):
        load_plugins()
        return len(_ROWS)

    def __iter__(self):
        load_plugins()
        return iter(list(_ROWS.values()))


METHODS = _Methods()
TABLE = _Table()


def method_info(name: str) -> MethodInfo:
    """The table row of `name`; an unknown name is a one-line error listing the known ones."""
    return METHODS[choose("method", name, METHODS)]


def module_file(name: str) -> Path | None:
    """The source file a method's module is loaded from, without running the module (its parent packages'
    __init__ files do run); None when it cannot be found. For a plugin method this is the file outside
    prunebench whose bytes a pipeline step's provenance must hash (prunebench.pipeline.provenance)."""
    try:
        spec = importlib.util.find_spec(method_info(name).module)
    except (ImportError, ValueError):
        return None
    return Path(spec.origin) if spec is not None and spec.origin and spec.has_location else None


def names(kind: str | None = None, builtin_only: bool = False) -> tuple:
    """Method names in table order, optionally of one kind, optionally prunebench's own (no plugins)."""
    rows = BUILTIN if builtin_only else TABLE
    return tuple(m.name for m in rows if kind is None or m.kind == kind)


def at_init(builtin_only: bool = False) -> tuple:
    return names(AT_INIT_KIND, builtin_only)


def during(builtin_only: bool = False) -> tuple:
    return names(DURING_KIND, builtin_only)
