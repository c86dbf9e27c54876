"""ERK densities and masks (docs/methods.md A.9)."""

import pytest
import torch

from prunebench.library.models import build_model, prunable_parameters
from prunebench.library.pruners.topk import keep_count
from prunebench.library.pruners.during import make_during_training
from prunebench.library.pruners.erk import erk_densities, erk_mask
from during_toys import simulate, tiny


def test_erk_densities_capacity_and_exact_count():
    model = build_model("conv4", "cifar10")
    params = prunable_parameters(model)
    shapes = {n: tuple(w.shape) for n, w in params.items()}
    n = sum(w.numel() for w in params.values())
    dens = erk_densities(shapes, 0.5)
    assert all(0 < d <= 1 for d in dens.values())
    assert sum(dens[k] * params[k].numel() for k in dens) == pytest.approx(0.5 * n)
    assert max(dens.values()) == 1.0  # capacity check made the small layers dense
    by_size = sorted(dens, key=lambda k: params[k].numel())
    assert [dens[k] for k in by_size] == sorted(dens.values(), reverse=True)  # larger layers sparser
    assert dens[by_size[-1]] < 0.5
    mask = erk_mask(params, 0.5, torch.Generator().manual_seed(3))
    assert mask.kept == keep_count(n, 0.5)
    for r in mask.layer_report():
        assert abs(r["kept"] - dens[r["name"]] * r["numel"]) <= 1
    assert mask == erk_mask(params, 0.5, torch.Generator().manual_seed(3))
    assert mask != erk_mask(params, 0.5, torch.Generator().manual_seed(4))
    bern = erk_mask(params, 0.5, torch.Generator().manual_seed(3), sampling="bernoulli")
    assert abs(bern.density - 0.5) < 0.02


def test_erk_start_then_schedule():
    model = tiny()
    n = sum(w.numel() for w in prunable_parameters(model).values())
    p = make_during_training("fggp", 0.98, initial_density=0.5, init_type="erk", update_interval=5)
    start = p.start(model, 50, torch.Generator().manual_seed(0))
    assert start.kept == keep_count(n, 0.5)
    assert p.density_at(0) == 0.5
    start.apply(model)
    mask, _ = simulate(p, model, 50, start)
    assert mask.kept == keep_count(n, 0.02)
    assert not any(e.get("clamped") for e in p.history)
