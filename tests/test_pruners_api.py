"""The public pruning API: exact counts, determinism, errors, collapse, metadata, the model zoo
(reference/methods.md A.0; DESIGN.md conventions)."""
import json

import pytest
import torch
import torch.nn as nn

from prunebench.errors import PrunebenchError
from prunebench.masks import Mask
from prunebench.models import build_model, prunable_parameters
from prunebench.pruners import METHODS, PAPER_VS_CODE_OPTIONS, paper_vs_code_markdown, prune, scores
from prunebench.pruners.common import keep_count
from prunebench.pruners.scoring import BatchStream

FEW = {"iter_snip": {"steps": 2}, "force": {"steps": 2}, "synflow": {"iterations": 2},
       "prospr": {"inner_steps": 1}}


class SmallCNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 4, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(4)
        self.conv2 = nn.Conv2d(4, 6, 3, padding=1)
        self.fc = nn.Linear(6, 3)

    def forward(self, x):
        x = torch.relu(self.bn1(self.conv1(x)))
        x = torch.relu(self.conv2(x))
        return self.fc(x.mean((2, 3)))


def small():
    torch.manual_seed(0)
    return SmallCNN()


def data(n=2, bs=6, shape=(1, 6, 6), classes=3, seed=1):
    g = torch.Generator().manual_seed(seed)
    return [(torch.randn(bs, *shape, generator=g), torch.randint(0, classes, (bs,), generator=g))
            for _ in range(n)]


def test_registry_lists_every_method():
    assert set(METHODS) == {"random", "magnitude", "snip", "grasp", "synflow", "iter_snip", "force", "prospr"}
    for row in PAPER_VS_CODE_OPTIONS:
        assert row["option"] in METHODS[row["method"]].options
        assert METHODS[row["method"]].options[row["option"]][0] == row["default"]
    assert paper_vs_code_markdown().count("\n") == len(PAPER_VS_CODE_OPTIONS) + 1


@pytest.mark.parametrize("method", sorted(METHODS))
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


@pytest.mark.parametrize("method", sorted(METHODS))
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


def test_random_seed_and_uniform_global_density():
    net = build_model("lenet300", "mnist")
    a, b = prune(net, "random", 0.9, seed=0), prune(net, "random", 0.9, seed=1)
    assert a != b
    assert a == prune(net, "random", 0.9, seed=0)
    for r in a.layer_report():  # uniform global: each layer ~ the target density (1000+ weights each)
        assert abs(r["density"] - 0.1) < 0.04
    # the random mask depends on the seed and shapes only, not on the weights
    other = build_model("lenet300", "mnist")
    assert prune(other, "random", 0.9, seed=0) == a


def test_random_given_layer_densities():
    net = small()
    dens = {"conv1.weight": 0.5, "conv2.weight": 0.1, "fc.weight": 1.0}
    n = {k: v.numel() for k, v in prunable_parameters(net).items()}
    total_kept = sum(keep_count(n[k], d) for k, d in dens.items())
    sparsity = 1 - total_kept / sum(n.values())
    mask = prune(net, "random", sparsity, densities=dens)
    assert {r["name"]: r["kept"] for r in mask.layer_report()} == {k: keep_count(n[k], d) for k, d in dens.items()}
    assert mask.metadata["scope"] == "layerwise"
    with pytest.raises(PrunebenchError, match="missing 'fc.weight'"):
        prune(net, "random", sparsity, densities={"conv1.weight": 0.5, "conv2.weight": 0.1})
    with pytest.raises(PrunebenchError, match="sparsity asks"):
        prune(net, "random", 0.01, densities=dens)


def test_ties_broken_by_position():
    net = nn.Sequential(nn.Linear(4, 3, bias=False), nn.Linear(3, 2, bias=False))
    with torch.no_grad():
        for p in net.parameters():
            p.fill_(0.5)
    mask = prune(net, "magnitude", 1 - 7 / 18, allow_collapse=True)  # keep 7 of 18 equal scores: the first 7 in layer order
    flat = torch.cat([mask[n].reshape(-1) for n in mask])
    assert flat.tolist() == [True] * 7 + [False] * 11
    lw = prune(net, "magnitude", 0.5, scope="layerwise")
    assert lw["0.weight"].reshape(-1).tolist() == [True] * 6 + [False] * 6
    assert lw["1.weight"].reshape(-1).tolist() == [True] * 3 + [False] * 3


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
    assert md["options"] == {"steps": 3, "schedule": "exp", "num_batches": 1, "loss": "ce", "labels": "true",
                             "bn_mode": "train"}
    assert md["section"] == "A.3" and md["kept"] == keep_count(md["total"], 0.1)
    json.dumps(md, allow_nan=False)
    assert mask.profile["wall_time_s"] > 0 and mask.profile["peak_memory_bytes"] >= 0
    assert mask.profile["device"] == "cpu"


def test_batch_stream_semantics():
    b = data(3)
    s = BatchStream(b)
    assert [s.next()[0].data_ptr() for _ in range(4)] == [x.data_ptr() for x, _ in b + b[:1]]  # cycled
    single = BatchStream(b[0])
    assert single.next()[0] is b[0][0] and single.next()[0] is b[0][0]

    class Loader:  # re-iterable (like a DataLoader): restarted when exhausted
        def __iter__(self):
            return iter(b[:2])

    s = BatchStream(Loader())
    assert [s.next()[0].data_ptr() for _ in range(3)] == [b[0][0].data_ptr(), b[1][0].data_ptr(), b[0][0].data_ptr()]

    drawn = []

    def fresh():  # an infinite iterator: FORCE draws num_batches fresh batches per step
        i = 0
        while True:
            drawn.append(i)
            yield data(1, seed=100 + i)[0]
            i += 1

    prune(small(), "force", 0.5, fresh(), steps=3, num_batches=2)
    assert len(drawn) == 6


def test_snip_prune_bias_ranks_biases_too():
    net = small()
    with torch.no_grad():
        net.fc.bias.copy_(torch.tensor([5.0, -5.0, 0.0]))
    b = data()
    mask = prune(net, "snip", 0.5, b, prune_bias=True)
    assert list(mask)[-2:] == ["conv2.bias", "fc.bias"]
    n = sum(p.numel() for p in prunable_parameters(net).values()) + 6 + 3
    assert mask.total == n and mask.kept == keep_count(n, 0.5) and mask.metadata["biases_in_mask"]
    s = scores(net, "snip", b, prune_bias=True)
    assert s["fc.bias"][2] == 0 and s["fc.bias"][0] > 0  # |b * g|: the zero bias scores 0
    assert not prune(net, "snip", 0.5, b).metadata["biases_in_mask"]


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
    from prunebench.init import initialize

    net = initialize(build_model(name, dataset), "kaiming_normal", 0)
    b = data(2, bs=8, shape=shape, classes=10)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    n = sum(p.numel() for p in prunable_parameters(net).values())
    for method in METHODS:
        opts = dict(FEW.get(method, {}))
        if method == "grasp":
            opts["chunks"] = 2
        mask = prune(net, method, 0.95, b, **opts)
        assert mask.kept == keep_count(n, 0.05), method
        assert not mask.metadata["collapsed"]
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())


def test_snip_reinit_scores_a_redrawn_copy():
    net = small()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    b = data()
    a = scores(net, "snip", b, reinit="xavier_normal", seed=3)
    assert all(torch.equal(a[k], v) for k, v in scores(net, "snip", b, reinit="xavier_normal", seed=3).items())
    assert not torch.equal(a["fc.weight"], scores(net, "snip", b, reinit="xavier_normal", seed=4)["fc.weight"])
    assert not torch.equal(a["fc.weight"], scores(net, "snip", b)["fc.weight"])
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())
    with pytest.raises(PrunebenchError, match="invalid option reinit='default'"):
        prune(net, "snip", 0.5, b, reinit="default")
