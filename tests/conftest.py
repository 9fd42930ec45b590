"""Shared fixtures. The data folder comes from $MINBERT_DATA (.ci/run points it at
../shared/data); tests that need real data skip with a reason when it is absent."""
import os
from pathlib import Path

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing in the tests may reach a hub
torch.set_num_threads(min(2, os.cpu_count() or 1))


@pytest.fixture(scope="session")
def data_root() -> Path:
    root = os.environ.get("MINBERT_DATA")
    if not root or not (Path(root) / "ids-sst-dev.csv").exists():
        pytest.skip("course data not found: set MINBERT_DATA (see data/README.md)")
    return Path(root)
