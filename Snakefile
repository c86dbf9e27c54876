# prunebench DAG: data -> init -> prune (-> isometry) -> train -> aggregate -> figures / report.
# Run:  snakemake --cores all figures                       (quick preset, the default)
#       snakemake --cores all figures --configfile config/smoke.yaml   (targets before --configfile)
# The grid, arms and options come from the preset (validated by prunebench.pipeline.grid before anything runs).
# Rules live in rules/*.smk; artifact paths come from prunebench.pipeline.paths; what reruns is explained once, in
# prunebench.pipeline.provenance (content decides, file times never do).
from snakemake.utils import min_version

min_version("9.0")

import os
import sys

sys.path.insert(0, os.path.join(workflow.basedir, "src"))
from prunebench.pipeline import grid as G
from prunebench.pipeline import paths as P
from prunebench.library import methods as M
from prunebench.pipeline import provenance as V
from prunebench.library.datasets import DATASETS
from prunebench.report.papers import PAPERS
if "preset" not in config:
    config.update(G.load_config(os.path.join(workflow.basedir, "config", "quick.yaml")))
G.validate(config, where="config")

PRESET = config["preset"]
RES = P.preset_dir(PRESET)
FIG = f"{P.FIGURES}/{PRESET}"
DATA_DIR = config.get("data_dir", "data")
CELLS = {P.cell_dir(c): c for c in G.expand(config)}
# Content, not file times, decides what reruns: settle the times of existing outputs before the DAG is
# built. Only the main process does it (not the per-job steps on a cluster).
if workflow.is_main_process:
    V.settle_times(config)
    # After a crash (SIGKILL), rerunning the same command is the whole recovery: stale locks are removed.
    from prunebench.pipeline.workflow import clear_stale_locks

    if clear_stale_locks("."):
        print("prunebench: removed the locks of an earlier run that did not finish (killed?); resuming", file=sys.stderr)
FIGURES = config.get("figures", [])
CLAIMS = config.get("claims", [])
# One summary at the end of a run (cells run / reused / failed, wall time, the report and its verdicts); per-job
# chatter in Snakemake's log file, not on the terminal (prunebench.pipeline.runsummary; PRUNEBENCH_VERBOSE=1: all).
from prunebench.pipeline import runsummary as RS

RUN_START = RS.start(workflow)


onsuccess:
    RS.finish(config, RUN_START, ok=True, log=log)


onerror:
    RS.finish(config, RUN_START, ok=False, log=log)


report: "report/workflow.rst"


include: "rules/common.smk"
include: "rules/run.smk"
include: "rules/report.smk"
