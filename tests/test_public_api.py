"""The package's public API (prunebench/__init__.py): the names the README promises, and `import prunebench`
without torch (the CLI, the Snakefile and the report import the package on their way to their own module)."""
import subprocess
import sys

import pytest

import prunebench
from conftest import REPO
from prunebench.library.init import initialize
from prunebench.library.masks import Mask
from prunebench.library.models import MODELS, build_model, prunable_parameters
from prunebench.library.pruners.registry import prune


def test_the_public_names_are_the_librarys():
    assert (prunebench.prune, prunebench.Mask, prunebench.build_model, prunebench.initialize) == (
        prune, Mask, build_model, initialize)
    assert prunebench.prunable_parameters is prunable_parameters and prunebench.MODELS is MODELS
    assert all(hasattr(prunebench, n) for n in prunebench.__all__)
    with pytest.raises(AttributeError, match="no attribute 'prunning'"):
        prunebench.prunning  # noqa: B018


def test_importing_the_package_imports_no_torch_until_a_public_name_is_used():
    code = ("import sys, prunebench, prunebench.cli, prunebench.report.papers\n"
            "assert 'torch' not in sys.modules, 'torch imported'\n"
            "from prunebench import Mask\n"
            "assert 'torch' in sys.modules\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       env={"PYTHONPATH": str(REPO / "src"), "PATH": ""})
    assert r.returncode == 0, r.stderr
