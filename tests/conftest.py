import os
from pathlib import Path

import pytest
import torch

from skip_policy import (pytest_collectreport, pytest_runtest_logreport, pytest_sessionfinish,  # noqa: F401
                         pytest_terminal_summary)

torch.set_num_threads(1)
torch.use_deterministic_algorithms(True)

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("PRUNEBENCH_SHARED_DATA", REPO.parent / "shared" / "data"))


def pytest_configure(config):
    config.addinivalue_line("markers", "real_data: needs the real offline copies in ../shared/data (shared_data)")


@pytest.fixture(autouse=True)
def no_env_sources(monkeypatch):
    """Tests never pick up the developer's $PRUNEBENCH_DATA_SOURCES (the Makefile exports one) unless they
    set it; subprocesses get theirs explicitly (`data_sources`)."""
    monkeypatch.delenv("PRUNEBENCH_DATA_SOURCES", raising=False)


@pytest.fixture(scope="session")
def data_sources(tmp_path_factory):
    """A $PRUNEBENCH_DATA_SOURCES folder of small synthetic data sets (tests/synthetic.py), built once per
    session: `mnist/` (an MNIST-like named IDX set, 2,000 train / 500 test) and `cifar10.tar.gz` (CIFAR-like
    python batches, 500 / 100). Deterministic; labelled as not the official data sets."""
    from synthetic import make_sources

    return make_sources(tmp_path_factory.mktemp("data-sources"))


@pytest.fixture(scope="session")
def shared_data():
    """The real offline MNIST / CIFAR-10 copies beside the checkout (../shared/data), for the tests that check
    real-data facts; the rest of the suite uses `data_sources`."""
    if not (SHARED_DATA / "mnist").is_dir():
        pytest.skip(f"no local copy of the real data at {SHARED_DATA}")
    return SHARED_DATA
