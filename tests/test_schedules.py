"""Density schedules: FORCE exp/linear, the cubic and exp gradual schedules, CosineDecay (docs/methods.md
A.3, A.9, E.4)."""
import math

import pytest
import torch
import torch.nn as nn

from prunebench.library.schedules import cosine_decay, event_steps, gradual_density


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


def test_schedule_formulas():
    assert gradual_density("cubic", 40, 80, 1.0, 0.1) == pytest.approx(0.1 + 0.9 * 0.5 ** 3)
    assert gradual_density("exp", 40, 80, 1.0, 0.1) == pytest.approx(math.sqrt(0.1))
    assert gradual_density("exp", 80, 80, 0.5, 0.02) == 0.02
    assert gradual_density("cubic", 0, 80, 0.5, 0.02) == 0.5
    assert event_steps(100, 30) == [30, 60, 80]
    assert event_steps(100, 30, final_event=False) == [30, 60]
    assert event_steps(100, 200) == [80]
    assert event_steps(100, 20) == [20, 40, 60, 80]
