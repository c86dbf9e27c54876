"""Toy models and a fake training loop for the during-training pruners (docs/methods.md A.9)."""
import torch
import torch.nn as nn

from prunebench.library.models import build_model, prunable_parameters
from prunebench.library.pruners.during import make_during_training


class Row(nn.Module):
    """One Linear layer per given width, no bias: hand-made weights and gradients."""

    def __init__(self, *sizes):
        super().__init__()
        self.layers = nn.ModuleList(nn.Linear(n, 1, bias=False) for n in sizes)


def set_row(model, weights, grads):
    for layer, w, g in zip(model.layers, weights, grads):
        with torch.no_grad():
            layer.weight.copy_(torch.tensor([w], dtype=torch.float32))
        layer.weight.grad = torch.tensor([g], dtype=torch.float32)


def one_event(method, sparsity, model, mask=None, **options):
    """A run of 1 step whose single event (at T_end = 1) lands on the target."""
    p = make_during_training(method, sparsity, update_interval=1, end_ratio=1.0, **options)
    p.start(model, 1, torch.Generator().manual_seed(0))
    return p, p.after_step(1, model, mask)


def removed(mask, name="layers.0.weight"):
    return sorted(torch.nonzero(~mask[name].reshape(-1)).reshape(-1).tolist())


def tiny():
    return build_model("mlp-3-relu", "mnist")  # 78400 + 10000 + 1000 weights


def fake_step(model, mask, step):
    """Post-step weights and this step's gradients, reproducible from the step number alone."""
    gen = torch.Generator().manual_seed(1000 + step)
    for n, p in prunable_parameters(model).items():
        keep = mask[n].float() if mask is not None else 1.0
        with torch.no_grad():
            p.copy_(torch.randn(p.shape, generator=gen) * keep)
        p.grad = torch.randn(p.shape, generator=gen) * keep


def simulate(pruner, model, total, mask, first=1, last=None):
    log = []
    for step in range(first, (last or total) + 1):
        fake_step(model, mask, step)
        new = pruner.after_step(step, model, mask)
        if new is not None:
            if mask is not None:
                for n in new:
                    assert not bool((new[n] & ~mask[n]).any()), "a pruned weight came back"
            new.apply(model)
            mask = new
        log.append((step, mask.kept if mask is not None else None, new is not None))
    return mask, log
