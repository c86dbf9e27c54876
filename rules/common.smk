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


# The interpreter running snakemake runs the CLI too (no PATH or activated venv needed, also in SLURM jobs).
CLI = f"{sys.executable} -m prunebench"
THREADS = config.get("threads", 1)
DEVICE = config.get("device", "auto")
