"""Which optional extra of the package provides a module: `pip install prunebench` is the library only;
the report, the pipeline and the benchmarks need extras (pyproject.toml [project.optional-dependencies]).

The command line turns a missing optional module into one line naming the extra to install
(`missing_extra`); tests/test_packaging.py keeps this table equal to pyproject.toml's extras.
"""
from __future__ import annotations

# import name -> (distribution, the smallest extra that installs it)
OPTIONAL = {
    "pandas": ("pandas", "report"),
    "matplotlib": ("matplotlib", "report"),
    "seaborn": ("seaborn", "report"),
    "scipy": ("scipy", "report"),
    "yaml": ("pyyaml", "report"),
    "jsonschema": ("jsonschema", "report"),
    "snakemake": ("snakemake", "pipeline"),
    "dvc": ("dvc", "pipeline"),
    "torchvision": ("torchvision", "bench"),
}


def missing_extra(module: str | None) -> str | None:
    """The one-line advice for a missing optional module (None: not one of ours, a genuine error)."""
    top = (module or "").split(".")[0]
    if top not in OPTIONAL:
        return None
    dist, extra = OPTIONAL[top]
    return f"this command needs {dist}, which `pip install prunebench` leaves out: pip install 'prunebench[{extra}]'"
