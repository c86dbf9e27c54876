"""One prepared GPU run: throughput, CUDA determinism and FORCE's claim in one call (issue 13).

On a lent GPU machine, within a time budget (default 450 s = 7.5 minutes, data preparation included), each
part stopped by its own deadline and saying what it skipped.

    benchmarks/gpu_check.sh --out "$OUT"              # on the GPU machine (see benchmarks/README.md, "GPU check")
    benchmarks/gpu_check.sh --cpu-smoke               # every part, tiny, on a CPU (tests/test_gpu_check.py)

Parts (their time limits on the GPU, from the script's start; unused time passes to the next part):

1. throughput  (<= 300 s) benchmarks/gpu_throughput.py in its own process: every row of issue 19's table --
               our loop vs a reference-style DataLoader loop, the VGG19 / ResNet-50 epoch time and FLOP/s
               against the bf16 peak, one step as the old eager step / a hand-captured CUDA graph / train()'s
               plain and graph steps / torch.compile variants (VGG19 and ResNet-20), dense vs masked images/s,
               pruning time and peak memory per method (FORCE 60 steps vs 60 x SNIP and vs Iter SNIP, SynFlow
               100 iterations), k = 1, 2, 3, 4, 6, 8 worker processes sharing the GPU (the best k), and whether
               train()'s graph path and its plain steps give the same bytes; the summary prints the table with
               each row's goal (`issue19_table`);
2. determinism (<= 60 s)  the smoke preset twice on the GPU (two pools of fresh worker processes, two working
               folders), every output file compared byte for byte: what is identical, what is not and where;
3. force       (what is left, skipped under 90 s: not part of issue 19's table) config/force-check.yaml with
               its epochs sized to the time left (from part 1's measured rate of its best k processes, which
               are also its workers), on the CIFAR-10 JPEG copy; tables, the three FORCE figures and
               paper/replication-force-check.md with the shortening stated.

Data: $PRUNEBENCH_DATA_SOURCES and the force-check preset's data_sources point at --data-sources (default
.device-data/, filled by benchmarks/prepare_gpu_check.sh: mnist/ and cifar10-jpeg.tar.xz); both caches are
prepared in the background from the start. Nothing is downloaded (`--no-download`).

Outputs: everything under --work (a fresh folder), and in --out: gpu-check.tar.gz (repository-relative paths:
benchmarks/results/<device>.json, <device>-determinism.{json,md}, <device>-gpu-check.json,
paper/replication-force-check.md, figures/force-check/*, results/force-check/* tables; logs under
.device-data/gpu-check-logs/), summary.json and gpu_check.log. The archive is rewritten after every part, so
a run killed from outside still returns what was finished. Unpack with `tar -xzf gpu-check.tar.gz -C <repo>`.

Snakemake and DVC are not used here (they are not on the GPU machine and too heavy to carry):
benchmarks/gpu_pipeline.py runs the presets' prunebench commands with the DAG's own arguments.
"""
from __future__ import annotations

import argparse
import copy
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(HERE))

import yaml  # noqa: E402

import gpu_pipeline  # noqa: E402
from prunebench.pipeline import grid  # noqa: E402
from prunebench.pipeline import paths  # noqa: E402

# Seconds. "max": a part's own limit; "min": what is kept free for it while earlier parts run; "least": below
# this much time a part is skipped rather than started.
PLAN = {  # part 1 measures every row of issue 19's table; part 3 gets what is left (and is skipped below 90 s)
    "gpu": {"budget": 450, "throughput": {"max": 300}, "determinism": {"max": 60, "min": 40},
            "force": {"min": 0}, "pack": 10, "workers": 6, "probe_workers": 8, "finish_reserve": 25,
            "least": {"throughput": 30, "determinism": 20, "force": 90}},
    "cpu-smoke": {"budget": 300, "throughput": {"max": 90}, "determinism": {"max": 70, "min": 20},
                  "force": {"min": 40}, "pack": 5, "workers": 2, "probe_workers": 2, "finish_reserve": 20,
                  "least": {"throughput": 10, "determinism": 10, "force": 10}},
}
# Force-check sizing (GPU): training work per cell-epoch in image-equivalents (45k train + 15k evaluated
# images at a third of a training image each), seconds per cell-epoch outside the GPU (checkpoint of
# VGG19's weights and momenta, evaluation set-up), seconds per cell to start (data load with hash check,
# model, warm-up), the share of the measured rate we count on, and fallbacks when part 1 did not measure.
SIZING = {"epoch_images": 50000, "epoch_overhead_s": 0.6, "cell_overhead_s": 8.0, "safety": 0.8,
          "max_epochs": 40, "fallback_img_s": 4000.0, "fallback_prune_s": 40.0, "prune_overhead_s": 15.0}


# ---------------------------------------------------------------------------------------------------------
# Small pieces (unit-tested in tests/test_gpu_check.py)

def size_epochs(seconds: float, cells: int, workers: int, agg_img_s: float, *, epoch_images=SIZING["epoch_images"],
                epoch_overhead_s=SIZING["epoch_overhead_s"], cell_overhead_s=SIZING["cell_overhead_s"],
                safety=SIZING["safety"], max_epochs=SIZING["max_epochs"]) -> int:
    """The most epochs E (<= max_epochs) such that `cells` training runs of E epochs, `workers` at a time
    sharing an aggregate rate of `agg_img_s`, fit in safety x `seconds`; 0 when not even one does."""
    if seconds <= 0 or cells <= 0 or agg_img_s <= 0:
        return 0
    waves = -(-cells // max(1, min(workers, cells)))
    best = 0
    for e in range(1, max_epochs + 1):
        t = cells * e * epoch_images / agg_img_s + cells * e * epoch_overhead_s / max(1, min(workers, cells)) \
            + waves * cell_overhead_s
        if t > safety * seconds:
            break
        best = e
    return best


def sizing_inputs(tp: dict) -> tuple:
    """(training images/s of the worker pool, where that number comes from, seconds to allow for pruning) from
    part 1's results: the multi-process VGG19 rate when measured, else one process's, else a cautious guess."""
    conc = tp.get("concurrency") or {}
    single = next((r.get("masked99_img_s") for r in tp.get("train", []) if r.get("model") == "vgg19"), None)
    if conc.get("aggregate_img_s") and conc.get("model") == "vgg19":
        rate, basis = conc["aggregate_img_s"], f"{conc['processes']} VGG19 processes measured together in part 1"
    elif single:
        rate, basis = single, "one VGG19 process (part 1's train item); no multi-process measurement"
    else:
        rate, basis = SIZING["fallback_img_s"], "no VGG19 measurement from part 1: a cautious guess"
    walls = [r["wall_s"] for r in tp.get("prune", []) if r.get("model") == "vgg19" and "wall_s" in r
             and r.get("method") in ("force", "iter_snip", "grasp")]
    prune_s = max(walls) + SIZING["prune_overhead_s"] if walls else SIZING["fallback_prune_s"]
    return rate, basis, prune_s


def issue19_table(tp: dict) -> list:
    """Issue 19's table from part 1's results: one row per line of the issue, with the measured value (None: not
    measured), the goal and whether it is met (None when not measured)."""
    def find(rows, **kw):
        return next((r for r in rows or [] if all(r.get(k) == v for k, v in kw.items())), None)

    rows = []

    def row(what, value, goal, met):
        rows.append({"row": what, "measured": value, "goal": goal, "met": met if value is not None else None})

    ref = {m: find(tp.get("reference"), model=m) for m in ("vgg19", "resnet20")}
    sp = {m: r["speedup"] for m, r in ref.items() if r}
    row("ours vs the reference-style loop (VGG19 / ResNet-20)", sp or None, ">= 3x both",
        len(sp) == 2 and all(v >= 3 for v in sp.values()))
    ep = find(tp.get("flops"), model="vgg19")
    row("one CIFAR-10 epoch of VGG19, batch 128 (s)", ep and ep["cifar10_epoch_s"], "<= 1.5 s deterministic",
        bool(ep) and ep["cifar10_epoch_s"] <= 1.5)
    var = {r["variant"]: r for r in tp.get("variants", []) if r.get("model") == "vgg19" and "img_s" in r}
    step = {k: var[k]["step_ms"] for k in ("eager", "cudagraph", "loop_plain", "loop_graph") if k in var}
    loop_vs_graph = (ep["img_s"] / var["cudagraph"]["img_s"]) if ep and "cudagraph" in var else None
    row("one VGG19 step, ms: eager / hand-captured graph / train()'s plain and graph steps", step or None,
        "the loop at the graph's speed", loop_vs_graph is not None and loop_vs_graph >= 0.9)
    rows[-1]["loop_epoch_over_graph_step"] = loop_vs_graph
    md = {r["model"]: r["masked_over_dense"] for r in tp.get("train", [])}
    row("masked (99 %) / dense, per model", md or None, ">= 0.95 on every model", bool(md) and min(md.values()) >= 0.95)
    f60 = find(tp.get("prune"), model="vgg19", method="force60_over_60x_snip")
    fi = find(tp.get("prune"), model="vgg19", method="force_over_iter_snip")
    row("FORCE 60 steps / 60 SNIP scorings, VGG19; FORCE / Iter SNIP", f60 and {"force_over_60_snip": f60["ratio"],
        "force_over_iter_snip": fi and fi["ratio"], "force_s": f60["force_s"]}, "<= 1.1, and FORCE ~ Iter SNIP",
        bool(f60) and f60["ratio"] <= 1.1 and bool(fi) and fi["ratio"] <= 1.15)
    syn = find(tp.get("prune"), model="vgg19", method="synflow")
    row("SynFlow, 100 iterations, VGG19 (s)", syn and syn["wall_s"], "<= 5 s", bool(syn) and syn["wall_s"] <= 5)
    comp = [r for r in tp.get("variants", []) if r.get("variant", "").startswith("compile")]
    row("torch.compile step variants", {f"{r['variant']} {r.get('model')}": r.get("img_s", r.get("error")) for r in comp}
        or None, "run and measured", bool(comp) and all("img_s" in r for r in comp))
    conc = tp.get("concurrency") or {}
    row("k training processes sharing the GPU: best k", conc.get("best_k") and {
        "best_k": conc["best_k"], "aggregate_img_s": conc.get("aggregate_img_s"),
        "rounds": {r["processes"]: round(r["aggregate_img_s"]) for r in conc.get("rounds", [])}},
        "the best k measured and used by the pipeline", bool(conc.get("best_k")))
    gb = tp.get("graph_bytes")
    row("graph path vs plain steps: same bytes", gb and gb["identical"], "identical", bool(gb) and gb["all_identical"])
    return rows


def lr_drop_epochs(train: dict, epochs: int) -> list:
    """1-based epochs from which each step-schedule LR drop applies (prunebench.library.train.TrainConfig.lr_at)."""
    return [int(float(m) * epochs + 0.5) + 1 for m in train.get("milestones", [])]


def shrink_smoke(cfg: dict) -> dict:
    """The smoke preset cut for the CPU smoke mode (two runs must fit in seconds): dense, SNIP, FORCE and
    FGGP (pruning during training) at 99 %, one epoch of 5 steps."""
    cfg = copy.deepcopy(cfg)
    cfg["train"].update(epochs=1, steps_per_epoch=5)
    blocks = []
    for b in cfg["grid"]:
        if b["model"] == "lenet300" and "dense" in b["arms"]:
            blocks.append({**b, "sparsities": [0.99], "arms": [a for a in b["arms"] if a in
                                                               ("dense", "snip", "force", "fggp")]})
    cfg["grid"] = blocks
    return cfg


def shrink_force(cfg: dict) -> dict:
    """The force-check preset at tiny sizes for the CPU smoke mode: every arm, both sparsities, the small
    `conv4` net instead of VGG19 (same commands, seconds instead of minutes on a CPU), 2 steps."""
    cfg = copy.deepcopy(cfg)
    cfg["threads"] = 1
    for b in cfg["grid"]:
        b["model"] = "conv4"
    cfg["train"].update(batch_size=16, steps_per_epoch=2, eval_batch_size=50)
    cfg["pruning"]["batch_size"] = 8
    for arm in ("force", "iter_snip"):
        cfg["arms"][arm]["options"]["steps"] = 2
    cfg["arms"]["grasp"]["pruning"] = {"samples_per_class": 1}
    return cfg


def _json_diff(a, b, path="", out=None, limit=12):
    out = [] if out is None else out
    if len(out) >= limit:
        return out
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(set(a) | set(b), key=str):
            if k not in a or k not in b:
                out.append(f"{path}/{k}: only in {'b' if k not in a else 'a'}")
            else:
                _json_diff(a[k], b[k], f"{path}/{k}", out, limit)
    elif isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for i, (x, y) in enumerate(zip(a, b)):
            _json_diff(x, y, f"{path}[{i}]", out, limit)
    elif a != b:
        d = ""
        if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool):
            d = f" (|diff| {abs(a - b):.3g})"
        out.append(f"{path}: {str(a)[:60]} vs {str(b)[:60]}{d}")
    return out


def _tensor_diff(pa: Path, pb: Path) -> list:
    import torch
    from safetensors import safe_open

    out = []
    with safe_open(str(pa), "pt") as fa, safe_open(str(pb), "pt") as fb:
        if fa.metadata() != fb.metadata():
            out.append("metadata differs: " + "; ".join(_json_diff(fa.metadata() or {}, fb.metadata() or {})))
        ka, kb = set(fa.keys()), set(fb.keys())
        for k in sorted(ka ^ kb):
            out.append(f"{k}: only in {'a' if k in ka else 'b'}")
        for k in sorted(ka & kb):
            x, y = fa.get_tensor(k), fb.get_tensor(k)
            if x.shape != y.shape or x.dtype != y.dtype:
                out.append(f"{k}: shape/dtype {tuple(x.shape)}/{x.dtype} vs {tuple(y.shape)}/{y.dtype}")
            elif not torch.equal(x, y):
                ne = int((x != y).sum())
                md = float((x.double() - y.double()).abs().max())
                out.append(f"{k}: {ne}/{x.numel()} elements differ, max |diff| {md:.3g}")
    return out


CATEGORIES = [  # (category, test on the path relative to results/<preset>, why it may differ)
    ("masks", lambda p: p.name in ("mask.safetensors", "final_mask.safetensors"), None),
    ("metrics", lambda p: p.name == "metrics.json" and len(p.parts) > 1, None),
    ("prune reports", lambda p: p.name in ("prune.json", "isometry.json"), None),
    ("weights", lambda p: p.suffix == ".safetensors", "initializations, isometry weights, training checkpoints"),
    ("tables", lambda p: p.suffix in (".csv", ".sha256") and not p.name.startswith("timing.csv")
     or p.name in ("metrics.json", "config.yaml"), None),
    ("data manifests", lambda p: p.parts[0] == "data", None),
    ("timings", lambda p: p.name in ("timing.json", "prune_timing.json", "timing.csv", "timing.csv.sha256"),
     "wall-clock times and peak memory: never expected to match"),
    ("run manifests", lambda p: p.name == "manifest.json", "host facts (versions, device, git commit); no results"),
    ("logs", lambda p: p.parts[0] == "logs", "log lines carry timings"),
]


def category(rel: Path) -> str:
    for name, test, _ in CATEGORIES:
        if test(rel):
            return name
    return "other"


def compare_trees(a: Path, b: Path) -> dict:
    """Every file under two result folders compared byte for byte, by category, with details of differences."""
    a, b = Path(a), Path(b)
    fa = {p.relative_to(a) for p in a.rglob("*") if p.is_file()} if a.exists() else set()
    fb = {p.relative_to(b) for p in b.rglob("*") if p.is_file()} if b.exists() else set()
    cats = {}
    for rel in sorted(fa | fb):
        c = cats.setdefault(category(rel), {"identical": 0, "different": [], "only_in_a": [], "only_in_b": []})
        if rel not in fb:
            c["only_in_a"].append(str(rel))
        elif rel not in fa:
            c["only_in_b"].append(str(rel))
        elif (a / rel).read_bytes() == (b / rel).read_bytes():
            c["identical"] += 1
        else:
            detail = []
            try:
                if rel.suffix == ".json":
                    detail = _json_diff(json.loads((a / rel).read_text()), json.loads((b / rel).read_text()))
                elif rel.suffix == ".safetensors":
                    detail = _tensor_diff(a / rel, b / rel)
                elif rel.suffix in (".csv", ".yaml", ".log"):
                    la, lb = (a / rel).read_text().splitlines(), (b / rel).read_text().splitlines()
                    diff = [i for i, (x, y) in enumerate(zip(la, lb)) if x != y]
                    detail = [f"{len(diff)} of {max(len(la), len(lb))} lines differ"
                              + (f"; first: line {diff[0] + 1}: {la[diff[0]][:120]!r} vs {lb[diff[0]][:120]!r}" if diff else "")]
            except Exception as e:  # a detail must never stop the comparison
                detail = [f"(no detail: {type(e).__name__}: {e})"]
            c["different"].append({"file": str(rel), "detail": detail})
    return cats


def nondeterminism_warnings(*log_dirs) -> list:
    """Unique log lines where PyTorch warned about an op without a deterministic implementation."""
    seen = []
    for d in log_dirs:
        for p in sorted(Path(d).rglob("*.log")) if Path(d).exists() else []:
            for line in p.read_text(errors="replace").splitlines():
                if "deterministic" in line and ("Warning" in line or "warn" in line.lower()):
                    line = line.strip()[:300]
                    if line not in seen:
                        seen.append(line)
    return seen


def determinism_markdown(doc: dict) -> str:
    why = {name: reason for name, _, reason in CATEGORIES}
    L = [f"# CUDA determinism check: the smoke preset twice ({doc['device']})", "",
         f"{doc['date']}, torch {doc['versions'].get('torch')}, mode {doc['mode']}. Two runs of the smoke preset "
         f"(config/smoke.yaml, device {doc['config_device']}{', shrunk for the CPU smoke mode' if doc['mode'] != 'gpu' else ''}) "
         "in two working folders, each in its own pool of fresh worker processes, deterministic algorithms on "
         "(`prunebench.library.runtime.setup_determinism`: on CUDA warn-only, cuBLAS workspace :4096:8, cuDNN "
         "deterministic, no TF32; training in bf16 autocast with channels_last). Every file of results/smoke/ "
         "compared byte for byte.", "",
         f"Verdict: **masks {doc['verdict']['masks']}, metrics {doc['verdict']['metrics']}**.", "",
         "| files | identical | different | only in one run | why they may differ |", "|---|---|---|---|---|"]
    for name, c in doc["categories"].items():
        only = len(c["only_in_a"]) + len(c["only_in_b"])
        L.append(f"| {name} | {c['identical']} | {len(c['different'])} | {only} | {why.get(name) or 'expected identical'} |")
    L.append("")
    for name, c in doc["categories"].items():
        if c["different"] and name not in ("timings", "logs"):
            L += [f"## {name}: differences", ""]
            for d in c["different"][:30]:
                L.append(f"- `{d['file']}`: " + "; ".join(d["detail"][:6]))
            L.append("")
    if doc.get("warnings"):
        L += ["## Ops without a deterministic implementation (warnings in the logs)", ""]
        L += [f"- `{w}`" for w in doc["warnings"][:20]] + [""]
    if doc.get("runs"):
        L += ["## Runs", ""]
        for k, r in doc["runs"].items():
            L.append(f"- run {k}: {r['done']} jobs done in {r['elapsed_s']} s, {len(r['failed'])} failed, "
                     f"{len(r['skipped'])} skipped" + (" (deadline hit)" if r["deadline_hit"] else ""))
    return "\n".join(L).rstrip() + "\n"


def shortening_note(info: dict) -> str:
    """The paragraph put at the top of the force-check report: how this run was shortened."""
    if info["mode"] != "gpu":
        return ("> **CPU smoke run of benchmarks/gpu_check.py: not a result.** Tiny sizes (conv4 instead of VGG19, "
                f"{info['epochs']} epoch of 2 steps, 2 pruning steps, synthetic data: {info['data']}); it only shows "
                "that every step of the GPU run works.\n")
    drops = [e for e in info["lr_drops"] if e <= info["epochs"]]
    seeds = info.get("seeds", 1)
    when = f"×0.1 from epoch{'s' if len(drops) > 1 else ''} {', '.join(map(str, drops))}" if drops else "no LR drop"
    lines = ["> **Shortened run.**",
             f"> Run by `benchmarks/gpu_check.py` (part 3) on {info['device']}, torch {info['torch']}, {info['date']}: "
             f"the force-check preset (config/force-check.yaml) with **{info['epochs']} training "
             f"epoch{'s' if info['epochs'] != 1 else ''}** instead of the preset's {info['preset_epochs']} and the "
             f"paper's 350, sized to the time left in a {info['budget_min']:.1f}-minute GPU budget; LR {info['lr']}, "
             f"{when} (the preset's 3/7 and 5/7 of training), batch {info['batch']}, 45k/5k train/validation split, "
             f"{seeds} seed{'s' if seeds != 1 else ''}; VGG19 on {info['data']}; the official codes' pruning "
             "settings (FORCE and Iter SNIP 60 steps, neg_logit loss, int(N·d) keep rule; FORCE's one-step SNIP; GraSP's public-code settings)"
             + ("; layers pruned away entirely are allowed (`pruning: {allow_collapse: true}`, which "
                "config/force-check.yaml does not set: the official codes train whatever mask they get, so a "
                "collapsed network is a result, not a failed cell)" if info.get("collapse_added") else "")
             + ". So few epochs leave every accuracy far below the paper's: compare the methods with each other, "
               "not with the paper's numbers. Run with benchmarks/gpu_pipeline.py (the DAG's prunebench commands "
               "without Snakemake)."]
    if info.get("missing"):
        lines.append(f"> Cells that did not finish in time and are left out: {', '.join(info['missing'])}.")
    return "\n".join(lines) + "\n"


def add_note(report: Path, note: str) -> None:
    text = report.read_text()
    lines = text.splitlines(keepends=True)
    at = next((i + 1 for i, line in enumerate(lines) if line.startswith("Preset:")), 1)
    report.write_text("".join(lines[:at]) + "\n" + note + "".join(lines[at:]))


# ---------------------------------------------------------------------------------------------------------
# The run

class Tee(io.TextIOBase):
    def __init__(self, *streams):
        self.streams = streams

    def write(self, s):
        for st in self.streams:
            st.write(s)
            st.flush()
        return len(s)

    def flush(self):
        for st in self.streams:
            st.flush()


class Check:
    def __init__(self, args):
        self.args = args
        self.mode = "cpu-smoke" if args.cpu_smoke else "gpu"
        self.plan = PLAN[self.mode]
        self.t0 = float(os.environ.get("GPU_CHECK_T0") or time.time())
        self.budget = args.budget or self.plan["budget"]
        self.deadline = self.t0 + self.budget
        self.workers = args.workers or self.plan["workers"]
        self.work = Path(args.work or tempfile.mkdtemp(prefix="prunebench-gpu-check-")).resolve()
        if self.work.exists() and any(self.work.iterdir()):
            raise SystemExit(f"gpu_check: --work {self.work} is not empty; give a new folder")
        self.work.mkdir(parents=True, exist_ok=True)
        self.out = Path(args.out or self.work / "out").resolve()
        self.out.mkdir(parents=True, exist_ok=True)
        self.sources = Path(args.data_sources or REPO / ".device-data").resolve()
        self.data_dir = self.work / "data"
        self.summary = {"mode": self.mode, "budget_s": self.budget, "workers": self.workers, "parts": {},
                        "work": str(self.work), "data_sources": str(self.sources)}
        self.bg = None

    # -- helpers
    def now(self) -> float:
        return time.time() - self.t0

    def left(self) -> float:
        return self.deadline - time.time()

    def say(self, msg: str) -> None:
        print(f"[{self.now():6.1f}s] {msg}", flush=True)

    def env(self) -> dict:
        env = dict(os.environ)
        env["PRUNEBENCH_DATA_SOURCES"] = str(self.sources)
        env["PYTHONPATH"] = os.pathsep.join([str(REPO / "src")] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
        env["PYTHONUNBUFFERED"] = "1"
        return env

    def cifar_source(self):
        p = self.sources / "cifar10-jpeg.tar.xz"
        return str(p) if p.exists() else None

    # -- preflight
    def preflight(self) -> None:
        import torch

        self.cuda = torch.cuda.is_available() and self.mode == "gpu"
        if self.mode == "gpu" and not self.cuda:
            raise SystemExit("gpu_check: no CUDA device here; `--cpu-smoke` runs every part tiny on the CPU")
        self.device = "cuda" if self.cuda else "cpu"
        self.device_name = torch.cuda.get_device_name(0) if self.cuda else "cpu-smoke"
        self.tag = self.device_name.replace(" ", "_") if self.cuda else "cpu-smoke"
        import importlib
        from importlib.metadata import PackageNotFoundError, version

        from prunebench.library.runtime import versions

        mods = {}
        for dist, module in (("jsonschema", "jsonschema"), ("referencing", "referencing"), ("rpds-py", "rpds"),
                             ("pyyaml", "yaml"), ("numpy", "numpy"), ("pandas", "pandas"), ("matplotlib", "matplotlib"),
                             ("seaborn", "seaborn"), ("safetensors", "safetensors"), ("pillow", "PIL"),
                             ("torchvision", "torchvision"), ("tqdm", "tqdm")):
            try:
                mods[dist] = version(dist)
            except PackageNotFoundError:  # no metadata: importable is enough
                try:
                    importlib.import_module(module)
                    mods[dist] = "present (no version metadata)"
                except Exception as e:
                    mods[dist] = f"MISSING: {type(e).__name__}: {e}"
        self.summary.update(device=self.device_name, versions=versions(), modules=mods, python=sys.executable)
        missing = [m for m, v in mods.items() if str(v).startswith("MISSING")]
        self.say(f"gpu_check {self.mode} on {self.device_name}: torch {torch.__version__}, python "
                 f"{sys.version.split()[0]}, budget {self.budget:.0f} s ({self.left():.0f} s left), {self.workers} workers, "
                 f"work {self.work}")
        self.say("modules: " + ", ".join(f"{k} {v}" for k, v in mods.items()))
        if missing:
            raise SystemExit(f"gpu_check: missing Python packages {missing}: carry .whl/ (benchmarks/prepare_gpu_check.sh)")
        for need in ("mnist", "cifar10-jpeg.tar.xz" if self.mode == "gpu" else "cifar10"):
            if not any(p.name.startswith(need) for p in self.sources.iterdir()) if self.sources.exists() else True:
                self.say(f"WARNING: no {need} in {self.sources} (benchmarks/prepare_gpu_check.sh copies the data)")

    # -- background data preparation
    def start_data(self) -> None:
        """One background process prepares the caches one after the other (the one part 2 needs first on a CPU,
        CIFAR-10's 60,000 JPEG decodes first on the GPU, where part 1 runs for minutes before part 2)."""
        (self.work / "logs").mkdir(exist_ok=True)
        order = ["cifar10", "mnist"] if self.cuda else ["mnist", "cifar10"]
        specs = [f"{ds}={self.cifar_source() or '' if ds == 'cifar10' else ''}" for ds in order]
        argv = [sys.executable, str(Path(__file__).resolve()), "--prepare-data", str(self.data_dir), *specs]
        log = open(self.work / "logs" / "data.log", "w")
        self.bg = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=self.env(), cwd=self.work)
        self.say("preparing the data caches in the background: " + ", ".join(order))

    def wait_data(self, ds: str, deadline: float) -> bool:
        marker = self.data_dir / f"{ds}.status"
        while not marker.exists() and self.bg.poll() is None and time.time() < deadline:
            time.sleep(0.1)
        if not marker.exists():
            self.say(f"data {ds} not ready" + (" by the part's deadline" if self.bg.poll() is None else ""))
            return False
        ok = marker.read_text().strip() == "0"
        log = (self.work / "logs" / "data.log").read_text(errors="replace").strip().splitlines()
        self.summary.setdefault("data", {})[ds] = {"ok": ok, "ready_at_s": round(marker.stat().st_mtime - self.t0, 1)}
        if not ok:
            self.say(f"data {ds} FAILED:\n    " + "\n    ".join(log[-10:]))
        return ok

    # -- part deadlines
    def part_deadline(self, part: str) -> float:
        later = {"throughput": ("determinism", "force"), "determinism": ("force",), "force": ()}[part]
        reserve = self.plan["pack"] + sum(self.plan[p].get("min", 0) for p in later if p in self.parts)
        d = self.deadline - reserve
        if "max" in self.plan[part]:
            d = min(d, time.time() + self.plan[part]["max"])
        return d

    # -- part 1
    def throughput(self, d: float) -> dict:
        path = self.work / "throughput.json"
        self.say(f"PART 1 throughput: {d - time.time():.0f} s")
        cmd = [sys.executable, str(HERE / "gpu_throughput.py"), "--mode", "gpu" if self.cuda else "tiny",
               "--device", self.device, "--deadline", repr(d), "--out-json", str(path),
               "--workers", str(self.plan["probe_workers"]), "--threads", "4" if self.cuda else "1"]
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=self.env(), cwd=self.work)
        pump = threading.Thread(target=lambda: [print("  " + line, end="", flush=True) for line in proc.stdout], daemon=True)
        pump.start()
        killed = False
        try:
            proc.wait(timeout=max(1.0, d + 20 - time.time()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            killed = True
        pump.join(timeout=5)
        doc = json.loads(path.read_text()) if path.exists() else {}
        budget_skips = [x for x in doc.get("skipped", []) if not x["reason"].startswith("needs CUDA")]
        status = "failed" if not doc else ("killed at its deadline" if killed else
                                           ("done" if proc.returncode == 0 and not doc.get("errors") and not budget_skips else "partial"))
        if killed:
            doc.setdefault("skipped", []).append({"item": doc.get("current") or "?", "reason": "killed: ran past the part's deadline"})
            path.write_text(json.dumps(doc, indent=2) + "\n")
        return {"status": status, "returncode": proc.returncode, "skipped": doc.get("skipped", []),
                "errors": [e["item"] + ": " + e["error"] for e in doc.get("errors", [])], "table": issue19_table(doc)}

    # -- part 2
    def determinism(self, d: float) -> dict:
        self.say(f"PART 2 determinism: the smoke preset twice, {d - time.time():.0f} s")
        cfg = yaml.safe_load((REPO / "config" / "smoke.yaml").read_text())
        if not self.cuda:
            cfg = shrink_smoke(cfg)
        cfg.update(device=self.device, data_dir=str(self.data_dir))
        cfg.pop("data_sources", None)
        if not self.wait_data("mnist", d):
            return {"status": "failed", "reason": "MNIST data not ready"}
        runs = {}
        for k in ("a", "b"):
            cwd = self.work / "determinism" / k
            pipe = gpu_pipeline.Pipeline(cfg, cwd)
            jobs = pipe.cell_jobs() + pipe.report_jobs(figures=False, report=False)
            until = d if k == "b" else time.time() + (d - time.time()) / 2
            self.say(f"  run {k}: {len(jobs)} jobs in {cwd} ({until - time.time():.0f} s)")
            pool = gpu_pipeline.Pool(cwd, self.workers)
            r = pool.run(jobs, until, log=self.say, label=f"run {k}: ")  # kills its workers at the deadline
            if not r.deadline_hit:
                pool.close()
            runs[k] = r.to_dict()
            self.say(f"  run {k}: {len(r.done)} done, {len(r.failed)} failed, {len(r.skipped)} skipped, {r.elapsed:.1f} s")
        cats = compare_trees(self.work / "determinism" / "a" / "results" / "smoke",
                             self.work / "determinism" / "b" / "results" / "smoke")

        def verdict(c):
            if c is None or not (c["identical"] or c["different"]):
                return "not compared"
            if c["different"] or c["only_in_a"] or c["only_in_b"]:
                return f"NOT identical ({len(c['different'])} of {c['identical'] + len(c['different'])} files differ)"
            return f"bit-identical ({c['identical']} files)"

        from prunebench.library.runtime import versions

        doc = {"device": self.device_name, "mode": self.mode, "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
               "versions": versions(), "config_device": self.device, "categories": cats, "runs": runs,
               "verdict": {"masks": verdict(cats.get("masks")), "metrics": verdict(cats.get("metrics"))},
               "warnings": nondeterminism_warnings(self.work / "determinism" / "a" / "results" / "smoke" / "logs",
                                                   self.work / "determinism" / "b" / "results" / "smoke" / "logs")}
        (self.work / "determinism.json").write_text(json.dumps(doc, indent=2) + "\n")
        (self.work / "determinism.md").write_text(determinism_markdown(doc))
        for name, c in cats.items():
            self.say(f"  {name:15s}: {c['identical']} identical, {len(c['different'])} different, "
                     f"{len(c['only_in_a']) + len(c['only_in_b'])} in one run only")
        self.say(f"  verdict: masks {doc['verdict']['masks']}; metrics {doc['verdict']['metrics']}")
        bad = any(r["failed"] or r["skipped"] for r in runs.values())
        return {"status": "partial" if bad else "done", "verdict": doc["verdict"],
                "skipped": {k: r["skipped"] for k, r in runs.items() if r["skipped"]},
                "failed": {k: list(r["failed"]) for k, r in runs.items() if r["failed"]}}

    # -- part 3
    def force(self, d: float) -> dict:
        self.say(f"PART 3 force-check: {d - time.time():.0f} s")
        cfg = yaml.safe_load((REPO / "config" / "force-check.yaml").read_text())
        preset_epochs = cfg["train"]["epochs"]
        collapse_added = self.args.allow_collapse and not cfg.get("pruning", {}).get("allow_collapse")
        if collapse_added:  # the official codes train whatever mask they get: a collapsed layer is a result
            cfg.setdefault("pruning", {})["allow_collapse"] = True
        if self.args.seeds:  # e.g. 3: the report's confidence intervals need 3 seeds per arm for a verdict
            for block in cfg["grid"]:
                block["seeds"] = list(range(self.args.seeds))
        if not self.cuda:
            cfg = shrink_force(cfg)
        cfg.update(device=self.device, data_dir=str(self.data_dir))
        src = self.cifar_source()
        if src:
            cfg["data_sources"] = {"cifar10": src}
        else:
            cfg.pop("data_sources", None)  # $PRUNEBENCH_DATA_SOURCES is searched (the CPU smoke test's synthetic set)
        cells = len(grid.expand(grid.validate(copy.deepcopy(cfg))))
        tp_path = self.work / "throughput.json"
        if not tp_path.exists() and self.args.throughput_json:  # a rerun of part 3 alone: an earlier run's numbers
            tp_path = Path(self.args.throughput_json)
        tp = json.loads(tp_path.read_text()) if tp_path.exists() else {}
        best_k = (tp.get("concurrency") or {}).get("best_k") if self.cuda else None
        workers = min(self.args.workers or best_k or self.workers, cells)  # part 1's best k, unless given
        rate, basis, prune_s = sizing_inputs(tp)
        if self.cuda and rate == SIZING["fallback_img_s"]:  # part 1 did not measure: measure the rate now (~30 s)
            probe = self.work / "throughput-probe.json"
            self.say("  no VGG19 rate from part 1: measuring it now")
            try:
                subprocess.run([sys.executable, str(HERE / "gpu_throughput.py"), "--mode", "gpu", "--device", self.device,
                                "--items", "concurrency", "--deadline", repr(min(d - 150, time.time() + 60)),
                                "--out-json", str(probe), "--workers", str(workers), "--threads", "4"],
                               env=self.env(), cwd=self.work, timeout=90, check=False)
            except subprocess.TimeoutExpired:
                self.say("  the rate measurement did not finish in 90 s")
            if probe.exists():
                rate, basis, _ = sizing_inputs({**tp, **{k: v for k, v in json.loads(probe.read_text()).items()
                                                        if k == "concurrency"}})
        train_s = d - time.time() - prune_s - self.plan["finish_reserve"]
        epochs = size_epochs(train_s, cells, workers, rate)
        if not self.cuda:
            self.say(f"  sizing would give {epochs} epochs for {train_s:.0f} s at {rate:.0f} img/s; "
                     "the CPU smoke mode trains 1 epoch of 2 steps")
            epochs = 1
        sizing = {"cells": cells, "workers": workers, "rate_img_s": rate, "rate_basis": basis, "prune_estimate_s": prune_s,
                  "train_seconds": train_s, "epochs": epochs, **SIZING}
        self.say(f"  {cells} cells, {workers} workers, {rate:.0f} img/s ({basis}); pruning ~{prune_s:.0f} s; "
                 f"{train_s:.0f} s for training -> {epochs} epochs")
        if epochs < 1:
            return {"status": "skipped", "reason": "not enough time left for one epoch", "sizing": sizing}
        cfg["train"]["epochs"] = epochs
        for rep in cfg.get("replication", {}).values():  # the report's replication summary says how it was scaled
            rep["scaled"] = [re.sub(r"^\d+ epochs", f"{epochs} epoch{'s' if epochs != 1 else ''} (sized to the time "
                                    "left in the GPU check)", x) for x in rep.get("scaled", [])]
            if self.args.seeds:
                rep["scaled"] = [re.sub(r"\b1 seed\b", f"{self.args.seeds} seeds", x) for x in rep["scaled"]]
        cfg["description"] = (f"FORCE claim check, VGG19 / CIFAR-10 at 99% and 99.5%, {epochs} epochs (sized to the "
                              "time left by benchmarks/gpu_check.py), 1 seed, official-code settings")
        if not self.wait_data("cifar10", d):
            return {"status": "failed", "reason": "CIFAR-10 data not ready", "sizing": sizing}
        cwd = self.work / "force"
        pipe = gpu_pipeline.Pipeline(cfg, cwd)
        jobs = pipe.cell_jobs()
        pool = gpu_pipeline.Pool(cwd, workers)
        r = pool.run(jobs, d - self.plan["finish_reserve"], log=self.say, label="force: ")
        self.say(f"  cells: {len(r.done)} jobs done, {len(r.failed)} failed, {len(r.skipped)} skipped, {r.elapsed:.1f} s")
        done = gpu_pipeline.finished_cells(pipe, r)
        missing = [gpu_pipeline._job_name(c) for c in pipe.cells if c not in done]
        report_cfg = pipe.config if not missing else pipe.restricted_config(done)
        fin = None
        if report_cfg["grid"]:
            if r.deadline_hit:
                pool = gpu_pipeline.Pool(cwd, workers)
            fin = pool.run(pipe.report_jobs(report_cfg), d, log=self.say, label="force: ")
            self.say(f"  tables/figures/report: {len(fin.done)} done, {len(fin.failed)} failed, {len(fin.skipped)} skipped")
        if not (fin or r).deadline_hit:
            pool.close()
        report = cwd / paths.report_path(cfg["preset"])
        import torch

        info = {"mode": self.mode, "device": self.device_name, "torch": torch.__version__,
                "date": time.strftime("%Y-%m-%d"), "epochs": epochs, "preset_epochs": preset_epochs,
                "lr": cfg["train"]["lr"], "lr_drops": lr_drop_epochs(cfg["train"], epochs), "batch": cfg["train"]["batch_size"],
                "data": self._data_note(cwd, cfg["preset"]), "missing": missing, "collapse_added": collapse_added,
                "budget_min": self.budget / 60, "seeds": len(cfg["grid"][0]["seeds"])}
        if report.exists():
            add_note(report, shortening_note(info))
        status = "done" if report.exists() and not missing and not r.failed and not (fin and fin.failed) else \
            ("partial" if report.exists() else "failed")
        return {"status": status, "epochs": epochs, "allow_collapse_added": collapse_added, "sizing": sizing, "cells": r.to_dict(),
                "finish": fin.to_dict() if fin else None, "missing_cells": missing, "report": report.exists(),
                "summary": self._force_summary(cwd, cfg["preset"])}

    def _data_note(self, cwd, preset) -> str:
        man = cwd / paths.data_manifest(preset, "cifar10")
        return json.loads(man.read_text()).get("source_note", "CIFAR-10") if man.exists() else "CIFAR-10"

    def _force_summary(self, cwd, preset) -> list:
        path = cwd / paths.table_path(preset, "summary.csv")
        if not path.exists():
            return []
        import csv

        with open(path) as f:
            return [{k: r[k] for k in ("arm", "sparsity", "final_acc", "best_acc", "density")} for r in csv.DictReader(f)]

    # -- packing
    def pack(self) -> None:
        tag = self.tag
        members = [(self.work / "throughput.json", f"benchmarks/results/{tag}.json"),
                   (self.work / "determinism.json", f"benchmarks/results/{tag}-determinism.json"),
                   (self.work / "determinism.md", f"benchmarks/results/{tag}-determinism.md")]
        force = self.work / "force"
        members.append((force / "paper" / "replication-force-check.md", "paper/replication-force-check.md"))
        for p in sorted((force / "figures" / "force-check").glob("*")):
            members.append((p, f"figures/force-check/{p.name}"))
        for p in sorted((force / "paper" / "figures" / "force-check").glob("*")):  # the report's own copies
            members.append((p, f"paper/figures/force-check/{p.name}"))
        res = force / "results" / "force-check"
        for name in paths.TABLE_FILES + (paths.RESOLVED_CONFIG,):
            members.append((res / name, f"results/force-check/{name}"))
        self.summary["elapsed_s"] = round(self.now(), 1)
        summary = self.work / "summary.json"
        summary.write_text(json.dumps(self.summary, indent=2, default=str) + "\n")
        members.append((summary, f"benchmarks/results/{tag}-gpu-check.json"))
        logs = [(p, ".device-data/gpu-check-logs/" + str(p.relative_to(self.work)))
                for p in sorted(self.work.rglob("*.log")) if "out" not in p.relative_to(self.work).parts[:1]]
        tmp = self.out / "gpu-check.tar.gz.tmp"
        with tarfile.open(tmp, "w:gz") as tf:
            for src, arc in members + logs:
                if src.exists():
                    tf.add(src, arcname=arc)
        os.replace(tmp, self.out / "gpu-check.tar.gz")
        shutil.copy(summary, self.out / "summary.json")

    # -- all
    def run(self) -> int:
        self.parts = [p for p in ("throughput", "determinism", "force") if p in self.args.parts.split(",")]
        unknown = set(self.args.parts.split(",")) - {"throughput", "determinism", "force"}
        if unknown or not self.parts:
            raise SystemExit(f"gpu_check: --parts takes throughput, determinism, force; got {self.args.parts!r}")
        os.environ.update(self.env())  # the pipeline's worker processes inherit the data sources
        self.preflight()
        self.start_data()
        for part in self.parts:
            t = time.time()
            d = self.part_deadline(part)
            if d - t < self.plan["least"][part]:
                res = {"status": "skipped", "reason": f"no time left: {d - t:.0f} s before its deadline (the parts "
                                                      f"after it keep their share), {self.plan['least'][part]} s needed"}
                self.say(f"PART {part}: SKIPPED, {res['reason']}")
                self.summary["parts"][part] = {**res, "elapsed_s": 0.0}
                continue
            try:
                res = getattr(self, part)(d)
            except Exception as e:
                import traceback

                traceback.print_exc()
                res = {"status": "failed", "error": f"{type(e).__name__}: {e}"}
            res["elapsed_s"] = round(time.time() - t, 1)
            self.summary["parts"][part] = res
            self.say(f"{part}: {res['status']} in {res['elapsed_s']} s")
            try:
                self.pack()
            except Exception as e:
                self.say(f"packing failed: {e!r}")
        if self.bg is not None and self.bg.poll() is None:
            self.bg.kill()
        self.pack()
        self.say("SUMMARY")
        for part, res in self.summary["parts"].items():
            extra = ""
            if part == "throughput":
                extra = f"; skipped: {[s['item'] for s in res.get('skipped', [])]}; errors: {res.get('errors', [])}"
                for r in res.get("table", []):
                    met = {True: "MET", False: "missed", None: "not measured"}[r["met"]]
                    print(f"      {met:12s} {r['row']}: {json.dumps(r['measured'], default=str)[:160]} (goal {r['goal']})")
            elif part == "determinism":
                extra = f"; {res.get('verdict', res.get('reason', ''))}"
            elif part == "force":
                extra = f"; {res.get('epochs', 0)} epochs; missing cells: {res.get('missing_cells', [])}"
                for row in res.get("summary", []):
                    print(f"      {row['arm']:10s} s={row['sparsity']:6s} final {row['final_acc'][:6]} best {row['best_acc'][:6]}")
            self.say(f"  {part}: {res['status']} ({res['elapsed_s']} s){extra}")
        self.say(f"total {self.now():.1f} s of {self.budget:.0f} s; archive {self.out / 'gpu-check.tar.gz'} "
                 f"(unpack: tar -xzf gpu-check.tar.gz -C <repo>)")
        return 0 if all(r["status"] in ("done", "partial") for r in self.summary["parts"].values()) else 1


def prepare_data(cache_dir: str, specs) -> int:
    """The background data job: `prunebench data` for each `dataset=source` in turn; `<dataset>.status`
    in the cache folder holds its exit status when it is done."""
    from prunebench.cli import main as cli

    Path(cache_dir).mkdir(parents=True, exist_ok=True)
    worst = 0
    for spec in specs:
        ds, _, src = spec.partition("=")
        t = time.time()
        status = cli(["data", "--dataset", ds, "--cache-dir", cache_dir, "--no-download"] + (["--source", src] if src else []))
        print(f"{ds}: status {status} in {time.time() - t:.1f} s", flush=True)
        (Path(cache_dir) / f"{ds}.status").write_text(f"{status}\n")
        worst = worst or status
    return worst


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["--prepare-data"]:
        return prepare_data(argv[1], argv[2:])
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cpu-smoke", action="store_true", help="every part at tiny sizes on the CPU (the CI test)")
    ap.add_argument("--budget", type=float, default=0, help="seconds for everything (GPU 450, CPU smoke 300)")
    ap.add_argument("--parts", default="throughput,determinism,force", help="comma-separated subset")
    ap.add_argument("--workers", type=int, default=0, help="worker processes of the pipeline runs (GPU 6, CPU 2)")
    ap.add_argument("--data-sources", default=None, help="folder with mnist/ and cifar10-jpeg.tar.xz (default .device-data)")
    ap.add_argument("--work", default=None, help="a new folder for everything the run writes (default: a temp folder)")
    ap.add_argument("--seeds", type=int, default=0,
                    help="part 3: this many seeds per cell instead of the preset's one (fewer epochs fit)")
    ap.add_argument("--throughput-json", default=None,
                    help="part 3 without part 1: size the epochs from this earlier result "
                         "(e.g. benchmarks/results/NVIDIA_H200.json)")
    ap.add_argument("--no-allow-collapse", dest="allow_collapse", action="store_false",
                    help="part 3: keep config/force-check.yaml's pruning as it is (a mask with a fully pruned layer "
                         "then fails its cell) instead of adding allow_collapse: true")
    ap.add_argument("--out", default=None, help="where gpu-check.tar.gz, summary.json and gpu_check.log go (default <work>/out)")
    args = ap.parse_args(argv)
    check = Check(args)
    log = open(check.out / "gpu_check.log", "a")
    sys.stdout = Tee(sys.__stdout__, log)
    sys.stderr = Tee(sys.__stderr__, log)
    return check.run()


if __name__ == "__main__":
    sys.exit(main())
