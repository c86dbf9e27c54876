"""Magnitude pruning against a hand computation (docs/methods.md A.0)."""

from prunebench.library.pruners import scores
from toys import close, toy


def test_magnitude_hand_computed():
    close(scores(toy(), "magnitude"), {"0.weight": [[1, 2], [1, 0.5]], "2.weight": [[1, 2], [2, 2]]})
