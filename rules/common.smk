# Shared helpers of the rules: the one cell pattern, cell lookup, argv builders, resources, the in-process runner.
import json


wildcard_constraints:
    dataset="|".join(DATASETS),
    seed=r"\d{1,9}",
    sparsity=r"[0-9.e-]{1,24}",
    model=r"[A-Za-z0-9_-]{1,64}",
    init=r"[a-z_]{1,64}",
    arm=r"[A-Za-z0-9_]{1,64}",


# Every per-cell output is a file in the CELL folder (prunebench.pipeline.paths).
CELL = f"{RES}/{P.CELL_PATTERN}"
JOB = "{dataset}_{model}_{init}_{arm}_s{sparsity}_seed{seed}"


def cell(w):
    key = P.cell_dir({"preset": PRESET, **dict(w.items())})
    if key not in CELLS:
        raise ValueError(f"{key} is not a cell of preset {PRESET}")
    return CELLS[key]


def res(step, key, default):
    return config.get("resources", {}).get(step, {}).get(key, default)


def jarg(obj):
    """A JSON command-line value (canonical: sorted keys)."""
    return json.dumps(obj, sort_keys=True)


def run_cli(argv, log):
    """Run one prunebench command, its output in `log`; a non-zero status fails the job.

    In the main Snakemake process (the default profile runs jobs in its threads: `force-use-threads`), the
    command runs in a pool of as many long-lived worker processes as cores, each importing torch once, instead
    of a new interpreter and torch import per job. Where Snakemake runs a job in a process of its own (a
    cluster, or no threads), the command runs right there. Same code, same bytes."""
    from prunebench.cli import run_logged, run_pooled

    if workflow.is_main_process:
        status = run_pooled(argv, log, workflow.cores)
    else:
        status = run_logged(argv, log)
    if status != 0:
        raise RuntimeError(f"prunebench {argv[0]} failed with status {status}; see {log}")


THREADS = config.get("threads", 1)
DEVICE = config.get("device", "auto")


def init_cell(w):
    """The init job's stand-in cell: an initialization file is named by its own seed (paths.init_path)."""
    return {"dataset": w.dataset, "model": w.model, "init": w.init, "seeds": {"init": int(w.seed)}}


def init_of(w):
    return P.init_path(cell(w))


def prune_argv(c, input, output, threads):
    p = c["pruning"]
    flags = ["--jsv"] if c["jsv"] else []
    flags += ["--jsv-examples", p["jsv_examples"]] if "jsv_examples" in p else []
    flags += ["--allow-collapse"] if p.get("allow_collapse") else []
    flags += ["--no-augment"] if p.get("augment") is False else []
    flags += ["--scope", p["scope"]] if "scope" in p else []
    flags += ["--samples-per-class", p["samples_per_class"]] if "samples_per_class" in p else []
    flags += ["--epoch"] if p.get("epoch") else []
    flags += ["--val-fraction", config["val_fraction"]] if config.get("val_fraction") else []
    return ["prune", "--method", c["method"], "--sparsity", P.fmt_sparsity(c["sparsity"]), "--init", input.init,
            "--data", input.data, "--batch-size", p.get("batch_size", 128), "--seed", c["seeds"]["prune"],
            "--options", jarg(c["options"]), *flags, "--cell-hash", G.cell_hash(c), "--threads", threads,
            "--device", DEVICE, "--out", output.mask, "--report", output.report, "--timing", output.timing]


def isometry_argv(c, input, output, threads):
    iso = c["isometry"]
    jsv = ["--jsv"] if c["jsv"] else []
    jsv += ["--jsv-examples", c["pruning"]["jsv_examples"]] if c["jsv"] and "jsv_examples" in c["pruning"] else []
    return ["isometry", "--init", input.init, "--mask", input.mask, "--steps", iso.get("steps", 10000), "--lr",
            iso.get("lr", 0.1), "--data", input.data, *jsv, "--threads", threads,
            "--device", DEVICE, "--out", output.weights, "--report", output.report]


def train_inputs(w):
    c = cell(w)
    d = P.cell_dir(c)
    info = M.method_info(c["method"])
    inp = {"data": P.data_manifest(PRESET, c["dataset"])}
    inp["init"] = f"{d}/weights_ai.safetensors" if c["isometry"] else P.train_init_path(c)
    if info.at_init:
        inp["mask"] = f"{d}/mask.safetensors"
    return inp


def train_argv(c, input, threads):
    info = M.method_info(c["method"])
    flags = []
    if info.at_init:
        flags += ["--mask", f"{P.cell_dir(c)}/mask.safetensors"]
    if info.during:
        flags += ["--during", c["method"], "--target-sparsity", c["sparsity"], "--during-options", jarg(c["options"])]
    if config.get("val_fraction"):
        flags += ["--val-fraction", config["val_fraction"]]
    return ["train", "--init", input.init, "--data", input.data, *flags, "--config",
            jarg({**c["train"], "seed": c["seeds"]["data"]}), "--cell-hash", G.cell_hash(c), "--threads", threads,
            "--device", DEVICE, "--no-progress", "--out-dir", P.cell_dir(c)]


def write_config(path):
    """The preset as Snakemake resolved it, next to the tables (the aggregator reads it)."""
    import yaml
    from prunebench.library.artifacts import atomic_path

    with atomic_path(path) as tmp:
        tmp.write_text(yaml.safe_dump(config, sort_keys=True))


def load_captions(path):
    import yaml

    with open(path) as f:
        return yaml.safe_load(f)
