"""SNIP: single-shot connection sensitivity (Lee, Ajanthan, Torr, ICLR 2019; methods.md A.1, E.6).

    s_j = | dL(c * theta0) / dc_j |  at c = 1   =  | theta0_j * dL/dtheta_j |

keep the round(N * density) largest s_j (globally by default; the normalisation s / sum(s) of the paper
does not change the ranking and is skipped).

Choices (methods.md leaves room; the paper/official TF code is the default, other code is an option):

- `num_batches` (1): the gradient is averaged over that many batches (SNIP: one mini-batch, 100 on MNIST,
  128 on CIFAR). Averaging = SPP's |sum g| up to a constant (A.7), so SPP's epoch-long sum is
  `num_batches = ceil(n_train / 100)`.
- `bn_mode` ("eval"): BatchNorm in inference mode while scoring, as the official TF code (`is_train:
  False`); "train" uses batch statistics (FORCE/Iter SNIP code, ProsPr).
- `loss` ("ce"): cross-entropy on the logits; "neg_logit" = -logit of the target (what FORCE's code
  computes with nll_loss on raw logits, A.3 pitfall 1).
- `labels` ("true"): "uniform" replaces the labels by the uniform distribution (SPP unsupervised
  pruning, A.7 `fake_uniform`).
- `prune_bias` (False): the official TF code ranks biases together with weights (A.0, A.1, E.6). With
  True, biases of Conv2d/Linear layers enter the same ranking and the returned Mask covers weights *and*
  biases ("<layer>.bias" entries); sparsity then counts biases too, as in the TF code. Layer collapse
  is checked on the weight entries only.
- `reinit` (None): re-initialise the prunable weights of the *scoring copy* with an `prunebench.init`
  scheme drawn from the seed before scoring (mil-ad/snip, the PyTorch port, uses "xavier_normal";
  the TF code scores a separate draw `weights_bp`). The scores then use the re-initialised weights.

`scores` is the building block other modules (FGGP, signal propagation) import.
"""
from __future__ import annotations

import torch

from prunebench.pruners.common import select
from prunebench.pruners.scoring import BatchStream, mean_gradient, model_device, prunable_biases, scoring_copy
from prunebench.models import prunable_parameters


def as_stream(batches, model, what) -> BatchStream:
    if isinstance(batches, BatchStream):
        return batches
    return BatchStream(batches, model_device(model), what)


def reinit_copy(net, scheme, seed, linear_only=False):
    """Re-draw the Conv2d/Linear weights of a scoring copy in place with `scheme` from Generator(seed)."""
    from prunebench.init import init_weight
    from prunebench.models import prunable_modules

    gen = torch.Generator().manual_seed(int(seed))
    with torch.no_grad():
        for m in prunable_modules(net).values():
            if linear_only and not isinstance(m, torch.nn.Linear):
                continue
            w = torch.empty(m.weight.shape, dtype=torch.float32)
            init_weight(w, scheme, gen)
            m.weight.copy_(w.to(m.weight.device, m.weight.dtype))


def scores(model, batches, *, num_batches: int = 1, bn_mode: str = "eval", loss: str = "ce",
           labels: str = "true", prune_bias: bool = False, reinit=None, seed: int = 0) -> dict:
    """SNIP saliency |theta * mean_b dL_b/dtheta| per prunable tensor (methods.md A.1).

    Returns name -> tensor (on the model's device), weights in layer order then (prune_bias) biases.
    The caller's model is not modified: scoring runs on a deep copy.
    """
    names = list(prunable_parameters(model))
    if prune_bias:
        names += list(prunable_biases(model))
    stream = as_stream(batches, model, "snip")
    with torch.enable_grad():
        net, tensors = scoring_copy(model, bn_mode, names)
        if reinit is not None:
            reinit_copy(net, reinit, seed)
        g = mean_gradient(net, tensors, stream, num_batches, loss, labels)
        return {n: (tensors[n].detach() * g[n]).abs_() for n in names}


def prune_mask(model, stream, density, scope, seed, num_batches=1, bn_mode="eval", loss="ce",
               labels="true", prune_bias=False, reinit=None):
    s = scores(model, stream, num_batches=num_batches, bn_mode=bn_mode, loss=loss, labels=labels,
               prune_bias=prune_bias, reinit=reinit, seed=seed)
    return select(s, density, scope)
