"""Training loop: masked-step invariants, resume == uninterrupted (bytes), determinism, schedules, hooks, and the
step modes (plain, static, the CUDA graph path with its capture emulated)."""
import contextlib
import inspect
import json

import pytest
import torch

from golden.cases import fake_data, make_model, run_case, run_digests
from prunebench.library.data import Data
from prunebench.library.errors import PrunebenchError
from prunebench.library.init import initialize
from prunebench.library.masks import Mask
from prunebench.library.models import build_model, prunable_parameters
from prunebench.library.pruners.topk import select
from prunebench.library.datasets import dataset_spec
from prunebench.library.pruners.during import make_during_training
from prunebench.library.train import TrainConfig, train
from prunebench.library.training import MaskedSGD, MaskEnforcer
from prunebench.library.training.step import WARMUP_STEPS, CudaGraphs, GraphStep, Stepper


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


# -- the step modes: the static body (what a CUDA graph captures) and the graph path's logic, on the CPU -----------


@pytest.mark.parametrize("momentum, weight_decay, nesterov", [(0.9, 5e-4, False), (0.9, 5e-4, True), (0.0, 5e-4, False),
                                                             (0.0, 0.0, False), (0.5, 0.0, True)])
def test_masked_sgd_is_torch_sgd_bit_for_bit(momentum, weight_decay, nesterov):
    g = torch.Generator().manual_seed(0)
    shapes = [(30, 20), (30,), (4, 3, 3, 3), (7,)]
    a = [torch.randn(s, generator=g).requires_grad_() for s in shapes]
    b = [p.detach().clone() for p in a]
    ref = torch.optim.SGD(a, lr=0.1, momentum=momentum, weight_decay=weight_decay, nesterov=nesterov)
    ours = MaskedSGD(b, momentum, weight_decay, nesterov)
    for step, lr in enumerate((0.1, 0.1, 0.05, 0.01)):
        grads = [torch.randn(s, generator=g) * 1e-2 for s in shapes]
        for group in ref.param_groups:
            group["lr"] = lr
        for p, gr in zip(a, grads):
            p.grad = gr.clone()
        if step == 2:  # a parameter without a gradient is skipped (no buffer, no decay), as torch does
            a[1].grad = None
        ref.step()
        ours.step(lr, [None if (step == 2 and i == 1) else gr.clone() for i, gr in enumerate(grads)])
        assert all(torch.equal(p.detach(), q) for p, q in zip(a, b)), f"step {step}"
    if momentum:
        for i, p in enumerate(a):
            assert torch.equal(ref.state[p]["momentum_buffer"], ours.buffers[i])


@pytest.mark.parametrize("mode", ["static", "graph-emulated"])
@pytest.mark.parametrize("case", ["masked_sgd", "cifar_augment_bn", "fggp_pre_step", "gmp_erk_start",
                                  "spp_steps_val_bias_mask", "no_momentum_no_decay"])
def test_static_and_graph_steps_give_the_plain_steps_bytes(tmp_path, mode, case):
    """The static-buffer body a CUDA graph captures, run eagerly, equals the plain step bit for bit; the graph
    path's control flow (warm-up, one capture per learning rate, replays reading the static buffers, eager
    pruning events and partial last batches, in-place mask updates and re-captures) with the capture
    emulated gives the same bytes too."""
    ma, model_a = run_case(train, case, tmp_path / "plain", step_mode="plain")
    mb, model_b = run_case(train, case, tmp_path / mode, step_mode=mode)
    assert run_digests(tmp_path / "plain", ma, model_a) == run_digests(tmp_path / mode, mb, model_b)
    t = mb["_timing"]
    assert t["step_mode"] == mode
    if mode == "graph-emulated":
        assert t["graph_replays"] > 0 and t["graph_captures"] >= 1 and t["graph_fallback"] is None
        assert t["graph_replays"] + t["eager_steps"] == mb["steps"]


def test_graph_path_captures_once_per_learning_rate_and_runs_events_and_partial_batches_eagerly(tmp_path):
    """Counted on the emulated graph: 70 training images in batches of 32 (two full batches and a partial one
    per epoch), 4 epochs with the LR dropping at epochs 2 and 3: warm-up steps, then one capture per learning
    rate; every partial batch eager."""
    cfg = TrainConfig(epochs=4, batch_size=32, lr=0.1, momentum=0.9, weight_decay=5e-4, milestones=(0.5, 0.75))
    m = train(make_model("lenet300", "mnist"), fake_data(n_train=70), cfg, progress=False, log=lambda s: None,
              step_mode="graph-emulated")
    t = m["_timing"]
    assert m["steps"] == 12
    partial = 4
    assert t["eager_steps"] == WARMUP_STEPS + partial
    assert t["graph_captures"] == 3  # lr 0.1, 0.01, 0.001
    assert t["graph_replays"] == 12 - WARMUP_STEPS - partial


def test_graph_path_recaptures_when_a_dense_start_gets_its_first_mask(tmp_path):
    cfg = TrainConfig(epochs=3, batch_size=25, lr=0.1, momentum=0.9, weight_decay=5e-4)
    runs = {}
    for mode in ("plain", "graph-emulated"):
        during = make_during_training("gmp", 0.9, update_interval=4)
        runs[mode] = train(make_model("lenet300", "mnist"), fake_data(n_train=150), cfg, during=during,
                           out_dir=tmp_path / mode, progress=False, log=lambda s: None, step_mode=mode)
    t = runs["graph-emulated"]["_timing"]
    assert t["graph_captures"] >= 2  # the dense graph, then one with the mask
    for f in ("metrics.json", "checkpoint.safetensors", "final_mask.safetensors"):
        assert (tmp_path / "plain" / f).read_bytes() == (tmp_path / "graph-emulated" / f).read_bytes(), f


def test_graph_mode_needs_cuda():
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA: the CPU refusal is not reachable")
    with pytest.raises(PrunebenchError, match="needs a CUDA device"):
        train(make_model("lenet300", "mnist"), fake_data(), TrainConfig(), progress=False, log=lambda s: None,
              step_mode="graph")
    with pytest.raises(PrunebenchError, match="step mode"):
        train(make_model("lenet300", "mnist"), fake_data(), TrainConfig(), progress=False, log=lambda s: None,
              step_mode="fast")


def test_a_parameter_without_gradient_falls_back_to_plain_steps(tmp_path):
    """A module the loss never reaches has no gradient: no static buffer can hold it, so the run continues with
    plain steps (and its bytes are the plain run's)."""
    class WithUnused(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = torch.nn.Linear(784, 10)
            self.unused = torch.nn.Linear(3, 3)

        def forward(self, x):
            return self.fc(torch.flatten(x, 1))

    def model():
        torch.manual_seed(0)
        return WithUnused()

    out = {}
    for mode in ("plain", "static", "graph-emulated"):
        logs = []
        out[mode] = train(model(), fake_data(), TrainConfig(epochs=1, batch_size=50), out_dir=tmp_path / mode,
                          progress=False, log=logs.append, step_mode=mode)
        if mode != "plain":
            assert any("receives no gradient" in line for line in logs)
    assert (tmp_path / "plain" / "metrics.json").read_bytes() == (tmp_path / "static" / "metrics.json").read_bytes()
    assert (tmp_path / "plain" / "checkpoint.safetensors").read_bytes() == \
        (tmp_path / "graph-emulated" / "checkpoint.safetensors").read_bytes()


def test_the_cuda_graph_backend_uses_the_cuda_api_it_names(monkeypatch):
    """No GPU here: the CUDA backend of the graph path runs against stand-ins for torch.cuda's stream and graph
    objects, which check that it warms up on a side stream, captures into one shared pool in thread-local error
    mode and replays; the real torch.cuda.graph must accept the keywords it passes (as on torch 2.11)."""
    params = inspect.signature(torch.cuda.graph.__init__).parameters
    assert {"pool", "capture_error_mode"} <= set(params) and callable(torch.cuda.graph_pool_handle)
    calls = []

    class FakeStream:
        def __init__(self, device=None):
            calls.append("stream")

        def wait_stream(self, other):
            calls.append("wait")

    class FakeGraph:
        def replay(self):
            calls.append("replay")

    @contextlib.contextmanager
    def fake_graph(g, pool=None, capture_error_mode="global"):
        assert isinstance(g, FakeGraph) and pool == "pool" and capture_error_mode == "thread_local"
        calls.append("capture")
        yield

    monkeypatch.setattr(torch.cuda, "Stream", FakeStream)
    monkeypatch.setattr(torch.cuda, "current_stream", lambda device=None: FakeStream())
    monkeypatch.setattr(torch.cuda, "stream", lambda s: contextlib.nullcontext())
    monkeypatch.setattr(torch.cuda, "synchronize", lambda device=None: calls.append("sync"))
    monkeypatch.setattr(torch.cuda, "graph_pool_handle", lambda: "pool")
    monkeypatch.setattr(torch.cuda, "CUDAGraph", FakeGraph)
    monkeypatch.setattr(torch.cuda, "graph", fake_graph)
    model = make_model("lenet300", "mnist")
    stepper = Stepper(model, model, MaskedSGD(list(model.parameters()), 0.9, 5e-4), MaskEnforcer(model, None),
                      device="cpu", amp=False, channels_last=False, label_smoothing=0.0)
    stepper.make_static()
    graph = GraphStep(stepper, (8, 1, 28, 28), log=lambda s: None, backend=CudaGraphs("cpu"))
    x, y = torch.randn(8, 1, 28, 28), torch.randint(0, 10, (8,))
    for i in range(WARMUP_STEPS + 3):
        graph.run(x, y, 0.1 if i < WARMUP_STEPS + 2 else 0.01, hooks_needed=False)
    assert calls.count("capture") == 2 and calls.count("replay") == 3 and "sync" in calls
    assert graph.captures == 2 and graph.replays == 3 and graph.eager_steps == WARMUP_STEPS and graph.fallback is None
