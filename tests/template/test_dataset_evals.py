"""SAEBench's dataset evals: skipped with a reason when their data cannot be reached, never reported as zero."""

import json
import os
import subprocess
import sys

from tests.conftest import TEMPLATE_DIR

PROBE = """
import json, sys, types, torch
sys.path.insert(0, sys.argv[1])
import dataclasses
from experiment import build_sae, run_settings
from sae_harness.config import ExperimentConfig
from sae_harness.evaluation import dataset_eval_groups
from sae_harness.presets import PRESETS
from sae_harness.sae_base import HookSpec

preset = PRESETS["pythia-70m-deduped"]
settings = dataclasses.replace(run_settings(ExperimentConfig()), dict_size=64)
sae = build_sae(settings, preset.d_model, HookSpec(preset.model_name, preset.layer, preset.hook_name))
workspace = types.SimpleNamespace(preset=preset, device="cpu")
print(json.dumps({name: group.to_json() for name, group in dataset_eval_groups(sae, workspace).items()}))
"""


def test_unreachable_hub_datasets_are_recorded_as_skipped_with_their_reason():
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1")
    result = subprocess.run([sys.executable, "-c", PROBE, str(TEMPLATE_DIR)], env=env,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    groups = json.loads(result.stdout.strip().splitlines()[-1])
    assert set(groups) == {"sparse_probing", "absorption", "scr", "tpp", "unlearning"}
    for name, group in groups.items():
        assert group["status"] == "skipped", name
        assert group["means"] == {}
        assert len(group["reason"]) > 10
    assert "Gemma-2" in groups["unlearning"]["reason"]
