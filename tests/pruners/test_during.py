"""The during-training protocol shared by FGGP, GMP and the annealed variant: schedules hit the target,
the official counting options, state round trips, option validation (docs/methods.md A.9)."""
import json
import math

import pytest
import torch
import torch.nn as nn

from prunebench.library.errors import PrunebenchError
from prunebench.library.methods import during
from prunebench.library.models import prunable_modules, prunable_parameters
from prunebench.library.pruners.topk import keep_count
from prunebench.library.pruners.during import make_during_training, paper_vs_code
from during_toys import simulate, tiny

DURING_TRAINING_METHODS = during()

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
    with pytest.raises(PrunebenchError, match="unknown option 'select_ratio' for method 'gmp'"):
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
    for row in paper_vs_code():
        assert set(row) == {"method", "option", "default", "paper", "official", "section", "note"}
        opt = {row["option"]: row["official"]}
        assert getattr(make_during_training(row["method"], 0.9, **opt).options, row["option"]) == row["official"]
        assert getattr(make_during_training(row["method"], 0.9).options, row["option"]) == row["default"]


def test_pick_equals_common_select_with_ties():
    from prunebench.library.pruners.topk import select
    from prunebench.library.pruners.during import pick

    gen = torch.Generator().manual_seed(0)
    shapes = {"a": (3, 5), "b": (40,), "c": (2, 2, 3)}
    for trial in range(30):
        scores = {n: torch.randint(0, 4, s, generator=gen).float() for n, s in shapes.items()}  # many ties
        pool = {n: torch.rand(s, generator=gen) < 0.7 for n, s in shapes.items()}
        total = sum(math.prod(s) for s in shapes.values())
        for count in (1, 5, 17, int(sum(int(p.sum()) for p in pool.values())) - 1):
            want = select(scores, count / total, "global", eligible=pool)
            got = pick(scores, pool, count)
            assert all(torch.equal(got[n], want[n]) for n in shapes), (trial, count)
