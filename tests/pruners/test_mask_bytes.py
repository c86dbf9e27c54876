"""Mask bytes stay what they were before the pruning-time work of issue 19 (the masks are pinned to the official
codes' behaviour, so a speed-up must not move a single bit).

`tests/reference/old_pruners` is a frozen copy of the pruners at commit 7ba29fc. Every at-init method, with its
exact and official keep rules, global and layer-wise scopes, the iterative methods at several step counts and
schedules, SynFlow in float64 and float32, and the sanity-check ablations, runs on the same model and batches
through both; the saved mask files must be byte-identical. The during-training pruners (whose events share the
selection code) are covered by tests/test_train_equivalence.py.
"""
from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

from prunebench.library.init import initialize
from prunebench.library.models import build_model
from prunebench.library.pruners import prune

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from reference.old_pruners import prune as old_prune  # noqa: E402

CASES = [  # (method, sparsity, options)
    ("random", 0.9, {}), ("random", 0.97, {"count_rule": "official"}),
    ("magnitude", 0.9, {}), ("magnitude", 0.9, {"count_rule": "official"}),
    ("snip", 0.9, {}), ("snip", 0.95, {"count_rule": "official", "prune_bias": True, "num_batches": 2}),
    ("snip", 0.9, {"labels": "uniform", "bn_mode": "train"}), ("snip", 0.9, {"reinit": "xavier_normal"}),
    ("grasp", 0.9, {}), ("grasp", 0.95, {"count_rule": "official", "chunks": 2, "reinit_linear": True}),
    ("synflow", 0.99, {"iterations": 7}), ("synflow", 0.99, {"iterations": 5, "double": False}),
    ("synflow", 0.95, {"iterations": 4, "count_rule": "official"}),
    ("iter_snip", 0.99, {"steps": 6}), ("iter_snip", 0.99, {"steps": 5, "count_rule": "official", "loss": "neg_logit"}),
    ("iter_snip", 0.95, {"steps": 3, "schedule": "linear", "num_batches": 2}),
    ("force", 0.99, {"steps": 6}), ("force", 0.99, {"steps": 5, "count_rule": "official", "loss": "neg_logit"}),
    ("force", 0.95, {"steps": 4, "schedule": "linear"}), ("force", 0.9, {"steps": 3, "invert": True}),
    ("prospr", 0.9, {"inner_steps": 2}), ("prospr", 0.95, {"inner_steps": 1, "count_rule": "official"}),
    ("snip", 0.9, {"shuffle": True}), ("iter_snip", 0.9, {"steps": 3, "invert": True}),
]


def batches(shape, n=4, bs=8, classes=10, seed=3):
    g = torch.Generator().manual_seed(seed)
    return [(torch.randn(bs, *shape, generator=g), torch.randint(0, classes, (bs,), generator=g)) for _ in range(n)]


@pytest.fixture(scope="module")
def nets():
    return {"conv4": (initialize(build_model("conv4", "cifar10"), "kaiming_normal", 0), batches((3, 32, 32))),
            "mlp": (initialize(build_model("mlp-4-tanh", "mnist"), "orthogonal", 1), batches((1, 28, 28)))}


@pytest.mark.parametrize("scope", ["global", "layerwise"])
@pytest.mark.parametrize("method, sparsity, options", CASES, ids=[f"{m}-{i}" for i, (m, _, _) in enumerate(CASES)])
def test_mask_bytes_unchanged(tmp_path, nets, method, sparsity, options, scope):
    for name, (model, b) in nets.items():
        kw = dict(scope=scope, seed=5, allow_collapse=True, **options)
        new = prune(model, method, sparsity, list(b), **kw)
        old = old_prune(model, method, sparsity, list(b), **kw)
        new.save(tmp_path / f"{name}-new.safetensors")
        old.save(tmp_path / f"{name}-old.safetensors")
        assert (tmp_path / f"{name}-new.safetensors").read_bytes() == (tmp_path / f"{name}-old.safetensors").read_bytes(), \
            f"{method} {options} on {name}: the mask changed"
