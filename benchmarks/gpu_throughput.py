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
  concurrency  k training processes on one GPU at once (the pipeline's worker pool): aggregate images/s
               of VGG19 at 99 % sparsity; benchmarks/gpu_check.py sizes the force-check epochs from it
  reference    our loop vs a loop as the official codes train (torchvision DataLoader with PIL transforms
               in worker processes, fp32, PyTorch's default cuDNN flags, mask gradient hooks), 99 %
               sparsity, same model and batch (goal: >= 3x)
  prune        scoring wall time and peak memory of every at-init method on VGG19 and ResNet-50 at 99 %,
               batch 128; FORCE with 60 steps vs 60 x one SNIP scoring (goal: <= 1.1)
  variants     one training step of VGG19, batch 128, written as train() runs it, in eager mode, captured
               whole as a CUDA graph, under torch.compile (default) and torch.compile(mode=reduce-overhead):
               which is fastest (compile variants last: they cost tens of seconds of compilation)

`--mode tiny` runs every item with tiny sizes (CPU smoke test, seconds); GPU-only items say "needs CUDA".
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
from prunebench.library.init import initialize  # noqa: E402
from prunebench.library.models import build_model  # noqa: E402
from prunebench.library.runtime import device_name, setup_determinism, versions  # noqa: E402
from prunebench.library.train import MaskEnforcer, TrainConfig, train  # noqa: E402

BF16_PEAK_DATASHEET = bench.BF16_PEAK  # dense bf16 tensor-core peak by device name (H100/H200 989 TFLOP/s)

# Sizes per mode. "gpu" is what the issue asks for; "tiny" exercises every code path on a CPU in seconds.
SIZES = {
    "gpu": {
        "train": [("lenet300", "mnist", 128, 200), ("resnet20", "cifar10", 128, 100), ("vgg19", "cifar10", 128, 100)],
        "train_reps": 3,
        "flops": [("vgg19", 128, 50000, 10000), ("resnet50", 128, 50000, 10000)],  # model, batch, train, test images
        "probe": {"model": "vgg19", "dataset": "cifar10", "batch": 128, "duration": 6.0, "lead": 45.0, "threads": 4},
        "reference": [("resnet20", 128, 100), ("vgg19", 128, 100)], "reference_workers": 8,
        "prune": [("vgg19", 128), ("resnet50", 128)], "prune_steps": 60, "synflow_iterations": 100,
        "prospr_inner": 3, "snip_repeats": 5,
        "variants": {"model": "vgg19", "batch": 128, "steps": 100, "warmup": 5},
        "matmul": 8192,
    },
    "tiny": {  # small models where the GPU sizes use VGG19 / ResNet-50: same code paths, seconds on a CPU
        "train": [("lenet300", "mnist", 64, 4), ("resnet20", "cifar10", 8, 2)],
        "train_reps": 2,
        "flops": [("resnet20", 8, 16, 8)],
        "probe": {"model": "lenet300", "dataset": "mnist", "batch": 64, "duration": 1.0, "lead": 40.0, "threads": 1},
        "reference": [("resnet20", 8, 2)], "reference_workers": 1,
        "prune": [("resnet20", 8)], "prune_steps": 2, "synflow_iterations": 2,
        "prospr_inner": 1, "snip_repeats": 2,
        "variants": {"model": "resnet20", "batch": 8, "steps": 2, "warmup": 1},
        "matmul": 0,
    },
}
# Rough seconds per item on an H200 (to decide what still fits before the deadline); tiny mode: 1/10.
ESTIMATES = {"matmul": 3, "train_model": 12, "flops_vgg19": 12, "flops_resnet50": 25, "flops_resnet20": 10, "concurrency": 40,
             "reference": 15, "prune_method": 6, "variant_eager": 4, "variant_cudagraph": 6,
             "variant_compile": 60, "variant_compile_reduce_overhead": 60}


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
    """One training step exactly as prunebench.library.train.train takes it (autocast bf16 forward, fp32 loss,
    zero_grad, backward, masked gradients, SGD step, masked weights); returns the loss tensor."""
    fwd = fwd or model

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


def batches_forever(data, batch):
    epoch = 0
    while True:
        yield from train_batches(data, batch, epoch=epoch, seed=0)
        epoch += 1


def probe_main(args) -> None:
    """One process of the concurrency measurement: warm up, say ready, wait for the common start time the
    parent writes once every process is ready, then train for `duration` seconds."""
    setup_determinism(args.threads, args.device)
    model, opt, enf, is_cuda, cl = setup_model(args.model, args.dataset, args.device, 0.99)
    data = bench.synthetic_data(args.dataset, args.batch * 40, args.batch, args.device)
    step = make_step(model, opt, enf, is_cuda, cl)
    it = batches_forever(data, args.batch)
    for _ in range(5):
        step(*next(it))
    sync(args.device)
    result, go = Path(args.result), Path(args.result).with_suffix(".go")
    result.with_suffix(".ready").write_text("ready")
    give_up = time.time() + 300
    while not go.exists():
        if time.time() > give_up:
            return
        time.sleep(0.005)
    start_at = float(go.read_text())
    while time.time() < start_at:
        time.sleep(0.001)
    n = 0
    while time.time() < start_at + args.duration:
        step(*next(it))
        n += 1
    sync(args.device)
    end = time.time()
    result.write_text(json.dumps({"steps": n, "images": n * args.batch, "start": start_at, "end": end}))


def item_concurrency(run: Run, sizes, k: int) -> None:
    p = sizes["probe"]
    item = f"concurrency {k} processes x {p['model']} batch {p['batch']}"
    if not run.fits(item, "concurrency"):
        return
    run.start(item)
    procs = []
    try:
        tmp = run.path.parent / "probe"
        tmp.mkdir(exist_ok=True)
        for i in range(k):
            res = tmp / f"probe{i}.json"
            for f in (res, res.with_suffix(".ready"), res.with_suffix(".go")):
                f.unlink(missing_ok=True)
            cmd = [sys.executable, str(Path(__file__).resolve()), "--probe", "--device", run.device, "--model", p["model"],
                   "--dataset", p["dataset"], "--batch", str(p["batch"]), "--threads", str(p["threads"]),
                   "--duration", str(p["duration"]), "--result", str(res)]
            procs.append((subprocess.Popen(cmd, stdout=open(tmp / f"probe{i}.log", "w"), stderr=subprocess.STDOUT), res))
        # every process imported torch, built its model and took 5 warm steps: then one common start
        wait_until = min(time.time() + p["lead"], run.deadline - p["duration"] - 5)
        while time.time() < wait_until and not all(r.with_suffix(".ready").exists() for _, r in procs):
            if any(proc.poll() not in (None, 0) for proc, _ in procs):
                break
            time.sleep(0.05)
        ready = [r for _, r in procs if r.with_suffix(".ready").exists()]
        if len(ready) < k:
            raise RuntimeError(f"only {len(ready)}/{k} probe processes were ready in time; see {tmp}/probe*.log: "
                               + (tmp / "probe0.log").read_text()[-1500:])
        start_at = time.time() + 0.5
        for _, r in procs:
            r.with_suffix(".go").write_text(repr(start_at))
        results = []
        for proc, res in procs:
            try:
                proc.wait(timeout=max(1.0, min(start_at + p["duration"] + 60, run.deadline) - time.time()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            if proc.returncode == 0 and res.exists():
                results.append(json.loads(res.read_text()))
        if len(results) < k:
            raise RuntimeError(f"only {len(results)}/{k} probe processes finished; see {tmp}/probe*.log")
        window = max(r["end"] for r in results) - start_at
        agg = sum(r["images"] for r in results) / window
        per = [r["images"] / (r["end"] - start_at) for r in results]
        single = next((r["dense_img_s"] for r in run.doc.get("train", []) if r["model"] == p["model"]), None)
        single_m = next((r["masked99_img_s"] for r in run.doc.get("train", []) if r["model"] == p["model"]), None)
        run.doc["concurrency"] = {
            "processes": k, "model": p["model"], "batch": p["batch"], "sparsity": 0.99,
            "threads_per_process": p["threads"], "window_s": window, "aggregate_img_s": agg, "per_process_img_s": per,
            "single_process_masked_img_s_train_suite": single_m,
            "aggregate_over_single": agg / single_m if single_m else None, "single_process_dense_img_s": single,
            "note": "each process: the train() step, warmed up, all started together, fixed window"}
        print(f"    {k} processes: aggregate {agg:.0f} img/s"
              + (f" = {agg / single_m:.2f}x one process ({single_m:.0f})" if single_m else ""), flush=True)
    except Exception as e:
        run.error(item, e)
    finally:
        for proc, _ in procs:
            if proc.poll() is None:
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
        del model, batches
        if run.cuda:
            torch.cuda.empty_cache()
        run.save()


# -- step variants: eager, CUDA graph, torch.compile ---------------------------------------------------------------------

def variant_rate(run: Run, variant: str, v: dict) -> dict:
    model, opt, enf, is_cuda, cl = setup_model(v["model"], "cifar10", run.device)
    data = bench.synthetic_data("cifar10", v["batch"] * 20, v["batch"], run.device)
    it = batches_forever(data, v["batch"])
    out = {"variant": variant, "model": v["model"], "batch": v["batch"], "steps": v["steps"]}
    t_setup = time.perf_counter()
    if variant == "eager":
        step = make_step(model, opt, enf, is_cuda, cl)
    elif variant in ("compile", "compile_reduce_overhead"):
        mode = "reduce-overhead" if variant == "compile_reduce_overhead" else None
        step = make_step(model, opt, enf, is_cuda, cl, fwd=torch.compile(model, mode=mode))
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
    else:
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
    out.update(img_s=v["steps"] * v["batch"] / dt, step_ms=1000 * dt / v["steps"], cifar10_epoch_s=50000 * dt / (v["steps"] * v["batch"]))
    return out


def item_variants(run: Run, sizes) -> None:
    v = sizes["variants"]
    rows = run.doc.setdefault("variants", [])
    for variant in ("eager", "cudagraph", "compile", "compile_reduce_overhead"):
        item = f"variant {variant} {v['model']} batch {v['batch']}"
        if variant != "eager" and not run.cuda:
            run.skip(item, "needs CUDA (train() compiles only on CUDA; CUDA graphs are CUDA)")
            continue
        if not run.fits(item, f"variant_{variant}"):
            continue
        run.start(item)
        try:
            r = variant_rate(run, variant, v)
            rows.append(r)
            print(f"    {r['img_s']:10.1f} img/s ({r['step_ms']:.2f} ms/step; first step {r['first_step_s']:.1f} s)", flush=True)
        except Exception as e:
            run.error(item, e)
            rows.append({"variant": variant, "error": f"{type(e).__name__}: {str(e)[:300]}"})
        if run.cuda:
            torch.cuda.empty_cache()
        ok = [r for r in rows if "img_s" in r]
        if ok:
            best = max(ok, key=lambda r: r["img_s"])
            eager = next((r["img_s"] for r in ok if r["variant"] == "eager"), None)
            run.doc["variants_winner"] = {"variant": best["variant"], "img_s": best["img_s"],
                                          "over_eager": best["img_s"] / eager if eager else None}
        run.save()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mode", choices=list(SIZES), default="gpu")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--deadline", type=float, default=0.0, help="absolute time.time() by which to stop (0: 150 s from now)")
    ap.add_argument("--out-json", default=None)
    ap.add_argument("--workers", type=int, default=6, help="processes of the concurrency measurement")
    ap.add_argument("--threads", type=int, default=4)
    ap.add_argument("--items", default="matmul,train,flops,concurrency,reference,prune,variants")
    # --probe: one concurrency process
    ap.add_argument("--probe", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--model", default="vgg19", help=argparse.SUPPRESS)
    ap.add_argument("--dataset", default="cifar10", help=argparse.SUPPRESS)
    ap.add_argument("--batch", type=int, default=128, help=argparse.SUPPRESS)
    ap.add_argument("--duration", type=float, default=5.0, help=argparse.SUPPRESS)
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
             ("flops", lambda: item_flops(run, sizes)), ("concurrency", lambda: item_concurrency(run, sizes, args.workers)),
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
