"""The public pruning API over the method table: exact counts, determinism, errors, collapse, metadata,
the model zoo (docs/methods.md A.0)."""
import json

import pytest
import torch
import torch.nn as nn

from prunebench.library.errors import PrunebenchError
from prunebench.library.masks import Mask
from prunebench.library.methods import at_init
from prunebench.library.models import build_model, prunable_parameters
from prunebench.library.pruners import paper_vs_code, prune, pruner_class, scores
from prunebench.library.pruners.topk import keep_count
from toys import FEW, data, small


def test_registry_lists_every_method():
    assert set(at_init()) == {"random", "magnitude", "snip", "grasp", "synflow", "iter_snip", "force", "prospr"}
    for method in at_init():
        cls = pruner_class(method)
        assert cls.name == method and cls.Options.method == method
    rows = paper_vs_code()
    assert rows and all(row["default"] == pruner_class(row["method"]).Options.defaults()[row["option"]] for row in rows)


@pytest.mark.parametrize("method", sorted(at_init()))
def test_exact_kept_count_and_model_untouched(method):
    net = small()
    net.train()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    n = sum(p.numel() for p in prunable_parameters(net).values())
    for s in (0.0, 0.5, 0.9, 0.97):
        mask = prune(net, method, s, data(), allow_collapse=True, **FEW.get(method, {}))
        assert mask.kept == keep_count(n, 1 - s), (method, s)
        assert list(mask) == list(prunable_parameters(net))
        assert mask.metadata["realised_density"] == mask.density
    # the caller's model: same state, mode, no gradients, requires_grad unchanged
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())
    assert net.training and all(p.grad is None and p.requires_grad for p in net.parameters())


@pytest.mark.parametrize("method", sorted(at_init()))
def test_layerwise_scope_keeps_exact_count_per_layer(method):
    net = small()
    mask = prune(net, method, 0.5, data(), scope="layerwise", **FEW.get(method, {}))
    for r in mask.layer_report():
        assert r["kept"] == keep_count(r["numel"], 0.5)
    assert mask.metadata["scope"] == "layerwise"


@pytest.mark.parametrize("method", ["random", "snip", "force", "synflow"])
def test_same_seed_same_mask_bytes(method, tmp_path):
    net = small()
    a = prune(net, method, 0.8, data(), seed=7, **FEW.get(method, {}))
    b = prune(net, method, 0.8, data(), seed=7, **FEW.get(method, {}))
    a.save(tmp_path / "a.mask")
    b.save(tmp_path / "b.mask")
    assert (tmp_path / "a.mask").read_bytes() == (tmp_path / "b.mask").read_bytes()
    loaded = Mask.load(tmp_path / "a.mask", net)
    assert loaded == a and loaded.metadata["options"] == a.metadata["options"]


def test_errors_are_one_line():
    net = small()
    cases = [
        (dict(method="nope", sparsity=0.5), "unknown pruning method 'nope'; choose one of: force, grasp"),
        (dict(method="snip", sparsity=1.0), "invalid sparsity"),
        (dict(method="snip", sparsity=-0.1), "invalid sparsity"),
        (dict(method="snip", sparsity="x"), "invalid sparsity"),
        (dict(method="snip", sparsity=0.5, steps=3), "unknown option 'steps' for method 'snip'"),
        (dict(method="force", sparsity=0.5, steps=0), "invalid option steps=0 for method 'force'"),
        (dict(method="force", sparsity=0.5, loss="mse"), "invalid option loss='mse'"),
        (dict(method="force", sparsity=0.5, schedule="cubic"), "invalid option schedule='cubic'"),
        (dict(method="prospr", sparsity=0.5, mode="second"), "invalid option mode='second'"),
        (dict(method="magnitude", sparsity=0.5, scope="local"), "unknown scope 'local'"),
        (dict(method="random", sparsity=0.5, seed=1.5), "invalid seed"),
    ]
    for kw, msg in cases:
        with pytest.raises(PrunebenchError, match=msg) as e:
            prune(net, batches=data(), **kw)
        assert "\n" not in str(e.value)
    with pytest.raises(PrunebenchError, match="'grasp' needs data"):
        prune(net, "grasp", 0.5)
    with pytest.raises(PrunebenchError, match="needs the input shape"):
        prune(net, "synflow", 0.5)  # conv model, no batch, no input_shape
    with pytest.raises(PrunebenchError, match="schedule must end at the target"):
        prune(net, "force", 0.5, data(), steps=2, schedule=[0.8, 0.6])
    with pytest.raises(PrunebenchError, match="batches ran out"):
        prune(net, "force", 0.5, iter(data(1)), steps=3)
    with pytest.raises(PrunebenchError, match=r"pair \(inputs, targets\)"):
        prune(net, "snip", 0.5, [torch.zeros(2, 1, 6, 6)])


def test_layer_collapse_raises_unless_allowed():
    net = nn.Sequential(nn.Linear(10, 10, bias=False), nn.Linear(10, 2, bias=False))
    with torch.no_grad():
        net[0].weight.fill_(1.0)
        net[1].weight.fill_(1e-3)
    with pytest.raises(PrunebenchError, match=r"layer collapse: 1 layer\(s\) fully pruned \(1.weight\)"):
        prune(net, "magnitude", 0.5)
    mask = prune(net, "magnitude", 0.5, allow_collapse=True)
    assert mask.metadata["collapsed"] == ["1.weight"]
    assert prune(net, "magnitude", 0.1).metadata["collapsed"] == []


def test_metadata_and_profile():
    net = small()
    mask = prune(net, "force", 0.9, data(), steps=3, seed=5)
    md = mask.metadata
    assert md["method"] == "force" and md["sparsity"] == 0.9 and md["seed"] == 5 and md["scope"] == "global"
    assert md["options"] == {"count_rule": "exact", "invert": False, "shuffle": False, "steps": 3, "schedule": "exp", "num_batches": 1, "loss": "ce", "labels": "true",
                             "bn_mode": "train"}
    assert md["section"] == "A.3" and md["kept"] == keep_count(md["total"], 0.1)
    json.dumps(md, allow_nan=False)
    assert mask.profile["wall_time_s"] > 0 and mask.profile["peak_memory_bytes"] >= 0
    assert mask.profile["device"] == "cpu"


def test_scores_entry_point():
    net = small()
    b = data()
    assert set(scores(net, "magnitude")) == set(prunable_parameters(net))
    s1 = scores(net, "force", b)
    s2 = scores(net, "snip", b, bn_mode="train")
    assert all(torch.equal(s1[k], s2[k]) for k in s1)
    with pytest.raises(PrunebenchError, match="needs data"):
        scores(net, "prospr")


def test_prune_works_under_no_grad():
    net = small()
    with torch.no_grad():
        mask = prune(net, "prospr", 0.9, data(), inner_steps=1)
    assert mask.kept == keep_count(mask.total, 0.1)


@pytest.mark.parametrize("name,dataset,shape", [("lenet300", "mnist", (1, 28, 28)),
                                                ("conv4", "mnist", (1, 28, 28)),
                                                ("resnet20", "cifar10", (3, 32, 32))])
def test_model_zoo_every_method(name, dataset, shape):
    from prunebench.library.init import initialize

    net = initialize(build_model(name, dataset), "kaiming_normal", 0)
    b = data(2, bs=8, shape=shape, classes=10)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    n = sum(p.numel() for p in prunable_parameters(net).values())
    for method in at_init():
        opts = dict(FEW.get(method, {}))
        if method == "grasp":
            opts["chunks"] = 2
        mask = prune(net, method, 0.95, b, **opts)
        assert mask.kept == keep_count(n, 0.05), method
        assert not mask.metadata["collapsed"]
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())


@pytest.mark.parametrize("method", sorted(at_init()))
def test_sanity_check_ablations_shuffle_and_invert(method):
    """shuffle keeps every layer's count at other positions; invert keeps the lowest-scored weights."""
    net = small()
    opts = FEW.get(method, {})
    base = prune(net, method, 0.7, data(), seed=3, allow_collapse=True, **opts)
    shuf = prune(net, method, 0.7, data(), seed=3, shuffle=True, allow_collapse=True, **opts)
    assert [r["kept"] for r in shuf.layer_report()] == [r["kept"] for r in base.layer_report()]
    assert shuf != base and shuf.metadata["options"]["shuffle"] is True
    assert prune(net, method, 0.7, data(), seed=3, shuffle=True, allow_collapse=True, **opts) == shuf   # seeded
    if method in ("random", "magnitude", "snip", "grasp", "prospr"):   # one scoring: invert = the other end
        s = scores(net, method, data(), seed=3, **opts)
        inv = prune(net, method, 0.7, data(), seed=3, invert=True, allow_collapse=True, **opts)
        flat = torch.cat([v.reshape(-1) for v in s.values()])
        kept = torch.cat([inv[n].reshape(-1) for n in s])
        assert kept.sum() == keep_count(flat.numel(), 0.3) and flat[kept].max() <= flat[~kept].min()
