"""The cases of the golden-hash tests and the digests of their outputs, shared by the tests and by
`tests/golden/record.py`, which ran them on the code of commit 7ba29fc (before issue 19's pruning-time work and
the trainer's restructuring) to write the hashes in this folder.

Only names that both that commit and this checkout have are used here: the recorder imports this module with
the old checkout's `src` on PYTHONPATH, the tests with this one's. A digest is a sha256: of a file's bytes, of
a tensor's dtype, shape and bytes, or of a list of digests. The hashes hold for the CPU with torch 2.14.1 (the
version CI pins), as each file's `produced_by` says.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch

from prunebench.library.data import Data
from prunebench.library.data.batches import eval_batches, train_batches
from prunebench.library.datasets import dataset_spec
from prunebench.library.init import initialize
from prunebench.library.models import build_model, prunable_modules, prunable_parameters
from prunebench.library.pruners import prune, topk
from prunebench.library.pruners.during import make_during_training
from prunebench.library.train import TrainConfig

HERE = Path(__file__).resolve().parent


def golden(name: str) -> dict:
    """One of the golden files, for a test: skipped (with the reason) under another torch than the one that
    recorded it, whose arithmetic may differ in the last bit."""
    import pytest

    doc = json.loads((HERE / name).read_text())
    recorded = doc["produced_by"]["torch"].split("+")[0]
    if torch.__version__.split("+")[0] != recorded:
        pytest.skip(f"tests/golden/{name} holds the bytes of torch {recorded} on the CPU, this is torch "
                    f"{torch.__version__}: record them again with tests/golden/record.py to compare")
    return doc


def same_case(recorded, case) -> bool:
    """Whether a case definition is the one the golden file was recorded for (JSON has lists, not tuples)."""
    return recorded == json.loads(json.dumps(case))


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def tensor_digest(t: torch.Tensor) -> str:
    t = t.detach().cpu().contiguous()
    return sha256(f"{t.dtype} {tuple(t.shape)}\n".encode() + t.numpy().tobytes())


def joint_digest(digests) -> str:
    return sha256("\n".join(digests).encode())


def file_digest(path):
    """The sha256 of a file's bytes, None when it does not exist."""
    return sha256(path.read_bytes()) if path.exists() else None


def json_digest(value) -> str:
    return sha256(json.dumps(value, sort_keys=True).encode())


def mask_digest(mask) -> str:
    """A Mask's layer names in order and their tensors (what Mask.__eq__ compares, and the dtypes)."""
    return joint_digest(f"{n} {tensor_digest(m)}" for n, m in mask.masks.items())


def batch_digests(batches) -> list:
    """One digest per (x, y) batch."""
    return [joint_digest([tensor_digest(x), tensor_digest(y)]) for x, y in batches]


# -- masks of the at-init pruners (tests/pruners/test_mask_bytes.py) ---------------------------------------------

MASK_CASES = [  # (method, sparsity, options)
    ("random", 0.9, {}), ("random", 0.97, {"count_rule": "official"}),
    ("magnitude", 0.9, {}), ("magnitude", 0.9, {"count_rule": "official"}),
    ("snip", 0.9, {}), ("snip", 0.95, {"count_rule": "official", "prune_bias": True, "num_batches": 2}),
    ("snip", 0.9, {"labels": "uniform", "bn_mode": "train"}), ("snip", 0.9, {"reinit": "xavier_normal"}),
    ("grasp", 0.9, {}), ("grasp", 0.95, {"count_rule": "official", "chunks": 2, "reinit_linear": True}),
    ("synflow", 0.99, {"iterations": 7}), ("synflow", 0.99, {"iterations": 5, "double": False}),
    ("synflow", 0.95, {"iterations": 4, "count_rule": "official"}),
    ("iter_snip", 0.99, {"steps": 6}), ("iter_snip", 0.99, {"steps": 5, "count_rule": "official", "loss": "neg_logit"}),
    ("iter_snip", 0.95, {"steps": 3, "schedule": "linear", "num_batches": 2}),
    ("force", 0.99, {"steps": 6}), ("force", 0.99, {"steps": 5, "count_rule": "official", "loss": "neg_logit"}),
    ("force", 0.95, {"steps": 4, "schedule": "linear"}), ("force", 0.9, {"steps": 3, "invert": True}),
    ("prospr", 0.9, {"inner_steps": 2}), ("prospr", 0.95, {"inner_steps": 1, "count_rule": "official"}),
    ("snip", 0.9, {"shuffle": True}), ("iter_snip", 0.9, {"steps": 3, "invert": True}),
]
MASK_IDS = [f"{m}-{i}" for i, (m, _, _) in enumerate(MASK_CASES)]
SCOPES = ("global", "layerwise")


def random_batches(shape, n=4, bs=8, classes=10, seed=3):
    g = torch.Generator().manual_seed(seed)
    return [(torch.randn(bs, *shape, generator=g), torch.randint(0, classes, (bs,), generator=g)) for _ in range(n)]


def mask_nets() -> dict:
    """The two models the mask cases prune, with their batches: a convolutional net with BatchNorm, an MLP."""
    return {"conv4": (initialize(build_model("conv4", "cifar10"), "kaiming_normal", 0), random_batches((3, 32, 32))),
            "mlp": (initialize(build_model("mlp-4-tanh", "mnist"), "orthogonal", 1), random_batches((1, 28, 28)))}


def mask_file_digests(nets, method, sparsity, options, scope, tmp) -> dict:
    """Model name -> the sha256 of the mask file that `prune` saves for one case."""
    out = {}
    for name, (model, b) in nets.items():
        mask = prune(model, method, sparsity, list(b), scope=scope, seed=5, allow_collapse=True, **options)
        mask.save(tmp / f"{name}.safetensors")
        out[name] = file_digest(tmp / f"{name}.safetensors")
    return out


# -- the selection core (tests/pruners/test_topk_fast.py) --------------------------------------------------------

TOP_MASK_LEVELS = (3, 50, 10**9)
TOP_MASK_SEEDS = range(6)
TOP_MASK_KS = (0, 1, 7, 123, 250, 299, 499, 500, 900)
OFFICIAL_RULES = ("round", "ceil", "int_keep_ties", "int_prune_ties", "grasp")
OFFICIAL_LEVELS = (5, 10**9)


def tie_heavy(n, levels, seed):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, levels, (n,), generator=g).double() / levels


def top_mask_inputs(levels, seed):
    """The scores and the pool of one (levels, seed) case of top_mask."""
    return tie_heavy(500, levels, seed), torch.rand(500, generator=torch.Generator().manual_seed(seed + 9)) < 0.6


def top_mask_digest(levels, seed) -> str:
    """top_mask at every k, without and with the pool, for one (levels, seed)."""
    x, pool = top_mask_inputs(levels, seed)
    return joint_digest([tensor_digest(topk.top_mask(x, k)) for k in TOP_MASK_KS] +
                        [tensor_digest(topk.top_mask(x, k, pool)) for k in TOP_MASK_KS])


def official_input(levels):
    return tie_heavy(2000, levels, 1) - 0.3


def official_digest(rule, levels) -> str:
    return tensor_digest(topk.official_keep(official_input(levels), rule, density=0.05, sparsity=0.95))


def select_inputs():
    g = torch.Generator().manual_seed(0)
    scores = {"a": torch.rand(30, 4, generator=g), "b": torch.rand(7, generator=g)}
    eligible = {n: torch.rand(s.shape, generator=g) < 0.5 for n, s in scores.items()}
    return scores, eligible


def select_digests(scope) -> dict:
    scores, eligible = select_inputs()
    return {"select": mask_digest(topk.select(scores, 0.3, scope, eligible)),
            "select_official": mask_digest(topk.select_official(scores, "int_keep_ties", scope, density=0.3))}


# -- the training loop (tests/test_train_equivalence.py) ---------------------------------------------------------

TRAIN_FILES = ("metrics.json", "checkpoint.safetensors", "final_mask.safetensors")

TRAIN_CASES = {
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
# (case, keyword): interrupted there, then resumed
RESUMES = [("masked_sgd", {"stop_after_epoch": 1}), ("fggp_pre_step", {"stop_after_epoch": 1}),
           ("spp_steps_val_bias_mask", {"stop_after_step": 4}), ("spp_steps_val_bias_mask", {"stop_after_step": 8})]
# (dataset, training examples, batch size, drop_last), at epochs 0 and 3
FEEDS = [("cifar10", 70, 16, False), ("cifar10", 64, 16, True), ("mnist", 75, 20, False)]
FEED_EPOCHS = (0, 3)
FEED_SEED = 7


def resume_id(case, stop) -> str:
    (key, value), = stop.items()
    return f"{case}/{key}={value}"


def feed_id(dataset, n, batch, drop_last, epoch) -> str:
    return f"{dataset}-{n}-{batch}-{'drop_last' if drop_last else 'keep_last'}/epoch={epoch}"


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
    return topk.select({n: torch.rand(p.shape, generator=g) for n, p in params.items()}, 1 - sparsity)


def make_model(name, dataset, scheme="kaiming_normal", seed=0):
    return initialize(build_model(name, dataset), scheme, seed)


def run_case(fn, case, out, **kw):
    """Train one case with the training function `fn` into `out`: (the returned metrics, the model)."""
    c = TRAIN_CASES[case]
    ds = c.get("dataset", "mnist")
    model = make_model(c["model"], ds, c.get("scheme", "kaiming_normal"))
    mask = random_mask(model, c["mask"], biases=c.get("biases", False)) if "mask" in c else None
    during = make_during_training(c["during"][0], c["during"][1], **c["during"][2]) if "during" in c else None
    data = fake_data(ds, n_train=c.get("n_train", 150), n_val=c.get("n_val", 0))
    m = fn(model, data, TrainConfig(**c["cfg"]), mask=mask, during=during, out_dir=out, progress=False,
           log=lambda s: None, **kw)
    return m, model


def returned(metrics: dict) -> dict:
    """The returned metrics without the run-specific entries (timings, the mask object)."""
    return {k: v for k, v in metrics.items() if not k.startswith("_")}


def weights_digest(model) -> str:
    """The state dict's names in order, their dtypes, shapes and values."""
    return joint_digest(f"{k} {tensor_digest(v)}" for k, v in model.state_dict().items())


def run_digests(out, metrics, model=None) -> dict:
    """The files a run left in `out` (their names; the bytes of all but timing.json), what it returned and
    (given the model) its weights."""
    d = {"files": sorted(p.name for p in out.iterdir()), **{f: file_digest(out / f) for f in TRAIN_FILES}}
    d["returned"] = json_digest(returned(metrics))
    if model is not None:
        d["weights"] = weights_digest(model)
    return d


def diverging_run(fn, out):
    """LeNet-300-100 with its weights scaled by 1e30 and a learning rate of 10: the loss is NaN at once."""
    model = make_model("lenet300", "mnist")
    with torch.no_grad():
        for p in prunable_parameters(model).values():
            p.mul_(1e30)
    cfg = TrainConfig(epochs=2, batch_size=32, lr=10.0, momentum=0.9, weight_decay=0.0)
    return fn(model, fake_data(), cfg, out_dir=out, progress=False, log=lambda s: None), model


def feed_data(dataset, n):
    return fake_data(dataset, n_train=n)


def eval_data():
    return fake_data("cifar10", n_train=40, n_test=37)


EVAL_SPLIT, EVAL_BATCH = "test", 10


# -- everything, as the recorder writes it ----------------------------------------------------------------------

def record_masks(tmp) -> dict:
    nets = mask_nets()
    return {f"{cid}/{scope}": {"case": [m, s, o], "sha256": mask_file_digests(nets, m, s, o, scope, tmp)}
            for cid, (m, s, o) in zip(MASK_IDS, MASK_CASES) for scope in SCOPES}


def record_topk() -> dict:
    return {"top_mask": {f"levels={lv}/seed={s}": top_mask_digest(lv, s) for lv in TOP_MASK_LEVELS
                         for s in TOP_MASK_SEEDS},
            "official_keep": {f"{r}/levels={lv}": official_digest(r, lv) for r in OFFICIAL_RULES
                              for lv in OFFICIAL_LEVELS},
            "select": {scope: select_digests(scope) for scope in SCOPES}}


def record_training(train, tmp) -> dict:
    runs = {}
    for case in sorted(TRAIN_CASES):
        m, model = run_case(train, case, tmp / case)
        runs[case] = {"case": TRAIN_CASES[case], "sha256": run_digests(tmp / case, m, model)}
    interrupted = {}
    for case, stop in RESUMES:
        out = tmp / resume_id(case, stop).replace("/", "-")
        m, _ = run_case(train, case, out, **stop)
        interrupted[resume_id(case, stop)] = run_digests(out, m)
    m, _ = diverging_run(train, tmp / "diverging")
    diverging = {"metrics.json": file_digest(tmp / "diverging" / "metrics.json"), "epoch": m["diverged"]["epoch"]}
    feeds = {}
    for dataset, n, batch, drop_last in FEEDS:
        data = feed_data(dataset, n)
        for epoch in FEED_EPOCHS:
            feeds[feed_id(dataset, n, batch, drop_last, epoch)] = batch_digests(
                train_batches(data, batch, epoch=epoch, seed=FEED_SEED, drop_last=drop_last))
    return {"runs": runs, "interrupted": interrupted, "diverging": diverging, "train_batches": feeds,
            "eval_batches": batch_digests(eval_batches(eval_data(), EVAL_SPLIT, EVAL_BATCH))}
