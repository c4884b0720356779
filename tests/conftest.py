import os

import pytest
import torch

torch.set_num_threads(1)
os.environ.setdefault("PATHDEP_THREADS", "1")


@pytest.fixture
def store(tmp_path):
    """A fresh, empty store directory."""
    return tmp_path / "store"
