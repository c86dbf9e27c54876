"""Arms as data: what each arm of a results table runs, its label, plotting style and order (imports no
matplotlib or torch).

The grid knows every cell's arm: the method it runs, whether it is a sanity-check ablation of another arm
(`ablation`, `ablation_of`), whether approximate isometry follows pruning (`isometry`), whether the
connection sensitivity is supervised (`supervision`), ProsPr's number of meta-steps (`meta_steps`) and how a
during-training run starts (`start`); the aggregator writes all of it as columns of summary.csv
(`prunebench.report.tables`). `catalog(summary)` turns those columns into one `Arm` per arm name. Nothing here
reads meaning out of an arm's name: the name is an identifier (and the label of last resort).

Labels and styles come from the method table (`prunebench.library.methods`: one colour and marker per
method) and the ablation table, varied by what sets an arm apart: '+ AI' (dashed, open markers),
'(unsup.)' (dash-dot, hexagons), '(50% sparse start)' (dashed), 'M=k' for ProsPr, '(layer-wise shuffle)'
etc. in the ablated arm's colour. Two arms that the columns cannot tell apart (the same method with other
options, e.g. FORCE with cross-entropy) get their name added to the label and a style of their own.
"""
from __future__ import annotations

import math
import zlib
from dataclasses import dataclass, replace

import pandas as pd

from prunebench.library.methods import ABLATION_TABLE, ABLATIONS, METHODS, PALETTE, TABLE

CB = list(PALETTE)
ABLATION_NAMES = tuple(a.name for a in ABLATION_TABLE)
FALLBACK_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "h", "<", ">")
FALLBACK_LINESTYLES = ("-.", (0, (3, 1, 1, 1)), (0, (5, 1)), ":")
SUPERVISED, UNSUPERVISED = "supervised", "unsupervised"
_METHOD_ORDER = {m.name: i for i, m in enumerate(TABLE)}


def _text(v, default=None):
    return default if v is None or (isinstance(v, float) and math.isnan(v)) or v == "" else str(v)


def _flag(v) -> bool:
    if isinstance(v, str):
        return v.strip().lower() in ("true", "1", "yes")
    return bool(v) and not (isinstance(v, float) and math.isnan(v))


@dataclass(frozen=True)
class Arm:
    """One arm of a results table, as the grid defined it."""

    name: str
    method: str                      # the method it runs ('dense' for the baseline; its name if unknown)
    isometry: bool = False           # approximate isometry after pruning (SPP)
    supervision: str = SUPERVISED    # unsupervised: SNIP with uniform labels (SPP)
    meta_steps: int | None = None    # ProsPr's M
    start: str = "init"              # during-training runs: dense | sparse<percent>
    ablation: str | None = None      # shuffle | invert | reinit
    ablation_of: str | None = None   # the arm it ablates
    of_label: str | None = None      # that arm's label
    of_color: str | None = None      # that arm's colour
    suffix: str = ""                 # set by `catalog` when the columns cannot tell two arms apart

    @property
    def known(self) -> bool:
        return self.method in METHODS

    @property
    def is_ablation(self) -> bool:
        return self.ablation is not None

    @property
    def is_variant(self) -> bool:
        """An arm that varies its method beyond the grid's plain run: an ablation, isometry, uniform labels."""
        return self.is_ablation or self.isometry or self.supervision == UNSUPERVISED

    @property
    def label(self) -> str:
        if self.is_ablation:
            return f"{self.of_label or self.ablation_of} ({ABLATIONS[self.ablation].label})" + self.suffix
        if not self.known:
            return self.name
        out = METHODS[self.method].label
        if self.meta_steps is not None:
            out += f" (M={self.meta_steps})"
        if self.supervision == UNSUPERVISED:
            out += " (unsup.)"
        if self.isometry:
            out += " + AI"
        if self.start.startswith("sparse"):
            out += f" ({self.start[len('sparse'):]}% sparse start)"
        return out + self.suffix

    @property
    def style(self) -> dict:
        """Matplotlib line/marker keywords, fixed per arm and shared by every figure."""
        if self.is_ablation:
            ab = ABLATIONS[self.ablation]
            st = dict(color=self.of_color or CB[0], marker=ab.marker, linestyle=ab.linestyle, fillstyle="none")
        elif self.known:
            st = dict(METHODS[self.method].style, fillstyle="full")
            if self.supervision == UNSUPERVISED:
                st.update(marker="h", linestyle="-.", fillstyle="none")
            if self.isometry or self.start.startswith("sparse"):
                st.update(linestyle="--", fillstyle="none")
        else:
            st = fallback_style(self.name)
        if self.suffix:  # an arm the columns cannot tell from another: a marker and line of its own
            h = zlib.crc32(self.name.encode())
            st.update(marker=FALLBACK_MARKERS[h % len(FALLBACK_MARKERS)],
                      linestyle=FALLBACK_LINESTYLES[(h // 11) % len(FALLBACK_LINESTYLES)])
        return st

    def order_key(self) -> tuple:
        """Method-table order, then plain before its variants, then the name."""
        return (_METHOD_ORDER.get(self.method, len(_METHOD_ORDER)), self.is_ablation,
                ABLATION_NAMES.index(self.ablation) if self.is_ablation else -1, self.supervision == UNSUPERVISED,
                self.isometry, self.start != "init", self.meta_steps if self.meta_steps is not None else -1,
                self.name)


def fallback_style(name: str) -> dict:
    """The style of an arm nobody planned for: deterministic in its name (never Python's salted hash())."""
    h = zlib.crc32(str(name).encode())
    return dict(color=CB[h % len(CB)], marker=FALLBACK_MARKERS[(h // 7) % len(FALLBACK_MARKERS)],
                linestyle="-.", fillstyle="full")


def bare(name: str) -> Arm:
    """An arm known only by its name (no row in the table): a method of the method table, or a stranger."""
    return Arm(str(name), str(name))


def _arm_from_row(name: str, row) -> Arm:
    get = row.get
    meta = get("meta_steps")
    return Arm(name=name, method=_text(get("method"), name),
               isometry=_flag(get("isometry")),
               supervision=_text(get("supervision"), SUPERVISED),
               meta_steps=int(meta) if _text(meta) is not None else None,
               start=_text(get("start"), "init"),
               ablation=_text(get("ablation")), ablation_of=_text(get("ablation_of")))


def catalog(summary: pd.DataFrame) -> dict:
    """{arm name: Arm} from a summary table's columns, in display order."""
    if summary is None or summary.empty or "arm" not in summary.columns:
        return {}
    rows = summary.drop_duplicates(subset=["arm"]).set_index("arm", drop=False)
    arms = {str(name): _arm_from_row(str(name), r) for name, r in rows.iterrows()}
    for name, a in list(arms.items()):
        if a.is_ablation:
            of = arms.get(a.ablation_of) or bare(a.ablation_of)
            arms[name] = replace(a, method=of.method, of_label=of.label, of_color=of.style["color"])
    seen = {}
    for name in sorted(arms):
        seen.setdefault(arms[name].label, []).append(name)
    for label, names in seen.items():
        for name in names[1:]:  # the first keeps the plain label
            arms[name] = replace(arms[name], suffix=f" [{name}]")
    return dict(sorted(arms.items(), key=lambda kv: kv[1].order_key()))


def lookup(arms: dict, name: str) -> Arm:
    """The catalogued arm, or a bare one."""
    return arms.get(name) or bare(name)


def ablation_of(arms: dict, arm: str, ablation: str) -> str | None:
    """The name of the arm that is `arm`'s `ablation` (found by its columns, not its name)."""
    for a in arms.values():
        if a.ablation == ablation and a.ablation_of == arm:
            return a.name
    return None


def order(arms: dict, names) -> list:
    """`names` in display order."""
    return sorted(names, key=lambda n: lookup(arms, n).order_key())


__all__ = ["ABLATION_NAMES", "Arm", "CB", "FALLBACK_MARKERS", "ablation_of", "bare", "catalog",
           "fallback_style", "lookup", "order"]
