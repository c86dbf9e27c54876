"""GraSP: Gradient Signal Preservation (Wang, Zhang, Grosse, ICLR 2020; docs/methods.md A.4, E.5).

    S(theta) = -theta * (H g),   g = dL/dtheta, H = d2L/dtheta2 at initialisation, L = CE(f(x)/T, y)

and the weights with the **largest** S are removed. `scores` returns the importance theta * Hg = -S
(higher = kept), so the one `select` of all methods keeps the smallest S.

Hg is computed by double backprop, memory-aware as the official code (A.4):

    chunks c = 1..K of every batch (the batch sorted by label, then split into K contiguous parts)
    grad_w  = sum_c  dL_c/dtheta                                (no graph)
    Hg      = sum_c  d/dtheta < stopgrad(grad_w), dL_c/dtheta >  (one chunk's graph alive at a time)

so Hg = H_total grad_w for L_total = sum_c L_c, exactly the official accumulation. With `chunks` = 2 and
class-balanced batches concatenated class by class (the official sampling) the halves are class-disjoint;
with BN in train mode each half uses its own batch statistics.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from prunebench.library.errors import PrunebenchError
from prunebench.library.pruners.base import (Pruner, PrunerOptions, boolean, bn_mode_option, count_rule_option, integer,
                                     number, option)
from prunebench.library.pruners.scoring import as_stream, loss_value, reinit_copy, scoring_copy


class Grasp(Pruner):
    name = "grasp"
    official_rule = "grasp"

    @dataclass(frozen=True)
    class Options(PrunerOptions):
        method = "grasp"
        count_rule: str = count_rule_option("removes the scores above the int(N*s)-th largest: N - int(N*s) + 1 kept")
        temperature: float = option(200.0, "logits are divided by T before the cross-entropy",
                                    check=number(0.0, lo_open=True))
        num_batches: int = option(1, "batches (the code's num_iters), summed", check=integer(1))
        chunks: int = option(
            1, "parts each label-sorted batch is split into", check=integer(1),
            paper="1 (Hg on the batch)", official=2, section="A.4, E.5",
            note="the code splits each batch into two class-disjoint halves (memory only, per the maintainer); "
            "grad_w sums the halves")
        reinit_linear: bool = option(
            False, "re-draw every nn.Linear of the scoring copy with xavier_normal first", check=boolean,
            paper="not stated", official=True, section="A.4, E.5",
            note="the official scoring copy re-draws every nn.Linear with xavier_normal (the trained net keeps "
            "its own classifier)")
        bn_mode: str = bn_mode_option("train")

    def _parts(self, stream):
        o, out = self.options, []
        for _ in range(o.num_batches):
            x, y = stream.next()
            if o.chunks > 1:
                order = torch.sort(y, stable=True).indices  # class by class, as GraSP_fetch_data
                x, y = x[order], y[order]
            if o.chunks > x.shape[0]:
                raise PrunebenchError(f"grasp: cannot split a batch of {x.shape[0]} into chunks={o.chunks}")
            out += list(zip(torch.tensor_split(x, o.chunks), torch.tensor_split(y, o.chunks)))
        return out

    def hessian_gradient_product(self, model, batches, seed: int = 0) -> tuple:
        """(Hg, weights) per prunable weight, on a deep copy (see the module docstring); `weights` are the
        copy's (they differ from the model's with reinit_linear)."""
        o = self.options
        stream = as_stream(batches, model, "grasp")
        with torch.enable_grad():
            net, tensors = scoring_copy(model, o.bn_mode)
            if o.reinit_linear:
                reinit_copy(net, "xavier_normal", seed, linear_only=True)
            names = list(tensors)
            ws = [tensors[n] for n in names]
            parts = self._parts(stream)
            grad_w = None
            for x, y in parts:
                g = torch.autograd.grad(loss_value(net(x), y, "ce", "true", o.temperature), ws)
                grad_w = [gi.detach().clone() for gi in g] if grad_w is None else [a.add_(b) for a, b in zip(grad_w, g)]
            hg = None
            for x, y in parts:
                gf = torch.autograd.grad(loss_value(net(x), y, "ce", "true", o.temperature), ws, create_graph=True)
                z = sum((a * b).sum() for a, b in zip(grad_w, gf))
                h = torch.autograd.grad(z, ws)
                hg = [hi.detach().clone() for hi in h] if hg is None else [a.add_(b) for a, b in zip(hg, h)]
                del gf, z, h
            return dict(zip(names, hg)), {n: t.detach() for n, t in tensors.items()}

    def cost(self) -> dict:
        """Per batch: the gradient, then the gradient with its graph and the Hessian-vector product (about 3
        passes)."""
        return {"passes": 3 * self.options.num_batches, "per": "batch", "selections": 1}

    def scores(self, model, batches, seed: int = 0) -> dict:
        """GraSP importance theta * Hg = -S (higher = kept; the largest S = -theta*Hg is removed, A.4)."""
        hg, w = self.hessian_gradient_product(model, batches, seed)
        return {n: w[n] * hg[n] for n in hg}
