"""One real end-to-end run of `python experiment.py --out_dir=...` at tiny sizes, and what it writes."""

import json
import subprocess
import sys

import jsonschema
import numpy as np
import pytest
import torch

from sae_harness.results import validate_final_info
from tests.conftest import TEMPLATE_DIR


def test_final_info_validates_against_the_template_schema(tiny_run):
    info = json.loads((tiny_run / "final_info.json").read_text())
    validate_final_info(info)
    settings, training, core = info["settings"], info["training"]["means"], info["core"]["means"]
    assert training["training_steps"] > 0
    assert training["training_tokens"] == training["training_steps"] * settings["means"]["batch_size"]
    # The baseline's settings: run_settings() of experiment.py over the tiny SAE_* sizes, as they ran. The ReLU SAE
    # never reads k or target_l0: they are listed as unused, not recorded as values that ran.
    assert settings["choices"] == {"variant": "relu", "dead_feature_method": "resample"}
    assert settings["means"] == {"sparsity_penalty": 0.6, "dict_size": 256, "batch_size": 512, "epochs": 3,
                                 "lr": 0.003, "warmup_steps": 5, "resample_every": 10, "dead_feature_window": 0,
                                 "seed": 0}
    assert settings["unused"] == {"k": 32, "target_l0": 20.0} and "overridden_in_code" not in settings
    assert info["training"]["sae_class"] == "CustomSAE" and training["dead_window"] == 10
    assert 0 < core["l0"] <= 256
    assert -1 < core["explained_variance"] <= 1
    assert 0 < core["ce_loss_without_sae"] < core["ce_loss_with_ablation"]
    # The interpretability evals ran offline, through SAEBench, with finite numbers.
    for name in ("sparse_probing", "tpp", "absorption", "meta_structure"):
        assert info[name]["status"] == "ok", (name, info[name].get("reason"))
        assert info[name]["means"] and all(isinstance(v, float) for v in info[name]["means"].values()), name
    assert 0 < info["sparse_probing"]["means"]["sae.sae_top_1_test_accuracy"] <= 1
    # Those that need the hub say so; unlearning needs a model no preset uses.
    assert info["scr"]["status"] == "skipped" and "offline" in info["scr"]["reason"]
    assert info["unlearning"]["status"] == "skipped" and "instruct" in info["unlearning"]["reason"]
    for name in ("scr", "unlearning"):
        assert info[name]["means"] == {}


def test_schema_rejects_a_run_without_training_facts_and_a_skip_without_reason(tiny_run):
    info = json.loads((tiny_run / "final_info.json").read_text())
    broken = json.loads(json.dumps(info))
    del broken["training"]["means"]["training_steps"]
    with pytest.raises(jsonschema.ValidationError):
        validate_final_info(broken)
    skipped = json.loads(json.dumps(info))
    del skipped["scr"]["reason"]
    with pytest.raises(jsonschema.ValidationError):
        validate_final_info(skipped)
    no_dict_size = json.loads(json.dumps(info))
    del no_dict_size["settings"]["means"]["dict_size"]
    with pytest.raises(jsonschema.ValidationError):
        validate_final_info(no_dict_size)
    numbers_in_a_skip = json.loads(json.dumps(info))
    numbers_in_a_skip["scr"]["means"] = {"score": 0.0}
    with pytest.raises(jsonschema.ValidationError):
        validate_final_info(numbers_in_a_skip)


def test_training_log_and_feature_frequencies_are_written(tiny_run):
    rows = [json.loads(line) for line in (tiny_run / "training_log.jsonl").read_text().splitlines()]
    assert rows and {"step", "tokens", "loss", "mse", "l0", "dead_fraction"} <= set(rows[0])
    assert [r["step"] for r in rows] == sorted(r["step"] for r in rows)
    frequencies = np.load(tiny_run / "feature_frequencies.npy")
    info = json.loads((tiny_run / "final_info.json").read_text())
    assert frequencies.shape == (256,)
    assert np.mean(frequencies == 0) == pytest.approx(info["core"]["means"]["dead_fraction"])


def test_saelens_loads_the_exported_sae_and_reconstructs_as_ours(tiny_run, tiny_workspace):
    from sae_lens import SAE
    from safetensors.torch import load_file

    loaded = SAE.load_from_disk(tiny_run / "sae", device="cpu")
    weights = load_file(tiny_run / "sae" / "sae_weights.safetensors")
    x = tiny_workspace.heldout[:200]
    ours_features = torch.relu((x - weights["b_dec"]) @ weights["W_enc"] + weights["b_enc"])
    ours = ours_features @ weights["W_dec"] + weights["b_dec"]
    with torch.no_grad():
        assert torch.allclose(loaded.encode(x), ours_features, atol=1e-4)
        assert torch.allclose(loaded(x), ours, atol=1e-3)
    assert loaded.cfg.metadata.hook_name == "blocks.6.hook_resid_post"


def test_plot_writes_its_four_figures(tiny_run):
    result = subprocess.run([sys.executable, str(TEMPLATE_DIR / "plot.py"), "--root", str(tiny_run.parent)],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    for name in ("metrics_comparison", "feature_density", "activation_frequency_rank", "training_curves"):
        figure = tiny_run.parent / f"{name}.png"
        assert figure.stat().st_size > 10_000, name
        assert figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_plot_without_runs_fails_with_a_clear_message(tmp_path):
    result = subprocess.run([sys.executable, str(TEMPLATE_DIR / "plot.py"), "--root", str(tmp_path)],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode != 0
    assert "experiment.py --out_dir=run_0" in result.stderr
    assert "Traceback" not in result.stderr
