"""Shared fixtures. Tests run offline on the CPU at tiny sizes, on the real offline model and corpus."""

import os
import random
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
TEMPLATE_DIR = REPO / "templates" / "sae_variants"
sys.path.insert(0, str(TEMPLATE_DIR))


@pytest.fixture(autouse=True)
def seeded():
    """Every random generator starts from the same seed in every test."""
    import numpy as np
    import torch

    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)


@pytest.fixture(scope="session")
def cache_dir() -> Path:
    """The activation and model cache. Shared with real runs: entries are keyed by content, and tiny test
    entries never collide with real-sized ones."""
    from sae_harness.workspace import default_cache_dir

    return Path(os.environ["SAE_CACHE_DIR"]) if os.environ.get("SAE_CACHE_DIR") else default_cache_dir()
