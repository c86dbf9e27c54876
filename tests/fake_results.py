"""Realistic fake pipeline outputs (summary.csv, layers.csv, history.csv) for figure/report tests.

`fake_tables(...)` returns the three DataFrames; `write_fake_results(dir, ...)` writes them.
Deterministic (numpy RandomState(0)); column sets are the schema of `prunebench.report.tables` (the aggregator's).
`diverge`: cells (dataset, model, init, arm, sparsity, seed) whose training diverged (no final accuracy).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from prunebench.library.artifacts import write_checked_text
from prunebench.report.tables import HISTORY_COLUMNS, LAYERS_COLUMNS, SUMMARY_COLUMNS

PAI_ARMS = ("dense", "random", "magnitude", "snip", "grasp", "synflow", "iter_snip", "force", "prospr",
            "prospr_m1", "prospr_m5", "snip_unsup", "snip_ai", "random_ai")
FGGP_ARMS = ("fggp", "gmp", "mfgn_annealed", "fggp_sparse", "gmp_sparse", "mfgn_annealed_sparse")
ABLATION_ARMS = ("snip", "snip_shuffle", "snip_invert", "snip_reinit", "force", "force_shuffle")
_ABLATION_DROP = {"shuffle": 1.3, "invert": 4.0, "reinit": 1.05}

# accuracy drop per decade of sparsity beyond 90% (lower = better at extreme sparsity)
_DROP = {"random": 0.09, "magnitude": 0.07, "snip": 0.06, "grasp": 0.04, "synflow": 0.035, "iter_snip": 0.03,
         "force": 0.02, "prospr": 0.018, "snip_unsup": 0.063, "fggp": 0.01, "gmp": 0.02, "mfgn_annealed": 0.015}
_PRUNE_S = {"random": 0.01, "magnitude": 0.01, "snip": 0.4, "grasp": 1.8, "synflow": 2.5, "iter_snip": 9.0,
            "force": 11.0, "prospr": 5.0, "snip_unsup": 0.4}
_LAYERS = {
    "lenet300": [("fc1.weight", 784 * 300), ("fc2.weight", 300 * 100), ("fc3.weight", 100 * 10)],
    "mlp-7-tanh": [("fc1.weight", 784 * 100)] + [(f"fc{i}.weight", 100 * 100) for i in range(2, 7)]
    + [("fc7.weight", 100 * 10)],
    "resnet20": [("conv1.weight", 432)]
    + [(f"layer1.{b}.conv{c}.weight", 2304) for b in range(3) for c in (1, 2)]
    + [(f"layer2.{b}.conv{c}.weight", 4608 if (b, c) == (0, 1) else 9216) for b in range(3) for c in (1, 2)]
    + [(f"layer3.{b}.conv{c}.weight", 18432 if (b, c) == (0, 1) else 36864) for b in range(3) for c in (1, 2)]
    + [("fc.weight", 640)],
}
_BASE_ACC = {"mnist": 0.982, "cifar10": 0.915}
_NOTE = {"mnist": "MNIST", "cifar10": "CIFAR-10 (JPEG q75 copy)"}
EPOCHS = 5


# what the grid would know of each fake arm (the aggregator writes it as summary columns): its method and what
# sets it apart — ablation (and of which arm), isometry, uniform labels, ProsPr's M, a sparse start
ARM_SPEC = {
    "dense": {}, "random": {}, "magnitude": {}, "snip": {}, "grasp": {}, "synflow": {}, "iter_snip": {}, "force": {},
    "prospr": {"meta_steps": 3}, "prospr_m1": {"method": "prospr", "meta_steps": 1},
    "prospr_m5": {"method": "prospr", "meta_steps": 5},
    "snip_unsup": {"method": "snip", "supervision": "unsupervised", "options": {"labels": "uniform"}},
    "snip_ai": {"method": "snip", "isometry": True}, "random_ai": {"method": "random", "isometry": True},
    "fggp": {"start": "dense"}, "gmp": {"start": "dense"}, "mfgn_annealed": {"start": "dense"},
    "fggp_sparse": {"method": "fggp", "start": "sparse50", "options": {"initial_density": 0.5}},
    "gmp_sparse": {"method": "gmp", "start": "sparse50", "options": {"initial_density": 0.5}},
    "mfgn_annealed_sparse": {"method": "mfgn_annealed", "start": "sparse50", "options": {"initial_density": 0.5}},
    "snip_shuffle": {"method": "snip", "ablation": "shuffle", "ablation_of": "snip", "options": {"shuffle": True}},
    "snip_invert": {"method": "snip", "ablation": "invert", "ablation_of": "snip", "options": {"invert": True}},
    "snip_reinit": {"method": "snip", "ablation": "reinit", "ablation_of": "snip"},
    "force_shuffle": {"method": "force", "ablation": "shuffle", "ablation_of": "force", "options": {"shuffle": True}},
}


def _spec(arm: str) -> dict:
    spec = ARM_SPEC[arm]
    return dict(spec, method=spec.get("method", arm))


def _method(arm: str) -> str:
    return _spec(arm)["method"]


def _cubic(t, d_i, d_f, t_end=0.8):
    return d_f + (d_i - d_f) * (1 - min(t / t_end, 1.0)) ** 3


def fake_tables(preset="test", seeds=(0, 1), drop_arms=(), grids=None, diverge=()):
    """(summary, layers, history) DataFrames.

    grids: list of (dataset, model, arms, sparsities, inits); default: MNIST/LeNet-300-100 with the
    pruning-at-init arms (SNIP/SPP arms also under orthogonal init, with JSVs) and CIFAR-10/ResNet-20
    with the pruning-at-init and FGGP arms."""
    rng = np.random.RandomState(0)
    if grids is None:
        grids = [
            ("mnist", "lenet300", PAI_ARMS, (0.9, 0.99, 0.999), ("kaiming_normal",)),
            ("mnist", "lenet300", ("dense", "snip", "snip_ai", "snip_unsup"), (0.9, 0.99), ("orthogonal",)),
            ("cifar10", "resnet20", PAI_ARMS[:9], (0.9, 0.98, 0.995), ("kaiming_normal",)),
            ("cifar10", "resnet20", FGGP_ARMS, (0.9, 0.95, 0.98), ("kaiming_normal",)),
            ("mnist", "lenet300", ABLATION_ARMS[1:4] + ABLATION_ARMS[5:], (0.9, 0.99, 0.999), ("kaiming_normal",)),
        ]
    summary, layers, history = [], [], []
    for dataset, model, arms, sparsities, inits in grids:
        for arm in arms:
            if arm in drop_arms:
                continue
            method = _method(arm)
            for init in inits:
                for s in ((0.0,) if arm == "dense" else sparsities):
                    for seed in seeds:
                        decades = max(0.0, -np.log10(1 - s) - 1) if s > 0 else 0.0
                        drop = _DROP.get(method, 0.05) * (decades * 2.2) ** 2 / 2
                        spec = _spec(arm)
                        if spec.get("isometry"):
                            drop *= 0.7
                        if spec.get("start", "").startswith("sparse"):
                            drop *= 1.1
                        if spec.get("ablation"):
                            drop = drop * _ABLATION_DROP[spec["ablation"]] + 0.01
                        if spec["method"] == "prospr" and spec["meta_steps"] != 3:
                            drop *= {1: 1.3, 5: 0.9}[spec["meta_steps"]]
                        acc = float(np.clip(_BASE_ACC[dataset] - drop + rng.normal(0, 0.003), 0.1, 1.0))
                        collapsed = int(method in ("snip", "grasp") and s >= 0.995 or (method == "snip" and s >= 0.99
                                                                                       and model == "lenet300"))
                        if collapsed:
                            acc = 0.1 + rng.uniform(0, 0.01)
                        failed = (dataset, model, init, arm, s, seed) in diverge
                        row = dict(
                            preset=preset, dataset=dataset, model=model, arm=arm, method=method, sparsity=s,
                            seed=seed, init=init, ablation=spec.get("ablation"), ablation_of=spec.get("ablation_of"),
                            trained=True, density=1 - s, epochs=EPOCHS, final_acc=np.nan if failed else acc,
                            diverged=failed, diverged_step=EPOCHS * 100 if failed else np.nan,
                            best_acc=min(1.0, acc + abs(rng.normal(0.002, 0.001))), final_loss=-np.log(max(acc, 0.1)),
                            train_time_s=30 + rng.uniform(0, 3), prune_time_s=(np.nan if arm == "dense" else
                                                                               _PRUNE_S.get(method, 1.0) * (1 + 0.1 * rng.rand())),
                            prune_peak_mb=100 + 10 * rng.rand(), collapsed=collapsed, layers=len(_LAYERS[model]),
                            isometry=bool(spec.get("isometry")), supervision=spec.get("supervision", "supervised"),
                            meta_steps=spec.get("meta_steps", np.nan), start=spec.get("start", "init"),
                            options=json.dumps(spec.get("options", {}), sort_keys=True), source_note=_NOTE[dataset],
                            device="cpu",
                        )
                        for stage in ("init", "prune", "isometry"):
                            for st in ("mean", "std", "min", "max"):
                                row[f"jsv_{stage}_{st}"] = np.nan
                        if dataset == "mnist" and method in ("snip", "random") and arm != "snip_unsup" and s > 0 \
                                and not spec.get("ablation"):
                            iso = init == "orthogonal"
                            row.update(jsv_init_mean=(1.0 if iso else 1.6) + rng.normal(0, 0.01),
                                       jsv_init_std=0.05 if iso else 0.9, jsv_init_min=0.9 if iso else 0.02,
                                       jsv_init_max=1.1 if iso else 5.0,
                                       jsv_prune_mean=0.2 * (1 - s) * 10 + 0.01, jsv_prune_std=0.3,
                                       jsv_prune_min=1e-5, jsv_prune_max=2.0, jsv_examples=10,
                                       jsv_init_examples=10, jsv_prune_examples=10)
                            if spec.get("isometry"):
                                row.update(jsv_isometry_mean=0.97 + rng.normal(0, 0.01), jsv_isometry_std=0.12,
                                           jsv_isometry_min=0.6, jsv_isometry_max=1.3, jsv_isometry_examples=10)
                        summary.append(row)
                        # layers
                        if s > 0:
                            sizes = np.array([n for _, n in _LAYERS[model]], dtype=float)
                            if method in ("random", "magnitude"):
                                w = np.ones_like(sizes)
                            else:
                                w = sizes ** {"snip": -0.45, "grasp": -0.3}.get(method, -0.2)
                            d = np.clip(w / (w * sizes).sum() * sizes.sum() * (1 - s), 0, 1)
                            kept = np.minimum(np.round(d * sizes), sizes).astype(int)
                            if collapsed:
                                kept[-2] = 0
                            for i, ((lname, n), k) in enumerate(zip(_LAYERS[model], kept)):
                                layers.append(dict(dataset=dataset, model=model, arm=arm, method=method, sparsity=s,
                                                   seed=seed, init=init, layer_index=i, layer=lname, numel=n, kept=int(k),
                                                   density=k / n))
                        # history (a diverged run: none after the epoch it diverged in)
                        for ep in range(1, EPOCHS + (0 if failed else 1)):
                            t = ep / EPOCHS
                            if method in ("fggp", "gmp", "mfgn_annealed"):
                                dens = _cubic(t, 0.5 if spec.get("start", "").startswith("sparse") else 1.0, 1 - s)
                            else:
                                dens = 1 - s
                            history.append(dict(dataset=dataset, model=model, arm=arm, method=method, sparsity=s,
                                                seed=seed, init=init, epoch=ep, step=ep * 100, lr=0.1 if ep < 4 else 0.01,
                                                train_loss=2.0 / ep * (0.8 if spec.get("isometry") else 1.0),
                                                train_acc=acc * (0.7 + 0.3 * t),
                                                test_loss=2.1 / ep, test_acc=acc * (0.7 + 0.3 * t), density=dens))
    return (pd.DataFrame(summary, columns=list(SUMMARY_COLUMNS)), pd.DataFrame(layers, columns=list(LAYERS_COLUMNS)),
            pd.DataFrame(history, columns=list(HISTORY_COLUMNS)))


def write_table(df: pd.DataFrame, path) -> None:
    """Write a results table as the aggregator does: CSV plus its checksum sidecar."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    write_checked_text(path, df.to_csv(index=False, lineterminator="\n"))


def write_fake_results(out_dir, **kw) -> Path:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    s, lay, h = fake_tables(**kw)
    write_table(s, out / "summary.csv")
    write_table(lay, out / "layers.csv")
    write_table(h, out / "history.csv")
    return out
