"""Fixtures for the research loop's tests: a copy of the real template with a tiny real baseline, and a scripted
LLM whose replies still go through aider's real edit code."""

import os
import shutil
from pathlib import Path

import pytest

from scientist.experiment.baseline import ensure_baseline
from scientist.experiment.manifest import load_manifest
from scientist.llm.client import configure_offline_litellm
from tests.conftest import TEMPLATE_DIR
from tests.scientist.literature_server import services  # noqa: F401 (a fixture: the local literature server)

# Before anything imports litellm: it would otherwise try to download its cost map.
configure_offline_litellm()

# The SAE template's manifest: its metric registry and baseline requirements, for tests that need a real one.
SAE_MANIFEST = load_manifest(TEMPLATE_DIR)
SAE_METRICS = SAE_MANIFEST.metrics

TINY_RUN_ENV = {
    "SAE_DEVICE": "cpu",
    "SAE_TRAINING_TOKENS": "8192",
    "SAE_HELDOUT_TOKENS": "2048",
    "SAE_DICT_SIZE": "256",
    "SAE_BATCH_SIZE": "512",
    "SAE_EPOCHS": "2",
    "SAE_WARMUP_STEPS": "5",
    "SAE_LR": "0.003",
    "SAE_EVAL_RECONSTRUCTION_BATCHES": "1",
    "SAE_EVAL_SPARSITY_BATCHES": "1",
    "SAE_EVAL_BATCH_PROMPTS": "2",
    # The interpretability evals cost a tiny run more than its training; test_interp_in_notes.py turns them on.
    "SAE_RUN_INTERP_EVALS": "false",
    "SAE_PROBE_TRAIN_TEXTS": "60",
    "SAE_PROBE_TEST_TEXTS": "40",
    "SAE_ABSORPTION_WORDS": "600",
    "SAE_ABSORPTION_MIN_LETTERS": "5",
    # The baseline on two seeds and at two other sparsity settings: the verdicts' noise floor and frontier.
    "SAE_BASELINE_SEEDS": "2",
    "SAE_FRONTIER_SCALES": "0.3,3",
}


@pytest.fixture(scope="session", autouse=True)
def tiny_runs():
    """Every experiment these tests start runs at tiny sizes (the runner passes SAE_* variables through)."""
    saved = {k: os.environ.get(k) for k in TINY_RUN_ENV}
    os.environ.update(TINY_RUN_ENV)
    yield
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture(scope="session")
def templates_dir(tmp_path_factory, tiny_runs) -> Path:
    """templates/sae_variants copied, with the real experiment environment and a tiny trained run_0."""
    root = tmp_path_factory.mktemp("templates")
    template = root / "sae_variants"
    shutil.copytree(TEMPLATE_DIR, template, ignore=shutil.ignore_patterns(".venv", "run_*", "*.png", "__pycache__"))
    (template / ".venv").symlink_to(TEMPLATE_DIR / ".venv")
    ensure_baseline(load_manifest(template), timeout_s=1200)
    return root


def require_tools(*names: str):
    """Fail, naming them, when tools that `make setup` installs are missing. A skip here would let a missing install
    step pass unseen, so these tests never skip."""
    missing = [name for name in names if shutil.which(name) is None]
    if missing:
        pytest.fail(f"{', '.join(missing)} not installed; `make setup` installs the Debian packages")


@pytest.fixture
def latex_tools():
    require_tools("pdflatex", "bibtex", "chktex", "pdftotext")


@pytest.fixture
def scripted():
    """Install scripted replies for the model 'scripted/demo'; returns a function taking the replies."""
    from scientist.llm.scripted import register_scripted

    return register_scripted
