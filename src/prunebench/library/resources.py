"""Files the library ships as package data, found through `importlib.resources` (a checkout, an editable
install and an installed wheel alike).

    docs_dir()       the documentation pages (docs/ of a checkout: the methods spec, plugins, DVC remotes)
    methods_spec()   docs/methods.md, the specification every built-in method is written from

In a checkout the package folder `library/docs` is a symbolic link to the top-level `docs/`, so the page
exists once; building a wheel copies the linked files in (pyproject.toml, package-data).
"""
from __future__ import annotations

from importlib import resources
from pathlib import Path


def shipped(package: str, name: str) -> Path:
    """The file-system path of the folder or file `name` shipped inside `package` (it may be missing: a copy of
    the sources without its package data; callers report the path they looked at)."""
    # The wheel is installed as files (never zipped), so the resource is a real path.
    return Path(str(resources.files(package).joinpath(name)))


def docs_dir() -> Path:
    return shipped("prunebench.library", "docs")


def methods_spec() -> Path:
    return docs_dir() / "methods.md"
