# data -> init -> prune (-> isometry) -> train, one job per cell.


rule data:
    input:
        code=sources("data"),
    output:
        f"{RES}/data/{{dataset}}.json",
    log:
        f"{RES}/logs/data/{{dataset}}.log",
    params:
        key=lambda w: G.data_key(config, w.dataset),
        source=lambda w: (
            f"--source {config['data_sources'][w.dataset]}"
            if w.dataset in config.get("data_sources", {})
            else ""
        ),
    threads: 1
    resources:
        mem_mb=res("data", "mem_mb", 4000),
        runtime=res("data", "runtime", 60),
    shell:
        "{CLI} data --dataset {wildcards.dataset} --cache-dir {DATA_DIR} {params.source} "
        "--manifest {output} > {log} 2>&1"


rule init:
    input:
        code=sources("init"),
    output:
        f"{RES}/{{dataset}}/{{model}}/{{init}}/init/seed{{seed}}.safetensors",
    log:
        f"{RES}/logs/init/{{dataset}}_{{model}}_{{init}}_seed{{seed}}.log",
    params:
        key=lambda w: G.init_key(config, {"dataset": w.dataset, "model": w.model, "init": w.init,
                                          "seeds": {"init": int(w.seed)}}),
    threads: 1
    resources:
        mem_mb=res("data", "mem_mb", 4000),
        runtime=10,
    shell:
        "{CLI} init --model {wildcards.model} --dataset {wildcards.dataset} --scheme {wildcards.init} "
        "--seed {wildcards.seed} --out {output} > {log} 2>&1"


def init_of(w):
    c = cell(w)
    return G.init_path({**c, "seed": c["seeds"]["init"] - G.SEED_OFFSETS["init"]}, "results")


rule prune:
    input:
        init=init_of,
        data=f"{RES}/data/{{dataset}}.json",
        code=lambda w: sources("prune", cell(w)["method"]),
    output:
        mask=f"{RES}/{{dataset}}/{{model}}/{{init}}/{{arm}}/s{{sparsity}}/seed{{seed}}/mask.safetensors",
        report=f"{RES}/{{dataset}}/{{model}}/{{init}}/{{arm}}/s{{sparsity}}/seed{{seed}}/prune.json",
        timing=f"{RES}/{{dataset}}/{{model}}/{{init}}/{{arm}}/s{{sparsity}}/seed{{seed}}/prune_timing.json",
    log:
        f"{RES}/logs/prune/{{dataset}}_{{model}}_{{init}}_{{arm}}_s{{sparsity}}_seed{{seed}}.log",
    params:
        key=lambda w: G.prune_key(config, cell(w)),
        method=lambda w: cell(w)["method"],
        options=lambda w: qjson(cell(w)["options"]),
        batch=lambda w: cell(w)["pruning"].get("batch_size", 128),
        seed=lambda w: cell(w)["seeds"]["prune"],
        hash=lambda w: G.cell_hash(cell(w)),
        extra=lambda w: " ".join(
            x
            for x in (
                "--jsv" if cell(w)["jsv"] else "",
                f"--jsv-examples {cell(w)['pruning']['jsv_examples']}" if "jsv_examples" in cell(w)["pruning"] else "",
                "--allow-collapse" if cell(w)["pruning"].get("allow_collapse") else "",
                "--no-augment" if cell(w)["pruning"].get("augment") is False else "",
                f"--scope {cell(w)['pruning']['scope']}" if "scope" in cell(w)["pruning"] else "",
                f"--samples-per-class {cell(w)['pruning']['samples_per_class']}"
                if "samples_per_class" in cell(w)["pruning"]
                else "",
            )
            if x
        ),
    threads: THREADS
    resources:
        gpu=res("prune", "gpu", 0),
        mem_mb=res("prune", "mem_mb", 8000),
        runtime=res("prune", "runtime", 60),
    shell:
        "{CLI} prune --method {params.method} --sparsity {wildcards.sparsity} --init {input.init} "
        "--data {input.data} --batch-size {params.batch} --seed {params.seed} --options {params.options} "
        "{params.extra} --cell-hash {params.hash} --threads {threads} --device {DEVICE} "
        "--out {output.mask} --report {output.report} --timing {output.timing} > {log} 2>&1"


rule isometry:
    input:
        init=init_of,
        mask=f"{RES}/{{dataset}}/{{model}}/{{init}}/{{arm}}/s{{sparsity}}/seed{{seed}}/mask.safetensors",
        data=f"{RES}/data/{{dataset}}.json",
        code=sources("isometry"),
    output:
        weights=f"{RES}/{{dataset}}/{{model}}/{{init}}/{{arm}}/s{{sparsity}}/seed{{seed}}/weights_ai.safetensors",
        report=f"{RES}/{{dataset}}/{{model}}/{{init}}/{{arm}}/s{{sparsity}}/seed{{seed}}/isometry.json",
    log:
        f"{RES}/logs/isometry/{{dataset}}_{{model}}_{{init}}_{{arm}}_s{{sparsity}}_seed{{seed}}.log",
    params:
        key=lambda w: G.isometry_key(config, cell(w)),
        steps=lambda w: cell(w)["isometry"].get("steps", 10000),
        lr=lambda w: cell(w)["isometry"].get("lr", 0.1),
        jsv=lambda w: "--jsv" if cell(w)["jsv"] else "",
    threads: THREADS
    resources:
        gpu=res("prune", "gpu", 0),
        mem_mb=res("prune", "mem_mb", 8000),
        runtime=res("prune", "runtime", 60),
    shell:
        "{CLI} isometry --init {input.init} --mask {input.mask} --steps {params.steps} --lr {params.lr} "
        "--data {input.data} {params.jsv} --threads {threads} --device {DEVICE} "
        "--out {output.weights} --report {output.report} > {log} 2>&1"


def train_inputs(w):
    c = cell(w)
    d = G.cell_dir(c)
    inp = {"data": f"{RES}/data/{c['dataset']}.json"}
    inp["init"] = f"{d}/weights_ai.safetensors" if c["isometry"] else init_of(w)
    if c["method"] in G.AT_INIT:
        inp["mask"] = f"{d}/mask.safetensors"
    inp["code"] = sources("train", c["method"])
    return inp


def train_flags(w):
    c = cell(w)
    flags = []
    if c["method"] in G.AT_INIT:
        flags.append(f"--mask {G.cell_dir(c)}/mask.safetensors")
    if c["method"] in G.DURING:
        flags += [f"--during {c['method']}", f"--target-sparsity {c['sparsity']}",
                  f"--during-options {qjson(c['options'])}"]
    if config.get("val_fraction"):
        flags.append(f"--val-fraction {config['val_fraction']}")
    return " ".join(flags)


rule train:
    input:
        unpack(train_inputs),
    output:
        metrics=f"{RES}/{{dataset}}/{{model}}/{{init}}/{{arm}}/s{{sparsity}}/seed{{seed}}/metrics.json",
        timing=f"{RES}/{{dataset}}/{{model}}/{{init}}/{{arm}}/s{{sparsity}}/seed{{seed}}/timing.json",
        manifest=f"{RES}/{{dataset}}/{{model}}/{{init}}/{{arm}}/s{{sparsity}}/seed{{seed}}/manifest.json",
    log:
        f"{RES}/logs/train/{{dataset}}_{{model}}_{{init}}_{{arm}}_s{{sparsity}}_seed{{seed}}.log",
    params:
        key=lambda w: G.train_key(config, cell(w)),
        config=lambda w: qjson({**cell(w)["train"], "seed": cell(w)["seeds"]["data"]}),
        flags=train_flags,
        hash=lambda w: G.cell_hash(cell(w)),
        outdir=lambda w: G.cell_dir(cell(w)),
    threads: THREADS
    resources:
        gpu=res("train", "gpu", 0),
        mem_mb=res("train", "mem_mb", 8000),
        runtime=res("train", "runtime", 120),
    shell:
        "{CLI} train --init {input.init} --data {input.data} {params.flags} --config {params.config} "
        "--cell-hash {params.hash} --threads {threads} --device {DEVICE} --no-progress "
        "--out-dir {params.outdir} > {log} 2>&1"
