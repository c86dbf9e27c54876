"""Pruning during training: FGGP, GMP, annealed MFGN, schedules and ERK (methods.md A.9, E.4, E.9)."""
import json
import math

import pytest
import torch
import torch.nn as nn

from prunebench.errors import PrunebenchError
from prunebench.masks import Mask
from prunebench.models import build_model, prunable_modules, prunable_parameters
from prunebench.pruners.common import keep_count
from prunebench.pruners.gradual import (DURING_TRAINING_METHODS, PAPER_VS_CODE_OPTIONS, cosine_decay,
                                        erk_densities, erk_mask, event_steps, make_during_training,
                                        schedule_density)


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


# ---------------------------------------------------------------------------------------------------
# Selection rules on hand-made tensors


def test_fggp_gradient_first_then_magnitude_by_hand():
    m = Row(8)
    w = [0.01, 0.02, 1.0, 2.0, 3.0, 4.0, -0.5, 0.6]
    g = [9.0, 9.0, -0.1, 0.2, 0.3, 0.5, 0.4, 8.0]
    set_row(m, [w], [g])
    # 8 weights, remove 2. Candidates: the 4 smallest |g| = {2, 3, 4, 6}; among them the 2 smallest |w| = {6, 2}.
    # Pure magnitude would remove {0, 1}; pure gradient {2, 3}.
    p, mask = one_event("fggp", 0.25, m)
    assert removed(mask) == [2, 6]
    assert p.history[-1]["candidates"] == 4 and p.history[-1]["removed"] == 2
    # Magnitude pruning on the same tensors takes the smallest |w|.
    _, mask_gmp = one_event("gmp", 0.25, m)
    assert removed(mask_gmp) == [0, 1]
    # select_ratio 0.25: only 2 candidates ({2, 3}), both go.
    _, mask_q = one_event("fggp", 0.25, m, select_ratio=0.25)
    assert removed(mask_q) == [2, 3]


def test_fggp_ranks_globally_over_layers_and_skips_pruned():
    m = Row(4, 4)
    # layer 0 has the small gradients, layer 1 the small weights; weight 0 of layer 0 is already pruned.
    set_row(m, [[0.0, 5.0, 6.0, 7.0], [0.1, 0.2, 0.3, 0.4]], [[0.0, 0.1, 0.2, 0.3], [1.0, 2.0, 3.0, 4.0]])
    start = Mask({"layers.0.weight": torch.tensor([[False, True, True, True]]),
                  "layers.1.weight": torch.ones(1, 4, dtype=torch.bool)})
    # 8 weights, 7 active, target density 5/8 -> remove 2. Candidates int(0.5 * 7) = 3 smallest |g| among
    # active: layer 0 {1, 2, 3}; remove the 2 smallest |w| of those: {1, 2}. (GMP would take layer 1's.)
    p, mask = one_event("fggp", 3 / 8, m, start)
    assert removed(mask, "layers.0.weight") == [0, 1, 2]
    assert removed(mask, "layers.1.weight") == []
    _, mask_gmp = one_event("gmp", 3 / 8, m, start)
    assert removed(mask_gmp, "layers.0.weight") == [0] and removed(mask_gmp, "layers.1.weight") == [0, 1]


def test_fggp_clamps_when_target_exceeds_candidates():
    m = Row(8)
    set_row(m, [[float(i + 1) for i in range(8)]], [[float(8 - i) for i in range(8)]])
    p, mask = one_event("fggp", 0.75, m)  # wants 6, only int(0.5 * 8) = 4 candidates
    assert mask.kept == 4 and removed(mask) == [4, 5, 6, 7]
    assert p.history[-1]["clamped"] is True and p.history[-1]["wanted"] == 6


def test_fggp_needs_gradients():
    m = Row(8)
    with pytest.raises(PrunebenchError, match="no .grad"):
        one_event("fggp", 0.5, m)


def test_annealed_unmarks_largest_gradients_by_hand():
    m = Row(10)
    w = [0.1, -0.2, 0.3, 0.4, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0]
    g = [5.0, -4.0, 0.1, 0.2, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]
    set_row(m, [w], [g])
    # remove 2 of 10; rate constant 0.3 -> to_add = int((10 - 2) * 0.3) = 2; mark the 4 smallest |w| {0..3},
    # un-mark the 2 with the largest |g| {0, 1}: {2, 3} go (pure magnitude would remove {0, 1}).
    p, mask = one_event("mfgn_annealed", 0.2, m, prune_rate=30, eta_min=0.3)
    assert removed(mask) == [2, 3]
    ev = p.history[-1]
    assert (ev["marked"], ev["re_added"], ev["removed"]) == (4, 2, 2)


def test_cosine_decay_matches_torch_scheduler():
    assert cosine_decay(0, 100, 0.01) == pytest.approx(0.01)
    assert cosine_decay(50, 100, 0.01) == pytest.approx(0.0075)
    assert cosine_decay(100, 100, 0.01) == pytest.approx(0.005)
    opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=0.01)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, 40, 0.005)
    for t in range(1, 41):
        opt.step()
        sched.step()
        assert cosine_decay(t, 40, 0.01) == pytest.approx(opt.param_groups[0]["lr"], rel=1e-9)


# ---------------------------------------------------------------------------------------------------
# Schedules over a simulated run


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


@pytest.mark.parametrize("method", DURING_TRAINING_METHODS)
@pytest.mark.parametrize("schedule", ["cubic", "exp"])
def test_schedule_hits_target_exactly_at_t_end(method, schedule):
    model = tiny()
    total, sparsity = 50, 0.9
    p = make_during_training(method, sparsity, schedule=schedule, update_interval=7)
    assert p.start(model, total, torch.Generator().manual_seed(0)) is None  # dense start
    n = sum(w.numel() for w in prunable_parameters(model).values())
    mask, log = simulate(p, model, total, None)
    t_end = 40
    assert p.event_steps() == [7, 14, 21, 28, 35, 40]
    assert [e["step"] for e in p.history] == [7, 14, 21, 28, 35, 40]
    assert not any(e.get("clamped") for e in p.history)
    for e in p.history:  # every event lands exactly on the schedule
        assert e["kept"] == keep_count(n, p.density_at(e["step"]))
    assert p.density_at(t_end) == 1.0 - sparsity
    assert mask.kept == keep_count(n, 1.0 - sparsity)
    assert [s for s, _, changed in log if changed][-1] == t_end  # nothing after T_end
    kept = [k for _, k, _ in log if k is not None]
    assert kept == sorted(kept, reverse=True)
    dens = [p.density_at(t) for t in range(0, total + 1)]
    assert all(a >= b for a, b in zip(dens, dens[1:]))
    assert dens[0] == 1.0


def test_schedule_formulas():
    assert schedule_density("cubic", 40, 80, 1.0, 0.1) == pytest.approx(0.1 + 0.9 * 0.5 ** 3)
    assert schedule_density("exp", 40, 80, 1.0, 0.1) == pytest.approx(math.sqrt(0.1))
    assert schedule_density("exp", 80, 80, 0.5, 0.02) == 0.02
    assert schedule_density("cubic", 0, 80, 0.5, 0.02) == 0.5
    assert event_steps(100, 30) == [30, 60, 80]
    assert event_steps(100, 30, final_event=False) == [30, 60]
    assert event_steps(100, 200) == [80]
    assert event_steps(100, 20) == [20, 40, 60, 80]


def test_official_event_rule_can_stop_short_of_target():
    model = tiny()
    p = make_during_training("gmp", 0.9, update_interval=7, final_event=False)
    p.start(model, 50, torch.Generator())
    mask, _ = simulate(p, model, 50, None)
    assert [e["step"] for e in p.history] == [7, 14, 21, 28, 35]
    assert mask.density > 0.1 + 1e-3


def test_official_counting_options():
    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Conv2d(8, 16, 3), nn.ReLU(),
                          nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 10))  # conv biases, as FGGP's VGG
    params = prunable_parameters(model)
    first = next(iter(params))
    units = sum(m.weight.numel() + m.bias.numel() for m in prunable_modules(model).values())
    assert units > sum(w.numel() for w in params.values())
    p = make_during_training("fggp", 0.8, update_interval=10, count_bias_and_first_conv=True,
                             prune_first_layer=False)
    p.start(model, 50, torch.Generator())
    mask, _ = simulate(p, model, 50, None)
    assert bool(mask[first].all())  # the first layer is never pruned
    assert not any(e.get("clamped") for e in p.history)
    assert mask.total - mask.kept == math.floor(units * (1 - p.density_at(40)))


# ---------------------------------------------------------------------------------------------------
# ERK


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


# ---------------------------------------------------------------------------------------------------
# Checkpointing and validation


@pytest.mark.parametrize("method", DURING_TRAINING_METHODS)
def test_state_dict_round_trip_gives_same_decisions(method):
    total = 60
    opts = dict(update_interval=6, initial_density=0.5, init_type="erk")
    ref = make_during_training(method, 0.9, **opts)
    model = tiny()
    mask = ref.start(model, total, torch.Generator().manual_seed(1))
    mask.apply(model)
    mask, _ = simulate(ref, model, total, mask, last=20)
    state = json.loads(json.dumps(ref.state_dict()))
    resumed = make_during_training(method, 0.9, **opts)
    resumed.load_state_dict(state)
    model2 = tiny()
    a, _ = simulate(ref, model, total, mask, first=21)
    b, _ = simulate(resumed, model2, total, mask, first=21)
    assert a == b
    assert resumed.history == ref.history and len(ref.history) > 4
    other = make_during_training(method, 0.8, **opts)
    with pytest.raises(PrunebenchError, match="different settings"):
        other.load_state_dict(state)


def test_factory_validation():
    with pytest.raises(PrunebenchError, match="unknown during-training method"):
        make_during_training("rigl", 0.9)
    with pytest.raises(PrunebenchError, match="unknown option 'select_ratio' for gmp"):
        make_during_training("gmp", 0.9, select_ratio=0.5)
    with pytest.raises(PrunebenchError, match="invalid sparsity"):
        make_during_training("fggp", 1.0)
    with pytest.raises(PrunebenchError, match="prune_first_layer"):
        make_during_training("fggp", 0.9, prune_first_layer="False")
    with pytest.raises(PrunebenchError, match="update_interval"):
        make_during_training("fggp", 0.9, update_interval=0)
    with pytest.raises(PrunebenchError, match="initial_density"):
        make_during_training("fggp", 0.9, initial_density=0.05)
    with pytest.raises(PrunebenchError, match="schedule"):
        make_during_training("fggp", 0.9, schedule="linear")
    with pytest.raises(PrunebenchError, match="call start"):
        make_during_training("fggp", 0.9).density_at(3)
    for row in PAPER_VS_CODE_OPTIONS:
        assert set(row) == {"method", "option", "default", "official", "section", "note"}
        opt = {row["option"]: row["official"]}
        assert make_during_training("fggp", 0.9, **opt).options[row["option"]] == row["official"]
        assert make_during_training("fggp", 0.9).options[row["option"]] == row["default"]


def test_pick_equals_common_select_with_ties():
    from prunebench.pruners.common import select
    from prunebench.pruners.gradual import _pick

    gen = torch.Generator().manual_seed(0)
    shapes = {"a": (3, 5), "b": (40,), "c": (2, 2, 3)}
    for trial in range(30):
        scores = {n: torch.randint(0, 4, s, generator=gen).float() for n, s in shapes.items()}  # many ties
        pool = {n: torch.rand(s, generator=gen) < 0.7 for n, s in shapes.items()}
        total = sum(math.prod(s) for s in shapes.values())
        for count in (1, 5, 17, int(sum(int(p.sum()) for p in pool.values())) - 1):
            want = select(scores, count / total, "global", eligible=pool)
            got = _pick(scores, pool, count)
            assert all(torch.equal(got[n], want[n]) for n in shapes), (trial, count)
