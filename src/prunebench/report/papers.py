"""The paper table: the four replicated papers, in report order (imports nothing heavy).

Everything that needs a list of papers reads this table: the replication report's section order, the
figure registry's order, the README tables (`prunebench.pipeline.docs`) and the per-paper Snakemake targets
(`snakemake --cores all force`). A paper's claims live in `paper/reference/<key>.yaml`; its figures are the
figures whose `paper` is its key; `methods` are the methods (rows of `prunebench.library.methods`) its
comparisons draw, in the paper's order, which its figures and its accuracy table select arms by.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PaperInfo:
    key: str        # claims file paper/reference/<key>.yaml, figure names <key>_*, the Snakemake target
    title: str
    citation: str   # authors, venue, year (as the claims file states it)
    preset: str     # the preset that runs its grid
    methods: tuple  # the methods its comparisons draw (method-table names)


TABLE = (
    PaperInfo("force", "Progressive Skeletonization: Trimming more fat from a network at initialization",
              "de Jorge et al., ICLR 2021", "force", ("snip", "grasp", "random", "iter_snip", "force")),
    PaperInfo("spp", "A Signal Propagation Perspective for Pruning Neural Networks at Initialization",
              "Lee et al., ICLR 2020", "spp", ("snip", "random")),
    PaperInfo("prospr", "Prospect Pruning: Finding Trainable Weights at Initialization using Meta-Gradients",
              "Alizadeh et al., ICLR 2022", "prospr",
              ("prospr", "snip", "grasp", "synflow", "random", "iter_snip", "force")),
    PaperInfo("fggp", "FGGP: Fixed-Rate Gradient-First Gradual Pruning", "Zhu et al., SCIA 2025", "fggp",
              ("fggp", "gmp", "mfgn_annealed")),
)
PAPERS = {p.key: p for p in TABLE}
ORDER = tuple(PAPERS)


def order_key(key: str) -> tuple:
    """Sort key: table order, unknown papers last (alphabetically)."""
    return (ORDER.index(key) if key in PAPERS else len(ORDER), key)
