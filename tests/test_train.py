"""Training loop: masked-step invariants, resume == uninterrupted (bytes), determinism, schedules, hooks."""
import json

import pytest
import torch

from prunebench.library.data import Data
from prunebench.library.errors import PrunebenchError
from prunebench.library.init import initialize
from prunebench.library.masks import Mask
from prunebench.library.models import build_model, prunable_parameters
from prunebench.library.pruners.topk import select
from prunebench.library.datasets import dataset_spec
from prunebench.library.train import TrainConfig, train


def tiny_data(n_train=192, n_test=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    spec = dataset_spec("mnist")
    y = torch.randint(0, 10, (n_train + n_test,), generator=g)
    x = torch.randint(0, 60, (n_train + n_test, 1, 28, 28), generator=g, dtype=torch.uint8)
    x[torch.arange(len(y)), 0, y, y] = 255  # a learnable signal: a bright pixel on the diagonal at the label
    return Data(spec, x[:n_train], y[:n_train], x[n_train:], y[n_train:], metadata={"content_sha256": "t"})


def model_and_mask(sparsity=0.9, seed=0, name="lenet300"):
    model = initialize(build_model(name, "mnist"), "kaiming_normal", seed)
    g = torch.Generator().manual_seed(seed + 1)
    scores = {n: torch.rand(p.shape, generator=g) for n, p in prunable_parameters(model).items()}
    return model, select(scores, 1 - sparsity)


CFG = TrainConfig(epochs=3, batch_size=32, lr=0.05, momentum=0.9, weight_decay=5e-3, milestones=(0.5,))


class ZeroWatcher:
    """A during-training hook that only checks: after every step, pruned weights are exactly zero."""
    name = "watch"

    def __init__(self, mask):
        self.mask, self.checked = mask, 0

    def start(self, model, total_steps, generator):
        return None

    def after_step(self, step, model, mask):
        for n, p in prunable_parameters(model).items():
            assert torch.all(p[~self.mask[n]] == 0), f"pruned weight of {n} moved at step {step}"
            assert torch.all(p.grad[~self.mask[n]] == 0)
        self.checked += 1

    def state_dict(self):
        return {}

    def load_state_dict(self, s):
        pass


def test_pruned_weights_stay_exactly_zero_with_momentum_and_weight_decay():
    model, mask = model_and_mask()
    watcher = ZeroWatcher(mask)
    m = train(model, tiny_data(), CFG, mask=mask, during=watcher, progress=False, log=lambda s: None)
    assert watcher.checked == 3 * 6
    assert Mask.from_model(model).kept <= mask.kept           # nothing outside the mask became nonzero
    assert m["density"] == pytest.approx(mask.density)
    for n, p in prunable_parameters(model).items():
        assert torch.all(p[~mask[n]] == 0)


def test_dense_training_learns_the_toy_signal():
    model = initialize(build_model("lenet300", "mnist"), "kaiming_normal", 0)
    cfg = TrainConfig(epochs=4, batch_size=32, lr=0.05, weight_decay=0.0, schedule="constant")
    m = train(model, tiny_data(), cfg, progress=False, log=lambda s: None)
    assert m["history"][-1]["train_loss"] < m["history"][0]["train_loss"]
    assert m["final_acc"] > 0.3  # chance is 0.1


def _run(tmp, stop=None, resume=True):
    model, mask = model_and_mask()
    return train(model, tiny_data(), CFG, mask=mask, out_dir=tmp, progress=False, log=lambda s: None,
                 stop_after_epoch=stop, resume=resume)


def test_same_config_same_bytes(tmp_path):
    _run(tmp_path / "a")
    _run(tmp_path / "b")
    for f in ("metrics.json", "checkpoint.safetensors"):
        assert (tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes(), f


def test_resume_after_interruption_gives_the_same_bytes(tmp_path):
    _run(tmp_path / "full")
    out = _run(tmp_path / "cut", stop=1)
    assert out == {"interrupted_at_epoch": 1}
    assert not (tmp_path / "cut" / "metrics.json").exists()
    logs = []
    model, mask = model_and_mask()
    train(model, tiny_data(), CFG, mask=mask, out_dir=tmp_path / "cut", progress=False, log=logs.append)
    assert any("resumed" in s for s in logs)
    for f in ("metrics.json", "checkpoint.safetensors"):
        assert (tmp_path / "full" / f).read_bytes() == (tmp_path / "cut" / f).read_bytes(), f


def test_metrics_json_content(tmp_path):
    _run(tmp_path)
    m = json.loads((tmp_path / "metrics.json").read_text())
    assert len(m["history"]) == 3 and m["epochs"] == 3
    assert m["best_acc"] == max(h["test_acc"] for h in m["history"])
    assert m["final_acc"] == m["history"][-1]["test_acc"]
    assert [h["lr"] for h in m["history"]] == pytest.approx([0.05, 0.05, 0.005])  # milestone 0.5 of 3 epochs = epoch 2
    assert "train_s" not in json.dumps(m)   # timings live in timing.json, so metrics stay byte-stable
    assert json.loads((tmp_path / "timing.json").read_text())["images_per_s"] > 0


def test_lr_schedules():
    step = TrainConfig(epochs=10, lr=0.1, milestones=(0.5, 0.75))
    assert [step.lr_at(e) for e in (0, 4, 5, 7, 8, 9)] == pytest.approx([0.1, 0.1, 0.01, 0.01, 0.001, 0.001])
    cos = TrainConfig(epochs=4, lr=0.2, schedule="cosine")
    assert [cos.lr_at(e) for e in range(4)] == pytest.approx([0.2, 0.1707106781, 0.1, 0.0292893219])
    assert TrainConfig(schedule="constant", lr=0.3).lr_at(7) == 0.3


@pytest.mark.parametrize("bad, needle", [({"epochz": 3}, "epochz"), ({"schedule": "poly"}, "poly"),
                                         ({"epochs": 0}, "epochs"), ({"milestones": [150]}, "150"),
                                         ({"lr": float("nan")}, "invalid lr nan"), ({"lr": 1e6}, "invalid lr"),
                                         ({"momentum": 1.0}, "momentum"), ({"weight_decay": -1e-4}, "weight_decay"),
                                         ({"label_smoothing": float("inf")}, "label_smoothing"),
                                         ({"batch_size": 2.5}, "batch_size"), ({"metrics": ["tset"]}, "tset"),
                                         ({"nesterov": "yes"}, "nesterov")])
def test_bad_training_options(bad, needle):
    with pytest.raises(PrunebenchError, match=needle):
        TrainConfig.from_dict(bad)


class PruneOnce:
    """Removes the smallest-magnitude half of the active weights at step 4 (a minimal gradual pruner)."""
    name = "once"

    def start(self, model, total_steps, generator):
        return None

    def after_step(self, step, model, mask):
        if step != 4:
            return None
        scores = {n: p.detach().abs() for n, p in prunable_parameters(model).items()}
        return select(scores, 0.5)

    def state_dict(self):
        return {}

    def load_state_dict(self, s):
        pass


def test_pruning_during_training_hook_changes_mask_and_density():
    model = initialize(build_model("lenet300", "mnist"), "kaiming_normal", 0)
    m = train(model, tiny_data(), CFG, during=PruneOnce(), progress=False, log=lambda s: None)
    assert m["history"][0]["density"] == pytest.approx(0.5, abs=1e-6)
    assert m["_mask"].density == pytest.approx(0.5, abs=1e-6)
    assert Mask.from_model(model).kept <= m["_mask"].kept


def test_divergence_is_recorded_as_a_failed_run(tmp_path):
    """A run whose loss overflows is a result (SPP studies trainability), not a crash: metrics.json says it
    diverged, with the best accuracy evaluated before it and no final accuracy."""
    model = initialize(build_model("lenet300", "mnist"), "kaiming_normal", 0)
    with torch.no_grad():  # weights that overflow the loss (a learning rate of 1e6 is now refused up front)
        for p in prunable_parameters(model).values():
            p.mul_(1e30)
    cfg = TrainConfig(epochs=2, batch_size=32, lr=10.0, momentum=0.9, weight_decay=0.0)
    lines = []
    m = train(model, tiny_data(), cfg, out_dir=tmp_path, progress=False, log=lines.append)
    assert m["diverged"] == {"epoch": 1, "step": m["steps"], "lr": 10.0} and m["final_acc"] is None
    assert any("diverged" in line for line in lines)
    import json

    assert json.loads((tmp_path / "metrics.json").read_text())["diverged"]["epoch"] == 1


def test_step_budget_and_evaluation_every_n_steps_resume_to_the_same_bytes(tmp_path):
    """SPP's protocol: a fixed number of iterations, evaluated every N of them (best and final reported);
    an interruption between two evaluation points resumes to the bytes of an uninterrupted run."""
    cfg = TrainConfig(epochs=1, batch_size=32, lr=0.05, momentum=0.0, weight_decay=5e-4, schedule="constant",
                      max_steps=7, eval_every=3, steps_per_epoch=4)
    model = lambda: initialize(build_model("lenet300", "mnist"), "kaiming_normal", 0)  # noqa: E731
    m = train(model(), tiny_data(), cfg, out_dir=tmp_path / "a", progress=False, log=lambda s: None)
    assert [r["step"] for r in m["history"]] == [3, 6, 7] and [r["epoch"] for r in m["history"]] == [1, 2, 2]
    assert m["steps"] == 7 and m["epochs"] == 2
    assert m["best_acc"] == max(r["test_acc"] for r in m["history"]) and m["final_acc"] == m["history"][-1]["test_acc"]
    part = train(model(), tiny_data(), cfg, out_dir=tmp_path / "b", progress=False, log=lambda s: None,
                 stop_after_step=3)
    assert part == {"interrupted_at_step": 3}
    train(model(), tiny_data(), cfg, out_dir=tmp_path / "b", progress=False, log=lambda s: None)
    assert (tmp_path / "a" / "metrics.json").read_bytes() == (tmp_path / "b" / "metrics.json").read_bytes()
