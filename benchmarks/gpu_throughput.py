"""Part 1 of benchmarks/gpu_check.py: training and pruning throughput, measured side by side in one process,
under a deadline. The JSON result is rewritten after every item, so a run stopped at its deadline keeps
everything measured before.

Items, in order (each skipped with a reason when its estimated time no longer fits):

  matmul       8192^3 bf16 matrix products: the ceiling actually reachable on this GPU (CUDA only)
  train        our loop (prunebench.library.train.train), dense vs masked at 99 %, interleaved 3x, medians:
               LeNet-300-100 / MNIST, ResNet-20 and VGG19 / CIFAR-10 (goal: masked / dense >= 0.95)
  flops        one full CIFAR-10 epoch (50,000 images, batch 128) of VGG19 and ResNet-50 through our loop:
               epoch time, evaluation time on 10,000 images, achieved FLOP/s (3 x forward FLOPs x images/s)
               as a fraction of the bf16 peak (datasheet and measured matmul) (goal: VGG19 epoch <= 1 s)
  concurrency  k training processes on one GPU at once (the pipeline's worker pool), for every k of SIZES
               (1, 2, 3, 4, 6, 8 on a GPU): aggregate images/s of VGG19 at 99 % sparsity, each process taking
               train()'s step (a CUDA graph); the best k is recorded (`concurrency.best_k`: what the pipeline's
               GPU resources and `prunebench plan` use); benchmarks/gpu_check.py sizes the force-check epochs from it
  reference    our loop vs a loop as the official codes train (torchvision DataLoader with PIL transforms
               in worker processes, fp32, PyTorch's default cuDNN flags, mask gradient hooks), 99 %
               sparsity, same model and batch (goal: >= 3x)
  prune        scoring wall time and peak memory of every at-init method on VGG19 and ResNet-50 at 99 %,
               batch 128; FORCE with 60 steps vs 60 x one SNIP scoring (goal: <= 1.1)
  variants     one training step, batch 128: the old loop's eager step (torch.optim.SGD, fresh .grad), the whole
               step captured by hand as a CUDA graph, train()'s own steps (plain, and the CUDA-graph path it
               takes by default), and torch.compile (default and mode=reduce-overhead) around the model, on VGG19
               and ResNet-20; which is fastest, and train()'s graph step over the hand-captured graph ("the loop
               runs at the graph's speed"; compile variants last: tens of seconds of compilation each)
  graph_bytes  train() on the same data twice with plain steps and twice with its CUDA-graph path (the capture
               emulated on a CPU): are metrics.json and the checkpoint byte-identical between the paths and
               between two runs of each (goal: yes)

`--mode tiny` runs every item with tiny sizes (CPU smoke test, seconds); GPU-only items say "needs CUDA"; on a
CPU the compile variants use torch.compile's "eager" backend (tracing only: no C++ compiler needed) and say so.
`--probe` is the internal entry point of one concurrency process.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

import torch
import torch.nn.functional as F

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO / "src"))

_spec = importlib.util.spec_from_file_location("prunebench_bench_run", HERE / "run.py")
bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench)

from prunebench.library.data import train_batches  # noqa: E402
from prunebench.library.datasets import dataset_spec  # noqa: E402
from prunebench.library.init import initialize  # noqa: E402
from prunebench.library.models import build_model  # noqa: E402
from prunebench.library.runtime import device_name, setup_determinism, versions  # noqa: E402
from prunebench.library.train import MaskEnforcer, MaskedSGD, TrainConfig, train  # noqa: E402
from prunebench.library.training.step import EmulatedGraphs, GraphStep, Stepper  # noqa: E402

BF16_PEAK_DATASHEET = bench.BF16_PEAK  # dense bf16 tensor-core peak by device name (H100/H200 989 TFLOP/s)

# Sizes per mode. "gpu" is what the issue asks for; "tiny" exercises every code path on a CPU in seconds.
SIZES = {
    "gpu": {
        "train": [("lenet300", "mnist", 128, 200), ("resnet20", "cifar10", 128, 100), ("vgg19", "cifar10", 128, 100)],
        "train_reps": 3,
        "flops": [("vgg19", 128, 50000, 10000), ("resnet50", 128, 50000, 10000)],  # model, batch, train, test images
        "probe": {"model": "vgg19", "dataset": "cifar10", "batch": 128, "duration": 5.0, "lead": 60.0, "threads": 2,
                  "ks": [1, 2, 3, 4, 6, 8]},
        "reference": [("resnet20", 128, 100), ("vgg19", 128, 100)], "reference_workers": 8,
        "prune": [("vgg19", 128), ("resnet50", 128)], "prune_steps": 60, "synflow_iterations": 100,
        "prospr_inner": 3, "snip_repeats": 5,
        "variants": {"model": "vgg19", "batch": 128, "steps": 100, "warmup": 5},
        "compile_models": ["vgg19", "resnet20"], "compile_backend": "inductor",
        "graph_bytes": {"model": "resnet20", "dataset": "cifar10", "batch": 128, "n_train": 1000, "epochs": 2},
        "matmul": 8192,
    },
    "tiny": {  # small models where the GPU sizes use VGG19 / ResNet-50: same code paths, seconds on a CPU
        "train": [("lenet300", "mnist", 64, 4), ("resnet20", "cifar10", 8, 2)],
        "train_reps": 2,
        "flops": [("resnet20", 8, 16, 8)],
        "probe": {"model": "lenet300", "dataset": "mnist", "batch": 64, "duration": 1.0, "lead": 40.0, "threads": 1,
                  "ks": [1, 2]},
        "reference": [("resnet20", 8, 2)], "reference_workers": 1,
        "prune": [("resnet20", 8)], "prune_steps": 2, "synflow_iterations": 2,
        "prospr_inner": 1, "snip_repeats": 2,
        "variants": {"model": "resnet20", "batch": 8, "steps": 2, "warmup": 1},
        "compile_models": ["resnet20"], "compile_backend": "eager",
        "graph_bytes": {"model": "conv4", "dataset": "cifar10", "batch": 16, "n_train": 40, "epochs": 2},
        "matmul": 0,
    },
}
# Rough seconds per item on an H200 (to decide what still fits before the deadline); tiny mode: 1/10.
ESTIMATES = {"matmul": 3, "train_model": 12, "flops_vgg19": 8, "flops_resnet50": 20, "flops_resnet20": 10, "concurrency": 60,
             "reference": 15, "prune_method": 4, "variant_eager": 4, "variant_cudagraph": 6, "variant_loop_plain": 4,
             "variant_loop_graph": 5, "variant_compile": 60, "variant_compile_reduce_overhead": 60, "graph_bytes": 15}


class Run:
    """The result document, rewritten atomically after every item, and the deadline."""

    def __init__(self, path: Path, deadline: float, mode: str, device: str):
        self.path, self.deadline, self.mode, self.device = Path(path), deadline, mode, device
        self.cuda = device.startswith("cuda")
        self.doc = {"device": device_name(device), "mode": mode, "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
                    "versions": versions(), "platform": platform.platform(), "python": sys.executable,
                    "threads": torch.get_num_threads(), "settings": settings(), "skipped": [], "errors": [],
                    "current": None}
        if self.cuda:
            self.doc["nvidia_smi"] = nvidia_smi()
            props = torch.cuda.get_device_properties(torch.device(device))
            self.doc["gpu"] = {"name": props.name, "multiprocessors": props.multi_processor_count,
                               "memory_gib": round(props.total_memory / 2**30, 1), "capability": f"{props.major}.{props.minor}"}
        self.t0 = time.time()
        self.save()

    def left(self) -> float:
        return self.deadline - time.time()

    def fits(self, item: str, est_key: str) -> bool:
        est = ESTIMATES[est_key] * (0.1 if self.mode == "tiny" else 1.0)
        if self.left() < est:
            self.skip(item, f"the time budget ran out ({self.left():.0f} s left, about {est:.0f} s needed)")
            return False
        return True

    def skip(self, item: str, reason: str) -> None:
        self.doc["skipped"].append({"item": item, "reason": reason})
        print(f"  SKIPPED {item}: {reason}", flush=True)
        self.save()

    def error(self, item: str, exc: BaseException) -> None:
        self.doc["errors"].append({"item": item, "error": f"{type(exc).__name__}: {exc}"[:2000],
                                   "traceback": traceback.format_exc()[-4000:]})
        print(f"  ERROR {item}: {type(exc).__name__}: {str(exc)[:500]}", flush=True)
        self.save()

    def start(self, item: str) -> None:
        self.doc["current"] = item
        print(f"  [{time.time() - self.t0:6.1f}s] {item}", flush=True)
        self.save()

    def save(self) -> None:
        self.doc["elapsed_s"] = round(time.time() - getattr(self, "t0", time.time()), 2)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.doc, indent=2, default=str) + "\n")
        os.replace(tmp, self.path)


def settings() -> dict:
    return {"deterministic_algorithms": torch.are_deterministic_algorithms_enabled(),
            "deterministic_warn_only": torch.is_deterministic_algorithms_warn_only_enabled(),
            "cudnn_deterministic": torch.backends.cudnn.deterministic, "cudnn_benchmark": torch.backends.cudnn.benchmark,
            "tf32_matmul": torch.backends.cuda.matmul.allow_tf32, "tf32_cudnn": torch.backends.cudnn.allow_tf32,
            "cuda_training": "bf16 autocast, channels_last (prunebench.library.train defaults), SGD foreach"}


def nvidia_smi() -> str | None:
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version,memory.total,clocks.max.sm",
                              "--format=csv,noheader"], capture_output=True, text=True, timeout=20)
        return out.stdout.strip() or out.stderr.strip()
    except Exception as e:  # not there (CPU)
        return f"unavailable: {e}"


def sync(device) -> None:
    if str(device).startswith("cuda"):
        torch.cuda.synchronize()


# -- our loop ------------------------------------------------------------------------------------------------

_WARM = set()


def train_rate(name, dataset, device, batch, steps, sparsity=None, n_train=None, n_test=None, compile=False,
               eval_batch=2000):
    """(images/s, timing dict) of prunebench.library.train.train on synthetic uint8 data resident on `device`; `steps`
    capped steps (0 = the whole epoch of n_train images). The first call per (model, batch) warms the process up
    (cuDNN handles, kernels, allocator) with a short untimed run, as every real run is warm after its first step."""
    key = (name, dataset, batch, compile)
    if key not in _WARM:
        _WARM.add(key)
        train_rate(name, dataset, device, batch, min(3, steps or 3), sparsity, compile=compile)
    model = initialize(build_model(name, dataset), "kaiming_normal", 0)
    mask = bench.random_mask(model, sparsity) if sparsity else None
    n_train = n_train or batch * steps
    data = bench.synthetic_data(dataset, n_train, n_test or batch, device)
    cfg = TrainConfig(epochs=1, batch_size=batch, steps_per_epoch=steps, eval_batch_size=min(eval_batch, n_test or batch),
                      compile=compile)
    m = train(model, data, cfg, mask=mask, device=device, progress=False, log=lambda s: None)
    t = m["_timing"]
    return t["images"] / t["train_s"], t


def item_matmul(run: Run, size: int) -> None:
    if not run.cuda:
        return run.skip("matmul", "needs CUDA")
    if not run.fits("matmul", "matmul"):
        return
    run.start("matmul")
    a = torch.randn(size, size, device=run.device, dtype=torch.bfloat16)
    b = torch.randn(size, size, device=run.device, dtype=torch.bfloat16)
    for _ in range(3):
        a @ b
    sync(run.device)
    t0 = time.perf_counter()
    for _ in range(10):
        a @ b
    sync(run.device)
    dt = (time.perf_counter() - t0) / 10
    run.doc["matmul"] = {"n": size, "dtype": "bf16", "tflop_s": 2 * size**3 / dt / 1e12, "note": "random data, mean of 10 after 3 warm-ups"}
    print(f"    bf16 matmul {size}^3: {run.doc['matmul']['tflop_s']:.0f} TFLOP/s", flush=True)
    del a, b
    torch.cuda.empty_cache()


def item_train(run: Run, sizes) -> None:
    rows = run.doc.setdefault("train", [])
    for name, ds, batch, steps in sizes["train"]:
        item = f"train {name} batch {batch}"
        if not run.fits(item, "train_model"):
            continue
        run.start(item)
        try:
            dense, masked = [], []
            for _ in range(sizes["train_reps"]):  # interleaved, so drift hits both alike
                dense.append(train_rate(name, ds, run.device, batch, steps)[0])
                masked.append(train_rate(name, ds, run.device, batch, steps, sparsity=0.99)[0])
            d, m = statistics.median(dense), statistics.median(masked)
            rows.append({"model": name, "dataset": ds, "batch": batch, "steps": steps, "dense_img_s": d,
                         "masked99_img_s": m, "masked_over_dense": m / d, "dense_runs": dense, "masked_runs": masked})
            print(f"    dense {d:10.1f} img/s, masked(99%) {m:10.1f} img/s, ratio {m / d:.3f}", flush=True)
        except Exception as e:
            run.error(item, e)
        run.save()


def item_flops(run: Run, sizes) -> None:
    rows = run.doc.setdefault("flops", [])
    peak = next((v for k, v in BF16_PEAK_DATASHEET.items() if k in run.doc["device"]), None)
    measured = run.doc.get("matmul", {}).get("tflop_s")
    for name, batch, n_train, n_test in sizes["flops"]:
        item = f"flops {name} epoch of {n_train} images, batch {batch}"
        if not run.fits(item, f"flops_{name}"):
            continue
        run.start(item)
        try:
            fwd = bench.forward_flops(name, "cifar10", run.device)
            ips, t = train_rate(name, "cifar10", run.device, batch, 0, n_train=n_train, n_test=n_test)
            achieved = 3 * fwd * ips
            row = {"model": name, "batch": batch, "train_images": n_train, "fwd_gflop_per_image": fwd / 1e9,
                   "img_s": ips, "train_epoch_s": t["train_s"], "eval_s": t["eval_s"], "eval_images": n_test,
                   "cifar10_epoch_s": 50000 / ips, "achieved_tflop_s": achieved / 1e12,
                   "fraction_of_bf16_datasheet_peak": achieved / peak if peak else None,
                   "fraction_of_measured_bf16_matmul": achieved / (measured * 1e12) if measured else None}
            rows.append(row)
            print(f"    {fwd / 1e9:.3f} GFLOP/img fwd, {ips:.1f} img/s, CIFAR-10 epoch {50000 / ips:.2f} s "
                  f"(+ eval {t['eval_s']:.2f} s on {n_test}), {achieved / 1e12:.2f} TFLOP/s"
                  + (f" = {achieved / peak:.1%} of the bf16 datasheet peak" if peak else ""), flush=True)
        except Exception as e:
            run.error(item, e)
        run.save()


# -- concurrency: k processes training at once ------------------------------------------------------------------

def make_step(model, optimizer, enforcer, amp: bool, cl: bool, fwd=None, cache_enabled=True):
    """One training step as the loop before issue 19 took it (autocast bf16 forward, fp32 loss, zero_grad,
    backward, masked gradients, torch.optim.SGD step, masked weights); returns the loss tensor. (`fwd` is
    compared with None: `fwd or model` asked a torch.compile'd module for its len(), the "VGG does not support
    len()" of the H200 run.)"""
    fwd = model if fwd is None else fwd

    def step(x, y, zero_grad=True):
        if cl:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=amp, cache_enabled=cache_enabled):
            out = fwd(x)
        loss = F.cross_entropy(out.float(), y)
        if zero_grad:
            optimizer.zero_grad(set_to_none=True)
        loss.backward()
        enforcer.grads()
        optimizer.step()
        enforcer.weights_()
        return loss

    return step


def setup_model(name, dataset, device, sparsity=None):
    model = initialize(build_model(name, dataset), "kaiming_normal", 0)
    mask = bench.random_mask(model, sparsity) if sparsity else None
    is_cuda = str(device).startswith("cuda")
    model.to(device)
    cl = is_cuda and any(isinstance(m, torch.nn.Conv2d) for m in model.modules())
    if cl:
        model.to(memory_format=torch.channels_last)
    if mask is not None:
        mask.apply(model)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    return model, optimizer, MaskEnforcer(model, mask), is_cuda, cl


def loop_step(name, dataset, device, batch, sparsity=None, mode="graph"):
    """train()'s own step for a model (its Stepper; with mode "graph" its GraphStep, emulated on a CPU): a
    function step(x, y) with the trainer's arithmetic, for the variants and the concurrency probes."""
    model, _, enforcer, is_cuda, cl = setup_model(name, dataset, device, sparsity)
    spec = dataset_spec(dataset)
    stepper = Stepper(model, model, MaskedSGD(list(model.parameters()), 0.9, 5e-4), enforcer, device=device,
                      amp=is_cuda, channels_last=cl, label_smoothing=0.0)
    if mode == "plain":
        return lambda x, y: stepper.plain(x, y, 0.01)
    stepper.make_static()
    graph = GraphStep(stepper, (batch, spec.channels, spec.size, spec.size), log=print,
                      backend=None if is_cuda else EmulatedGraphs())
    return lambda x, y: graph.run(x, y, 0.01, hooks_needed=False)


def batches_forever(data, batch):
    epoch = 0
    while True:
        yield from train_batches(data, batch, epoch=epoch, seed=0)
        epoch += 1


def write_atomic(path: Path, text: str) -> None:
    """Write `text` to `path` so that a reader never sees it half-written (temp file + rename): the probes
    poll for these files, and one read a `.go` file the parent had created but not yet filled (the
    ValueError: could not convert string to float: '' of the CPU smoke mode)."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def probe_main(args) -> None:
    """One process of the concurrency measurement: warm up, say ready, then for each round the parent writes
    (`<result>.go<r>`: start time, duration, how many processes take part) train for the window if this
    process is one of them; `<result>.stop` ends it."""
    setup_determinism(args.threads, args.device)
    step = loop_step(args.model, args.dataset, args.device, args.batch, 0.99)
    data = bench.synthetic_data(args.dataset, args.batch * 40, args.batch, args.device)
    it = batches_forever(data, args.batch)
    for _ in range(8):  # past the graph's warm-up and capture
        step(*next(it))
    sync(args.device)
    result = Path(args.result)
    write_atomic(result.with_suffix(".ready"), "ready")
    give_up = time.time() + 600
    rnd = 0
    while True:
        go = result.with_suffix(f".go{rnd}")
        while not go.exists():
            if time.time() > give_up or result.with_suffix(".stop").exists():
                return
            time.sleep(0.005)
        order = json.loads(go.read_text())
        if args.index < order["processes"]:
            while time.time() < order["start"]:
                time.sleep(0.001)
            n = 0
            while time.time() < order["start"] + order["duration"]:
                step(*next(it))
                n += 1
            sync(args.device)
            write_atomic(result.with_suffix(f".r{rnd}"), json.dumps(
                {"steps": n, "images": n * args.batch, "start": order["start"], "end": time.time()}))
        rnd += 1


def item_concurrency(run: Run, sizes, k_max: int) -> None:
    """Rounds of k = 1, 2, ... processes training at once (the same warmed-up processes, one common start per
    round): aggregate images/s per k and the best k."""
    p = sizes["probe"]
    ks = [k for k in p["ks"] if k <= max(1, k_max)]
    item = f"concurrency {ks} processes x {p['model']} batch {p['batch']}"
    if not run.fits(item, "concurrency"):
        return
    run.start(item)
    procs, rounds = [], []
    k = max(ks)
    tmp = run.path.parent / "probe"
    try:
        tmp.mkdir(exist_ok=True)
        for old in tmp.iterdir():
            old.unlink()
        for i in range(k):
            res = tmp / f"probe{i}.json"
            cmd = [sys.executable, str(Path(__file__).resolve()), "--probe", "--device", run.device, "--model", p["model"],
                   "--dataset", p["dataset"], "--batch", str(p["batch"]), "--threads", str(p["threads"]),
                   "--index", str(i), "--result", str(res)]
            procs.append((subprocess.Popen(cmd, stdout=open(tmp / f"probe{i}.log", "w"), stderr=subprocess.STDOUT), res))
        # every process imported torch, built its model and took its warm steps: then the rounds
        wait_until = min(time.time() + p["lead"], run.deadline - p["duration"] - 5)
        while time.time() < wait_until and not all(r.with_suffix(".ready").exists() for _, r in procs):
            if any(proc.poll() not in (None, 0) for proc, _ in procs):
                break
            time.sleep(0.05)
        ready = [r for _, r in procs if r.with_suffix(".ready").exists()]
        if len(ready) < k:
            raise RuntimeError(f"only {len(ready)}/{k} probe processes were ready in time; see {tmp}/probe*.log: "
                               + (tmp / "probe0.log").read_text()[-1500:])
        single = None
        for rnd, kk in enumerate(ks):
            if time.time() + p["duration"] + 3 > run.deadline:
                run.skip(f"concurrency {kk} processes", f"the time budget ran out ({run.left():.0f} s left)")
                break
            start_at = time.time() + 0.5
            order = json.dumps({"start": start_at, "duration": p["duration"], "processes": kk})
            for _, r in procs:
                write_atomic(r.with_suffix(f".go{rnd}"), order)
            outs = [r.with_suffix(f".r{rnd}") for _, r in procs[:kk]]
            limit = start_at + p["duration"] + 60
            while not all(o.exists() for o in outs) and time.time() < min(limit, run.deadline):
                if any(proc.poll() not in (None, 0) for proc, _ in procs[:kk]):
                    break
                time.sleep(0.02)
            results = [json.loads(o.read_text()) for o in outs if o.exists()]
            if len(results) < kk:
                raise RuntimeError(f"round {rnd}: only {len(results)}/{kk} probe processes finished; see {tmp}/probe*.log")
            window = max(r["end"] for r in results) - start_at
            agg = sum(r["images"] for r in results) / window
            single = single or agg
            rounds.append({"processes": kk, "aggregate_img_s": agg, "window_s": window, "over_one_process": agg / single,
                           "per_process_img_s": [r["images"] / (r["end"] - start_at) for r in results]})
            print(f"    {kk} process{'es' if kk > 1 else ''}: aggregate {agg:.0f} img/s = {agg / single:.2f}x one", flush=True)
        if not rounds:
            raise RuntimeError("no round fitted in the time left")
        best = max(rounds, key=lambda r: r["aggregate_img_s"])
        # the smallest k within 3 % of the best: more processes cost memory and start-up for nothing
        best = min((r for r in rounds if r["aggregate_img_s"] >= 0.97 * best["aggregate_img_s"]), key=lambda r: r["processes"])
        run.doc["concurrency"] = {
            "model": p["model"], "batch": p["batch"], "sparsity": 0.99, "threads_per_process": p["threads"],
            "rounds": rounds, "best_k": best["processes"], "processes": best["processes"],
            "aggregate_img_s": best["aggregate_img_s"], "aggregate_over_single": best["over_one_process"],
            "note": "each process: train()'s step (CUDA graph on a GPU), warmed up; every round starts all its processes "
                    "together for a fixed window; best_k = the fewest processes within 3 % of the best aggregate"}
        print(f"    best k = {best['processes']} ({best['aggregate_img_s']:.0f} img/s)", flush=True)
    except Exception as e:
        run.error(item, e)
    finally:
        for _, r in procs:
            if tmp.exists():
                write_atomic(r.with_suffix(".stop"), "stop")
        for proc, _ in procs:
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    run.save()


# -- reference-style loop -------------------------------------------------------------------------------------------

def item_reference(run: Run, sizes) -> None:
    rows = run.doc.setdefault("reference", [])
    for name, batch, steps in sizes["reference"]:
        item = f"reference {name} batch {batch}"
        if not run.fits(item, "reference"):
            continue
        run.start(item)
        try:
            ours, _ = train_rate(name, "cifar10", run.device, batch, steps, sparsity=0.99)
            flags = (torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled(),
                     torch.backends.cudnn.deterministic, torch.backends.cudnn.allow_tf32)
            torch.use_deterministic_algorithms(False)  # PyTorch's defaults, as the official codes ran
            torch.backends.cudnn.deterministic, torch.backends.cudnn.allow_tf32 = False, True
            try:
                ref = bench.reference_images_per_s(name, "cifar10", run.device, batch, steps, sparsity=0.99,
                                                   workers=sizes["reference_workers"])
            finally:
                torch.use_deterministic_algorithms(flags[0], warn_only=flags[1])
                torch.backends.cudnn.deterministic, torch.backends.cudnn.allow_tf32 = flags[2], flags[3]
            rows.append({"model": name, "batch": batch, "steps": steps, "ours_img_s": ours, "reference_img_s": ref,
                         "speedup": ours / ref, "reference_workers": sizes["reference_workers"],
                         "reference_flags": "fp32, PyTorch defaults (cuDNN TF32 on, non-deterministic), DataLoader + PIL"})
            print(f"    ours {ours:10.1f} vs reference {ref:10.1f} img/s ({ours / ref:.2f}x)", flush=True)
        except Exception as e:
            run.error(item, e)
        run.save()


# -- pruning ------------------------------------------------------------------------------------------------------------

def item_prune(run: Run, sizes) -> None:
    from prunebench.library.pruners import prune

    rows = run.doc.setdefault("prune", [])
    steps = sizes["prune_steps"]
    methods = [("random", {}), ("magnitude", {}), ("snip", {}), ("grasp", {}),
               ("synflow", {"iterations": sizes["synflow_iterations"]}), ("iter_snip", {"steps": steps}),
               ("force", {"steps": steps}), ("prospr", {"inner_steps": sizes["prospr_inner"]})]
    for name, batch in sizes["prune"]:
        try:
            g = torch.Generator().manual_seed(0)
            batches = [(torch.randn(batch, 3, 32, 32, generator=g).to(run.device),
                        torch.randint(0, 10, (batch,), generator=g).to(run.device)) for _ in range(4)]
            model = initialize(build_model(name, "cifar10"), "kaiming_normal", 0).to(run.device)
            prune(model, "snip", 0.99, batches, allow_collapse=True)  # warm-up (cuDNN, allocator), untimed
            sync(run.device)
        except Exception as e:
            run.error(f"prune {name} setup", e)
            continue
        res = {}
        for method, opts in methods:
            item = f"prune {name} {method} {opts or ''}".strip()
            if not run.fits(item, "prune_method"):
                continue
            run.start(item)
            try:
                reps = sizes["snip_repeats"] if method == "snip" else 1
                walls = []
                for _ in range(reps):
                    if run.cuda:
                        torch.cuda.reset_peak_memory_stats()
                    t0 = time.perf_counter()
                    mask = prune(model, method, 0.99, batches, allow_collapse=True, **opts)
                    sync(run.device)
                    walls.append(time.perf_counter() - t0)
                wall = statistics.median(walls)
                res[method] = wall
                prof = getattr(mask, "profile", {}) or {}
                peak = prof.get("peak_memory_bytes")
                rows.append({"model": name, "method": method, "options": opts, "batch": batch, "wall_s": wall,
                             "wall_runs": walls, "peak_mb": round(peak / 2**20, 1) if peak else None,
                             "memory_measure": prof.get("memory_measure"), "density": mask.density})
                print(f"    {wall:8.3f} s, peak {rows[-1]['peak_mb']} MB ({prof.get('memory_measure')})", flush=True)
            except Exception as e:
                run.error(item, e)
            run.save()
        if "force" in res and "snip" in res:
            ratio = res["force"] / (steps * res["snip"])
            rows.append({"model": name, "method": f"force{steps}_over_{steps}x_snip", "ratio": ratio,
                         "force_s": res["force"], "snip_s_median": res["snip"]})
            print(f"    {name}: FORCE {steps} steps / ({steps} x SNIP) = {ratio:.3f}", flush=True)
        if "force" in res and "iter_snip" in res:
            ratio = res["force"] / res["iter_snip"]
            rows.append({"model": name, "method": "force_over_iter_snip", "ratio": ratio, "force_s": res["force"],
                         "iter_snip_s": res["iter_snip"]})
            print(f"    {name}: FORCE / Iter SNIP ({steps} steps each) = {ratio:.3f}", flush=True)
        del model, batches
        if run.cuda:
            torch.cuda.empty_cache()
        run.save()


# -- step variants: eager, CUDA graph, train()'s steps, torch.compile ---------------------------------------------

VARIANTS = ("eager", "cudagraph", "loop_plain", "loop_graph", "compile", "compile_reduce_overhead")


def variant_rate(run: Run, variant: str, v: dict, model_name: str, backend: str = "inductor") -> dict:
    batch = v["batch"]
    data = bench.synthetic_data("cifar10", batch * 20, batch, run.device)
    it = batches_forever(data, batch)
    out = {"variant": variant, "model": model_name, "batch": batch, "steps": v["steps"]}
    t_setup = time.perf_counter()
    if variant in ("loop_plain", "loop_graph"):
        step = loop_step(model_name, "cifar10", run.device, batch, mode=variant[5:])
    else:
        model, opt, enf, is_cuda, cl = setup_model(model_name, "cifar10", run.device)
    if variant == "eager":
        step = make_step(model, opt, enf, is_cuda, cl)
    elif variant in ("compile", "compile_reduce_overhead"):
        mode = "reduce-overhead" if variant == "compile_reduce_overhead" else None
        step = make_step(model, opt, enf, is_cuda, cl, fwd=torch.compile(model, mode=mode, backend=backend))
        out["backend"] = backend
    elif variant == "cudagraph":
        body = make_step(model, opt, enf, is_cuda, cl, cache_enabled=False)
        x0, y0 = next(it)
        static_x, static_y = x0.clone(), y0.clone()
        s = torch.cuda.Stream()
        s.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(s):
            for _ in range(3):  # momentum buffers, cuDNN workspaces exist before capture
                body(static_x, static_y)
        torch.cuda.current_stream().wait_stream(s)
        graph = torch.cuda.CUDAGraph()
        opt.zero_grad(set_to_none=True)  # backward allocates .grad from the graph's pool
        with torch.cuda.graph(graph):
            static_loss = body(static_x, static_y, zero_grad=False)

        def step(x, y):
            static_x.copy_(x)
            static_y.copy_(y)
            graph.replay()
            return static_loss
    elif variant not in ("loop_plain", "loop_graph"):
        raise ValueError(variant)
    first = time.perf_counter()
    step(*next(it))
    sync(run.device)
    out["first_step_s"] = time.perf_counter() - first  # includes compilation for the compile variants
    for _ in range(v["warmup"]):
        step(*next(it))
    sync(run.device)
    out["setup_s"] = time.perf_counter() - t_setup
    t0 = time.perf_counter()
    for _ in range(v["steps"]):
        step(*next(it))
    sync(run.device)
    dt = time.perf_counter() - t0
    out.update(img_s=v["steps"] * batch / dt, step_ms=1000 * dt / v["steps"], cifar10_epoch_s=50000 * dt / (v["steps"] * batch))
    return out


def item_variants(run: Run, sizes) -> None:
    v = sizes["variants"]
    rows = run.doc.setdefault("variants", [])
    backend = sizes["compile_backend"] if run.cuda else "eager"
    plan = [(var, v["model"]) for var in VARIANTS if not var.startswith("compile")]
    plan += [(var, m) for m in sizes["compile_models"] for var in VARIANTS if var.startswith("compile")]
    for variant, model_name in plan:
        item = f"variant {variant} {model_name} batch {v['batch']}"
        if variant in ("cudagraph", "compile_reduce_overhead") and not run.cuda:
            run.skip(item, "needs CUDA (CUDA graphs)")
            continue
        if not run.fits(item, f"variant_{variant}"):
            continue
        run.start(item)
        try:
            r = variant_rate(run, variant, v, model_name, backend)
            rows.append(r)
            print(f"    {r['img_s']:10.1f} img/s ({r['step_ms']:.2f} ms/step; first step {r['first_step_s']:.1f} s)"
                  + (f" [torch.compile backend {backend}]" if "backend" in r else ""), flush=True)
        except Exception as e:
            run.error(item, e)
            rows.append({"variant": variant, "model": model_name, "error": f"{type(e).__name__}: {str(e)[:300]}"})
        if run.cuda:
            torch.cuda.empty_cache()
        ok = [r for r in rows if "img_s" in r and r["model"] == v["model"]]
        if ok:
            best = max(ok, key=lambda r: r["img_s"])
            rate = {r["variant"]: r["img_s"] for r in ok}
            run.doc["variants_winner"] = {
                "model": v["model"], "variant": best["variant"], "img_s": best["img_s"],
                "over_eager": best["img_s"] / rate["eager"] if "eager" in rate else None,
                "loop_graph_over_cudagraph": (rate["loop_graph"] / rate["cudagraph"]
                                              if "loop_graph" in rate and "cudagraph" in rate else None)}
        run.save()


# -- graph vs plain steps: the same bytes? ----------------------------------------------------------------------------

def item_graph_bytes(run: Run, sizes) -> None:
    """train() twice with plain steps and twice with its graph path (emulated capture on a CPU), same data: which
    output files are byte-identical between the paths, and between two runs of each path."""
    g = sizes["graph_bytes"]
    item = f"graph_bytes {g['model']} batch {g['batch']}"
    if not run.fits(item, "graph_bytes"):
        return
    run.start(item)
    try:
        graph_mode = "graph" if run.cuda else "graph-emulated"
        work = Path(tempfile.mkdtemp(prefix="graph-bytes-", dir=run.path.parent))
        data = bench.synthetic_data(g["dataset"], g["n_train"] + g["batch"] // 2, 200, run.device)  # a partial last batch
        cfg = TrainConfig(epochs=g["epochs"], batch_size=g["batch"], lr=0.05, momentum=0.9, weight_decay=5e-4,
                          milestones=(0.5,), eval_batch_size=100)
        timing = {}
        for name, mode in (("plain_a", "plain"), ("graph_a", graph_mode), ("plain_b", "plain"), ("graph_b", graph_mode)):
            model = initialize(build_model(g["model"], g["dataset"]), "kaiming_normal", 0)
            m = train(model, data, cfg, mask=bench.random_mask(model, 0.9), out_dir=work / name, device=run.device,
                      progress=False, log=lambda s: None, step_mode=mode)
            timing[name] = {k: m["_timing"].get(k) for k in ("step_mode", "graph_captures", "graph_replays", "eager_steps",
                                                             "graph_fallback")}
        same = {}
        for a, b in (("plain_a", "plain_b"), ("graph_a", "graph_b"), ("plain_a", "graph_a")):
            same[f"{a}=={b}"] = {f: (work / a / f).read_bytes() == (work / b / f).read_bytes()
                                 for f in ("metrics.json", "checkpoint.safetensors")}
        run.doc["graph_bytes"] = {"model": g["model"], "batch": g["batch"], "graph_mode": graph_mode, "identical": same,
                                  "runs": timing, "all_identical": all(all(v.values()) for v in same.values())}
        print(f"    {graph_mode} vs plain: " + ", ".join(f"{k}: {'same' if all(v.values()) else 'DIFFERENT ' + str(v)}"
                                                          for k, v in same.items()), flush=True)
    except Exception as e:
        run.error(item, e)
    run.save()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mode", choices=list(SIZES), default="gpu")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--deadline", type=float, default=0.0, help="absolute time.time() by which to stop (0: 150 s from now)")
    ap.add_argument("--out-json", default=None)
    ap.add_argument("--workers", type=int, default=8, help="most processes of the concurrency measurement")
    ap.add_argument("--threads", type=int, default=4)
    ap.add_argument("--items", default="matmul,train,flops,graph_bytes,concurrency,reference,prune,variants")
    # --probe: one concurrency process
    ap.add_argument("--probe", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--model", default="vgg19", help=argparse.SUPPRESS)
    ap.add_argument("--dataset", default="cifar10", help=argparse.SUPPRESS)
    ap.add_argument("--batch", type=int, default=128, help=argparse.SUPPRESS)
    ap.add_argument("--index", type=int, default=0, help=argparse.SUPPRESS)
    ap.add_argument("--result", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.device == "auto":
        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    if args.probe:
        probe_main(args)
        return 0
    setup_determinism(args.threads, args.device)
    deadline = args.deadline or time.time() + 150
    out = Path(args.out_json or HERE / "results" / "throughput.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    run = Run(out, deadline, args.mode, args.device)
    sizes = SIZES[args.mode]
    print(f"part 1, throughput: {run.doc['device']}, torch {torch.__version__}, mode {args.mode}, "
          f"{run.left():.0f} s budget", flush=True)
    items = args.items.split(",")
    table = [("matmul", lambda: item_matmul(run, sizes["matmul"])), ("train", lambda: item_train(run, sizes)),
             ("flops", lambda: item_flops(run, sizes)), ("graph_bytes", lambda: item_graph_bytes(run, sizes)),
             ("concurrency", lambda: item_concurrency(run, sizes, args.workers)),
             ("reference", lambda: item_reference(run, sizes)), ("prune", lambda: item_prune(run, sizes)),
             ("variants", lambda: item_variants(run, sizes))]
    for name, fn in table:
        if name not in items:
            continue
        try:
            fn()
        except Exception as e:  # an item's own guard failed: record, go on
            run.error(name, e)
    run.doc["current"] = None
    run.save()
    print(f"part 1 done in {time.time() - run.t0:.1f} s: {len(run.doc['skipped'])} skipped, "
          f"{len(run.doc['errors'])} errors -> {out}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
