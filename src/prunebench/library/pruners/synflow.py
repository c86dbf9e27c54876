"""SynFlow: Iterative Synaptic Flow Pruning (Tanaka et al., NeurIPS 2020; docs/methods.md A.5).

Data-free. On a deep copy of the model:
    every parameter and buffer (state_dict entry, incl. BN weights and running statistics) -> |.|
    model.eval()                                   (SynFlow's default; BN uses the |running stats|)
    R = sum( f(1_{1 x input_shape}; |theta| ) )   (one all-ones input)
    score_j = | theta_j * dR/dtheta_j |
iterated `iterations` times (default 100, the paper's runs) with the exponential schedule d_k = d^(k/K) on
the shared iterative driver; after each step the copy's weights are |theta0| * m_k, so pruned weights score
0 and are also made ineligible: they stay pruned. Signs need not be restored: only the copy is changed.

The input shape is the option if given, else the shape of the first batch when `batches` is a list, else an
`input_shape` attribute of the model, else (C,) from the first nn.Linear when the first prunable layer is
Linear (MLPs). A convolutional model without any of these is an error.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
import torch.nn as nn

from prunebench.library.errors import PrunebenchError
from prunebench.library.models import prunable_modules, prunable_parameters
from prunebench.library.pruners.base import (IterativePruner, PrunerOptions, boolean, count_rule_option, integer, option,
                                     schedule, shape)
from prunebench.library.pruners.scoring import as_stream


def infer_input_shape(model, stream=None, input_shape=None) -> tuple:
    """The input shape (no batch dimension) SynFlow feeds; see the module docstring for the order."""
    if input_shape is not None:
        return tuple(int(s) for s in input_shape)
    if stream is not None:
        s = stream.peek_shape()
        return s if s is not None else tuple(stream.next()[0].shape[1:])
    s = getattr(model, "input_shape", None)
    if s is not None:
        return tuple(int(v) for v in s)
    mods = list(prunable_modules(model).values())
    if mods and isinstance(mods[0], nn.Linear):
        return (mods[0].in_features,)
    raise PrunebenchError("synflow needs the input shape of this convolutional model: pass "
                          "input_shape=(C, H, W) or one batch")


class SynFlow(IterativePruner):
    name = "synflow"
    needs_data = False
    reads_batches = True  # only for the input shape
    monotone = True
    official_rule = "int_prune_ties"

    @dataclass(frozen=True)
    class Options(PrunerOptions):
        method = "synflow"
        count_rule: str = count_rule_option("prunes the int((1-d)*N) lowest at each step, ties at the threshold pruned")
        iterations: int = option(100, "pruning iterations (the paper's runs: 100)", check=integer(1))
        schedule: str | list = option("exp", "densities: exp, linear, or a list", check=schedule)
        input_shape: list | None = option(None, "input shape (C, H, W) or (D,) of the all-ones input", check=shape)
        double: bool = option(
            True, "score in float64", check=boolean, paper="not stated", official=False, section="A.5",
            note="float64 avoids overflow of R on deep nets; the official code scores in float32")

    def steps_and_schedule(self):
        return self.options.iterations, self.options.schedule

    def cost(self) -> dict:
        """One forward + backward pass of a single all-ones input per iteration."""
        return {"passes": self.options.iterations, "per": "image", "selections": self.options.iterations}

    def prepare(self, model, batches, seed):
        stream = as_stream(batches, model, "synflow") if batches is not None else None
        in_shape = infer_input_shape(model, stream, self.options.input_shape)
        net = copy.deepcopy(model)
        net.eval()
        if self.options.double:
            net.double()
        with torch.no_grad():
            for t in net.state_dict().values():
                if t.dtype != torch.bool:
                    t.abs_()
        weights = prunable_parameters(net)
        wanted = set(map(id, weights.values()))
        for p in net.parameters():
            p.requires_grad_(id(p) in wanted)
        p0 = next(iter(weights.values()))
        ones = torch.ones((1,) + tuple(in_shape), dtype=p0.dtype, device=p0.device)
        theta0 = {n: w.detach().clone() for n, w in weights.items()}
        return (net, weights, ones), weights, theta0

    def step_scores(self, state, mask):
        net, weights, ones = state
        names = list(weights)
        ws = [weights[n] for n in names]
        g = torch.autograd.grad(net(ones).sum(), ws)
        out = {n: (w.detach() * gi).abs_() for n, w, gi in zip(names, ws, g)}
        # scores are >= 0, +inf or NaN, and amax propagates NaN: finite maxima <=> finite scores (one read of
        # the scores and one synchronisation per iteration, instead of a bool tensor and a sync per layer)
        if not bool(torch.isfinite(torch.stack([s.amax() for s in out.values()])).all()):
            raise PrunebenchError("synflow scores overflowed (not finite): use double=True or a shallower model")
        return out
