"""Annealed magnitude-first / gradient-next gradual pruning (docs/methods.md A.9; the FGGP code's
`--prune-criterion "|w|" --add-criterion "|grad|"`, the GraNet-like "annealing approach" FGGP compares to).

At each event: to_add = int((remain - wanted) * r(t)); mark the wanted + to_add active weights with the
smallest |w|, then un-mark the to_add of them with the largest |grad| (net: `wanted` removed). r(t) is the
code's CosineDecay, r(t) = eta_min + (prune_rate*0.01 - eta_min)(1 + cos(pi t/T_max))/2, stepped once per
training iteration with T_max the whole training length by default (anneal_period="training"), so r never
reaches eta_min within the pruning period; anneal_period="pruning" uses T_max = T_end. If wanted + to_add
exceeds the active prunable weights, to_add is reduced first, then wanted.
"""
from __future__ import annotations

from dataclasses import dataclass

from reference.old_pruners.base import choice, number, option
from reference.old_pruners.during import DuringOptions, DuringTraining, count, pick
from prunebench.library.schedules import cosine_decay

ANNEAL_PERIODS = ("training", "pruning")


class AnnealedMFGN(DuringTraining):
    name = "mfgn_annealed"

    @dataclass(frozen=True)
    class Options(DuringOptions):
        method = "mfgn_annealed"
        prune_rate: float = option(1.0, "r(0) = prune_rate * 0.01", check=number(0.0, 100.0))
        eta_min: float = option(0.005, "the floor of the cosine decay", check=number(0.0, 100.0))
        anneal_period: str = option("training", "T_max of the decay: the whole training, or T_end",
                                    check=choice(*ANNEAL_PERIODS))

    def add_rate(self, step: int) -> float:
        """r(t), the cosine-annealed fraction of the surviving weights re-admitted by |grad|."""
        o = self.options
        t_max = self._total() if o.anneal_period == "training" else self.end_step
        return cosine_decay(step, t_max, o.prune_rate * 0.01, o.eta_min)

    def _decide(self, step, params, pool, wanted, remain):
        names = list(pool)
        grads = self._abs_grads(params, names, step)
        rate = self.add_rate(step)
        to_add = max(0, int((remain - wanted) * rate))
        n_mark = min(wanted + to_add, count(pool))
        to_add = min(to_add, max(0, n_mark - wanted))
        mag = self.magnitudes(params)
        marked = pick({n: -mag[n] for n in names}, pool, n_mark)
        back = pick(grads, marked, to_add)
        removed = {n: marked[n] & ~back[n] for n in names}
        return removed, {"marked": n_mark, "re_added": to_add, "add_rate": rate}
