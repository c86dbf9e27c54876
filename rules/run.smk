# data -> init -> prune (-> isometry) -> train, one job per cell.
from prunebench.pipeline.workflow import data_argv, init_argv, isometry_argv, prune_argv, train_argv


rule data:
    output:
        paths.data_manifest(PRESET, "{dataset}"),
    log:
        paths.log_path(PRESET, "data", "{dataset}"),
    params:
        key=lambda w: provenance.data_key(config, w.dataset),
        argv=lambda w, output: data_argv(config, w.dataset, output[0]),
    threads: 1
    resources:
        mem_mb=res("data", "mem_mb", 4000),
        runtime=res("data", "runtime", 60),
    run:
        run_cli(params.argv, log[0])


rule init:
    output:
        f"{RES}/{paths.INIT_PATTERN}",
    log:
        paths.log_path(PRESET, "init", "{dataset}_{model}_{init}_seed{seed}"),
    params:
        key=lambda w: provenance.init_key(config, init_cell(w)),
        argv=lambda w, output, threads: init_argv(w.model, w.dataset, w.init, w.seed, output[0], threads),
    threads: THREADS
    resources:
        mem_mb=res("init", "mem_mb", 2000),
        runtime=res("init", "runtime", 10),
    run:
        run_cli(params.argv, log[0])


rule prune:
    input:
        init=init_of,
        data=paths.data_manifest(PRESET, "{dataset}"),
    output:
        mask=f"{CELL}/mask.safetensors",
        report=f"{CELL}/prune.json",
        timing=f"{CELL}/prune_timing.json",
    log:
        paths.log_path(PRESET, "prune", JOB),
    params:
        key=lambda w: provenance.prune_key(config, cell(w)),
        argv=lambda w, input, output, threads: prune_argv(config, cell(w), init=input.init, data=input.data,
                                                          mask=output.mask, report=output.report,
                                                          timing=output.timing, device=DEVICE, threads=threads),
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
        data=paths.data_manifest(PRESET, "{dataset}"),
    output:
        weights=f"{CELL}/weights_ai.safetensors",
        report=f"{CELL}/isometry.json",
    log:
        paths.log_path(PRESET, "isometry", JOB),
    params:
        key=lambda w: provenance.isometry_key(config, cell(w)),
        argv=lambda w, input, output, threads: isometry_argv(config, cell(w), init=input.init, mask=input.mask,
                                                             data=input.data, weights=output.weights,
                                                             report=output.report, device=DEVICE, threads=threads),
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
        paths.log_path(PRESET, "train", JOB),
    params:
        key=lambda w: provenance.train_key(config, cell(w)),
        argv=lambda w, input, threads: train_argv(config, cell(w), init=input.init, data=input.data, device=DEVICE,
                                                  threads=threads),
    threads: THREADS
    resources:
        gpu=res("train", "gpu", 0),
        mem_mb=res("train", "mem_mb", 8000),
        runtime=res("train", "runtime", 120),
    run:
        run_cli(params.argv, log[0])
