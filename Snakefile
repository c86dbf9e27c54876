# prunebench DAG: data -> init -> prune (-> isometry) -> train -> aggregate -> figures / report.
# Run:  snakemake --cores all figures                       (quick preset, the default)
#       snakemake --cores all figures --configfile config/smoke.yaml   (targets before --configfile)
# The grid, arms and options come from the preset (validated by prunebench.pipeline.grid before anything runs).
# Rules live in rules/*.smk; artifact paths come from prunebench.pipeline.paths, each step's command line from
# prunebench.pipeline.workflow; what reruns is explained once, in prunebench.pipeline.provenance (content
# decides, file times never do).
import os
import shlex
import sys

from snakemake.utils import min_version

min_version("9.0")

sys.path.insert(0, os.path.join(workflow.basedir, "src"))
from prunebench.pipeline import grid, paths, provenance, runsummary
from prunebench.pipeline.locks import clear_stale_locks, register_run
from prunebench.pipeline.workflow import resolve_config

# Without --configfile, the quick preset, with any --config overrides over it.
config.update(resolve_config(config, os.path.join(workflow.basedir, "config", "quick.yaml")))
grid.validate(config, where="config")

PRESET = config["preset"]
RES = paths.preset_dir(PRESET)
CELLS = {paths.cell_dir(c): c for c in grid.expand(config)}
# Content, not file times, decides what reruns: settle the times of the outputs DVC restores before the DAG
# is built. Only the main process does it (not the per-job steps on a cluster).
if workflow.is_main_process:
    provenance.settle_times(config)
    # After a crash (SIGKILL), rerunning the same command is the whole recovery: stale locks are removed.
    if clear_stale_locks(".", log=lambda text: print(text, file=sys.stderr)):
        print("prunebench: removed the locks of an earlier run that did not finish (killed?); resuming",
              file=sys.stderr)
    register_run(".")
    # The command that ran the pipeline, recorded in results/<preset>/run.json by the aggregate step.
    os.environ.setdefault("PRUNEBENCH_COMMAND", shlex.join(["snakemake", *sys.argv[1:]]))
FIGURES = config.get("figures", [])
CLAIMS = config.get("claims", [])
# One summary at the end of a run (cells run / reused / failed, wall time, the report and its verdicts); per-job
# chatter in Snakemake's log file, not on the terminal (prunebench.pipeline.runsummary; PRUNEBENCH_VERBOSE=1: all).

RUN_START = runsummary.start(workflow)


onsuccess:
    runsummary.finish(config, RUN_START, ok=True, log=log)


onerror:
    runsummary.finish(config, RUN_START, ok=False, log=log)


report: "report/workflow.rst"


include: "rules/common.smk"
include: "rules/run.smk"
include: "rules/report.smk"


# The default target: every figure of the preset and the report (here, not in an included file, where
# Snakemake does not honour default_target).
rule figures:
    default_target: True
    input:
        FIGURE_FILES,
        REPORT,
