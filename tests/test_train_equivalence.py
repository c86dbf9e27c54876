"""The trainer gives the bytes of the loop it replaced, on the CPU (issue 19, issue 18 section 5).

`tests/reference/old_train.py` is a frozen copy of the training loop and its batch streams as they were before
the restructuring (commit 7ba29fc). Every case below trains the same model on the same data with both, and
requires the same bytes: metrics.json, checkpoint.safetensors (weights, momentum buffers, mask, loop state),
final_mask.safetensors of pruning during training, the returned metrics and the trained weights. The cases
cover what the presets use: dense and masked training, momentum / Nesterov / weight decay / label smoothing,
step, cosine and constant schedules, crop + flip augmentation with a partial last batch, BatchNorm, masks over
biases (SPP's SNIP), FGGP / GMP pruning during training (dense and ERK starts, pre- and post-step magnitudes),
SPP's step budget with evaluation every N steps across epoch boundaries and a validation split, resumption
after an interruption (including a checkpoint written by the old loop), and a diverging run.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

from prunebench.library.data import Data
from prunebench.library.data.batches import epoch_batches, epoch_order, eval_batches, train_batches
from prunebench.library.datasets import dataset_spec
from prunebench.library.init import initialize
from prunebench.library.models import build_model, prunable_modules, prunable_parameters
from prunebench.library.pruners.during import make_during_training
from prunebench.library.pruners.topk import select
from prunebench.library.train import TrainConfig, train

sys.path.insert(0, str(Path(__file__).resolve().parent))
from reference.old_train import eval_batches as old_eval_batches  # noqa: E402
from reference.old_train import train as old_train  # noqa: E402
from reference.old_train import train_batches as old_train_batches  # noqa: E402

FILES = ("metrics.json", "checkpoint.safetensors", "final_mask.safetensors")


def fake_data(dataset="mnist", n_train=150, n_test=70, n_val=0, seed=0):
    """uint8 images with a learnable signal (a bright pixel at the label) and int64 labels."""
    spec = dataset_spec(dataset)
    g = torch.Generator().manual_seed(seed)
    n = n_train + n_test + n_val
    y = torch.randint(0, spec.num_classes, (n,), generator=g)
    x = torch.randint(0, 90, (n, spec.channels, spec.size, spec.size), generator=g, dtype=torch.uint8)
    x[torch.arange(n), :, y, y] = 255
    val = {"val_x": x[n_train + n_test:], "val_y": y[n_train + n_test:]} if n_val else {}
    return Data(spec, x[:n_train], y[:n_train], x[n_train:n_train + n_test], y[n_train:n_train + n_test],
                metadata={"content_sha256": "fake"}, **val)


def random_mask(model, sparsity, seed=1, biases=False):
    g = torch.Generator().manual_seed(seed)
    params = dict(prunable_parameters(model))
    if biases:
        params.update({f"{n}.bias": m.bias for n, m in prunable_modules(model).items() if m.bias is not None})
    return select({n: torch.rand(p.shape, generator=g) for n, p in params.items()}, 1 - sparsity)


def make_model(name, dataset, scheme="kaiming_normal", seed=0):
    return initialize(build_model(name, dataset), scheme, seed)


CASES = {
    "dense_step": dict(model="lenet300", cfg=dict(epochs=2, batch_size=32, lr=0.1, momentum=0.9, weight_decay=5e-4,
                                                  milestones=(0.5,), steps_per_epoch=3)),
    "masked_sgd": dict(model="lenet300", mask=0.9, cfg=dict(epochs=3, batch_size=32, lr=0.05, momentum=0.9,
                                                            weight_decay=5e-3, milestones=(0.5,))),
    "cifar_augment_bn": dict(model="conv4", dataset="cifar10", n_train=70, mask=0.8,
                             cfg=dict(epochs=2, batch_size=32, lr=0.05, momentum=0.9, nesterov=True,
                                      weight_decay=5e-4, schedule="cosine", label_smoothing=0.1, eval_batch_size=33)),
    "no_momentum_no_decay": dict(model="lenet300", cfg=dict(epochs=2, batch_size=50, lr=0.1, momentum=0.0,
                                                            weight_decay=0.0, schedule="constant")),
    "spp_steps_val_bias_mask": dict(model="mlp-7-tanh", scheme="orthogonal", n_val=40, mask=0.9, biases=True,
                                    cfg=dict(max_steps=11, eval_every=4, batch_size=32, lr=0.1, momentum=0.0,
                                             weight_decay=5e-4, schedule="constant", augment=False,
                                             metrics=("test", "val"))),
    "fggp_pre_step": dict(model="lenet300", during=("fggp", 0.9, dict(update_interval=2, magnitude="pre_step")),
                          cfg=dict(epochs=2, batch_size=32, lr=0.1, momentum=0.9, weight_decay=5e-4)),
    "gmp_erk_start": dict(model="conv4", during=("gmp", 0.95, dict(update_interval=3, initial_density=0.5,
                                                                  init_type="erk")),
                          cfg=dict(epochs=2, batch_size=40, lr=0.05, momentum=0.9, weight_decay=5e-4)),
    "mfgn": dict(model="lenet300", during=("mfgn_annealed", 0.8, dict(update_interval=2)),
                 cfg=dict(epochs=1, batch_size=32, lr=0.1, momentum=0.9, weight_decay=5e-4)),
}


def run_case(fn, case, out, **kw):
    c = CASES[case]
    ds = c.get("dataset", "mnist")
    model = make_model(c["model"], ds, c.get("scheme", "kaiming_normal"))
    mask = random_mask(model, c["mask"], biases=c.get("biases", False)) if "mask" in c else None
    during = make_during_training(c["during"][0], c["during"][1], **c["during"][2]) if "during" in c else None
    data = fake_data(ds, n_train=c.get("n_train", 150), n_val=c.get("n_val", 0))
    m = fn(model, data, TrainConfig(**c["cfg"]), mask=mask, during=during, out_dir=out, progress=False,
           log=lambda s: None, **kw)
    return m, model


def assert_same_outputs(a: Path, b: Path, ma: dict, mb: dict, model_a, model_b):
    for f in FILES:
        assert (a / f).exists() == (b / f).exists(), f
        if (a / f).exists():
            assert (a / f).read_bytes() == (b / f).read_bytes(), f"{f} differs"
    strip = lambda m: {k: v for k, v in m.items() if not k.startswith("_")}  # noqa: E731 (timings, mask object)
    assert json.dumps(strip(ma), sort_keys=True) == json.dumps(strip(mb), sort_keys=True)
    sa, sb = model_a.state_dict(), model_b.state_dict()
    assert list(sa) == list(sb)
    for k in sa:
        assert torch.equal(sa[k], sb[k]) and sa[k].dtype == sb[k].dtype, k


@pytest.mark.parametrize("case", sorted(CASES))
def test_same_bytes_as_the_old_loop(tmp_path, case):
    ma, model_a = run_case(old_train, case, tmp_path / "old")
    mb, model_b = run_case(train, case, tmp_path / "new")
    assert_same_outputs(tmp_path / "old", tmp_path / "new", ma, mb, model_a, model_b)
    if "during" in CASES[case]:
        assert (tmp_path / "new" / "final_mask.safetensors").exists()


@pytest.mark.parametrize("case, stop", [("masked_sgd", {"stop_after_epoch": 1}), ("fggp_pre_step", {"stop_after_epoch": 1}),
                                        ("spp_steps_val_bias_mask", {"stop_after_step": 4}),
                                        ("spp_steps_val_bias_mask", {"stop_after_step": 8})])
def test_resumed_runs_end_in_the_old_loops_bytes(tmp_path, case, stop):
    """Interrupted and resumed by the new trainer, or interrupted by the old loop and resumed by the new one:
    the bytes of the old loop's uninterrupted run either way (the checkpoint format is unchanged)."""
    ma, model_a = run_case(old_train, case, tmp_path / "old")
    for first, name in ((train, "new"), (old_train, "mixed")):
        cut = run_case(first, case, tmp_path / name, **stop)[0]
        assert set(cut) == {"interrupted_at_epoch"} or set(cut) == {"interrupted_at_step"}
        mb, model_b = run_case(train, case, tmp_path / name)
        assert_same_outputs(tmp_path / "old", tmp_path / name, ma, mb, model_a, model_b)


def test_a_diverging_run_is_recorded_alike(tmp_path):
    def blown(fn, out):
        model = make_model("lenet300", "mnist")
        with torch.no_grad():
            for p in prunable_parameters(model).values():
                p.mul_(1e30)
        cfg = TrainConfig(epochs=2, batch_size=32, lr=10.0, momentum=0.9, weight_decay=0.0)
        return fn(model, fake_data(), cfg, out_dir=out, progress=False, log=lambda s: None), model

    ma, model_a = blown(old_train, tmp_path / "old")
    mb, model_b = blown(train, tmp_path / "new")
    assert mb["diverged"]["epoch"] == 1
    assert (tmp_path / "old" / "metrics.json").read_bytes() == (tmp_path / "new" / "metrics.json").read_bytes()


@pytest.mark.parametrize("dataset, n, batch, drop_last", [("cifar10", 70, 16, False), ("cifar10", 64, 16, True),
                                                         ("mnist", 75, 20, False)])
def test_epoch_feed_gives_the_old_batches(dataset, n, batch, drop_last):
    """The whole-epoch draws and chunked gathering give the old per-batch stream's values, from any starting
    batch and with any chunk size (a chunk of one batch, a few, the whole epoch)."""
    data = fake_data(dataset, n_train=n)
    for epoch in (0, 3):
        old = list(old_train_batches(data, batch, epoch=epoch, seed=7, drop_last=drop_last))
        new = list(train_batches(data, batch, epoch=epoch, seed=7, drop_last=drop_last))
        assert len(old) == len(new)
        for (xa, ya), (xb, yb) in zip(old, new):
            assert torch.equal(xa, xb) and torch.equal(ya, yb)
        order = epoch_order(data, batch, epoch, 7, drop_last=drop_last)
        for start in (0, 1, 2):
            for chunk in (1, 3 * batch * 3 * 32 * 32 * 4, 1 << 30):
                got = list(epoch_batches(data, order, start=start, chunk_bytes=chunk))
                assert len(got) == len(old) - start
                for (xa, ya), (xb, yb) in zip(old[start:], got):
                    assert torch.equal(xa, xb) and torch.equal(ya, yb)
    limited = epoch_order(data, batch, 1, 7, limit=2)
    assert limited.batches == 2 and list(epoch_batches(data, limited))[1][0].shape[0] == batch


def test_eval_batches_from_the_normalised_copy_are_the_old_ones():
    data = fake_data("cifar10", n_train=40, n_test=37)
    old = list(old_eval_batches(data, "test", 10))
    for cache in (False, True, False):  # without, making the copy, then reading the copy made
        new = list(eval_batches(data, "test", 10, cache=cache))
        assert [b[0].shape[0] for b in new] == [10, 10, 10, 7]
        for (xa, ya), (xb, yb) in zip(old, new):
            assert torch.equal(xa, xb) and torch.equal(ya, yb)
