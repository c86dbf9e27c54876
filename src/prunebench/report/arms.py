"""Arm names, labels and plotting styles: the one parser of arm names, shared by the figures, the report
and the claim checker (imports no matplotlib or torch).

An arm name is a method (or a special arm) with optional suffixes, read right to left:

    <base>[_ai | _sparse | _m<M>][_shuffle | _invert | _reinit]

    snip_ai        SNIP followed by approximate isometry (SPP, docs/methods.md A.7)
    fggp_sparse    FGGP from a 50%-sparse start (docs/methods.md A.9)
    prospr_m5      ProsPr with M = 5 meta-steps (docs/methods.md A.8)
    snip_shuffle   the sanity-check ablation of SNIP (`prunebench.library.methods.ABLATIONS`): its per-layer
                   densities at random positions; `_invert` keeps the lowest scores, `_reinit` trains the
                   mask from a fresh draw of the init scheme
    snip_unsup     SNIP with uniform labels (SPP's unsupervised sensitivity): an arm of its own

Colours and markers come from the method table (`prunebench.library.methods`): one (colour, marker) per arm.
"""
from __future__ import annotations

import re
import zlib
from dataclasses import dataclass

from prunebench.library.methods import ABLATIONS as ABLATION_TABLE
from prunebench.library.methods import DARK_GREY, PALETTE, TABLE

CB = list(PALETTE)
ABLATIONS = tuple(ABLATION_TABLE)
VARIANTS = {"ai": " + AI", "sparse": " (50% sparse start)"}
ABLATION_LABELS = {a.name: a.label for a in ABLATION_TABLE.values()}
_META = re.compile(r"^(prospr)_m(\d+)$")

ARM_STYLES = {m.name: dict(color=m.color, marker=m.marker, linestyle=m.linestyle) for m in TABLE}
ARM_STYLES["snip_unsup"] = dict(color=CB[0], marker="h", linestyle="-.", fillstyle="none")
# keep the historical insertion order of the labels (the report orders arms by it)
_ORDER = ("dense", "random", "magnitude", "snip", "snip_unsup", "grasp", "synflow", "iter_snip", "force", "prospr",
          "fggp", "gmp", "mfgn_annealed")
ARM_STYLES = {a: ARM_STYLES[a] for a in _ORDER if a in ARM_STYLES} | {a: s for a, s in ARM_STYLES.items()
                                                                       if a not in _ORDER}
ARM_LABELS = {m.name: m.label for m in TABLE} | {"snip_unsup": "SNIP (unsup.)"}
ARM_LABELS = {a: ARM_LABELS[a] for a in ARM_STYLES}
# one line style and marker per ablation, in the colour of the method it ablates
ABLATION_STYLES = {a.name: dict(linestyle=a.linestyle, marker=a.marker) for a in ABLATION_TABLE.values()}
FALLBACK_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "h", "<", ">")


@dataclass(frozen=True)
class Arm:
    name: str
    base: str                 # the arm it varies ("snip" for snip_ai, snip_shuffle; itself otherwise)
    variant: str | None = None       # "ai" | "sparse" | None
    meta_steps: int | None = None    # prospr_m<M>
    ablation: str | None = None      # "shuffle" | "invert" | "reinit" | None
    of: str | None = None            # the ablated arm (snip_ai for snip_ai_shuffle)

    @property
    def method(self) -> str:
        """The pruning method the arm runs (snip_unsup and every variant of SNIP: snip)."""
        return "snip" if self.base == "snip_unsup" else self.base

    @property
    def known(self) -> bool:
        return self.base in ARM_LABELS


def parse_arm(arm: str) -> Arm:
    """Split an arm name into its base, variant, meta-steps and ablation (unknown names: base = the name)."""
    arm = str(arm)
    ablation = of = None
    rest = arm
    for ab in ABLATIONS:
        if rest.endswith("_" + ab) and len(rest) > len(ab) + 1:
            ablation, rest = ab, rest[: -len(ab) - 1]
            of = rest
            break
    m = _META.match(rest)
    if m:
        return Arm(arm, m.group(1), meta_steps=int(m.group(2)), ablation=ablation, of=of)
    if rest in ARM_LABELS:
        return Arm(arm, rest, ablation=ablation, of=of)
    for v in VARIANTS:
        if rest.endswith("_" + v) and rest[: -len(v) - 1] in ARM_LABELS:
            return Arm(arm, rest[: -len(v) - 1], variant=v, ablation=ablation, of=of)
    if ablation is not None and not of:
        return Arm(arm, arm)
    return Arm(arm, rest, ablation=ablation, of=of)


def method_of(arm: str) -> str:
    return parse_arm(arm).method


def is_ablation(arm: str) -> bool:
    return parse_arm(arm).ablation is not None


def ablation_arm(arm: str, ablation: str) -> str:
    """The name of `arm`'s sanity-check ablation (claims' beats_ablation, the sanity_checks figure)."""
    return f"{arm}_{ablation}"


def arm_label(arm: str) -> str:
    """Display label: 'SNIP', 'SNIP + AI', 'ProsPr (M=5)', 'FGGP (50% sparse start)', 'SNIP (layer-wise shuffle)'."""
    if arm in ARM_LABELS:
        return ARM_LABELS[arm]
    a = parse_arm(arm)
    if not a.known:
        return arm
    if a.ablation:
        return f"{arm_label(a.of)} ({ABLATION_LABELS[a.ablation]})"
    if a.meta_steps is not None:
        return f"{ARM_LABELS[a.base]} (M={a.meta_steps})"
    return ARM_LABELS[a.base] + VARIANTS[a.variant]


def arm_style(arm: str) -> dict:
    """Matplotlib line/marker keywords for an arm: fixed per arm, shared by every figure."""
    a = parse_arm(arm)
    if arm in ARM_STYLES:
        st = dict(ARM_STYLES[arm])
    elif a.known and a.ablation:
        st = dict(arm_style(a.of), **ABLATION_STYLES[a.ablation], fillstyle="none")
    elif a.known and a.meta_steps is not None:
        st = dict(ARM_STYLES[a.base])
    elif a.known and a.variant:
        st = dict(ARM_STYLES[a.base], linestyle="--", fillstyle="none")
    else:  # an arm nobody planned for: deterministic, never Python's salted hash()
        h = zlib.crc32(arm.encode())
        st = dict(color=CB[h % len(CB)], marker=FALLBACK_MARKERS[(h // 7) % len(FALLBACK_MARKERS)],
                  linestyle="-.")
    st.setdefault("fillstyle", "full")
    return st


def arm_order_key(arm: str):
    """Sort key: the base arm's place in the method table, then the name."""
    base = parse_arm(arm).base
    order = list(ARM_LABELS)
    return (order.index(base) if base in order else len(order), arm)


__all__ = ["ABLATIONS", "ABLATION_LABELS", "ARM_LABELS", "ARM_STYLES", "Arm", "CB", "DARK_GREY", "VARIANTS",
           "ablation_arm", "arm_label", "arm_order_key", "arm_style", "is_ablation", "method_of", "parse_arm"]
