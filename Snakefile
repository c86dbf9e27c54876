# prunebench DAG: data -> init -> prune (-> isometry) -> train -> aggregate -> figures / report.
# Run:  snakemake --cores all figures                       (quick preset, the default)
#       snakemake --cores all figures --configfile config/smoke.yaml   (targets before --configfile)
# The grid, arms and options come from the preset (validated against config/schema.yaml before anything
# runs). Rules live in rules/*.smk. Every job records a provenance `key` param (its options, a hash of the
# prunebench source files it runs, and the keys upstream: prunebench.grid), so a code or option change
# reruns exactly the affected jobs; file times never do (existing outputs are settled below).
from snakemake.utils import min_version

min_version("9.0")

import os
import sys

sys.path.insert(0, os.path.join(workflow.basedir, "src"))
from prunebench import grid as G

if "preset" not in config:
    config.update(G.load_config(os.path.join(workflow.basedir, "config", "quick.yaml")))
G.validate(config, where="config")

PRESET = config["preset"]
RES = f"results/{PRESET}"
FIG = f"figures/{PRESET}"
DATA_DIR = config.get("data_dir", "data")
CELLS = {G.cell_dir(c): c for c in G.expand(config)}
# Content, not file times, decides what reruns (grid.py "File times"): settle the times of existing
# outputs before the DAG is built. Only the main process does it (not the per-job steps on a cluster).
if workflow.is_main_process:
    G.settle_times(config)
FIGURES = config.get("figures", [])
CLAIMS = config.get("claims", [])


report: "report/workflow.rst"


include: "rules/common.smk"
include: "rules/run.smk"
include: "rules/report.smk"
