"""What the modules of `prunebench.library.data` share: display names, seed checks, messages, the readers' result."""
from __future__ import annotations

import sys
from dataclasses import dataclass

import numpy as np

from prunebench.library.datasets import DATASETS
from prunebench.library.errors import PrunebenchError

DISPLAY_NAMES = {name: spec.display for name, spec in DATASETS.items()}


def check_seed(seed, what="seed") -> int:
    """`seed` as an int; a bool, a non-integer or a negative value is a one-line `PrunebenchError`."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise PrunebenchError(f"invalid {what} {seed!r}: must be a non-negative integer")
    return int(seed)


def progress_enabled(progress: bool | None) -> bool:
    """An explicit choice, else show progress bars only when stderr is a terminal."""
    if progress is not None:
        return bool(progress)
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


def say(msg: str) -> None:
    """One line on stderr, prefixed "prunebench data:"."""
    print(f"prunebench data: {msg}", file=sys.stderr, flush=True)


@dataclass
class Raw:
    """What a reader found: NCHW uint8 images, int64 labels, class names, and how to label the data."""

    train_x: np.ndarray
    train_y: np.ndarray
    test_x: np.ndarray
    test_y: np.ndarray
    classes: list
    layout: str
    lossy: bool = False
    note: str = ""
    verified: str = "none"
    label: str = ""  # the name of the set inside the source (a folder or a file-name prefix), if any


def folder_name(prefix: str) -> str:
    """The last folder of a member prefix ("a/b/" gives "b"), or "" for the root."""
    return prefix.rstrip("/").rsplit("/", 1)[-1]
