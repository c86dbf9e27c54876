"""Signal-propagation tools of Lee et al. 2020 (SPP; docs/methods.md A.7): approximate isometry and Jacobian
singular values.

- `approximate_isometry`: data-free; with the mask C fixed, plain SGD on the weights W minimises
  sum_l || (C_l . W_l)(C_l . W_l)^T - I ||_F  (Frobenius norm, not squared; weights only, no biases).
  Our weights are [cout, cin, kh, kw] (conv) or [out, in] (linear); each is flattened to
  B = [cout, cin*kh*kw] and B B^T (cout x cout) is used. This is the same matrix as the official TF
  A^T A with A the [kh*kw*cin, cout] reshape of the [kh, kw, cin, cout] kernel: both have entries
  sum over (cin, kh, kw) of W[i, ...] W[j, ...] (the summation order does not matter). For a linear
  layer TF's [in, out] kernel gives the same out x out matrix.
- `jacobian_singular_values`: per-example input-output Jacobian d logits / d input (input flattened),
  BN in inference mode, singular values of each, statistics over all of them (A.7 "JSV check").

Unsupervised pruning (A.7 "Unsupervised / transfer pruning") is SNIP with uniform labels:
`prunebench.prune(model, "snip", s, batches, labels="uniform")`.
"""
from __future__ import annotations

import sys

import torch

from prunebench.library.errors import PrunebenchError, choose
from prunebench.library.masks import Mask
from prunebench.library.models import prunable_parameters

JSV_METHODS = ("auto", "func", "loop")


def _layers(model, mask: Mask | None):
    """(names, weights, float masks on the weights' devices); layers the mask does not name are dense."""
    params = prunable_parameters(model)
    if mask is not None:
        mask.check_fits(model)
    names = list(params)
    cs = [(mask[n] if mask is not None and n in mask.masks else torch.ones(params[n].shape, dtype=torch.bool))
          .to(device=params[n].device, dtype=params[n].dtype) for n in names]
    return names, [params[n] for n in names], cs


def _objective(ws, cs):
    total = None
    for w, c in zip(ws, cs):
        b = (w * c).reshape(w.shape[0], -1)
        eye = torch.eye(b.shape[0], device=b.device, dtype=b.dtype)
        term = torch.linalg.matrix_norm(b @ b.T - eye, ord="fro")
        total = term if total is None else total + term
    return total


@torch.no_grad()
def objective_and_gradient(ws, cs, eyes) -> tuple:
    """The isometry objective of masked weights `ws` (zero where the masks `cs` are) and its gradient, in
    closed form: with B the weight flattened to [cout, rest] and A = B B^T - I, d||A||_F / dB = 2 A B / ||A||_F
    (A is symmetric), masked by C. Two matrix products per layer instead of autograd's three, and no graph:
    10,000 steps are the SPP protocol."""
    total, grads = None, []
    for w, c, eye in zip(ws, cs, eyes):
        b = w.reshape(w.shape[0], -1)
        a = torch.mm(b, b.t()).sub_(eye)
        norm = torch.linalg.matrix_norm(a, ord="fro")
        grads.append(torch.mm(a, b).mul_(2.0 / norm).reshape(w.shape).mul_(c))
        total = norm if total is None else total + norm
    return total, grads


@torch.no_grad()
def isometry_objective(model, mask: Mask | None = None) -> float:
    """sum_l ||(C_l . W_l)(C_l . W_l)^T - I||_F over all prunable layers (docs/methods.md A.7 "Approximate
    isometry"); layers without a mask entry count as dense."""
    _, ws, cs = _layers(model, mask)
    if not ws:
        return 0.0
    return float(_objective(ws, cs))


def approximate_isometry(model, mask: Mask | None, steps: int = 10000, lr: float = 0.1, progress: bool = False,
                         record_every: int = 1) -> list:
    """Enforce approximate isometry on the kept weights, data-free (docs/methods.md A.7, E.7).

    Plain SGD (lr 0.1, 10,000 iterations by default, as in the official `approximate_isometry.py`) on
    sum_l ||(C_l . W_l)(C_l . W_l)^T - I||_F with respect to the Conv2d/Linear weights only; biases, BN and
    other parameters are untouched. The pruned entries are zeroed first and stay exactly zero (their
    gradient is zero through C, and the mask is re-applied after every step). `model` is modified in place;
    its autograd state (.grad, requires_grad) is not touched.

    Returns the objective before steps 0, record_every, 2*record_every, ... and, last, after the final step
    (so `out[0]` is the initial and `out[-1]` the final objective).
    """
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
        raise PrunebenchError(f"invalid steps {steps!r}: must be an integer >= 0")
    if not isinstance(lr, (int, float)) or isinstance(lr, bool) or not lr > 0:
        raise PrunebenchError(f"invalid lr {lr!r}: must be a positive number")
    if isinstance(record_every, bool) or not isinstance(record_every, int) or record_every < 1:
        raise PrunebenchError(f"invalid record_every {record_every!r}: must be an integer >= 1")
    _, params, cs = _layers(model, mask)
    if not params:
        return [0.0]
    with torch.no_grad():
        ws = [(p.detach() * c).clone() for p, c in zip(params, cs)]
        eyes = [torch.eye(w.shape[0], device=w.device, dtype=w.dtype) for w in ws]
    history = []
    report = max(1, steps // 10)
    for step in range(steps):
        loss, grads = objective_and_gradient(ws, cs, eyes)
        if step % record_every == 0:
            history.append(float(loss))
        if progress and step % report == 0:
            print(f"approximate isometry: step {step}/{steps} objective {float(loss):.6g}", file=sys.stderr)
        if not torch.isfinite(loss):
            raise PrunebenchError(f"approximate isometry diverged at step {step} (objective {float(loss)}); "
                                  f"lower lr (now {lr})")
        with torch.no_grad():
            for w, g in zip(ws, grads):
                w.sub_(g, alpha=lr)
    with torch.no_grad():
        for p, w in zip(params, ws):
            p.copy_(w)
        final = float(_objective(ws, cs))
    history.append(final)
    if progress:
        print(f"approximate isometry: done, objective {final:.6g}", file=sys.stderr)
    return history


def _device(model):
    for p in model.parameters():
        return p.device
    return torch.device("cpu")


def _jacobians_func(model, x):
    from torch.func import jacrev, vmap

    def f(xi):
        return model(xi.unsqueeze(0)).squeeze(0)

    j = vmap(jacrev(f))(x)
    return j.reshape(x.shape[0], j.shape[1], -1)


def _jacobians_loop(model, x):
    # Examples are independent in eval mode, so d(sum_b out[b, k]) / d x[b] is row k of example b's Jacobian.
    x = x.detach().clone().requires_grad_(True)
    with torch.enable_grad():
        out = model(x)
        if out.dim() != 2:
            raise PrunebenchError(f"model output has shape {tuple(out.shape)}; expected [batch, classes]")
        rows = []
        for k in range(out.shape[1]):
            (g,) = torch.autograd.grad(out[:, k].sum(), x, retain_graph=k + 1 < out.shape[1])
            rows.append(g.reshape(x.shape[0], -1))
    return torch.stack(rows, dim=1)


def jacobian_singular_values(model, inputs: torch.Tensor, method: str = "auto", return_values: bool = False) -> dict:
    """Singular values of the per-example input-output Jacobian d logits / d input (docs/methods.md A.7 "JSV
    check").

    inputs: a batch [B, ...] (the official code uses batches of 10 training examples). The model is put in
    eval mode (BN in inference mode) and every module's train/eval flag is restored afterwards; parameters,
    buffers and .grad are not changed. Each Jacobian is [classes, prod(input dims)]; its singular values are
    computed in float64. Returns {"mean", "std", "min", "max", "n"} over all singular values of all examples
    (std is the population std, ddof=0, as numpy's default), plus "values" (a 1-D tensor) if return_values.
    method: "func" (torch.func vmap(jacrev)), "loop" (one backward pass per output), or "auto" (func, falling
    back to loop if torch.func fails on the model).
    """
    choose("JSV method", method, JSV_METHODS)
    if not isinstance(inputs, torch.Tensor) or inputs.dim() < 2 or inputs.shape[0] < 1:
        raise PrunebenchError("jacobian_singular_values needs an input batch tensor of shape [batch, ...]")
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        x = inputs.detach().to(_device(model))
        if method == "loop":
            jac = _jacobians_loop(model, x)
        else:
            try:
                jac = _jacobians_func(model, x)
            except Exception:
                if method == "func":
                    raise
                jac = _jacobians_loop(model, x)
    finally:
        for m, mode in modes:
            m.training = mode
    sv = torch.linalg.svdvals(jac.detach().double()).reshape(-1).cpu()
    out = {"mean": float(sv.mean()), "std": float(sv.std(correction=0)), "min": float(sv.min()),
           "max": float(sv.max()), "n": int(sv.numel())}
    if return_values:
        out["values"] = sv
    return out


def data_jsv(model, data, examples: int, device=None) -> dict:
    """Jacobian singular-value statistics of `model` on the first `examples` training examples of a prepared
    data set (SPP's check.py measures on the training split, docs/methods.md A.7)."""
    from prunebench.library.data import eval_batches

    x, _ = next(iter(eval_batches(data, "train", examples)))
    return jacobian_singular_values(model, x[:examples].to(device or _device(model)))
