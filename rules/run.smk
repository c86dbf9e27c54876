# data -> init -> prune (-> isometry) -> train, one job per cell.


rule data:
    input:
        code=sources("data"),
    output:
        P.data_manifest(PRESET, "{dataset}"),
    log:
        P.log_path(PRESET, "data", "{dataset}"),
    params:
        key=lambda w: V.data_key(config, w.dataset),
        source=lambda w: (
            ["--source", config["data_sources"][w.dataset]] if w.dataset in config.get("data_sources", {}) else []
        ),
    threads: 1
    resources:
        mem_mb=res("data", "mem_mb", 4000),
        runtime=res("data", "runtime", 60),
    run:
        run_cli(["data", "--dataset", wildcards.dataset, "--cache-dir", DATA_DIR, *params.source,
                 "--manifest", output[0]], log[0])


def init_cell(w):
    """The init job's stand-in cell: the seed in the path is the cell seed; the init command gets the cell's
    init seed (grid.seeds_for), whatever its offset."""
    return {"dataset": w.dataset, "model": w.model, "init": w.init, "seeds": G.seeds_for(int(w.seed))}


rule init:
    input:
        code=sources("init"),
    output:
        f"{RES}/{P.INIT_PATTERN}",
    log:
        P.log_path(PRESET, "init", "{dataset}_{model}_{init}_seed{seed}"),
    params:
        key=lambda w: V.init_key(config, init_cell(w)),
        seed=lambda w: init_cell(w)["seeds"]["init"],
    threads: THREADS
    resources:
        mem_mb=res("init", "mem_mb", 2000),
        runtime=res("init", "runtime", 10),
    run:
        run_cli(["init", "--model", wildcards.model, "--dataset", wildcards.dataset, "--scheme", wildcards.init,
                 "--seed", params.seed, "--threads", threads, "--out", output[0]], log[0])


def init_of(w):
    return P.init_path(cell(w))


def prune_flags(c):
    p = c["pruning"]
    flags = ["--jsv"] if c["jsv"] else []
    flags += ["--jsv-examples", p["jsv_examples"]] if "jsv_examples" in p else []
    flags += ["--allow-collapse"] if p.get("allow_collapse") else []
    flags += ["--no-augment"] if p.get("augment") is False else []
    flags += ["--scope", p["scope"]] if "scope" in p else []
    flags += ["--samples-per-class", p["samples_per_class"]] if "samples_per_class" in p else []
    return flags


rule prune:
    input:
        init=init_of,
        data=P.data_manifest(PRESET, "{dataset}"),
        code=lambda w: sources("prune", cell(w)["method"]),
    output:
        mask=f"{CELL}/mask.safetensors",
        report=f"{CELL}/prune.json",
        timing=f"{CELL}/prune_timing.json",
    log:
        P.log_path(PRESET, "prune", JOB),
    params:
        key=lambda w: V.prune_key(config, cell(w)),
        method=lambda w: cell(w)["method"],
        options=lambda w: jarg(cell(w)["options"]),
        batch=lambda w: cell(w)["pruning"].get("batch_size", 128),
        seed=lambda w: cell(w)["seeds"]["prune"],
        hash=lambda w: G.cell_hash(cell(w)),
        extra=lambda w: prune_flags(cell(w)),
    threads: THREADS
    resources:
        gpu=res("prune", "gpu", 0),
        mem_mb=res("prune", "mem_mb", 8000),
        runtime=res("prune", "runtime", 60),
    run:
        run_cli(["prune", "--method", params.method, "--sparsity", wildcards.sparsity, "--init", input.init,
                 "--data", input.data, "--batch-size", params.batch, "--seed", params.seed, "--options",
                 params.options, *params.extra, "--cell-hash", params.hash, "--threads", threads, "--device",
                 DEVICE, "--out", output.mask, "--report", output.report, "--timing", output.timing], log[0])


rule isometry:
    input:
        init=init_of,
        mask=f"{CELL}/mask.safetensors",
        data=P.data_manifest(PRESET, "{dataset}"),
        code=sources("isometry"),
    output:
        weights=f"{CELL}/weights_ai.safetensors",
        report=f"{CELL}/isometry.json",
    log:
        P.log_path(PRESET, "isometry", JOB),
    params:
        key=lambda w: V.isometry_key(config, cell(w)),
        steps=lambda w: cell(w)["isometry"].get("steps", 10000),
        lr=lambda w: cell(w)["isometry"].get("lr", 0.1),
        jsv=lambda w: ["--jsv"] if cell(w)["jsv"] else [],
    threads: THREADS
    resources:
        gpu=res("isometry", "gpu", 0),
        mem_mb=res("isometry", "mem_mb", 4000),
        runtime=res("isometry", "runtime", 60),
    run:
        run_cli(["isometry", "--init", input.init, "--mask", input.mask, "--steps", params.steps, "--lr", params.lr,
                 "--data", input.data, *params.jsv, "--threads", threads, "--device", DEVICE, "--out",
                 output.weights, "--report", output.report], log[0])


def train_inputs(w):
    c = cell(w)
    d = P.cell_dir(c)
    info = M.method_info(c["method"])
    inp = {"data": P.data_manifest(PRESET, c["dataset"])}
    inp["init"] = f"{d}/weights_ai.safetensors" if c["isometry"] else init_of(w)
    if info.at_init:
        inp["mask"] = f"{d}/mask.safetensors"
    inp["code"] = sources("train", c["method"])
    return inp


def train_flags(w):
    c = cell(w)
    info = M.method_info(c["method"])
    flags = []
    if info.at_init:
        flags += ["--mask", f"{P.cell_dir(c)}/mask.safetensors"]
    if info.during:
        flags += ["--during", c["method"], "--target-sparsity", c["sparsity"], "--during-options", jarg(c["options"])]
    if config.get("val_fraction"):
        flags += ["--val-fraction", config["val_fraction"]]
    return flags


rule train:
    input:
        unpack(train_inputs),
    output:
        metrics=f"{CELL}/metrics.json",
        timing=f"{CELL}/timing.json",
        manifest=f"{CELL}/manifest.json",
    log:
        P.log_path(PRESET, "train", JOB),
    params:
        key=lambda w: V.train_key(config, cell(w)),
        config=lambda w: jarg({**cell(w)["train"], "seed": cell(w)["seeds"]["data"]}),
        flags=train_flags,
        hash=lambda w: G.cell_hash(cell(w)),
        outdir=lambda w: P.cell_dir(cell(w)),
    threads: THREADS
    resources:
        gpu=res("train", "gpu", 0),
        mem_mb=res("train", "mem_mb", 8000),
        runtime=res("train", "runtime", 120),
    run:
        run_cli(["train", "--init", input.init, "--data", input.data, *params.flags, "--config", params.config,
                 "--cell-hash", params.hash, "--threads", threads, "--device", DEVICE, "--no-progress",
                 "--out-dir", params.outdir], log[0])
