"""SNIP: single-shot connection sensitivity (Lee, Ajanthan, Torr, ICLR 2019; docs/methods.md A.1, E.6).

    s_j = | dL(c * theta0) / dc_j |  at c = 1   =  | theta0_j * dL/dtheta_j |

keep the round(N * density) largest s_j (globally by default; the normalisation s / sum(s) of the paper
does not change the ranking and is skipped). Options (the field metadata says where paper and code differ):

- `num_batches` (1): the gradient is averaged over that many batches. Averaging = SPP's |sum g| up to a
  constant (A.7), so SPP's epoch-long sum is `num_batches = ceil(n_train / 100)` with batches of 100.
- `bn_mode` ("eval"), `loss` ("ce"), `labels` ("true" | "uniform": SPP's unsupervised pruning, A.7).
- `prune_bias` (False): biases of Conv2d/Linear layers enter the same ranking and the Mask covers weights
  *and* biases ("<layer>.bias" entries); sparsity then counts biases too, as in the TF code. Layer collapse
  is checked on the weight entries only.
- `reinit` (None): re-initialise the prunable weights of the *scoring copy* with an init scheme drawn from
  the seed before scoring; the scores then use the re-initialised weights.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from prunebench.library.models import prunable_parameters
from reference.old_pruners.base import (Pruner, PrunerOptions, boolean, bn_mode_option, count_rule_option, init_scheme,
                                     integer, labels_option, loss_option, option)
from reference.old_pruners.scoring import as_stream, mean_gradient, prunable_biases, reinit_copy, scoring_copy


class Snip(Pruner):
    name = "snip"
    official_rule = "round"

    @dataclass(frozen=True)
    class Options(PrunerOptions):
        method = "snip"
        count_rule: str = count_rule_option("round(N*(1-s)) kept (Python round), top-k (SNIP/SPP TF code)")
        num_batches: int = option(1, "batches whose gradients are averaged", check=integer(1))
        bn_mode: str = bn_mode_option(
            "eval", paper="eval (TF code: is_train False)", official="eval (TF); train (PyTorch ports)",
            section="A.1, E.6", note="the TF code scores in inference mode; the PyTorch ports FORCE, GraSP and "
            "ProsPr used (FORCE's iterative pruner with one step, ProsPr with M = 0) score in train mode")
        loss: str = loss_option()
        labels: str = labels_option()
        prune_bias: bool = option(
            False, "rank Conv2d/Linear biases together with the weights", check=boolean,
            paper="weights only", official=True, section="A.0, A.1, E.6",
            note="the official TF code (and SPP's) ranks weights and biases together; the PyTorch ports prune "
            "weights only")
        reinit: str | None = option(
            None, "re-initialise the scoring copy with this init scheme first", check=init_scheme,
            paper="none", official="xavier_normal (mil-ad/snip)", section="A.1",
            note="mil-ad/snip, the PyTorch port, scores a xavier_normal re-initialised copy; the TF code scores a "
            "separate draw of the same initializer (weights_bp)")

    def scores(self, model, batches, seed: int = 0) -> dict:
        """SNIP saliency |theta * mean_b dL_b/dtheta| per prunable tensor (docs/methods.md A.1): name -> tensor
        on the model's device, weights in layer order then (prune_bias) biases. Scores a deep copy."""
        o = self.options
        names = list(prunable_parameters(model))
        if o.prune_bias:
            names += list(prunable_biases(model))
        stream = as_stream(batches, model, "snip")
        with torch.enable_grad():
            net, tensors = scoring_copy(model, o.bn_mode, names)
            if o.reinit is not None:
                reinit_copy(net, o.reinit, seed)
            g = mean_gradient(net, tensors, stream, o.num_batches, o.loss, o.labels)
            return {n: (tensors[n].detach() * g[n]).abs_() for n in names}
