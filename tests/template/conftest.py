import importlib.util
import os
import random
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import TEMPLATE_DIR

TINY = {
    "SAE_PRESET": "gemma-3-270m",
    "SAE_DEVICE": "cpu",
    "SAE_TRAINING_TOKENS": "8192",
    "SAE_HELDOUT_TOKENS": "2048",
    "SAE_DICT_SIZE": "256",
    "SAE_BATCH_SIZE": "512",
    "SAE_EPOCHS": "3",
    "SAE_WARMUP_STEPS": "5",
    "SAE_RESAMPLE_EVERY": "10",
    "SAE_LOG_EVERY": "4",
    "SAE_LR": "0.003",
    "SAE_EVAL_RECONSTRUCTION_BATCHES": "1",
    "SAE_EVAL_SPARSITY_BATCHES": "1",
    "SAE_EVAL_BATCH_PROMPTS": "2",
    "SAE_PROBE_TRAIN_TEXTS": "60",
    "SAE_PROBE_TEST_TEXTS": "40",
    "SAE_ABSORPTION_WORDS": "600",
    "SAE_ABSORPTION_MIN_LETTERS": "5",
}

# The ground-truth preset at tiny sizes: the synthetic model is synth-cpu's own (built once into the cache).
TINY_SYNTH = {
    **{k: v for k, v in TINY.items() if not k.startswith(("SAE_EVAL_", "SAE_PROBE_", "SAE_ABSORPTION_"))},
    "SAE_PRESET": "synth-cpu",
    "SAE_TRAINING_TOKENS": "16384",
    "SAE_HELDOUT_TOKENS": "8192",
    "SAE_EPOCHS": "2",
}


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


def tiny_environment(cache_dir: Path, **overrides) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SAE_")}
    env.update(TINY, SAE_CACHE_DIR=str(cache_dir), **overrides)
    return env


def run_experiment(out_dir: Path, env: dict, template: Path = TEMPLATE_DIR) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(template / "experiment.py"), f"--out_dir={out_dir}"],
        cwd=out_dir.parent, env=env, capture_output=True, text=True, timeout=1200,
    )


@pytest.fixture(scope="session")
def tiny_config(cache_dir):
    from sae_harness.config import load_config

    return load_config(TEMPLATE_DIR / "config.toml", environ=tiny_environment(cache_dir))


@pytest.fixture(scope="session")
def tiny_settings(tiny_config):
    """experiment.py's settings for the tiny configuration, as a run makes them."""
    from experiment import run_settings

    return run_settings(tiny_config)


@pytest.fixture(scope="session")
def tiny_workspace(tiny_config):
    from sae_harness.workspace import Workspace

    return Workspace.prepare(tiny_config)


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory, cache_dir) -> Path:
    """One real end-to-end run of experiment.py at tiny sizes, shared by the tests that read its outputs."""
    out_dir = tmp_path_factory.mktemp("experiment") / "run_0"
    result = run_experiment(out_dir, tiny_environment(cache_dir))
    assert result.returncode == 0, result.stderr[-3000:]
    return out_dir


@pytest.fixture(scope="session")
def tiny_synth_run(tmp_path_factory, cache_dir) -> Path:
    """One real run of experiment.py on the ground-truth preset synth-cpu at tiny sizes."""
    out_dir = tmp_path_factory.mktemp("synthetic") / "run_0"
    result = run_experiment(out_dir, {**tiny_environment(cache_dir), **TINY_SYNTH})
    assert result.returncode == 0, result.stderr[-3000:]
    return out_dir


def edited_template(root: Path, edits: list[tuple[str, str]]) -> Path:
    """A copy of the template in root whose experiment.py has each (old, new) text replaced once, as the coder's
    edits would; the copy's runs use this environment's python."""
    template = root / "sae_variants"
    shutil.copytree(TEMPLATE_DIR, template, ignore=shutil.ignore_patterns(".venv", "run_*", "*.png", "__pycache__"))
    experiment = template / "experiment.py"
    text = experiment.read_text()
    for old, new in edits:
        assert text.count(old) == 1, f"the edit's old text is not once in experiment.py: {old!r}"
        text = text.replace(old, new)
    experiment.write_text(text)
    return template


def import_experiment(template: Path, monkeypatch) -> object:
    """The experiment.py of an edited template copy (edited_template), imported in this process under a name of its
    own, for tests that need its run() without the cost of a subprocess; it shares sae_harness and the variant
    files with the template."""
    spec = importlib.util.spec_from_file_location(f"experiment_{template.parent.name}", template / "experiment.py")
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def tiny_training(tiny_workspace, tiny_settings):
    """(CustomSAE trained in-process on the tiny workspace, its activation scale folded back as experiment.py's run()
    does; train()'s facts): seconds instead of tiny_run's full run. Shared by the session's tests, which only read
    the SAE."""
    from experiment import build_sae, train

    sae = build_sae(tiny_settings, tiny_workspace.preset.d_model, tiny_workspace.hook, "cpu")
    tiny_workspace.initialise_decoder_bias(sae)
    facts = train(sae, tiny_workspace, tiny_settings)
    sae.eval()
    sae.fold_activation_scale(tiny_workspace.scale)
    return sae, facts


@pytest.fixture(scope="session")
def tiny_trained_sae(tiny_training):
    return tiny_training[0]


@pytest.fixture(scope="session")
def tiny_trained_sae_run(tmp_path_factory, tiny_training, tiny_workspace, tiny_settings) -> Path:
    """A run folder holding only sae/: tiny_trained_sae saved by the harness's SAELens export, as experiment.py saves
    it; for tests that need a trained SAE on disk, not a whole run's outputs."""
    from sae_harness.saelens_export import export_saelens

    run = tmp_path_factory.mktemp("trained") / "run_0"
    sae, facts = tiny_training
    export_saelens(sae, run / "sae", tiny_workspace.config.preset_value("context_length", "cpu"),
                   {"variant": tiny_settings.variant, "training_tokens": facts["training_tokens"]})
    return run
