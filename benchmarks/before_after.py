"""Issue 19's CPU work, before and after, measured side by side in one process (interleaved, medians).

    python benchmarks/before_after.py [--repeats 3] [--quick]     # writes benchmarks/results/cpu-before-after.json

"Before" is the code of commit 7ba29fc: its package (the training loop with its batch streams, the pruners),
extracted with `git archive` and imported beside this one as `prunebench_7ba29fc`, and, for approximate
isometry and the Jacobian singular values, that commit's signalprop.py read with `git show`. "After" is this
checkout. Each comparison runs both on the same inputs in turn (A B A B ...), so drift of a shared machine hits
both alike; the ratio is of the medians.

  train     one spp-mnist training cell in process: MLP-7-tanh, a 90 % mask over weights and biases, batch
            100, 10,000 steps, evaluation on the test and validation splits and a checkpoint every 1,000
            (real MNIST from ../shared/data when present, else MNIST-shaped synthetic data); --quick: 2,000 steps
  isometry  10,000 steps of approximate isometry on MLP-7-linear with SNIP's 90 % mask (the spp-mnist
            snip_ai cell's job; --quick: 3,000)
  jsv       the Jacobian singular values of MLP-7 on 5,000 examples
  prune     FORCE and Iter SNIP (10 steps) and SynFlow (10 iterations) on VGG19 (batch 8) and ResNet-20 (batch
            32) at 99 % (reduced sizes: a CPU), with FORCE / Iter SNIP
  start     `prunebench train` as a fresh process for 10 steps (imports, set-up, data, checkpoint; CPU time of the
            child processes)

Nothing here is a timed test: the figures go to benchmarks/README.md with the machine they were measured on.
"""
from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import types
from dataclasses import fields
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from prunebench.library import signalprop as new_signal  # noqa: E402
from prunebench.library.data import open_data  # noqa: E402
from prunebench.library.init import initialize  # noqa: E402
from prunebench.library.models import build_model, prunable_modules, prunable_parameters  # noqa: E402
from prunebench.library.pruners import prune as new_prune  # noqa: E402
from prunebench.library.pruners.topk import select  # noqa: E402
from prunebench.library.runtime import device_name, setup_determinism  # noqa: E402
from prunebench.library.train import TrainConfig, train as new_train  # noqa: E402

OLD_COMMIT = "7ba29fc"
OLD_PACKAGE = "prunebench_7ba29fc"
SHARED_MNIST = ROOT.parent / "shared" / "data" / "mnist"


def old_module(path: str, name: str):
    """A module of the old commit, read with `git show` and executed (its imports resolve to this checkout)."""
    src = subprocess.run(["git", "-C", str(ROOT), "show", f"{OLD_COMMIT}:{path}"], capture_output=True, text=True,
                         check=True).stdout
    mod = types.ModuleType(name)
    mod.__file__ = f"<{OLD_COMMIT}:{path}>"
    exec(compile(src, mod.__file__, "exec"), mod.__dict__)
    return mod


def old_package(tmp: Path, module: str):
    """A module of the old commit's package (`git archive` into `tmp`), imported as `prunebench_7ba29fc`: its
    imports and its module-name strings renamed, nothing else, so that it never imports this checkout."""
    root = tmp / "old-package"
    if not root.exists():
        root.mkdir()
        arch = subprocess.run(["git", "-C", str(ROOT), "archive", OLD_COMMIT, "src/prunebench"], capture_output=True,
                              check=True).stdout
        subprocess.run(["tar", "-x", "-C", str(root)], input=arch, check=True)
        for f in (root / "src" / "prunebench").rglob("*.py"):
            text = re.sub(r"(?m)^(\s*(?:from|import) )prunebench\b", rf"\1{OLD_PACKAGE}", f.read_text())
            f.write_text(re.sub(r"([\"'])prunebench\.", rf"\1{OLD_PACKAGE}.", text))
        (root / "src" / "prunebench").rename(root / OLD_PACKAGE)
        sys.path.insert(0, str(root))
    return importlib.import_module(f"{OLD_PACKAGE}.{module}")


def same_masks(a, b) -> bool:
    """Two masks (of either package) hold the same layers in the same order with the same values."""
    return list(a.masks) == list(b.masks) and all(torch.equal(a.masks[k], b.masks[k]) for k in a.masks)


def side_by_side(fns: dict, repeats: int) -> dict:
    """Each function `repeats` times, in turn; wall and CPU seconds (this process's user + system time, which
    other jobs on a shared machine disturb much less than the wall clock), medians and after / before."""
    wall = {k: [] for k in fns}
    cpu = {k: [] for k in fns}
    for _ in range(repeats):
        for k, fn in fns.items():
            t0, c0 = time.perf_counter(), time.process_time()
            fn()
            wall[k].append(time.perf_counter() - t0)
            cpu[k].append(time.process_time() - c0)
    med = {k: statistics.median(v) for k, v in wall.items()}
    cmed = {k: statistics.median(v) for k, v in cpu.items()}
    return {"median_s": med, "median_cpu_s": cmed, "runs_s": wall, "runs_cpu_s": cpu,
            "after_over_before": med["after"] / med["before"], "after_over_before_cpu": cmed["after"] / cmed["before"]}


def mnist(tmp: Path):
    """The MNIST cache (real copy when ../shared/data has it) with a 10 % validation split, as spp-mnist."""
    from prunebench.cli import main as cli

    if SHARED_MNIST.is_dir():
        cli(["data", "--dataset", "mnist", "--cache-dir", str(tmp), "--source", str(SHARED_MNIST),
             "--manifest", str(tmp / "mnist.json")])
        return open_data(str(tmp / "mnist.json"), "cpu", val_fraction=0.1, val_seed=1), "MNIST (../shared/data)"
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import run as bench  # noqa: E402 (the benchmark suite's synthetic data, only without the real copy)

    d = bench.synthetic_data("mnist", 60000, 10000, "cpu")
    n = 54000
    return type(d)(d.spec, d.train_x[:n], d.train_y[:n], d.test_x, d.test_y, d.train_x[n:], d.train_y[n:],
                   metadata=d.metadata), "synthetic MNIST-shaped data"


def bias_mask(model, sparsity, seed=1):
    g = torch.Generator().manual_seed(seed)
    params = dict(prunable_parameters(model))
    params.update({f"{n}.bias": m.bias for n, m in prunable_modules(model).items() if m.bias is not None})
    return select({n: torch.rand(p.shape, generator=g) for n, p in params.items()}, 1 - sparsity)


def bench_train(data, steps, repeats, tmp):
    cfg = TrainConfig(max_steps=steps, eval_every=1000, batch_size=100, lr=0.1, momentum=0.0, weight_decay=5e-4,
                      schedule="constant", augment=False, metrics=("test", "val"))
    outs = {}

    def run(fn, name, data, cfg):
        def go():
            model = initialize(build_model("mlp-7-tanh", "mnist"), "orthogonal", 0)
            out = tmp / f"train-{name}"
            if out.exists():
                for f in out.iterdir():
                    f.unlink()
            fn(model, data, cfg, mask=bias_mask(model, 0.9), out_dir=out, progress=False, log=lambda s: None)
            outs[name] = (out / "metrics.json").read_bytes(), (out / "checkpoint.safetensors").read_bytes()
        return go

    old = old_package(tmp, "library.train")  # with the old package's own data and configuration classes
    old_data = old_package(tmp, "library.data").Data(**{f.name: getattr(data, f.name) for f in fields(data)})
    r = side_by_side({"before": run(old.train, "before", old_data, old.TrainConfig.from_dict(cfg.to_dict())),
                      "after": run(new_train, "after", data, cfg)}, repeats)
    r["same_bytes"] = outs["before"] == outs["after"]
    r["steps"] = steps
    return r


def bench_isometry(old_signal, steps, repeats):
    def run(mod):
        def go():
            model = initialize(build_model("mlp-7-linear", "mnist"), "orthogonal", 0)
            g = torch.Generator().manual_seed(3)
            x = torch.randn(100, 1, 28, 28, generator=g)
            mask = new_prune(model, "snip", 0.9, [(x, torch.randint(0, 10, (100,), generator=g))])
            mask.apply(model)
            go.final = mod.approximate_isometry(model, mask, steps=steps)[-1]
        return go

    fns = {"before": run(old_signal), "after": run(new_signal)}
    r = side_by_side(fns, repeats)
    r.update(steps=steps, final_objective={k: f.final for k, f in fns.items()})
    return r


def bench_jsv(old_signal, data, repeats):
    model = initialize(build_model("mlp-7-tanh", "mnist"), "orthogonal", 0)
    x = data.train_x[:5000].to(torch.float32).div(255)
    vals = {}

    def run(mod, name):
        def go():
            vals[name] = mod.jacobian_singular_values(model, x)
        return go

    r = side_by_side({"before": run(old_signal, "before"), "after": run(new_signal, "after")}, repeats)
    r["mean_before_after"] = (vals["before"]["mean"], vals["after"]["mean"])
    return r


def bench_prune(repeats, tmp):
    old_prune = old_package(tmp, "library.pruners").prune
    rows = []
    for name, batch in (("vgg19", 8), ("resnet20", 32)):
        model = initialize(build_model(name, "cifar10"), "kaiming_normal", 0)
        g = torch.Generator().manual_seed(0)
        b = [(torch.randn(batch, 3, 32, 32, generator=g), torch.randint(0, 10, (batch,), generator=g)) for _ in range(4)]
        new_prune(model, "snip", 0.99, b)  # warm-up
        for method, opts in (("iter_snip", {"steps": 10}), ("force", {"steps": 10}), ("synflow", {"iterations": 10})):
            masks = {}

            def run(fn, key):
                def go():
                    masks[key] = fn(model, method, 0.99, b, allow_collapse=True, **opts)
                return go

            r = side_by_side({"before": run(old_prune, "before"), "after": run(new_prune, "after")}, repeats)
            r.update(model=name, batch=batch, method=method, options=opts,
                     same_mask=same_masks(masks["before"], masks["after"]))
            rows.append(r)
            print(f"  prune {name} {method}: before {r['median_s']['before']:.2f} s, after {r['median_s']['after']:.2f} s "
                  f"({r['after_over_before']:.2f}x), same mask: {r['same_mask']}", flush=True)
        med = {r["method"]: r["median_s"] for r in rows if r["model"] == name}
        rows.append({"model": name, "method": "force_over_iter_snip",
                     "before": med["force"]["before"] / med["iter_snip"]["before"],
                     "after": med["force"]["after"] / med["iter_snip"]["after"]})
    return rows


def bench_start(tmp, repeats):
    """`prunebench train` for 10 steps as a new process: the old checkout (git archive of the old commit) vs this."""
    old_src = tmp / "old"
    old_src.mkdir(exist_ok=True)
    arch = subprocess.run(["git", "-C", str(ROOT), "archive", OLD_COMMIT, "src"], capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(old_src)], input=arch, check=True)
    from prunebench.cli import main as cli

    cli(["init", "--model", "mlp-7-tanh", "--dataset", "mnist", "--out", str(tmp / "i.safetensors")])
    if not (tmp / "mnist.json").exists():
        return None
    cfg = json.dumps({"max_steps": 10, "eval_every": 10, "batch_size": 100, "augment": False})

    wall, cpu = {"before": [], "after": []}, {"before": [], "after": []}
    for _ in range(repeats):
        for key, src in (("before", old_src / "src"), ("after", ROOT / "src")):
            env = {**os.environ, "PYTHONPATH": str(src)}
            r0, t0 = resource.getrusage(resource.RUSAGE_CHILDREN), time.perf_counter()
            subprocess.run([sys.executable, "-m", "prunebench", "train", "--init", str(tmp / "i.safetensors"), "--data",
                            str(tmp / "mnist.json"), "--config", cfg, "--no-progress", "--out-dir",
                            str(tmp / f"start-{key}")], env=env, check=True, capture_output=True)
            r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
            wall[key].append(time.perf_counter() - t0)
            cpu[key].append(r1.ru_utime + r1.ru_stime - r0.ru_utime - r0.ru_stime)
    med = {k: statistics.median(v) for k, v in wall.items()}
    cmed = {k: statistics.median(v) for k, v in cpu.items()}
    return {"median_s": med, "median_cpu_s": cmed, "runs_s": wall, "runs_cpu_s": cpu,
            "after_over_before": med["after"] / med["before"], "after_over_before_cpu": cmed["after"] / cmed["before"]}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="shorter runs (2,000 training and 3,000 isometry steps)")
    ap.add_argument("--items", default="train,isometry,jsv,prune,start")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "cpu-before-after.json"))
    args = ap.parse_args(argv)
    setup_determinism(1, "cpu")
    items = args.items.split(",")
    old_signal = old_module("src/prunebench/library/signalprop.py", "old_signalprop")
    doc = {"device": device_name("cpu"), "torch": torch.__version__, "threads": 1, "platform": platform.platform(),
           "date": time.strftime("%Y-%m-%d %H:%M"), "before": OLD_COMMIT, "repeats": args.repeats,
           "load_average_at_start": os.getloadavg()}
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        data, data_note = mnist(tmp)
        doc["data"] = data_note
        if "train" in items:
            doc["train"] = bench_train(data, 2000 if args.quick else 10000, args.repeats, tmp)
            print(f"  train cell: {doc['train']['median_s']}, same bytes {doc['train']['same_bytes']}", flush=True)
        if "isometry" in items:
            doc["isometry"] = bench_isometry(old_signal, 3000 if args.quick else 10000, args.repeats)
            print(f"  isometry: {doc['isometry']['median_s']}", flush=True)
        if "jsv" in items:
            doc["jsv"] = bench_jsv(old_signal, data, args.repeats)
            print(f"  jsv: {doc['jsv']['median_s']}", flush=True)
        if "prune" in items:
            doc["prune"] = bench_prune(max(1, args.repeats - 1), tmp)
        if "start" in items:
            doc["start"] = bench_start(tmp, args.repeats + 2)
            print(f"  start: {doc['start'] and doc['start']['median_s']}", flush=True)
    doc["load_average_at_end"] = os.getloadavg()
    Path(args.out).write_text(json.dumps(doc, indent=2, default=str) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
