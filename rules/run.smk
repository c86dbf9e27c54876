# data -> init -> prune (-> isometry) -> train, one job per cell.


rule data:
    output:
        P.data_manifest(PRESET, "{dataset}"),
    log:
        P.log_path(PRESET, "data", "{dataset}"),
    params:
        key=lambda w: V.data_key(config, w.dataset),
        argv=lambda w, output: ["data", "--dataset", w.dataset, "--cache-dir", DATA_DIR, "--manifest", output[0]]
        + (["--source", config["data_sources"][w.dataset]] if w.dataset in config.get("data_sources", {}) else []),
    threads: 1
    resources:
        mem_mb=res("data", "mem_mb", 4000),
        runtime=res("data", "runtime", 60),
    run:
        run_cli(params.argv, log[0])


rule init:
    output:
        f"{RES}/{P.INIT_PATTERN}",
    log:
        P.log_path(PRESET, "init", "{dataset}_{model}_{init}_seed{seed}"),
    params:
        key=lambda w: V.init_key(config, init_cell(w)),
        argv=lambda w, output, threads: ["init", "--model", w.model, "--dataset", w.dataset, "--scheme", w.init,
                                         "--seed", w.seed, "--threads", threads,
                                         "--out", output[0]],
    threads: THREADS
    resources:
        mem_mb=res("init", "mem_mb", 2000),
        runtime=res("init", "runtime", 10),
    run:
        run_cli(params.argv, log[0])


rule prune:
    input:
        init=init_of,
        data=P.data_manifest(PRESET, "{dataset}"),
    output:
        mask=f"{CELL}/mask.safetensors",
        report=f"{CELL}/prune.json",
        timing=f"{CELL}/prune_timing.json",
    log:
        P.log_path(PRESET, "prune", JOB),
    params:
        key=lambda w: V.prune_key(config, cell(w)),
        argv=lambda w, input, output, threads: prune_argv(cell(w), input, output, threads),
    threads: THREADS
    resources:
        gpu=res("prune", "gpu", 0),
        mem_mb=res("prune", "mem_mb", 8000),
        runtime=res("prune", "runtime", 60),
    run:
        run_cli(params.argv, log[0])


rule isometry:
    input:
        init=init_of,
        mask=f"{CELL}/mask.safetensors",
        data=P.data_manifest(PRESET, "{dataset}"),
    output:
        weights=f"{CELL}/weights_ai.safetensors",
        report=f"{CELL}/isometry.json",
    log:
        P.log_path(PRESET, "isometry", JOB),
    params:
        key=lambda w: V.isometry_key(config, cell(w)),
        argv=lambda w, input, output, threads: isometry_argv(cell(w), input, output, threads),
    threads: THREADS
    resources:
        gpu=res("isometry", "gpu", 0),
        mem_mb=res("isometry", "mem_mb", 4000),
        runtime=res("isometry", "runtime", 60),
    run:
        run_cli(params.argv, log[0])


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
        argv=lambda w, input, threads: train_argv(cell(w), input, threads),
    threads: THREADS
    resources:
        gpu=res("train", "gpu", 0),
        mem_mb=res("train", "mem_mb", 8000),
        runtime=res("train", "runtime", 120),
    run:
        run_cli(params.argv, log[0])
