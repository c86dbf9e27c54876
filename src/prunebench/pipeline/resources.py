"""The presets, shipped as package data and found through `importlib.resources`.

    presets_dir()           config/ of a checkout: one <preset>.yaml per preset
    shipped_presets()       their names (quick, smoke, force, ...)
    preset_file(ref, root)  a preset given as a path, or by name ("smoke")

In a checkout the package folder `pipeline/presets` is a symbolic link to the top-level `config/`, so each
preset exists once; building a wheel copies them in (pyproject.toml, package-data). The Snakemake pipeline
itself (Snakefile, rules/, profiles/) needs a checkout.
"""
from __future__ import annotations

from pathlib import Path

from prunebench.library.resources import shipped


def presets_dir() -> Path:
    return shipped("prunebench.pipeline", "presets")


def shipped_presets() -> tuple:
    return tuple(sorted(p.stem for p in presets_dir().glob("*.yaml")))


def preset_file(ref, root=None) -> Path:
    """`ref` as a path when it exists. A bare name (no folder, no suffix) is a preset: `<root>/config/<name>.yaml`
    when `root` is given and has it (a checkout's own, possibly edited, copy), else the shipped preset. Anything
    else is returned as given (the loader reports it missing)."""
    p = Path(ref)
    if p.exists() or p.parent != Path(".") or p.suffix:
        return p
    if root is not None and (Path(root) / "config" / f"{p.name}.yaml").exists():
        return Path(root) / "config" / f"{p.name}.yaml"
    shipped_file = presets_dir() / f"{p.name}.yaml"
    return shipped_file if shipped_file.exists() else p
