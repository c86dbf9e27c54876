"""Seeded weight initialization of Conv2d/Linear weights (docs/methods.md A.3 pitfall 6, A.7).

Schemes (biases are zeroed, BatchNorm is weight 1 / bias 0, for every scheme except `default`):
  kaiming_normal          N(0, 2/fan_in)              FORCE's training-script default (fan_in, ReLU gain)
  kaiming_normal_fan_out  N(0, 2/fan_out)             GraSP/FORCE model constructors
  xavier_normal           N(0, 2/(fan_in+fan_out))    mil-ad/snip scoring copy, SPP `normal_glorot`
  lecun_normal            N(0, 1/fan_in)              SPP `normal_lecun`
  orthogonal              (semi-)orthogonal matrix of the flattened weight (SPP matrices)
  delta_orthogonal        convs: orthogonal centre tap, zeros elsewhere (Xiao et al. 2018); linear: orthogonal
  spp_orthogonal          SPP's `orthogonal` (docs/methods.md A.7): matrices orthogonal; convolutions by the
                          block-orthogonal construction of `conv_orthogonal`, which needs cin <= cout and a
                          square kernel (any other conv layer is a one-line error naming it)
  default                 PyTorch's own constructors' init, re-drawn from the seed
"""
from __future__ import annotations

import math
import numbers
import re

import torch
import torch.nn as nn

from prunebench.library import limits
from prunebench.library.artifacts import load_tensors, read_metadata, save_tensors
from prunebench.library.datasets import DATASETS
from prunebench.library.errors import PrunebenchError, choose
from prunebench.library.models import build_model, prunable_modules

SCHEMES = ("kaiming_normal", "kaiming_normal_fan_out", "xavier_normal", "lecun_normal", "orthogonal",
           "delta_orthogonal", "spp_orthogonal", "default")


def _fans(w):
    receptive = w[0][0].numel() if w.dim() > 2 else 1
    return w.shape[1] * receptive, w.shape[0] * receptive


def _orthogonal(rows, cols, gen):
    a = torch.randn(max(rows, cols), min(rows, cols), generator=gen)
    q, r = torch.linalg.qr(a)
    q = q * torch.sign(torch.diagonal(r)).unsqueeze(0)  # sign correction: Haar-distributed
    return q if rows >= cols else q.T


def _symmetric_projection(n, gen):
    """A random symmetric projection P = C C^T (P = P^2 = P^T): an orthogonal matrix with a random subset of
    its columns zeroed."""
    q = _orthogonal(n, n, gen)
    c = q * (torch.randn(n, generator=gen) > 0).to(q.dtype).unsqueeze(0)
    return c @ c.T


def _block_orthogonal(p1, p2):
    """The 2 x 2 kernel [[P1 P2, P1 (I - P2)], [(I - P1) P2, (I - P1)(I - P2)]] of two symmetric projections
    (its taps sum to I and the convolution it defines is orthogonal)."""
    eye = torch.eye(p1.shape[0], dtype=p1.dtype)
    return {(0, 0): p1 @ p2, (0, 1): p1 @ (eye - p2), (1, 0): (eye - p1) @ p2, (1, 1): (eye - p1) @ (eye - p2)}


def _matrix_conv(m1, m2):
    """Full 2-D convolution of two kernels whose taps are n x n matrices (a k x k and an l x l dict)."""
    k, l = int(math.isqrt(len(m1))), int(math.isqrt(len(m2)))
    n = m1[0, 0].shape[0]
    out = {}
    for i in range(k + l - 1):
        for j in range(k + l - 1):
            acc = torch.zeros(n, n, dtype=m1[0, 0].dtype)
            for a in range(min(k, i + 1)):
                for b in range(min(k, j + 1)):
                    if i - a < l and j - b < l:
                        acc = acc + m1[a, b] @ m2[i - a, j - b]
            out[i, j] = acc
    return out


def conv_orthogonal(cout: int, cin: int, ksize: int, gen: torch.Generator) -> torch.Tensor:
    """A (cout, cin, ksize, ksize) kernel whose convolution is an isometry on periodic inputs (SPP's
    `conv_orthogonal`, the construction of Xiao et al. 2018 as in TF's ConvolutionOrthogonal2D): the product
    of ksize - 1 random 2 x 2 block-orthogonal kernels of size cout, then the first cin rows of a random
    orthogonal cout x cout matrix applied to every tap. Needs cin <= cout."""
    orth = _orthogonal(cout, cout, gen)[:cin, :]
    if ksize == 1:
        taps = {(0, 0): torch.eye(cout)}
    else:
        taps = _block_orthogonal(_symmetric_projection(cout, gen), _symmetric_projection(cout, gen))
        for _ in range(ksize - 2):
            taps = _matrix_conv(taps, _block_orthogonal(_symmetric_projection(cout, gen), _symmetric_projection(cout, gen)))
    w = torch.empty(cout, cin, ksize, ksize)
    for (a, b), t in taps.items():
        w[:, :, a, b] = (orth @ t).T  # tap (a, b) maps cin input channels to cout outputs
    return w


def _check_weight(shape, scheme: str, name: str) -> None:
    """A one-line error if `scheme` cannot initialise a weight of this shape."""
    if scheme == "spp_orthogonal" and len(shape) == 4:
        cout, cin, kh, kw = shape
        if cin > cout or kh != kw:
            raise PrunebenchError(f"init scheme 'spp_orthogonal' cannot initialise {name} (cout={cout}, cin={cin}, "
                                  f"kernel {kh}x{kw}): the block-orthogonal construction needs cin <= cout and a "
                                  "square kernel; use 'orthogonal' or 'delta_orthogonal' for this model")


def check_scheme(model: nn.Module, scheme: str) -> None:
    """Whether `scheme` can initialise every prunable layer of `model` (shapes only: works on a model built on
    the meta device, `meta_model`), before any work; a one-line error naming the layer otherwise."""
    choose("init scheme", scheme, SCHEMES)
    for name, m in prunable_modules(model).items():
        _check_weight(tuple(m.weight.shape), scheme, f"{name}.weight")


def meta_model(name: str, dataset: str) -> nn.Module:
    """Model `name` for `dataset` built on the meta device: its names checked and its shapes known, at no cost
    in memory or time (ResNet-50 included). For validation before any work."""
    depth = re.match(r"^mlp-(\d+)-", name) if isinstance(name, str) else None
    if depth and int(depth.group(1)) > limits.MAX_MLP_DEPTH:
        raise PrunebenchError(f"invalid model {name!r}: an MLP has at most {limits.MAX_MLP_DEPTH} layers")
    with torch.device("meta"):
        return build_model(name, dataset)


@torch.no_grad()
def init_weight(w: torch.Tensor, scheme: str, gen: torch.Generator, name: str = "weight") -> None:
    fan_in, fan_out = _fans(w)
    if scheme in ("kaiming_normal", "kaiming_normal_fan_out", "xavier_normal", "lecun_normal"):
        var = {"kaiming_normal": 2.0 / fan_in, "kaiming_normal_fan_out": 2.0 / fan_out,
               "xavier_normal": 2.0 / (fan_in + fan_out), "lecun_normal": 1.0 / fan_in}[scheme]
        w.copy_(torch.randn(w.shape, generator=gen) * math.sqrt(var))
    elif scheme == "spp_orthogonal" and w.dim() == 4:
        _check_weight(tuple(w.shape), scheme, name)
        cout, cin, kh, kw = w.shape
        w.copy_(conv_orthogonal(cout, cin, kh, gen))
    elif scheme in ("orthogonal", "spp_orthogonal") or (scheme == "delta_orthogonal" and w.dim() == 2):
        w.copy_(_orthogonal(w.shape[0], w[0].numel(), gen).reshape(w.shape))
    elif scheme == "delta_orthogonal":
        w.zero_()
        kh, kw = w.shape[2], w.shape[3]
        w[:, :, kh // 2, kw // 2] = _orthogonal(w.shape[0], w.shape[1], gen)
    else:
        raise AssertionError(scheme)


def initialize(model: nn.Module, scheme: str = "kaiming_normal", seed: int = 0) -> nn.Module:
    """Re-initialize `model` in place from `seed` alone (same seed, same bytes) and return it."""
    if not isinstance(model, nn.Module):
        raise PrunebenchError(f"initialize needs an nn.Module, got {type(model).__name__}")
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or not 0 <= seed < 2**63:
        raise PrunebenchError(f"invalid seed {seed!r}: must be an integer in [0, 2**63)")
    check_scheme(model, scheme)
    if any(p.is_meta for p in model.parameters()):
        raise PrunebenchError("cannot initialise a model on the meta device: it has no storage (build it on cpu "
                              "or cuda)")
    gen = torch.Generator().manual_seed(int(seed))
    if scheme == "default":
        state = torch.random.get_rng_state()
        try:
            torch.manual_seed(int(seed))
            for m in model.modules():
                if hasattr(m, "reset_parameters") and m is not model:
                    m.reset_parameters()
        finally:
            torch.random.set_rng_state(state)
        return model
    for m in model.modules():
        if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            m.reset_parameters()
    for name, m in prunable_modules(model).items():
        init_weight(m.weight, scheme, gen, name=f"{name}.weight")
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    return model


def save_init(path, module: nn.Module, **metadata) -> None:
    """Save `module`'s state dict as safetensors; `metadata` (model, dataset, scheme, seed) goes in the header."""
    save_tensors(path, dict(module.state_dict()), {"kind": "init", **metadata}, what="init file")


def load_init(path, model: nn.Module) -> dict:
    """Load a state dict saved by `save_init` into `model`; one-line error if it does not fit."""
    tensors, meta = load_tensors(path, what="init file")
    own = model.state_dict()
    missing = [k for k in own if k not in tensors]
    extra = [k for k in tensors if k not in own]
    bad = [k for k in own if k in tensors and tuple(tensors[k].shape) != tuple(own[k].shape)]
    if missing or extra or bad:
        what = (f"missing {missing[0]!r}" if missing else f"unexpected {extra[0]!r}" if extra
                else f"{bad[0]!r} has shape {tuple(tensors[bad[0]].shape)}, the model's is {tuple(own[bad[0]].shape)}")
        raise PrunebenchError(f"init file {str(path)!r} does not fit the model: {what}")
    model.load_state_dict(tensors)
    return meta


def init_metadata(path) -> dict:
    """The metadata of an initialization file (header only): model, dataset, scheme, seed. A file that was
    not written by `save_init` is a one-line error."""
    meta = read_metadata(path, what="init file")
    if meta.get("kind") != "init" and "format" in meta:
        raise PrunebenchError(f"init file {str(path)!r} is not an initialization (it is a {meta['format']!r} file)")
    if "model" not in meta or "dataset" not in meta:
        raise PrunebenchError(f"init file {str(path)!r} has no model metadata (not written by prunebench init)")
    if not isinstance(meta["model"], str) or not isinstance(meta["dataset"], str) or meta["dataset"] not in DATASETS:
        raise PrunebenchError(f"corrupt init file {str(path)!r}: its metadata names model {meta['model']!r} "
                              f"for dataset {meta['dataset']!r}")
    return meta


def model_from_init(path, device="cpu") -> tuple:
    """(model, metadata): the model named in an initialization file, with its weights, on `device`."""
    meta = init_metadata(path)
    model = build_model(meta["model"], meta["dataset"])
    load_init(path, model)
    return model.to(device), meta
