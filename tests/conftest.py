import os
from pathlib import Path

import pytest
import torch

torch.set_num_threads(1)
torch.use_deterministic_algorithms(True)

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("PRUNEBENCH_SHARED_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data():
    """The offline MNIST / CIFAR-10 copies beside the checkout (../shared/data); CI has them."""
    if not (SHARED_DATA / "mnist").is_dir():
        pytest.skip(f"no local data at {SHARED_DATA}")
    return SHARED_DATA
