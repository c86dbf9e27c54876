"""FGGP, fixed-rate gradient-first magnitude-next gradual pruning (Zhu, Bezek, Goksel, SCIA 2025;
docs/methods.md A.9; the official code's `--prune-criterion "|grad|" --add-criterion "|w|"`).

At each pruning event, with `remain` = active units and `wanted` = the net number to remove to reach d(t):
  1. candidates: the C = int(select_ratio * remain) active (prunable) weights with the smallest |grad| of
     this step's minibatch (global ranking over all prunable layers);
  2. remove the `wanted` candidates with the smallest |w| (post-step weights by default; the official code
     ranks the weights of this step's forward pass, before the update: `magnitude="pre_step"`).
Equivalently the code marks the C candidates and un-marks the C - wanted of them with the largest |w|.
Edge cases: C is capped at the number of active prunable weights; if wanted > C (e.g. a dense start with
initial_density 0.5) the removal is clamped to C and the event is logged with "clamped": later events catch
up because `wanted` is always computed from the current count. The official code fails there.
"""
from __future__ import annotations

from dataclasses import dataclass

from reference.old_pruners.base import number, option
from reference.old_pruners.during import DuringOptions, DuringTraining, count, pick


class FGGP(DuringTraining):
    name = "fggp"

    @dataclass(frozen=True)
    class Options(DuringOptions):
        method = "fggp"
        select_ratio: float = option(0.5, "the fixed fraction of active weights that become candidates",
                                     check=number(0.0, 1.0, lo_open=True))

    def _decide(self, step, params, pool, wanted, remain):
        names = list(pool)
        grads = self._abs_grads(params, names, step)
        n_cand = min(int(self.options.select_ratio * remain), count(pool))
        cand = pick({n: -grads[n] for n in names}, pool, n_cand)
        mag = self.magnitudes(params)
        removed = pick({n: -mag[n] for n in names}, cand, min(wanted, n_cand))
        return removed, {"candidates": n_cand}
