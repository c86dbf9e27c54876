# Shared helpers of the rules: the one cell pattern, cell lookup, resources, the in-process runner.
# Each step's command line comes from prunebench.pipeline.workflow (also used by `prunebench verify --reproduce`).
from prunebench.cli import run_logged, run_pooled
from prunebench.library.datasets import DATASETS
from prunebench.library.methods import method_info


wildcard_constraints:
    dataset="|".join(DATASETS),
    seed=r"\d{1,9}",
    sparsity=r"[0-9.e-]{1,24}",
    model=r"[A-Za-z0-9_-]{1,64}",
    init=r"[a-z_]{1,64}",
    arm=r"[A-Za-z0-9_]{1,64}",


# Every per-cell output is a file in the CELL folder (prunebench.pipeline.paths).
CELL = f"{RES}/{paths.CELL_PATTERN}"
JOB = "{dataset}_{model}_{init}_{arm}_s{sparsity}_seed{seed}"


def cell(w):
    key = paths.cell_dir({"preset": PRESET, **dict(w.items())})
    if key not in CELLS:
        raise ValueError(f"{key} is not a cell of preset {PRESET}")
    return CELLS[key]


def res(step, key, default):
    return config.get("resources", {}).get(step, {}).get(key, default)


def run_cli(argv, log):
    """Run one prunebench command, its output in `log`; a non-zero status fails the job.

    In the main Snakemake process (the default profile runs jobs in its threads: `force-use-threads`), the
    command runs in a pool of as many long-lived worker processes as cores, each importing torch once, instead
    of a new interpreter and torch import per job. Where Snakemake runs a job in a process of its own (a
    cluster, or no threads), the command runs right there. Same code, same bytes."""
    if workflow.is_main_process:
        status = run_pooled(argv, log, workflow.cores)
    else:
        status = run_logged(argv, log)
    if status != 0:
        raise RuntimeError(f"prunebench {argv[0]} failed with status {status}; see {log}")


THREADS = config.get("threads", 1)
DEVICE = config.get("device", "auto")


def init_cell(w):
    """The init job's stand-in cell: an initialization file is named by its own seed (paths.init_path)."""
    return {"dataset": w.dataset, "model": w.model, "init": w.init, "seeds": {"init": int(w.seed)}}


def init_of(w):
    return paths.init_path(cell(w))


def train_inputs(w):
    c = cell(w)
    d = paths.cell_dir(c)
    inp = {"data": paths.data_manifest(PRESET, c["dataset"])}
    inp["init"] = f"{d}/weights_ai.safetensors" if c["isometry"] else paths.train_init_path(c)
    if method_info(c["method"]).at_init:
        inp["mask"] = f"{d}/mask.safetensors"
    return inp
