"""The method table: one row per method (prunebench.library.methods); that nothing else lists them is tests/test_names.py."""
import importlib
import re

import pytest

from prunebench.library.errors import PrunebenchError
from prunebench.library.methods import KINDS, METHODS, TABLE, at_init, during, method_info


def test_rows_are_complete_and_styles_unique():
    assert [m.name for m in TABLE] == list(METHODS)
    assert {m.kind for m in TABLE} <= set(KINDS)
    pairs = [(m.color, m.marker) for m in TABLE]
    assert len(set(pairs)) == len(pairs)
    for m in TABLE:
        assert importlib.util.find_spec(m.module) is not None
        assert re.fullmatch(r"[A-E]\.\d+", m.section) and m.label and m.summary


def test_the_table_imports_no_torch():
    import subprocess
    import sys

    code = "import sys, prunebench.library.methods; assert 'torch' not in sys.modules"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def test_every_method_resolves_to_its_class():
    from prunebench.library.pruners import pruner_class
    from prunebench.library.pruners.during import during_class

    for m in at_init():
        assert pruner_class(m).name == m and pruner_class(m).__module__ == METHODS[m].module
    for m in during():
        assert during_class(m).name == m and during_class(m).__module__ == METHODS[m].module
    with pytest.raises(PrunebenchError, match="unknown method 'snipp'"):
        method_info("snipp")
