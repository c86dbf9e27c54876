# Shared helpers of the rules: cell lookup, per-step source hashes, resources.
import json


wildcard_constraints:
    dataset=r"mnist|cifar10|cifar100|tiny-imagenet",
    seed=r"\d+",
    sparsity=r"[0-9.e-]+",
    model=r"[A-Za-z0-9_-]+",
    init=r"[a-z_]+",
    arm=r"[A-Za-z0-9_]+",


def cell(w):
    key = f"{RES}/{w.dataset}/{w.model}/{w.init}/{w.arm}/s{w.sparsity}/seed{w.seed}"
    if key not in CELLS:
        raise ValueError(f"{key} is not a cell of preset {PRESET}")
    return CELLS[key]


def code(*modules):
    """Hash of the prunebench files `modules` import (recorded as a param: the params trigger)."""
    return G.source_hash(G.module_closure(*modules))


def sources(*modules):
    """The prunebench source files a step runs, declared as inputs. They are `ancient` like every input
    here: file times never trigger a rerun (they are arbitrary after `git clone` or `dvc pull`); content
    changes do, through the `code` hash param (params trigger) and through upstream jobs that rerun."""
    return [ancient(f) for f in G.module_closure(*modules)]


def res(step, key, default):
    return config.get("resources", {}).get(step, {}).get(key, default)


def qjson(obj):
    """A JSON value quoted for the shell."""
    return "'" + json.dumps(obj, sort_keys=True).replace("'", "'\\''") + "'"


# The interpreter running snakemake runs the CLI too (no PATH or activated venv needed, also in SLURM jobs).
CLI = f"{sys.executable} -m prunebench"
THREADS = config.get("threads", 1)
DEVICE = config.get("device", "auto")
