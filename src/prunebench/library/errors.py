"""One exception type for bad input: the CLI prints its message on one line and exits 2."""


class PrunebenchError(Exception):
    """A user-facing error: bad name, bad value, corrupt or missing file. Message is one line."""


def choose(kind: str, name: str, choices) -> str:
    """Return `name` if it is one of `choices`, else raise a one-line error listing them."""
    if name not in choices:
        raise PrunebenchError(f"unknown {kind} {name!r}; choose one of: {', '.join(sorted(choices))}")
    return name


def check_sparsity(sparsity) -> float:
    """Sparsity is the fraction of prunable weights removed, in [0, 1)."""
    try:
        s = float(sparsity)
    except (TypeError, ValueError):
        raise PrunebenchError(f"invalid sparsity {sparsity!r}: must be a number in [0, 1)") from None
    if not (0.0 <= s < 1.0):
        raise PrunebenchError(f"invalid sparsity {sparsity!r}: must be in [0, 1) (fraction of weights removed)")
    return s
