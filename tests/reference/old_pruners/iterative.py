"""The two FORCE-paper methods (de Jorge et al., ICLR 2021; docs/methods.md A.2, A.3, E.2, E.4), on the
shared iterative driver (`base.IterativePruner`).

- `iter_snip` (A.2, FORCE repo `--prune_method 1`): s = |w_t * g(w_t)| with w_t = theta0 * m_{t-1} the
  current pruned weights; previously pruned weights are *not eligible* (instead of the code's "set them to
  min(s)", whose ties can overshoot the density, A.2). Masks are nested: once pruned, never revived. Pruned
  weights are exactly zero in the copy and no optimiser step is taken while scoring, so the code's gradient
  hooks (which only matter for weight updates) are not needed.
- `force` (A.3, `--prune_method 3`, the default): s = |theta0 * g(theta0 * m_{t-1})| with the *dense*
  initial weights; the mask is recomputed from scratch each step, so pruned weights can come back.

Every draw takes the next batch of `batches` (pass an infinite iterator for fresh batches, as the code's
`next(iter(train_loader))`).
"""
from __future__ import annotations

from dataclasses import dataclass

from reference.old_pruners.base import (IterativePruner, PrunerOptions, bn_mode_option, count_rule_option, integer,
                                     labels_option, loss_option, option, schedule)
from reference.old_pruners.scoring import as_stream, mean_gradient, scoring_copy

_LOSS_FACTS = dict(paper="ce", official="neg_logit", section="A.3 pitfall 1, E.1",
                   note="get_average_gradients uses F.nll_loss on raw logits = -logit of the target")
_STEPS_FACTS = dict(paper="not stated", official="60 (README; argparse default 10)", section="A.3",
                    note="60 is the README value for every data set; the paper's T is not known")


@dataclass(frozen=True)
class IterativeOptions(PrunerOptions):
    count_rule: str = count_rule_option("keeps the scores >= the int(N*d_t)-th largest at each step (ties kept); "
                                        "Iter SNIP gives pruned weights the minimum score first")
    steps: int = option(60, "T, the number of pruning steps", check=integer(1), **_STEPS_FACTS)
    schedule: str | list = option("exp", "densities: exp, linear, or a list of T densities", check=schedule)
    num_batches: int = option(1, "batches averaged per step (README: C-10 1, C-100 10, Tiny 20)", check=integer(1))
    loss: str = loss_option(**_LOSS_FACTS)
    labels: str = labels_option()
    bn_mode: str = bn_mode_option("train")


class _SnipSteps(IterativePruner):
    """Iter SNIP and FORCE: each step is a SNIP scoring of the current (pruned) scoring copy."""

    official_rule = "int_keep_ties"
    official_schedule = "force"

    def steps_and_schedule(self):
        return self.options.steps, self.options.schedule

    def prepare(self, model, batches, seed):
        stream = as_stream(batches, model, self.name)
        net, weights = scoring_copy(model, self.options.bn_mode)
        theta0 = {n: w.detach().clone() for n, w in weights.items()}
        return (net, weights, theta0, stream), weights, theta0

    def step_scores(self, state, mask):
        net, weights, theta0, stream = state
        o = self.options
        g = mean_gradient(net, weights, stream, o.num_batches, o.loss, o.labels)
        base = {n: w.detach() for n, w in weights.items()} if self.monotone else theta0
        return {n: (base[n] * g[n]).abs_() for n in g}


class IterSnip(_SnipSteps):
    name = "iter_snip"
    monotone = True

    @dataclass(frozen=True)
    class Options(IterativeOptions):
        method = "iter_snip"


class Force(_SnipSteps):
    name = "force"
    monotone = False

    @dataclass(frozen=True)
    class Options(IterativeOptions):
        method = "force"
