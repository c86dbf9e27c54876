"""ProsPr: Prospect Pruning with meta-gradients (Alizadeh et al., ICLR 2022; methods.md A.8, E.8).

    c = 1 (one mask entry per prunable weight);  fast_0 = {w * c for Conv2d/Linear weights} + {every
    other parameter (biases, BN gamma/beta)}
    for i = 1..M:  fast_i = SGD-momentum step(fast_{i-1}, dCE(f(x; fast_{i-1}), y)/dfast, lr, momentum)
                   (weight decay 0, dampening 0, momentum buffer = first gradient: PyTorch semantics)
    score = | dCE(f(x; fast_M), y) / dc |

implemented with `torch.func.functional_call` on a deep copy, on the model's device (the official code
moves "full" to the CPU for memory; here it runs wherever the model is, GPU included).

Modes: "full" keeps the graph of every inner gradient (create_graph=True: second-order terms);
"first_order" detaches them, which gives |w * dL_M/dfast_M| (the official chaining). With M = 0 the
score is |w * dCE/dw| at initialisation: SNIP with BN in train mode.

Options (paper = default, official code = option):
- `inner_steps` (3), `inner_lr` (0.1), `inner_momentum` (0): the code's CLI defaults (the paper's
  per-experiment values are not known, A.8).
- `mode` ("full") | "first_order" (the paper's approximation for ImageNet).
- `new_data_in_inner` (False): the paper and the CLI use one batch for every inner step and the meta
  loss; the library function `prospr.prune()` defaults to True (a new batch after every inner step, the
  meta loss on the last one).
- `bn_mode` ("train"): BN uses batch statistics; BN and bias parameters take inner SGD steps too.
- `momentum_init_detached` (False): the official `functional_sgd` initialises the momentum buffer with
  `grad.clone().detach()`, which cuts the second-order path of the first inner step when
  inner_momentum != 0; True reproduces that.
Keep rule: our exact round(N d) top-k (the code uses ceil, A.0); no layer may be fully pruned unless
allowed (the code's `keep_masks_health_check`).
"""
from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch.func import functional_call

from prunebench.models import prunable_parameters
from prunebench.pruners.common import select
from prunebench.pruners.snip import as_stream

MODES = ("full", "first_order")


def _grads(out, inputs, create_graph):
    gs = torch.autograd.grad(out, inputs, create_graph=create_graph, allow_unused=True)
    return [torch.zeros_like(t) if g is None else g for g, t in zip(gs, inputs)]


def scores(model, batches, *, inner_steps: int = 3, inner_lr: float = 0.1, inner_momentum: float = 0.0,
           mode: str = "full", new_data_in_inner: bool = False, bn_mode: str = "train",
           momentum_init_detached: bool = False) -> dict:
    """ProsPr meta-gradient saliency |dL_M/dc| per prunable weight (methods.md A.8)."""
    stream = as_stream(batches, model, "prospr")
    create = mode == "full"
    with torch.enable_grad():
        net = copy.deepcopy(model)
        net.train(bn_mode == "train")
        params = dict(net.named_parameters())
        for p in params.values():
            p.requires_grad_(True)
        wnames = list(prunable_parameters(net))
        c = {n: torch.ones_like(params[n], requires_grad=True) for n in wnames}
        names = list(params)
        fast = [params[n] * c[n] if n in c else params[n] for n in names]
        bufs = [None] * len(names)
        x, y = stream.next()
        for _ in range(inner_steps):
            loss = F.cross_entropy(functional_call(net, dict(zip(names, fast)), (x,)), y)
            grads = _grads(loss, fast, create)
            new = []
            for j, (p, g) in enumerate(zip(fast, grads)):
                if inner_momentum != 0:
                    if bufs[j] is None:
                        bufs[j] = g.detach().clone() if momentum_init_detached else g
                    else:
                        bufs[j] = bufs[j] * inner_momentum + g
                    g = bufs[j]
                new.append(p - inner_lr * g)
            fast = new
            if new_data_in_inner:
                x, y = stream.next()
        loss = F.cross_entropy(functional_call(net, dict(zip(names, fast)), (x,)), y)
        meta = _grads(loss, [c[n] for n in wnames], False)
        return {n: g.detach().abs() for n, g in zip(wnames, meta)}


def prune_mask(model, stream, density, scope, seed, **options):
    return select(scores(model, stream, **options), density, scope)
