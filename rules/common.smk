# Shared helpers of the rules: the one cell pattern, cell lookup, per-step source files, resources.
import json


wildcard_constraints:
    dataset=r"mnist|cifar10|cifar100|tiny-imagenet",
    seed=r"\d+",
    sparsity=r"[0-9.e-]+",
    model=r"[A-Za-z0-9_-]+",
    init=r"[a-z_]+",
    arm=r"[A-Za-z0-9_]+",


# Every per-cell output is CELL + "/<file>" (prunebench.paths).
CELL = f"{RES}/{P.CELL_PATTERN}"
JOB = "{dataset}_{model}_{init}_{arm}_s{sparsity}_seed{seed}"


def cell(w):
    key = f"{RES}/" + P.CELL_PATTERN.format(**dict(w.items()))
    if key not in CELLS:
        raise ValueError(f"{key} is not a cell of preset {PRESET}")
    return CELLS[key]


def sources(step, method=None):
    """The prunebench source files a step runs, declared as its inputs, `ancient` (their times after a
    `git clone` are arbitrary). Content changes rerun the step through its provenance `key` param
    (prunebench.provenance); the jobs downstream of a rerun job rerun with it."""
    return [ancient(f) for f in V.step_sources(step, method)]


def res(step, key, default):
    return config.get("resources", {}).get(step, {}).get(key, default)


def qjson(obj):
    """A JSON value quoted for the shell."""
    return "'" + json.dumps(obj, sort_keys=True).replace("'", "'\\''") + "'"


# The interpreter running snakemake runs the CLI too (no PATH or activated venv needed, also in SLURM jobs).
CLI = f"{sys.executable} -m prunebench"
THREADS = config.get("threads", 1)
DEVICE = config.get("device", "auto")
