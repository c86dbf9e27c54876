"""GraSP: Gradient Signal Preservation (Wang, Zhang, Grosse, ICLR 2020; methods.md A.4, E.5).

    S(theta) = -theta * (H g),   g = dL/dtheta, H = d2L/dtheta2 at initialisation, L = CE(f(x)/T, y)

and the weights with the **largest** S are removed. `scores` returns the importance theta * Hg = -S
(higher = kept), so the one `select` of all methods keeps the smallest S.

Hg is computed by double backprop, memory-aware as the official code (A.4):

    chunks c = 1..K of every batch (the batch sorted by label, then split into K contiguous parts)
    grad_w  = sum_c  dL_c/dtheta                                (no graph)
    Hg      = sum_c  d/dtheta < stopgrad(grad_w), dL_c/dtheta >  (one chunk's graph alive at a time)

so Hg = H_total grad_w for L_total = sum_c L_c, exactly the official accumulation.

Options (paper = default, official code = option):
- `temperature` (200): logits are divided by T before the cross-entropy (paper and code).
- `num_batches` (1): the code's `num_iters` (CIFAR-10: 1 batch of 10 images per class; CIFAR-100
  ResNet32: 2). Pass class-balanced batches to match `GraSP_fetch_data`.
- `chunks` (1): number of parts each batch is split into after sorting by label. The paper computes Hg
  on the batch; the official code splits it into two halves, which are class-disjoint because its
  batches are concatenated class by class (chunks=2). With BN in train mode the halves use their own
  batch statistics, so the two differ slightly; without BN they rank identically.
- `reinit_linear` (False): the official code re-initialises every nn.Linear of the scoring copy with
  xavier_normal before scoring (and the score then uses those re-drawn weights); drawn here from the
  pruning seed.
- `bn_mode` ("train"): the official copy is never put in eval mode, so BN uses batch statistics.
"""
from __future__ import annotations

import torch

from prunebench.pruners.common import select
from prunebench.pruners.scoring import loss_value, scoring_copy
from prunebench.pruners.snip import as_stream, reinit_copy


def _chunks(stream, num_batches, chunks):
    out = []
    for _ in range(num_batches):
        x, y = stream.next()
        if chunks > 1:
            order = torch.sort(y, stable=True).indices  # class by class, as GraSP_fetch_data
            x, y = x[order], y[order]
        if chunks > x.shape[0]:
            from prunebench.errors import PrunebenchError
            raise PrunebenchError(f"grasp: cannot split a batch of {x.shape[0]} into chunks={chunks}")
        out += list(zip(torch.tensor_split(x, chunks), torch.tensor_split(y, chunks)))
    return out


def hessian_gradient_product(model, batches, *, temperature: float = 200.0, num_batches: int = 1,
                             chunks: int = 1, reinit_linear: bool = False, bn_mode: str = "train",
                             seed: int = 0, return_weights: bool = False):
    """Hg per prunable weight (name -> tensor), computed on a deep copy as described in the module doc.

    With return_weights=True also returns the copy's weights (those used by the score, which differ from
    the model's when reinit_linear=True)."""
    stream = as_stream(batches, model, "grasp")
    with torch.enable_grad():
        net, tensors = scoring_copy(model, bn_mode)
        if reinit_linear:
            reinit_copy(net, "xavier_normal", seed, linear_only=True)
        names = list(tensors)
        ws = [tensors[n] for n in names]
        parts = _chunks(stream, num_batches, chunks)
        grad_w = None
        for x, y in parts:
            g = torch.autograd.grad(loss_value(net(x), y, "ce", "true", temperature), ws)
            grad_w = [gi.detach().clone() for gi in g] if grad_w is None else [a.add_(b) for a, b in zip(grad_w, g)]
        hg = None
        for x, y in parts:
            gf = torch.autograd.grad(loss_value(net(x), y, "ce", "true", temperature), ws, create_graph=True)
            z = sum((a * b).sum() for a, b in zip(grad_w, gf))
            h = torch.autograd.grad(z, ws)
            hg = [hi.detach().clone() for hi in h] if hg is None else [a.add_(b) for a, b in zip(hg, h)]
            del gf, z, h
        hg = dict(zip(names, hg))
        if return_weights:
            return hg, {n: t.detach() for n, t in tensors.items()}
        return hg


def scores(model, batches, *, temperature: float = 200.0, num_batches: int = 1, chunks: int = 1,
           reinit_linear: bool = False, bn_mode: str = "train", seed: int = 0) -> dict:
    """GraSP importance theta * Hg = -S (higher = kept; the largest S = -theta*Hg is removed, A.4)."""
    hg, w = hessian_gradient_product(model, batches, temperature=temperature, num_batches=num_batches,
                                     chunks=chunks, reinit_linear=reinit_linear, bn_mode=bn_mode, seed=seed,
                                     return_weights=True)
    return {n: w[n] * hg[n] for n in hg}


def prune_mask(model, stream, density, scope, seed, temperature=200.0, num_batches=1, chunks=1,
               reinit_linear=False, bn_mode="train"):
    s = scores(model, stream, temperature=temperature, num_batches=num_batches, chunks=chunks,
               reinit_linear=reinit_linear, bn_mode=bn_mode, seed=seed)
    return select(s, density, scope)
