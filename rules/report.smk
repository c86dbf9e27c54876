# aggregate -> figures -> report, and the targets.
TABLES = [P.table_path(PRESET, n) for n in P.TABLE_FILES]
RESOLVED_CONFIG = P.table_path(PRESET, P.RESOLVED_CONFIG)
FIGURE_FILES = [P.figure_path(PRESET, name, ext) for name in FIGURES for ext in ("pdf", "png")]
REPORT = P.report_path(PRESET)
EMBEDDED = [P.report_figure_path(PRESET, name) for name in FIGURES]
CAPTIONS = load_captions(os.path.join(workflow.basedir, "report", "captions.yaml"))


rule figures:
    default_target: True
    input:
        FIGURE_FILES,
        REPORT,


rule results:
    input:
        TABLES,


rule aggregate:
    input:
        [f"{d}/metrics.json" for d in CELLS],
        [f"{d}/prune.json" for d, c in CELLS.items() if M.method_info(c["method"]).at_init],
        [f"{d}/isometry.json" for d, c in CELLS.items() if c["isometry"]],
    output:
        TABLES,
        cfgfile=RESOLVED_CONFIG,
    log:
        P.log_path(PRESET, "aggregate", "aggregate"),
    params:
        key=V.tables_key(config),
        config=json.dumps(config, sort_keys=True),
        argv=lambda w, output: ["aggregate", "--config", output.cfgfile, "--results-root", P.RESULTS],
    threads: 1
    run:
        write_config(output.cfgfile)
        run_cli(params.argv, log[0])


rule figure:
    input:
        TABLES,
    output:
        pdf=P.figure_path(PRESET, "{name}", "pdf"),
        png=report(
            P.figure_path(PRESET, "{name}", "png"),
            caption="../report/figure.rst",
            category=lambda w: CAPTIONS.get(w.name, {}).get("paper", "other"),
        ),
    log:
        P.log_path(PRESET, "figures", "{name}"),
    params:
        key=lambda w: V.figure_key(config, w.name),
        caption=lambda w: CAPTIONS.get(w.name, {}).get("caption", w.name),
        argv=lambda w: ["figure", "--name", w.name, "--results-dir", RES, "--out-stem", f"{FIG}/{w.name}",
                        "--preset", PRESET],
    threads: 1
    run:
        run_cli(params.argv, log[0])


rule report:
    input:
        TABLES,
        FIGURE_FILES,
        claims=[ancient(f"paper/reference/{c}.yaml") for c in CLAIMS],
    output:
        REPORT,
        EMBEDDED,
    log:
        P.log_path(PRESET, "report", "report"),
    params:
        key=V.report_key(config),
        claims=V.source_hash([f"paper/reference/{c}.yaml" for c in CLAIMS] + ["paper/reference/schema.yaml"]),
        argv=lambda w, input, output: ["report", "--results-dir", RES, "--claims", *input.claims, "--out", output[0],
                                       "--preset", PRESET, "--figures-dir", FIG, "--embed-dir",
                                       P.report_figure_path(PRESET, "x").rsplit("/", 1)[0]],
    threads: 1
    run:
        run_cli(params.argv, log[0])


# Per-paper targets: `snakemake --cores all force` draws only FORCE's figures (and what they need).
for _paper in PAPERS:

    rule:
        name:
            _paper
        input:
            [f for f in FIGURE_FILES if os.path.basename(f).startswith(_paper + "_")],
