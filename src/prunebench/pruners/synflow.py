"""SynFlow: Iterative Synaptic Flow Pruning (Tanaka et al., NeurIPS 2020; methods.md A.5).

Data-free. On a deep copy of the model:
    every parameter and buffer (state_dict entry, incl. BN weights and running statistics) -> |.|
    model.eval()                                   (SynFlow's default; BN uses the |running stats|,
                                                    mean 0 / var 1 at initialisation)
    R = sum( f(1_{1 x input_shape}; |theta| ) )   (one all-ones input)
    score_j = | theta_j * dR/dtheta_j |
iterated `iterations` times (default 100, the paper's runs) with the exponential schedule
d_k = d^(k/K); after each step the copy's weights are |theta0| * m_k, so pruned weights score 0 and are
also made ineligible: they stay pruned (as in SynFlow, whose masked forward gives them score 0).
Signs need not be restored: only the copy is changed.

Choices:
- `input_shape`: the option if given, else the shape of the first batch when `batches` is a list, else
  an `input_shape` attribute of the model, else (C,) from the first nn.Linear when the first prunable
  layer is Linear (MLPs). A convolutional model without any of these is an error: its spatial size
  cannot be inferred from the layers.
- `double` (True): score in float64. R is a product of per-layer |W| sums and overflows float32 on deep
  nets (e.g. VGG19 at kaiming init is ~1e30); SynFlow's code uses float32 (its float64 line is
  commented out). Scores that are not finite raise an error.
- `schedule` ("exp"), `iterations` (100).
"""
from __future__ import annotations

import copy

import torch
import torch.nn as nn

from prunebench.errors import PrunebenchError
from prunebench.models import prunable_modules, prunable_parameters
from prunebench.pruners.iterative import iterate, schedule_densities


def infer_input_shape(model, stream=None, input_shape=None) -> tuple:
    """The input shape (no batch dimension) SynFlow feeds; see the module docstring for the order."""
    if input_shape is not None:
        return tuple(int(s) for s in input_shape)
    if stream is not None:
        shape = stream.peek_shape()
        if shape is None:
            shape = tuple(stream.next()[0].shape[1:])
        return shape
    shape = getattr(model, "input_shape", None)
    if shape is not None:
        return tuple(int(s) for s in shape)
    mods = list(prunable_modules(model).values())
    if mods and isinstance(mods[0], nn.Linear):
        return (mods[0].in_features,)
    raise PrunebenchError("synflow needs the input shape of this convolutional model: pass "
                          "input_shape=(C, H, W) or one batch")


def _linearized_copy(model, double):
    net = copy.deepcopy(model)
    net.eval()
    if double:
        net.double()
    with torch.no_grad():
        for t in net.state_dict().values():
            if t.dtype != torch.bool:
                t.abs_()
    weights = prunable_parameters(net)
    wanted = set(map(id, weights.values()))
    for p in net.parameters():
        p.requires_grad_(id(p) in wanted)
    return net, weights


def _score_fn(net, weights, shape):
    names = list(weights)
    ws = [weights[n] for n in names]
    p0 = ws[0]
    ones = torch.ones((1,) + tuple(shape), dtype=p0.dtype, device=p0.device)

    def score(mask=None):
        r = net(ones).sum()
        g = torch.autograd.grad(r, ws)
        out = {n: (w.detach() * gi).abs_() for n, w, gi in zip(names, ws, g)}
        if not all(bool(torch.isfinite(s).all()) for s in out.values()):
            raise PrunebenchError("synflow scores overflowed (not finite): use double=True or a shallower model")
        return out

    return score


def scores(model, *, input_shape=None, double: bool = True, batches=None) -> dict:
    """One SynFlow scoring |theta * dR/dtheta| at |theta0| (the first of the iterations)."""
    from prunebench.pruners.snip import as_stream

    stream = as_stream(batches, model, "synflow") if batches is not None else None
    shape = infer_input_shape(model, stream, input_shape)
    with torch.enable_grad():
        net, weights = _linearized_copy(model, double)
        return _score_fn(net, weights, shape)()


def prune_mask(model, stream, density, scope, seed, iterations=100, schedule="exp", input_shape=None,
               double=True, on_step=None):
    shape = infer_input_shape(model, stream, input_shape)
    densities = schedule_densities(density, iterations, schedule)
    with torch.enable_grad():
        net, weights = _linearized_copy(model, double)
        theta0 = {n: w.detach().clone() for n, w in weights.items()}
        return iterate(weights, theta0, densities, _score_fn(net, weights, shape), scope, monotone=True,
                       on_step=on_step)
