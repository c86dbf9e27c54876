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

import math
import sys

import torch

from prunebench.library.data import eval_batches
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
    (A is symmetric), masked by C. Two matrix products per layer instead of autograd's three, and no graph.
    A tensor of `ws` may also hold a stack [g, cout, rest] of g layers of one shape (batched products;
    `eyes` then [g, cout, cout]): the objective sums them, the gradient is per layer."""
    total, grads = None, []
    for w, c, eye in zip(ws, cs, eyes):
        stacked = w.dim() == 3 and eye.dim() == 3
        b = w if stacked else w.reshape(w.shape[0], -1)
        a = (torch.bmm(b, b.transpose(1, 2)) if stacked else torch.mm(b, b.t())).sub_(eye)
        norm = torch.linalg.matrix_norm(a, ord="fro")
        # at an exact isometry (A = 0, norm 0) the gradient is A B = 0 times anything finite: no 0/0
        scale = 2.0 / norm.clamp_min(torch.finfo(norm.dtype).tiny)
        scale = scale.reshape(-1, 1, 1) if stacked else scale
        grads.append((torch.bmm(a, b) if stacked else torch.mm(a, b)).mul_(scale).reshape(w.shape).mul_(c))
        norm = norm.sum() if stacked else norm
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


def _grouped(ws, cs) -> list:
    """Layers of one flattened shape [cout, rest] stacked into one [g, cout, rest] tensor (with masks and
    identities), in first-appearance order: (layer indices, weights, masks, identities) per group."""
    shapes = {}
    for i, w in enumerate(ws):
        shapes.setdefault((w.shape[0], w[0].numel()), []).append(i)
    out = []
    for (rows, cols), idx in shapes.items():
        dev, dt = ws[idx[0]].device, ws[idx[0]].dtype
        if len(idx) == 1:
            i = idx[0]
            w = ws[i].reshape(rows, cols).clone()
            out.append((idx, w, cs[i].reshape(rows, cols), torch.eye(rows, device=dev, dtype=dt)))
        else:
            w = torch.stack([ws[i].reshape(rows, cols) for i in idx])
            c = torch.stack([cs[i].reshape(rows, cols) for i in idx])
            out.append((idx, w, c, torch.eye(rows, device=dev, dtype=dt).expand(len(idx), rows, rows)))
    return out


class _FlushDenormals:
    """CPU float arithmetic with subnormal numbers flushed to zero for the block (`torch.set_flush_denormal`),
    then back to PyTorch's default (off). Near the isometry optimum kept weights that should vanish decay into
    the subnormal range, where every x86 multiply slows down tenfold (10,000 steps of MLP-7: 57 s instead of 8);
    flushed, such a weight is 0 instead of a number below 1.2e-38."""

    def __enter__(self):
        self.on = torch.set_flush_denormal(True)
        return self

    def __exit__(self, *exc):
        if self.on:
            torch.set_flush_denormal(False)


def approximate_isometry(model, mask: Mask | None, steps: int = 10000, lr: float = 0.1, progress: bool = False,
                         record_every: int = 1) -> list:
    """Enforce approximate isometry on the kept weights, data-free (docs/methods.md A.7, E.7).

    Plain SGD (lr 0.1, 10,000 iterations by default, as in the official `approximate_isometry.py`) on
    sum_l ||(C_l . W_l)(C_l . W_l)^T - I||_F with respect to the Conv2d/Linear weights only; biases, BN and
    other parameters are untouched. The pruned entries are zeroed first and stay exactly zero (their
    gradient is zero through C, and the mask is re-applied after every step). `model` is modified in place;
    its autograd state (.grad, requires_grad) is not touched.

    Speed (10,000 steps of a 7-layer, 100-wide MLP in about 5 s on one CPU core): the gradient is in closed
    form (`objective_and_gradient`), layers of one shape are updated as one stack (batched matrix products),
    and CPU subnormals are flushed to zero while it runs (`_FlushDenormals`; a kept weight that would sink below
    1.2e-38 becomes exactly 0). Both change the last bits of the result compared with a layer-by-layer run
    with subnormals, not what is computed (tests/test_signal.py checks the gradient against autograd).

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
    history = []
    report = max(1, steps // 10)
    with _FlushDenormals(), torch.no_grad():
        groups = _grouped([p.detach() * c for p, c in zip(params, cs)], cs)
        ws, gcs, eyes = [g[1] for g in groups], [g[2] for g in groups], [g[3] for g in groups]
        for step in range(steps):
            loss, grads = objective_and_gradient(ws, gcs, eyes)
            value = float(loss)
            if step % record_every == 0:
                history.append(value)
            if progress and step % report == 0:
                print(f"approximate isometry: step {step}/{steps} objective {value:.6g}", file=sys.stderr)
            if not math.isfinite(value):
                raise PrunebenchError(f"approximate isometry diverged at step {step} (objective {value}); "
                                      f"lower lr (now {lr})")
            torch._foreach_sub_(ws, grads, alpha=lr)
        for idx, w, _, _ in groups:
            for k, i in enumerate(idx):
                params[i].copy_((w[k] if len(idx) > 1 else w).reshape(params[i].shape))
        final = float(_objective([p.detach() for p in params], cs))
    history.append(final)
    if progress:
        print(f"approximate isometry: done, objective {final:.6g}", file=sys.stderr)
    return history


def _device(model):
    for p in model.parameters():
        return p.device
    return torch.device("cpu")


def _jacobians_func(model, x):
    from torch.func import jacrev, vmap  # torch.func imports torch._dynamo (seconds): only when this method runs

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
    method: "func" (torch.func vmap(jacrev), one Jacobian per example), "loop" (one backward pass of the whole
    batch per output: row k of example b's Jacobian is d sum_b' out[b', k] / d x[b] when examples do not
    interact, as in eval mode), or "auto": loop, checked on the first example computed alone (it must agree to
    1e-5), else func. On the SPP check (MLP-7, 5,000 MNIST examples) both take about 0.7 s of CPU, but the
    first use of torch.func imports torch._dynamo (about 1.1 s of CPU per process), which the loop avoids; the
    two agree to float32 rounding (tests/test_signal.py).
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
        elif method == "func":
            jac = _jacobians_func(model, x)
        else:
            jac = _jacobians_loop(model, x)
            if x.shape[0] > 1 and not torch.allclose(_jacobians_loop(model, x[:1]), jac[:1], rtol=1e-5, atol=1e-7):
                jac = _jacobians_func(model, x)  # the examples interact: one Jacobian per example
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
    x, _ = next(iter(eval_batches(data, "train", examples)))
    return jacobian_singular_values(model, x[:examples].to(device or _device(model)))
