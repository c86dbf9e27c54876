"""prunebench.library.data.batches: normalisation, augmentation, seeded train / eval / pruning batches (in memory)."""
from __future__ import annotations

import hashlib

import pytest
import torch

from prunebench.library import data as D
from prunebench.library.errors import PrunebenchError
from prunebench.library.datasets import dataset_spec


def in_memory(dataset="cifar10", n=300, seed=0, labels=None) -> D.Data:
    spec = dataset_spec(dataset)
    g = torch.Generator().manual_seed(seed)
    shape = (spec.channels, spec.size, spec.size)
    x = torch.randint(0, 256, (n, *shape), generator=g, dtype=torch.uint8)
    y = torch.arange(n) if labels is None else labels
    return D.Data(spec, x, y, x[:50].clone(), y[:50].clone())


def test_normalize_matches_spec():
    for name in ("mnist", "cifar10", "cifar100", "tiny-imagenet"):
        spec = dataset_spec(name)
        x = torch.randint(0, 256, (4, spec.channels, 5, 5), dtype=torch.uint8)
        out = D.normalize(x, spec)
        assert out.dtype == torch.float32 and out.shape == x.shape
        for c in range(spec.channels):
            ref = (x[:, c].double() / 255 - spec.mean[c]) / spec.std[c]
            torch.testing.assert_close(out[:, c].double(), ref, atol=1e-5, rtol=0)
    spec = dataset_spec("cifar10")
    full = torch.full((1, 3, 1, 1), 255, dtype=torch.uint8)
    assert D.normalize(full, spec)[0, 0, 0, 0].item() == pytest.approx((1 - 0.4914) / 0.2470, rel=1e-6)
    f = torch.zeros(1, 3, 2, 2)
    D.normalize(f, spec)
    assert torch.equal(f, torch.zeros(1, 3, 2, 2))  # never modifies its input


def test_crop_shifts_content_and_flip_mirrors():
    x = (torch.arange(2 * 3 * 8 * 8) % 251 + 1).to(torch.uint8).reshape(2, 3, 8, 8)  # no zero pixels
    pad = 4
    centre = torch.tensor([[pad, pad], [pad, pad]])
    assert torch.equal(D.crop_flip(x, centre, torch.tensor([False, False])), x)
    assert torch.equal(D.crop_flip(x, centre, torch.tensor([True, False])), torch.stack([x[0].flip(-1), x[1]]))
    dy, dx = 1, -2  # content moves up by 1 row and right by 2 columns
    out = D.crop_flip(x, torch.tensor([[pad + dy, pad + dx]] * 2), torch.tensor([False, False]))
    assert out.shape == x.shape
    for i in range(8):
        for j in range(8):
            si, sj = i + dy, j + dx
            want = x[:, :, si, sj] if 0 <= si < 8 and 0 <= sj < 8 else torch.zeros(2, 3, dtype=torch.uint8)
            assert torch.equal(out[:, :, i, j], want), (i, j)
    # flip after crop: the mirror of the shifted image
    both = D.crop_flip(x, torch.tensor([[pad + dy, pad + dx]] * 2), torch.tensor([True, True]))
    assert torch.equal(both, out.flip(-1))


def test_random_augmentation_is_a_shifted_or_mirrored_copy():
    x = in_memory(n=16).train_x
    out = D.random_crop_flip(x, torch.Generator().manual_seed(0))
    assert out.shape == x.shape and out.dtype == torch.uint8 and not torch.equal(out, x)
    for b in range(len(x)):  # each output is one of the 81 shifts x 2 flips of its own input
        candidates = [D.crop_flip(x[b:b + 1], torch.tensor([[i, j]]), torch.tensor([f]))
                      for i in range(9) for j in range(9) for f in (False, True)]
        assert any(torch.equal(out[b:b + 1], c) for c in candidates)


def test_train_batches_seeded():
    d = in_memory()
    a = list(D.train_batches(d, 64, epoch=0, seed=7))
    b = list(D.train_batches(d, 64, epoch=0, seed=7))
    assert len(a) == len(D.train_batches(d, 64, 0, 7)) == D.num_batches(d, 64) == 5
    assert [len(y) for _, y in a] == [64, 64, 64, 64, 44]
    assert all(torch.equal(xa, xb) and torch.equal(ya, yb) for (xa, ya), (xb, yb) in zip(a, b))
    order0 = torch.cat([y for _, y in a])
    assert sorted(order0.tolist()) == list(range(300))  # a permutation: each example once per epoch
    order1 = torch.cat([y for _, y in D.train_batches(d, 64, epoch=1, seed=7)])
    order_s = torch.cat([y for _, y in D.train_batches(d, 64, epoch=0, seed=8)])
    assert not torch.equal(order0, order1) and not torch.equal(order0, order_s)
    # augmentation has its own stream: switching it off does not change the order
    plain = list(D.train_batches(d, 64, epoch=0, seed=7, augment=False))
    assert torch.equal(torch.cat([y for _, y in plain]), order0)
    assert torch.equal(plain[0][0], D.normalize(d.train_x[plain[0][1]], d.spec))
    assert not torch.equal(plain[0][0], a[0][0])
    assert [len(y) for _, y in D.train_batches(d, 64, 0, 7, drop_last=True)] == [64] * 4
    assert a[0][0].dtype == torch.float32 and a[0][0].shape == (64, 3, 32, 32)


def test_mnist_has_no_augmentation():
    d = in_memory("mnist", n=40)
    x, y = next(iter(D.train_batches(d, 40, epoch=0, seed=0)))
    assert torch.equal(x, D.normalize(d.train_x[y], d.spec))
    x, y = next(D.pruning_batches(d, 40, seed=0, augment=True))
    assert torch.equal(x, D.normalize(d.train_x[y], d.spec))


def test_eval_batches_in_order():
    d = in_memory()
    batches = D.eval_batches(d, batch_size=20)
    assert len(batches) == 3
    assert torch.equal(torch.cat([x for x, _ in batches]), D.normalize(d.test_x, d.spec))
    assert torch.equal(torch.cat([y for _, y in batches]), d.test_y)
    with pytest.raises(PrunebenchError, match="no 'val' split"):
        D.eval_batches(d, split="val")


def test_pruning_batches_infinite_and_seeded():
    d = in_memory(n=100)
    it = D.pruning_batches(d, 32, seed=3)
    first = [next(it) for _ in range(10)]  # 320 examples from a 100-example split: keeps going
    again = D.pruning_batches(d, 32, seed=3)
    for (xa, ya), (xb, yb) in zip(first, (next(again) for _ in range(10))):
        assert torch.equal(xa, xb) and torch.equal(ya, yb)
    ids = torch.cat([y for _, y in first]).tolist()
    assert all(len(y) == 32 for _, y in first) and sorted(ids[:96]) == sorted(set(ids[:96]))
    assert sorted(ids[:100]) == list(range(100))  # one full pass before any repeat
    assert not torch.equal(first[0][1], next(D.pruning_batches(d, 32, seed=4))[1])


def test_pruning_batches_class_balanced():
    labels = torch.arange(300) % 10
    d = in_memory(n=300, labels=labels)
    it = D.pruning_batches(d, None, seed=0, class_balanced_per_class=3)
    x, y = next(it)
    assert x.shape == (30, 3, 32, 32)
    assert y.tolist() == [c for c in range(10) for _ in range(3)]  # concatenated class by class
    assert set(y[:15].tolist()).isdisjoint(y[15:].tolist())  # GraSP's halves are class-disjoint
    ys = [next(it)[1] for _ in range(20)]
    assert all(torch.equal(v, y) for v in ys)
    with pytest.raises(PrunebenchError, match="batch_size 128"):
        D.pruning_batches(d, 128, seed=0, class_balanced_per_class=3)
    with pytest.raises(PrunebenchError, match="class_balanced_per_class 31"):
        D.pruning_batches(d, None, seed=0, class_balanced_per_class=31)


def test_bad_batch_arguments():
    d = in_memory()
    for bad in (0, -1, 2.5, True):
        with pytest.raises(PrunebenchError, match="batch_size"):
            D.train_batches(d, bad, epoch=0, seed=0)
    with pytest.raises(PrunebenchError, match="invalid seed -1"):
        D.train_batches(d, 8, epoch=0, seed=-1)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_batches_identical_on_gpu():
    d = in_memory()
    cpu = list(D.train_batches(d, 64, epoch=2, seed=5))
    gpu = list(D.train_batches(d.to("cuda"), 64, epoch=2, seed=5))
    for (xc, yc), (xg, yg) in zip(cpu, gpu):
        assert xg.is_cuda and torch.equal(yc, yg.cpu())
        torch.testing.assert_close(xc, xg.cpu(), atol=1e-6, rtol=0)


def test_streams_are_pinned():
    """The seed derivation and the random streams are fixed: a change here changes every result."""
    assert D.derive_seed(0, "train-order", 0) == 2959680745149722065
    assert D.derive_seed(7, "pruning-augment") == 1994815075688249070
    x = torch.arange(20 * 3 * 32 * 32).remainder(251).to(torch.uint8).reshape(20, 3, 32, 32)
    d = D.Data(dataset_spec("cifar10"), x, torch.arange(20), x, torch.arange(20))
    assert [y.tolist() for _, y in D.train_batches(d, 8, epoch=1, seed=5)] == [
        [3, 18, 13, 9, 15, 4, 11, 0], [8, 16, 19, 6, 2, 12, 5, 14], [1, 17, 7, 10]]
    assert next(D.pruning_batches(d, 6, seed=2))[1].tolist() == [10, 14, 12, 9, 11, 6]
    g = torch.Generator().manual_seed(D.derive_seed(5, "train-augment", 1))
    crops = D.random_crop_flip(x[:8], g).numpy().tobytes()
    assert hashlib.sha256(crops).hexdigest() == "6cc943d0ca0f38c012af1003cf8873c51ae631d5e79e3954c6b65acbac8fefca"
