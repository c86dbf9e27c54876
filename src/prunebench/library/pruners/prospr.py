"""ProsPr: Prospect Pruning with meta-gradients (Alizadeh et al., ICLR 2022; docs/methods.md A.8, E.8).

    c = 1 (one mask entry per prunable weight);  fast_0 = {w * c for Conv2d/Linear weights} + {every
    other parameter (biases, BN gamma/beta)}
    for i = 1..M:  fast_i = SGD-momentum step(fast_{i-1}, dCE(f(x; fast_{i-1}), y)/dfast, lr, momentum)
                   (weight decay 0, dampening 0, momentum buffer = first gradient: PyTorch semantics)
    score = | dCE(f(x; fast_M), y) / dc |

implemented with `torch.func.functional_call` on a deep copy, on the model's device (the official code
moves "full" to the CPU for memory; here it runs wherever the model is, GPU included).

Modes: "full" keeps the graph of every inner gradient (second-order terms); "first_order" detaches them,
which gives |w * dL_M/dfast_M|. With M = 0 the score is |w * dCE/dw| at initialisation: SNIP with BN in
train mode. No layer may be fully pruned unless allowed (the code's `keep_masks_health_check`).
"""
from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch.func import functional_call

from prunebench.library.models import prunable_parameters
from prunebench.library.pruners.base import (Pruner, PrunerOptions, boolean, bn_mode_option, choice, count_rule_option,
                                     integer, number, option)
from prunebench.library.pruners.scoring import as_stream

MODES = ("full", "first_order")


def _grads(out, inputs, create_graph):
    gs = torch.autograd.grad(out, inputs, create_graph=create_graph, allow_unused=True)
    return [torch.zeros_like(t) if g is None else g for g, t in zip(gs, inputs)]


class ProsPr(Pruner):
    name = "prospr"
    official_rule = "ceil"

    @dataclass(frozen=True)
    class Options(PrunerOptions):
        method = "prospr"
        count_rule: str = count_rule_option("ceil(N*(1-s)) kept by top-k")
        inner_steps: int = option(3, "M, inner SGD steps (the CLI default)", check=integer(0))
        inner_lr: float = option(0.1, "inner SGD learning rate (the CLI default)", check=number(0.0))
        inner_momentum: float = option(0.0, "inner SGD momentum (the CLI default)", check=number(0.0))
        mode: str = option("full", "full (second-order) or first_order meta-gradients", check=choice(*MODES))
        new_data_in_inner: bool = option(
            False, "draw a new batch after every inner step", check=boolean,
            paper=False, official="False (CLI, the paper's runs); True (library prune())", section="A.8, E.8",
            note="the paper's runs used the CLI, which reuses one batch; the library function prospr.prune() "
            "draws a new batch per inner step")
        bn_mode: str = bn_mode_option("train")
        momentum_init_detached: bool = option(
            False, "start the momentum buffer from grad.detach()", check=boolean,
            paper="not stated", official=True, section="A.8",
            note="functional_sgd starts the momentum buffer from grad.detach(); matters only with "
            "inner_momentum != 0 and mode full")

    def cost(self) -> dict:
        """M inner steps and the final loss, each differentiated again for the meta-gradient (about 2 passes each)."""
        return {"passes": 2 * (self.options.inner_steps + 1), "per": "batch", "selections": 1}

    def scores(self, model, batches, seed: int = 0) -> dict:
        """ProsPr meta-gradient saliency |dL_M/dc| per prunable weight (docs/methods.md A.8)."""
        o = self.options
        stream = as_stream(batches, model, "prospr")
        create = o.mode == "full"
        with torch.enable_grad():
            net = copy.deepcopy(model)
            net.train(o.bn_mode == "train")
            params = dict(net.named_parameters())
            for p in params.values():
                p.requires_grad_(True)
            wnames = list(prunable_parameters(net))
            c = {n: torch.ones_like(params[n], requires_grad=True) for n in wnames}
            names = list(params)
            fast = [params[n] * c[n] if n in c else params[n] for n in names]
            bufs = [None] * len(names)
            x, y = stream.next()
            for _ in range(o.inner_steps):
                loss = F.cross_entropy(functional_call(net, dict(zip(names, fast)), (x,)), y)
                grads = _grads(loss, fast, create)
                new = []
                for j, (p, g) in enumerate(zip(fast, grads)):
                    if o.inner_momentum != 0:
                        if bufs[j] is None:
                            bufs[j] = g.detach().clone() if o.momentum_init_detached else g
                        else:
                            bufs[j] = bufs[j] * o.inner_momentum + g
                        g = bufs[j]
                    new.append(p - o.inner_lr * g)
                fast = new
                if o.new_data_in_inner:
                    x, y = stream.next()
            loss = F.cross_entropy(functional_call(net, dict(zip(names, fast)), (x,)), y)
            meta = _grads(loss, [c[n] for n in wnames], False)
            return {n: g.detach().abs() for n, g in zip(wnames, meta)}
