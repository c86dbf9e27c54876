"""prunebench benchmarks: training throughput (dense vs masked, ours vs a reference-style loop), achieved
FLOP/s, and pruning-score time / peak memory per method. Never a timed test: numbers are ratios measured
side by side in one run, written to benchmarks/results/<device>.json and printed as a markdown table.

    python benchmarks/run.py                 # everything that fits this machine (CPU: reduced mode)
    python benchmarks/run.py --suite train   # train | reference | flops | prune | cells | all
    python benchmarks/run.py --suite cells --threads 1   # the CPU presets' cells, as the pipeline runs them
    python benchmarks/run.py --full          # GPU sizes even on CPU (slow)

On a CPU the suite runs in a *reduced mode* (fewer steps, smaller batches for VGG19/ResNet-50) and says so
in its output; GPU numbers need a GPU (the README table says on which device each number was taken).
The file is updated in place: a run of some suites replaces their sections and keeps the others (`sections`
records when and with how many threads each was measured). `prunebench plan` reads it.
"""
from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from prunebench.cli import main as cli  # noqa: E402
from prunebench.library.data import Data  # noqa: E402
from prunebench.library.init import initialize  # noqa: E402
from prunebench.library.masks import Mask  # noqa: E402
from prunebench.library.models import build_model, prunable_parameters  # noqa: E402
from prunebench.library.pruners import prune  # noqa: E402
from prunebench.library.pruners.topk import select  # noqa: E402
from prunebench.library.runtime import device_name, setup_determinism  # noqa: E402
from prunebench.library.signalprop import approximate_isometry, jacobian_singular_values  # noqa: E402
from prunebench.library.datasets import dataset_spec  # noqa: E402
from prunebench.library.train import TrainConfig, train  # noqa: E402

# bf16 dense tensor-core peak (FLOP/s) by device name, for the achieved-fraction column.
BF16_PEAK = {"H100": 989e12, "H200": 989e12, "A100": 312e12}


def synthetic_data(dataset: str, n_train: int, n_test: int, device: str) -> Data:
    spec = dataset_spec(dataset)
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (n_train + n_test, spec.channels, spec.size, spec.size), generator=g, dtype=torch.uint8)
    y = torch.randint(0, spec.num_classes, (n_train + n_test,), generator=g)
    return Data(spec, x[:n_train], y[:n_train], x[n_train:], y[n_train:], metadata={"content_sha256": "synthetic"}).to(device)


def random_mask(model, sparsity: float, seed=0) -> Mask:
    g = torch.Generator().manual_seed(seed)
    return select({n: torch.rand(p.shape, generator=g) for n, p in prunable_parameters(model).items()}, 1 - sparsity)


def sync(device):
    if str(device).startswith("cuda"):
        torch.cuda.synchronize()


def our_images_per_s(model_name, dataset, device, batch, steps, sparsity=None, compile=False):
    model = initialize(build_model(model_name, dataset), "kaiming_normal", 0)
    mask = random_mask(model, sparsity) if sparsity else None
    data = synthetic_data(dataset, batch * (steps + 1), batch, device)
    cfg = TrainConfig(epochs=1, batch_size=batch, steps_per_epoch=steps + 1, eval_batch_size=batch, compile=compile)
    # the timed epoch includes the first (warm-up) step; with 100 steps on a GPU it weighs little
    m = train(model, data, cfg, mask=mask, device=device, progress=False, log=lambda s: None)
    return m["_timing"]["images"] / m["_timing"]["train_s"]


def reference_images_per_s(model_name, dataset, device, batch, steps, sparsity=None, workers=4):
    """The papers' official-code style: torchvision DataLoader with CPU transforms, fp32, mask grad hooks."""
    import numpy as np
    from PIL import Image
    from torch.utils.data import DataLoader, Dataset
    from torchvision import transforms as T

    spec = dataset_spec(dataset)
    n = batch * (steps + 1)
    g = np.random.default_rng(0)
    arr = g.integers(0, 256, (n, spec.size, spec.size, spec.channels), dtype=np.uint8)
    labels = g.integers(0, spec.num_classes, n)
    tf = [T.RandomCrop(spec.size, padding=4), T.RandomHorizontalFlip()] if spec.augment else []
    tf = T.Compose(tf + [T.ToTensor(), T.Normalize(spec.mean, spec.std)])

    class DS(Dataset):
        def __len__(self):
            return n

        def __getitem__(self, i):
            img = Image.fromarray(arr[i].squeeze(-1) if spec.channels == 1 else arr[i])
            return tf(img), int(labels[i])

    model = initialize(build_model(model_name, dataset), "kaiming_normal", 0).to(device)
    if sparsity:
        mask = random_mask(model, sparsity)
        mask.apply(model)
        for name, p in prunable_parameters(model).items():
            m = mask[name].to(device, p.dtype)
            p.register_hook(lambda grad, m=m: grad * m)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
    loader = DataLoader(DS(), batch_size=batch, shuffle=True, num_workers=workers,
                        pin_memory=str(device).startswith("cuda"))
    model.train()
    t0, seen = None, 0
    for i, (x, y) in enumerate(loader):
        if i == 1:
            sync(device)
            t0 = time.perf_counter()
        x, y = x.to(device), y.to(device)
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if i >= 1:
            seen += y.numel()
    sync(device)
    return seen / (time.perf_counter() - t0)


def forward_flops(model_name, dataset, device, batch=1):
    from torch.utils.flop_counter import FlopCounterMode

    spec = dataset_spec(dataset)
    model = build_model(model_name, dataset).to(device).eval()
    with FlopCounterMode(display=False) as fc, torch.no_grad():
        model(torch.zeros(batch, spec.channels, spec.size, spec.size, device=device))
    return fc.get_total_flops() / batch


def median_of(fn, repeats):
    return statistics.median(fn() for _ in range(repeats))


def suite_train(device, reduced, out):
    rows = []
    sizes = {"lenet300": ("mnist", 128, 50 if reduced else 200),
             "resnet20": ("cifar10", 128, 5 if reduced else 100),
             "vgg19": ("cifar10", 32 if reduced else 128, 3 if reduced else 100)}
    for name, (ds, batch, steps) in sizes.items():
        reps = 3
        dense, masked = [], []
        for _ in range(reps):  # interleaved, so drift hits both alike
            dense.append(our_images_per_s(name, ds, device, batch, steps))
            masked.append(our_images_per_s(name, ds, device, batch, steps, sparsity=0.99))
        d, m = statistics.median(dense), statistics.median(masked)
        rows.append({"model": name, "dataset": ds, "batch": batch, "steps": steps, "dense_img_s": d,
                     "masked99_img_s": m, "masked_over_dense": m / d})
        print(f"  train {name:9s} batch {batch:4d}: dense {d:9.1f} img/s, masked(99%) {m:9.1f} img/s, ratio {m / d:.3f}", flush=True)
    out["train"] = rows


def suite_reference(device, reduced, out):
    rows = []
    for name, ds, batch, steps in [("resnet20", "cifar10", 128, 4 if reduced else 100),
                                   ("vgg19", "cifar10", 32 if reduced else 128, 2 if reduced else 100)]:
        ours = our_images_per_s(name, ds, device, batch, steps, sparsity=0.99)
        ref = reference_images_per_s(name, ds, device, batch, steps, sparsity=0.99, workers=2 if reduced else 8)
        rows.append({"model": name, "batch": batch, "ours_img_s": ours, "reference_img_s": ref, "speedup": ours / ref})
        print(f"  ours vs reference {name:9s}: {ours:9.1f} vs {ref:9.1f} img/s ({ours / ref:.2f}x)", flush=True)
    out["reference"] = rows


def suite_flops(device, reduced, out):
    rows = []
    peak = next((v for k, v in BF16_PEAK.items() if k in device_name(device)), None)
    for name, batch, steps in [("vgg19", 32 if reduced else 128, 2 if reduced else 100),
                               ("resnet50", 16 if reduced else 128, 2 if reduced else 100)]:
        fwd = forward_flops(name, "cifar10", device)
        ips = our_images_per_s(name, "cifar10", device, batch, steps)
        achieved = 3 * fwd * ips  # training step ~ forward + 2x backward
        rows.append({"model": name, "batch": batch, "fwd_gflop_per_image": fwd / 1e9, "img_s": ips,
                     "achieved_tflop_s": achieved / 1e12, "fraction_of_bf16_peak": achieved / peak if peak else None,
                     "epoch_s_cifar10": 50000 / ips})
        print(f"  flops {name:9s}: {fwd / 1e9:.3f} GFLOP/img fwd, {ips:.1f} img/s, {achieved / 1e12:.3f} TFLOP/s"
              + (f" = {achieved / peak:.1%} of bf16 peak" if peak else "") + f", CIFAR-10 epoch {50000 / ips:.1f}s", flush=True)
    out["flops"] = rows


def suite_prune(device, reduced, out):
    rows = []
    models = [("resnet20", 32 if reduced else 128), ("vgg19", 8 if reduced else 128)]
    if not reduced:
        models.append(("resnet50", 128))
    steps = 10 if reduced else 60
    methods = [("random", {}), ("magnitude", {}), ("snip", {}), ("grasp", {}), ("synflow", {"iterations": 10 if reduced else 100}),
               ("iter_snip", {"steps": steps}), ("force", {"steps": steps}), ("prospr", {"inner_steps": 3})]
    for name, batch in models:
        g = torch.Generator().manual_seed(0)
        batches = [(torch.randn(batch, 3, 32, 32, generator=g).to(device), torch.randint(0, 10, (batch,), generator=g).to(device))
                   for _ in range(4)]
        model = initialize(build_model(name, "cifar10"), "kaiming_normal", 0).to(device)
        res = {}
        for method, opts in methods:
            if reduced and method == "prospr" and name == "vgg19":
                continue  # full second-order meta-gradients on VGG19: minutes on a laptop CPU
            if str(device).startswith("cuda"):
                torch.cuda.reset_peak_memory_stats()
            t0 = time.perf_counter()
            mask = prune(model, method, 0.99, batches, allow_collapse=True, **opts)
            sync(device)
            wall = time.perf_counter() - t0
            res[method] = wall
            prof = getattr(mask, "profile", {}) or {}
            peak = prof.get("peak_memory_bytes")
            peak_mb = round(peak / 2**20, 1) if peak else None
            rows.append({"model": name, "method": method, "options": opts, "batch": batch, "wall_s": wall,
                         "peak_mb": peak_mb, "memory_measure": prof.get("memory_measure"), "density": mask.density})
            print(f"  prune {name:9s} {method:10s}: {wall:8.2f}s peak {peak_mb} MB ({prof.get('memory_measure')})", flush=True)
        ratio = res["force"] / (steps * res["snip"])
        rows.append({"model": name, "method": f"force{steps}_over_{steps}x_snip", "ratio": ratio})
        rows.append({"model": name, "method": "force_over_iter_snip", "ratio": res["force"] / res["iter_snip"]})
        print(f"  prune {name:9s} FORCE {steps} steps / ({steps} x SNIP) = {ratio:.3f}; FORCE / Iter SNIP = "
              f"{res['force'] / res['iter_snip']:.3f}", flush=True)
    out["prune"] = rows + [r for r in out.get("prune", []) if r.get("model") not in {m for m, _ in models}]


def suite_cells(device, reduced, out):
    """The CPU presets' cells as the pipeline runs them (one thread per job): the trainer's images/s and
    evaluation images/s of the quick / spp-mnist models at their batch size (MNIST-shaped synthetic data, 90 %
    masks), approximate isometry and the Jacobian singular values of MLP-7, SPP's epoch-long SNIP (540 batches
    of 100), and the fixed cost of a job in a worker process (opening the data: load + content check, an init)."""
    rows, iso, jsv = [], [], []
    data = synthetic_data("mnist", 54000, 10000, device)
    for name, batch, steps in (("mlp-7-tanh", 100, 1000), ("mlp-7-linear", 100, 1000), ("lenet300", 100, 600),
                               ("lenet5", 100, 100), ("conv4", 100, 60)):
        model = initialize(build_model(name, "mnist"), "kaiming_normal", 0)
        cfg = TrainConfig(max_steps=steps, eval_every=steps, batch_size=batch, lr=0.1, momentum=0.0, weight_decay=5e-4,
                          schedule="constant", augment=False)
        m = train(model, data, cfg, mask=random_mask(model, 0.9), device=device, progress=False, log=lambda s: None)
        t = m["_timing"]
        row = {"model": name, "dataset": "mnist", "batch": batch, "steps": steps, "img_s": t["images_per_s"],
               "eval_img_s": 10000 / t["eval_s"], "step_ms": 1000 * t["train_s"] / steps}
        rows.append(row)
        print(f"  cell {name:12s} batch {batch}: {row['img_s']:9.0f} img/s ({row['step_ms']:.2f} ms/step), "
              f"evaluation {row['eval_img_s']:9.0f} img/s", flush=True)
    for name in ("mlp-7-linear", "mlp-7-tanh"):
        model = initialize(build_model(name, "mnist"), "orthogonal", 0)
        mask = random_mask(model, 0.9)
        mask.apply(model)
        steps = 2000
        t0 = time.perf_counter()
        approximate_isometry(model, mask, steps=steps)
        iso.append({"model": name, "steps": steps, "wall_s": time.perf_counter() - t0})
        x = data.train_x[:5000].to(torch.float32).div(255)
        t0 = time.perf_counter()
        jacobian_singular_values(model, x)
        jsv.append({"model": name, "examples": 5000, "wall_s": time.perf_counter() - t0})
        print(f"  {name}: isometry {steps} steps {iso[-1]['wall_s']:.2f} s, JSV on 5,000 examples {jsv[-1]['wall_s']:.2f} s",
              flush=True)
    model = initialize(build_model("mlp-7-tanh", "mnist"), "orthogonal", 0)
    batches = [(data.train_x[i * 100:(i + 1) * 100].to(torch.float32).div(255), data.train_y[i * 100:(i + 1) * 100])
               for i in range(540)]
    t0 = time.perf_counter()
    prune(model, "snip", 0.9, iter(batches), num_batches=540, prune_bias=True, count_rule="official")
    prune_row = {"model": "mlp-7-tanh", "method": "snip", "options": {"num_batches": 540}, "batch": 100,
                 "wall_s": time.perf_counter() - t0}
    print(f"  SNIP over one epoch (540 batches of 100), MLP-7: {prune_row['wall_s']:.2f} s", flush=True)
    out["cells"], out["isometry"], out["jsv"] = rows, iso, jsv
    out["prune"] = [r for r in out.get("prune", []) if not (r.get("model") == "mlp-7-tanh" and r.get("method") == "snip")]
    out["prune"].append(prune_row)
    out["job_s"], out["job_overhead_s"] = job_costs(device)


def job_costs(device) -> tuple:
    """({init: s}, the fixed seconds of a training or pruning job in a worker process): `prunebench init` in
    process, and a whole `prunebench train` job of one step in process (opening the data with its content check,
    the model, the checkpoint, metrics and the run manifest with its git queries), when ../shared/data has MNIST."""
    with tempfile.TemporaryDirectory() as d:
        t0 = time.perf_counter()
        cli(["init", "--model", "mlp-7-tanh", "--dataset", "mnist", "--scheme", "orthogonal", "--out", f"{d}/i.safetensors"])
        init_s = time.perf_counter() - t0
        overhead = 0.5
        src = ROOT.parent / "shared" / "data" / "mnist"
        if src.is_dir():
            cli(["data", "--dataset", "mnist", "--cache-dir", d, "--source", str(src), "--manifest", f"{d}/mnist.json"])
            cfg = json.dumps({"max_steps": 1, "eval_every": 1, "batch_size": 100, "augment": False})
            t0 = time.perf_counter()
            cli(["train", "--init", f"{d}/i.safetensors", "--data", f"{d}/mnist.json", "--config", cfg,
                 "--val-fraction", "0.1", "--no-progress", "--out-dir", f"{d}/run"])
            one_step = 100 / 45000 + 16000 / 110000  # the step and the evaluation, at the cells' rates (subtracted)
            overhead = max(0.1, time.perf_counter() - t0 - one_step)
    print(f"  job costs: init {init_s:.2f} s, a job's fixed part {overhead:.2f} s", flush=True)
    return {"init": init_s}, overhead


SUITES = {"train": suite_train, "reference": suite_reference, "flops": suite_flops, "prune": suite_prune,
          "cells": suite_cells}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--suite", default="all", choices=list(SUITES) + ["all"])
    ap.add_argument("--device", default="auto")
    ap.add_argument("--threads", type=int, default=max(1, torch.get_num_threads()))
    ap.add_argument("--full", action="store_true", help="GPU-sized runs even on CPU")
    ap.add_argument("--out", default=None, help="JSON output (default benchmarks/results/<device>.json)")
    args = ap.parse_args(argv)
    device = ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device
    setup_determinism(args.threads, device)
    reduced = device == "cpu" and not args.full
    name = device_name(device)
    print(f"prunebench benchmarks on {name}, torch {torch.__version__}, {args.threads} threads"
          + (" -- REDUCED MODE (CPU): fewer steps and smaller batches; GPU numbers need a GPU" if reduced else ""), flush=True)
    path = Path(args.out) if args.out else ROOT / "benchmarks" / "results" / f"{'cpu' if device == 'cpu' else name.replace(' ', '_')}.json"
    out = json.loads(path.read_text()) if path.exists() else {}
    out.update({"device": name, "torch": torch.__version__, "reduced": reduced, "platform": platform.platform()})
    for key in ("threads", "date"):  # recorded per section now
        out.pop(key, None)
    for s in (SUITES if args.suite == "all" else [args.suite]):
        print(f"[{s}]", flush=True)
        SUITES[s](device, reduced, out)
        out.setdefault("sections", {})[s] = {"date": time.strftime("%Y-%m-%d"), "threads": args.threads,
                                             "torch": torch.__version__}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
