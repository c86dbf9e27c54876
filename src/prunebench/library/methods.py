"""The method table: every pruning method the project knows, in one place (imports no torch).

One row per method: its kind (pruned once at initialization, pruned during training, or the dense
baseline), the module that implements it, the section of docs/methods.md that specifies it, its display
label and its plotting style. Everything that needs a list of methods reads this table: the preset
validation (`grid`), the pruner registry, the during-training factory, the figures, the aggregator, the
provenance of pipeline steps and `prunebench methods`.

Adding a method = one module (a `Pruner` subclass, see `prunebench.library.pruners.base`, or a `DuringTraining`
subclass for pruning during training) plus one row here.
"""
from __future__ import annotations

from dataclasses import dataclass

from prunebench.library.errors import choose

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
    section: str         # section of docs/methods.md that specifies it
    label: str           # display label in figures and reports
    color: str           # line colour
    marker: str          # matplotlib marker ("" = none)
    linestyle: str = "-"
    summary: str = ""    # one line for `prunebench methods` and the README

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
TABLE = (
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
METHODS = {m.name: m for m in TABLE}


@dataclass(frozen=True)
class AblationInfo:
    """A sanity-check ablation of an at-initialization method (Frankle et al., ICLR 2021; Su et al., NeurIPS
    2020), a preset arm `{of: <arm>, ablation: <name>}` named `<arm>_<name>`."""
    name: str
    label: str           # display label ("SNIP, layer-wise shuffle")
    linestyle: str       # drawn in the colour of the method it ablates, with this line style and marker
    marker: str
    summary: str


ABLATION_TABLE = (
    AblationInfo("shuffle", "layer-wise shuffle", "--", "s",
                 "the arm's per-layer densities with random positions (pruning option `shuffle`)"),
    AblationInfo("invert", "inverted scores", ":", "v",
                 "keep the lowest-scored weights instead of the highest (pruning option `invert`)"),
    AblationInfo("reinit", "reinitialized", "-.", "D",
                 "the arm's mask trained from a fresh draw of the same init scheme (the `reinit` seed)"),
)
ABLATIONS = {a.name: a for a in ABLATION_TABLE}


def method_info(name: str) -> MethodInfo:
    """The table row of `name`; an unknown name is a one-line error listing the known ones."""
    return METHODS[choose("method", name, METHODS)]


def names(kind: str | None = None) -> tuple:
    """Method names in table order, optionally of one kind."""
    return tuple(m.name for m in TABLE if kind is None or m.kind == kind)


def at_init() -> tuple:
    return names(AT_INIT_KIND)


def during() -> tuple:
    return names(DURING_KIND)
