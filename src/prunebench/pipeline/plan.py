"""The cost of a preset before running it (`prunebench plan`, issue 19): cells, device-hours per rule and in
total, wall time with the workers at hand, and the SLURM resources the rules would ask for, from measured rates.

The rates come from a throughput file (`benchmarks/results/<device>.json`, written by `prunebench bench` /
`benchmarks/run.py` on a CPU and by `benchmarks/gpu_check.sh` on a GPU). What is read, and how a job's time
is estimated from it (every estimate says which measurement it rests on):

  train     images/s of the trainer per (model, data set): `train` rows (dense_img_s / masked99_img_s; the
            masked rate for a pruned cell), else `flops` rows (img_s), else `cells` rows (img_s); a model
            measured nowhere is scaled from the measured model closest in forward FLOPs (by the FLOP ratio).
            A job = steps x batch images / rate + evaluations (test + validation images at a `cells` row's
            eval_img_s, else EVAL_RATIO x the training rate) + a fixed start (`job_overhead_s`).
  prune     `prune` rows (model, method, options, batch, wall_s), scaled by the job's scoring passes x batch
            over the measured ones (an iterative method's steps, SNIP's batches per step, SPP's epoch-long
            scoring); unmeasured: passes x batch / training rate + per-step selection over the weights.
            JSV (`--jsv`): `jsv` rows (seconds per example), else classes backward passes per example.
  isometry  `isometry` rows (model, steps, wall_s) scaled by steps; else the closed-form gradient's FLOPs.
  init, data, aggregate, figures, report: `job_s` of the file, else the defaults below.

k jobs sharing one GPU (`concurrency.rounds`, `concurrency.best_k` of a GPU file) serve
aggregate(k) / aggregate(1) times the work of one: GPU-hours = single-job hours / that factor, and a local run
on one GPU takes `--resources gpu=<k>` (each GPU rule asks for gpu=1). On a CPU the workers are the cores.
"""
from __future__ import annotations

import math
from pathlib import Path

import torch
import torch.nn as nn

from prunebench.library.artifacts import read_json
from prunebench.library.datasets import DATASETS, dataset_spec
from prunebench.library.errors import PrunebenchError
from prunebench.library.methods import method_info
from prunebench.library.pruners.registry import has_option, pruner_class
from prunebench.library.models import build_model, prunable_modules
from prunebench.pipeline.grid import expand
from prunebench.pipeline.paths import init_path, train_init_path

RULES = ("data", "init", "prune", "isometry", "train", "report")
DEFAULT_JOB_S = {"init": 1.0, "aggregate": 10.0, "figure": 3.0, "report": 5.0}  # data: the data-set table
EVAL_RATIO = 3.0            # forward-only images/s over training images/s (a forward is about 1/3 of a step)
SELECT_S_PER_WEIGHT = {"cpu": 3e-8, "cuda": 1e-9}  # one exact top-k over the weights (a CPU: ~0.6 s for 20M)
RULE_MEM_MB = {"prune": 8000, "isometry": 4000, "train": 8000}  # the rules' defaults (rules/run.smk)


def _cost(method: str, options: dict) -> dict:
    """The pruner's own account of what one pruning costs (Pruner.cost: passes, per batch or image,
    selections), with the options' defaults filled in."""
    return pruner_class(method)(options).cost()


# ---------------------------------------------------------------------------------------------------------
# Model facts (forward FLOPs, weights) on the meta device: nothing is allocated

def model_facts(model_name: str, dataset: str) -> dict:
    """Forward FLOPs per image (2 x multiply-adds of every Conv2d / Linear), prunable weights and the flattened
    shapes [rows, cols] of the prunable layers, from the model built on the meta device."""
    spec = dataset_spec(dataset)
    with torch.device("meta"):
        model = build_model(model_name, dataset)
        x = torch.empty(1, spec.channels, spec.size, spec.size)
    flops = []

    def count(mod, inp, out):
        w = mod.weight
        if isinstance(mod, nn.Conv2d):
            flops.append(2 * out.numel() * w.shape[1] * w.shape[2] * w.shape[3])
        else:
            flops.append(2 * out.numel() * w.shape[1])

    hooks = [m.register_forward_hook(count) for m in prunable_modules(model).values()]
    with torch.no_grad():
        model.eval()(x)
    for h in hooks:
        h.remove()
    shapes = [(m.weight.shape[0], m.weight[0].numel()) for m in prunable_modules(model).values()]
    return {"fwd_flops": float(sum(flops)), "weights": sum(r * c for r, c in shapes), "shapes": shapes,
            "classes": spec.num_classes, "input": spec.channels * spec.size * spec.size}


# ---------------------------------------------------------------------------------------------------------
# Rates

class Rates:
    """The measured rates of one throughput file, and estimates from them (each with its basis)."""

    def __init__(self, doc: dict, source: str = ""):
        self.doc, self.source = doc, source
        self.device = str(doc.get("device", "unknown"))
        self.kind = "cuda" if any(k in self.device for k in ("NVIDIA", "H100", "H200", "A100", "cuda", "GPU")) else "cpu"
        self._facts = {}

    def facts(self, model, dataset):
        key = (model, dataset)
        if key not in self._facts:
            self._facts[key] = model_facts(model, dataset)
        return self._facts[key]

    def _measured_train(self):
        """(model, dataset, batch, dense rate, masked rate) of every training measurement in the file."""
        out = []
        for r in self.doc.get("train", []):
            out.append((r["model"], r.get("dataset", "cifar10"), r.get("batch"), r.get("dense_img_s"),
                        r.get("masked99_img_s", r.get("dense_img_s"))))
        for r in self.doc.get("flops", []) + self.doc.get("cells", []):
            if r.get("img_s") and "model" in r:
                out.append((r["model"], r.get("dataset", "cifar10"), r.get("batch"), r["img_s"], r["img_s"]))
        return [o for o in out if o[3]]

    def train_rate(self, model, dataset, batch, masked: bool) -> tuple:
        """(training images/s, basis) of `model` on `dataset`."""
        rows = self._measured_train()
        exact = [r for r in rows if r[0] == model and r[1] == dataset]
        if exact:
            r = min(exact, key=lambda r: abs((r[2] or batch) - batch))
            return (r[4] if masked else r[3]), f"measured ({model}, batch {r[2]})"
        if not rows:
            raise PrunebenchError(f"the throughput file {self.source or ''} holds no training rate to estimate from")
        f = self.facts(model, dataset)["fwd_flops"]
        ref = min(rows, key=lambda r: abs(math.log(self.facts(r[0], r[1])["fwd_flops"] / f)))
        rf = self.facts(ref[0], ref[1])["fwd_flops"]
        rate = (ref[4] if masked else ref[3]) * rf / f
        return rate, f"scaled from {ref[0]} by forward FLOPs ({rf / 1e6:.3g} vs {f / 1e6:.3g} MFLOP)"

    def eval_rate(self, model, dataset, train_rate: float) -> float:
        """Forward-only images/s: a `cells` row's eval_img_s when measured, else EVAL_RATIO x the training rate."""
        rows = [r for r in self.doc.get("cells", []) if r.get("model") == model and r.get("dataset", dataset) == dataset
                and r.get("eval_img_s")]
        return rows[0]["eval_img_s"] if rows else EVAL_RATIO * train_rate

    def job_s(self, what, default):
        return float(self.doc.get("job_s", {}).get(what, default))

    @property
    def overhead_s(self) -> float:
        return float(self.doc.get("job_overhead_s", 1.0 if self.kind == "cpu" else 5.0))

    def prune_s(self, cell: dict, n_train: int) -> tuple:
        method, p = cell["method"], cell["pruning"]
        batch = p.get("batch_size", 128)
        if p.get("samples_per_class"):
            batch = p["samples_per_class"] * dataset_spec(cell["dataset"]).num_classes
        opts = dict(cell["options"])
        if p.get("epoch") and has_option(method, "num_batches"):  # SPP's epoch-long scoring: one pass over the
            opts["num_batches"] = -(-n_train // batch)                # training split
        cost = _cost(method, opts)
        work = cost["passes"] * (batch if cost["per"] == "batch" else 1)
        measured = [r for r in self.doc.get("prune", []) if r.get("model") == cell["model"] and r.get("method") == method
                    and "wall_s" in r]
        if measured:
            r = measured[0]
            rcost = _cost(method, r.get("options") or {})
            rwork = rcost["passes"] * ((r.get("batch") or batch) if rcost["per"] == "batch" else 1)
            scale = work / rwork if rwork and work else 1.0
            return r["wall_s"] * scale, f"measured ({method}, {cell['model']}) x {scale:.3g}"
        rate, basis = self.train_rate(cell["model"], cell["dataset"], batch, masked=False)
        f = self.facts(cell["model"], cell["dataset"])
        sel = SELECT_S_PER_WEIGHT[self.kind] * f["weights"] * cost["selections"]
        return work / rate + sel, f"{cost['passes']} scoring passes at the training rate ({basis}) + selection"

    def jsv_s(self, cell: dict, examples: int) -> tuple:
        rows = [r for r in self.doc.get("jsv", []) if r.get("model") == cell["model"]]
        if rows:
            return examples * rows[0]["wall_s"] / rows[0]["examples"], f"measured JSV ({cell['model']})"
        rate, basis = self.train_rate(cell["model"], cell["dataset"], 128, masked=False)
        return examples * self.facts(cell["model"], cell["dataset"])["classes"] * 0.7 / rate, \
            f"one backward pass per class at the training rate ({basis})"

    def isometry_s(self, cell: dict, steps: int) -> tuple:
        rows = [r for r in self.doc.get("isometry", []) if r.get("model") == cell["model"]]
        if rows:
            return steps * rows[0]["wall_s"] / rows[0]["steps"], f"measured isometry ({cell['model']})"
        f = self.facts(cell["model"], cell["dataset"])
        flops = sum(4.0 * r * r * c for r, c in f["shapes"])
        peak = (self.doc.get("matmul") or {}).get("tflop_s")
        rate = peak * 1e12 * 0.3 if peak else 5e10
        return steps * (flops / rate + 2e-5 * len(f["shapes"])), "the closed form's FLOPs (not measured)"

    def concurrency(self) -> tuple:
        """(k jobs per device, throughput of k jobs over one) from the file (1, 1.0 when not measured)."""
        conc = self.doc.get("concurrency") or {}
        k = conc.get("best_k") or conc.get("processes")  # files before issue 19 measured one k only
        if not k:
            return 1, 1.0
        rounds = {r["processes"]: r["aggregate_img_s"] for r in conc.get("rounds", [])}
        factor = rounds[k] / rounds[1] if k in rounds and 1 in rounds else float(conc.get("aggregate_over_single") or 1.0)
        return int(k), factor


# ---------------------------------------------------------------------------------------------------------
# Jobs and the plan

def _train_steps(train: dict, n_split: int) -> tuple:
    batch = train.get("batch_size", 128)
    full = -(-n_split // batch)
    spe = min(full, train["steps_per_epoch"]) if train.get("steps_per_epoch") else full
    if train.get("max_steps"):
        total = train["max_steps"]
        evals = -(-total // train["eval_every"]) if train.get("eval_every") else -(-total // spe)
    else:
        total = train.get("epochs", 1) * spe
        evals = -(-total // train["eval_every"]) if train.get("eval_every") else train.get("epochs", 1)
    return total, batch, evals


def jobs(cfg: dict, rates: Rates) -> list:
    """Every job of the preset's DAG with its estimated seconds (alone on the device): (rule, name, s, basis)."""
    cells = expand(cfg)
    vf = float(cfg.get("val_fraction") or 0.0)
    out = []
    for ds in sorted({c["dataset"] for c in cells}):
        out.append(("data", ds, rates.job_s(f"data_{ds}", DATASETS[ds].prepare_s), "default"))
    inits = sorted({init_path(c) for c in cells} | {train_init_path(c) for c in cells})
    out += [("init", p, rates.job_s("init", DEFAULT_JOB_S["init"]), "default") for p in inits]
    for c in cells:
        n_train_all, n_test = DATASETS[c["dataset"]].sizes
        n_val = int(math.floor(vf * n_train_all))
        n_train = n_train_all - n_val
        name = f"{c['dataset']}/{c['model']}/{c['init']}/{c['arm']}/s{c['sparsity']}/seed{c['seed']}"
        info = method_info(c["method"])
        if info.at_init:
            s, basis = rates.prune_s(c, n_train)
            if c.get("jsv"):
                js, jb = rates.jsv_s(c, int(c["pruning"].get("jsv_examples", 10)))
                s, basis = s + 2 * js, f"{basis}; 2 x JSV ({jb})"
            out.append(("prune", name, s + rates.overhead_s, basis))
        if c.get("isometry"):
            s, basis = rates.isometry_s(c, int(c["isometry"].get("steps", 10000)))
            if c.get("jsv"):
                js, jb = rates.jsv_s(c, int(c["pruning"].get("jsv_examples", 10)))
                s, basis = s + js, f"{basis}; JSV ({jb})"
            out.append(("isometry", name, s + rates.overhead_s, basis))
        if not c.get("trained", True):  # a sweep cell: prune (+ JSV) only
            continue
        total, batch, evals = _train_steps(c["train"], n_train)
        masked = info.at_init or info.during
        rate, basis = rates.train_rate(c["model"], c["dataset"], batch, masked)
        eval_images = evals * (n_test + n_val)
        s = total * batch / rate + eval_images / rates.eval_rate(c["model"], c["dataset"], rate) + rates.overhead_s
        out.append(("train", name, s, basis))
    figures = len(cfg.get("figures", []))
    out.append(("report", "aggregate + figures + report",
                rates.job_s("aggregate", DEFAULT_JOB_S["aggregate"]) + figures * rates.job_s("figure", DEFAULT_JOB_S["figure"])
                + rates.job_s("report", DEFAULT_JOB_S["report"]), "default"))
    return out


def plan(cfg: dict, rates: Rates, workers: int | None = None, gpus: int = 1) -> dict:
    """Cells, device-hours per rule and in total, the wall time with `workers` (CPU: processes; GPU: k jobs per
    GPU x `gpus`), and the resources block a SLURM run would use."""
    js = jobs(cfg, rates)
    k, factor = rates.concurrency() if rates.kind == "cuda" else (1, 1.0)
    if workers is None:
        workers = k * gpus if rates.kind == "cuda" else max(1, int(cfg.get("cores") or 2))
    per_rule = {}
    for rule, name, s, basis in js:
        r = per_rule.setdefault(rule, {"jobs": 0, "seconds": 0.0, "longest_s": 0.0, "basis": set()})
        r["jobs"] += 1
        r["seconds"] += s
        r["longest_s"] = max(r["longest_s"], s)
        r["basis"].add(basis)
    total_s = sum(r["seconds"] for r in per_rule.values())
    if rates.kind == "cuda":
        device_hours = {rule: r["seconds"] / 3600 / (factor if rule in ("prune", "isometry", "train") else 1.0)
                        for rule, r in per_rule.items()}
        wall_h = sum(device_hours.values()) / max(1, gpus)
    else:
        device_hours = {rule: r["seconds"] / 3600 for rule, r in per_rule.items()}
        wall_h = sum(device_hours.values()) / max(1, workers)
    wall_h = max(wall_h, max(r["longest_s"] for r in per_rule.values()) / 3600)
    resources = {}
    for rule in ("prune", "isometry", "train"):
        if rule in per_rule:
            longest = per_rule[rule]["longest_s"] * (k / factor if rates.kind == "cuda" else 1.0)
            resources[rule] = {"gpu": 1 if rates.kind == "cuda" else 0, "mem_mb": RULE_MEM_MB[rule],
                               "runtime": max(10, int(math.ceil(longest * 1.5 / 60)) + 5)}
    return {"preset": cfg.get("preset"), "cells": len(expand(cfg)), "device": rates.device, "kind": rates.kind,
            "throughput_file": rates.source, "workers": workers, "gpus": gpus if rates.kind == "cuda" else 0,
            "jobs_per_gpu": k if rates.kind == "cuda" else None, "sharing_factor": factor,
            "rules": {rule: {**{kk: v for kk, v in r.items() if kk != "basis"}, "device_hours": device_hours[rule],
                             "basis": sorted(r["basis"])} for rule, r in per_rule.items()},
            "device_hours": sum(device_hours.values()), "single_job_hours": total_s / 3600, "wall_hours": wall_h,
            "resources": resources}


def load_rates(path) -> Rates:
    path = Path(path)
    doc = read_json(path)
    if not isinstance(doc, dict) or not any(k in doc for k in ("train", "flops", "cells")):
        raise PrunebenchError(f"throughput file {str(path)!r} has no training rates (train, flops or cells rows)")
    return Rates(doc, str(path))


def render(p: dict) -> str:
    unit = "GPU-hours" if p["kind"] == "cuda" else "core-hours"
    lines = [f"preset {p['preset']}: {p['cells']} cells; rates of {p['device']} from {p['throughput_file']}", "",
             f"| rule | jobs | {unit} | longest job | estimated from |", "|---|---|---|---|---|"]
    for rule in RULES:
        r = p["rules"].get(rule)
        if r:
            lines.append(f"| {rule} | {r['jobs']} | {r['device_hours']:.3f} | {_dur(r['longest_s'])} | "
                         f"{'; '.join(r['basis'])[:160]} |")
    lines.append(f"| **total** | {sum(r['jobs'] for r in p['rules'].values())} | **{p['device_hours']:.3f}** | | |")
    lines.append("")
    if p["kind"] == "cuda":
        lines.append(f"{p['jobs_per_gpu']} jobs share each GPU (the best k measured: {p['sharing_factor']:.2f}x the "
                     f"throughput of one job); {p['gpus']} GPU(s): about {_dur(p['wall_hours'] * 3600)} wall. Locally: "
                     f"`snakemake --cores all --resources gpu={p['jobs_per_gpu'] * p['gpus']} ...` (each GPU rule asks gpu=1).")
    else:
        lines.append(f"{p['workers']} worker processes: about {_dur(p['wall_hours'] * 3600)} wall "
                     f"({p['single_job_hours']:.2f} core-hours of jobs).")
    lines += ["", "SLURM resources (a preset's `resources:` block; runtime in minutes = 1.5 x the longest job + 5):", "",
              "```yaml", "resources:"]
    for rule, r in p["resources"].items():
        lines.append(f"  {rule}: {{gpu: {r['gpu']}, mem_mb: {r['mem_mb']}, runtime: {r['runtime']}}}")
    lines.append("```")
    return "\n".join(lines) + "\n"


def _dur(s: float) -> str:
    if s < 90:
        return f"{s:.0f} s"
    if s < 5400:
        return f"{s / 60:.1f} min"
    return f"{s / 3600:.1f} h"

