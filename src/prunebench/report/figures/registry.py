"""The figure registry: one `FigureSpec` per figure name (what it reproduces, the paper it belongs to, its inputs).

Figure modules register their functions with `@register(...)`; `prunebench.report.figures.FIGURES` is the
registry the pipeline validates presets against and the README tables are generated from."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable


@dataclass(frozen=True)
class FigureSpec:
    name: str
    function: Callable
    paper: str            # a key of prunebench.report.papers
    reproduces: str       # what it shows; the paper's figure number where known
    arms: tuple           # what it draws, in words (the README); a placeholder is written when nothing ran
    inputs: tuple = ("summary.csv",)
    claim_kinds: tuple = ()  # the report also shows it in every paper section with a claim of these kinds


FIGURES: dict[str, FigureSpec] = {}


def register(name, paper, reproduces, arms, inputs=("summary.csv",), claim_kinds=()):
    def deco(fn):
        FIGURES[name] = FigureSpec(name, fn, paper, reproduces, tuple(arms), tuple(inputs), tuple(claim_kinds))
        return fn
    return deco
