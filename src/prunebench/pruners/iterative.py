"""The iterative driver (Iter SNIP, FORCE, SynFlow) and the two FORCE-paper methods
(de Jorge et al., ICLR 2021; methods.md A.2, A.3, E.2, E.4).

Driver (`iterate`): for t = 1..T with densities d_1 > ... > d_T = d (exp: d^(t/T); linear:
1 - t(1-d)/T; or an explicit list), score the current network, select the top round(N d_t) weights
(exactly, `common.select`), then reload the scoring copy's weights **in place** as theta0 * m_t (no
deep copy per step: one copy for the whole run, so T steps cost about T single scorings).

- `iter_snip` (A.2, FORCE repo `--prune_method 1`): s = |w_t * g(w_t)| with w_t = theta0 * m_{t-1} the
  current pruned weights; previously pruned weights are *not eligible* (`select(eligible=m_{t-1})`,
  instead of the code's "set them to min(s)" hack, whose ties can overshoot the density, A.2). Masks are
  nested: once pruned, never revived. Pruned weights are exactly zero in the copy and no optimiser step
  is ever taken while scoring, so the code's gradient hooks (which only matter for weight updates) are
  not needed: the score of a pruned weight is exactly 0 and it is ineligible anyway.
- `force` (A.3, `--prune_method 3`, the default): s = |theta0 * g(theta0 * m_{t-1})| with the *dense*
  initial weights; the mask is recomputed from scratch each step, so pruned weights can come back.

Options (paper = default, official code = option; A.3 table):
- `steps` (60): T. The README value for every data set; the code's argparse default is 10 and the
  paper's per-experiment T is not known (A.3 [NF]).
- `schedule` ("exp"): "exp" | "linear" | a list of T densities (non-increasing, ending at the target).
- `num_batches` (1): batches averaged per step (README: CIFAR-10 1, CIFAR-100 10, Tiny-ImageNet 20,
  ImageNet 40); every draw takes the next batch of `batches` (pass an infinite iterator for fresh
  batches as the code's `next(iter(train_loader))`).
- `loss` ("ce"): the paper's cross-entropy; "neg_logit" = the official code's nll_loss on raw logits
  (-logit of the target; A.3 pitfall 1, E.1).
- `labels` ("true") | "uniform" (A.7), `bn_mode` ("train": the code scores in train mode).
"""
from __future__ import annotations

import torch

from prunebench.errors import PrunebenchError
from prunebench.pruners.common import exp_schedule, linear_schedule, select
from prunebench.pruners.scoring import mean_gradient, scoring_copy
from prunebench.pruners.snip import as_stream

SCHEDULES = ("exp", "linear")


def schedule_densities(density: float, steps: int, schedule="exp") -> list:
    """Densities d_1..d_T of an iterative run (methods.md A.3, E.4)."""
    if isinstance(schedule, str):
        if schedule == "exp":
            return exp_schedule(density, steps)
        if schedule == "linear":
            return linear_schedule(density, steps)
        raise PrunebenchError(f"unknown schedule {schedule!r}; choose one of: exp, linear, or a list of densities")
    ds = [float(d) for d in schedule]
    if len(ds) != steps:
        raise PrunebenchError(f"schedule lists {len(ds)} densities but steps={steps}")
    if any(not 0.0 < d <= 1.0 for d in ds) or any(b > a for a, b in zip(ds, ds[1:])):
        raise PrunebenchError(f"schedule {ds} must be non-increasing densities in (0, 1]")
    if abs(ds[-1] - density) > 1e-12:
        raise PrunebenchError(f"schedule must end at the target density {density}, not {ds[-1]}")
    return ds


def iterate(weights: dict, theta0: dict, densities: list, score_fn, scope: str = "global",
            monotone: bool = False, on_step=None):
    """Shared iterative driver.

    weights:  name -> parameter of the scoring copy (reloaded in place as theta0 * m_t after each step)
    theta0:   name -> initial weights (detached)
    score_fn: mask_or_None -> name -> scores of the current copy
    monotone: previously pruned weights are ineligible (Iter SNIP, SynFlow); else from scratch (FORCE)
    on_step:  optional callback (t, mask) after every step
    """
    mask = None
    for t, d in enumerate(densities, 1):
        s = score_fn(mask)
        mask = select(s, d, scope, eligible=mask.masks if (monotone and mask is not None) else None)
        with torch.no_grad():
            for n, w in weights.items():
                w.copy_(theta0[n] * mask[n].to(device=w.device, dtype=w.dtype))
        if on_step is not None:
            on_step(t, mask)
    return mask


def _run(model, batches, density, scope, force, steps=60, schedule="exp", num_batches=1, loss="ce",
         labels="true", bn_mode="train", on_step=None):
    stream = as_stream(batches, model, "force" if force else "iter_snip")
    densities = schedule_densities(density, steps, schedule)
    with torch.enable_grad():
        net, weights = scoring_copy(model, bn_mode)
        theta0 = {n: w.detach().clone() for n, w in weights.items()}

        def score_fn(mask):
            g = mean_gradient(net, weights, stream, num_batches, loss, labels)
            base = theta0 if force else {n: w.detach() for n, w in weights.items()}
            return {n: (base[n] * g[n]).abs_() for n in g}

        return iterate(weights, theta0, densities, score_fn, scope, monotone=not force, on_step=on_step)


def force_mask(model, batches, density, scope="global", **options):
    """FORCE mask (methods.md A.3); options as `prune(..., "force")` plus `on_step`."""
    return _run(model, batches, density, scope, True, **options)


def iter_snip_mask(model, batches, density, scope="global", **options):
    """Iterative SNIP mask (methods.md A.2); options as `prune(..., "iter_snip")` plus `on_step`."""
    return _run(model, batches, density, scope, False, **options)


def prune_force(model, stream, density, scope, seed, **options):
    return force_mask(model, stream, density, scope, **options)


def prune_iter_snip(model, stream, density, scope, seed, **options):
    return iter_snip_mask(model, stream, density, scope, **options)
