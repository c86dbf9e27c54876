"""Gradual magnitude pruning (Zhu & Gupta 2018) on FGGP's schedule (docs/methods.md A.9, E.4): at each event
remove the `wanted` active prunable weights with the smallest |w| (global ranking)."""
from __future__ import annotations

from dataclasses import dataclass

from reference.old_pruners.during import DuringOptions, DuringTraining, count, pick


class GMP(DuringTraining):
    name = "gmp"

    @dataclass(frozen=True)
    class Options(DuringOptions):
        method = "gmp"

    def _decide(self, step, params, pool, wanted, remain):
        mag = self.magnitudes(params)
        return pick({n: -mag[n] for n in pool}, pool, min(wanted, count(pool))), {}
