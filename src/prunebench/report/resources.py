"""The claim files and their schema, shipped as package data and found through `importlib.resources`.

    reference_dir()     paper/reference/ of a checkout: <paper>.yaml claim files and schema.yaml
    schema_path()       paper/reference/schema.yaml
    claims_path(ref)    a claims file given as a path, or a shipped paper by its key ("force")

In a checkout the package folder `report/reference` is a symbolic link to `paper/reference/`, so the files
exist once; building a wheel copies them in (pyproject.toml, package-data).
"""
from __future__ import annotations

from pathlib import Path

from prunebench.library.resources import shipped


def reference_dir() -> Path:
    return shipped("prunebench.report", "reference")


def schema_path() -> Path:
    return reference_dir() / "schema.yaml"


def shipped_papers() -> tuple:
    """The keys of the shipped claim files (force, spp, ...)."""
    return tuple(sorted(p.stem for p in reference_dir().glob("*.yaml") if p.name != "schema.yaml"))


def claims_path(ref) -> Path:
    """`ref` as a path when it exists; else, when it is a bare paper key (no folder, no suffix), the shipped
    claims file of that paper; else the path as given (the loader reports it missing)."""
    p = Path(ref)
    if p.exists() or p.parent != Path(".") or p.suffix:
        return p
    shipped_file = reference_dir() / f"{p.name}.yaml"
    return shipped_file if shipped_file.exists() else p
