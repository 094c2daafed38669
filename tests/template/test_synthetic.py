"""The ground-truth presets: samples of a synthetic model with known features, and an eval that knows the answer."""

import dataclasses
import json

import pytest
import torch

from experiment import build_sae, run_settings
from sae_harness.config import ConfigError, load_config
from sae_harness.presets import PRESETS
from sae_harness.results import validate_final_info
from sae_harness.sae_base import HookSpec
from sae_harness.synthetic import (
    HELDOUT_SEED,
    ground_truth_scores,
    load_synthetic_model,
    model_dir,
    reference_scores,
    sample_batches,
)
from tests.conftest import TEMPLATE_DIR
from tests.template.conftest import TINY_SYNTH, run_experiment, tiny_environment

SYNTH = PRESETS["synth-cpu"]
N_SAMPLES = 8192


@pytest.fixture(scope="module")
def synthetic_model(cache_dir):
    return load_synthetic_model(SYNTH, cache_dir, "cpu")


def our_topk_sae(synthetic_model, k: int):
    """experiment.py's TopK SAE over the whole true dictionary width, freshly initialised."""
    config = load_config(TEMPLATE_DIR / "config.toml", environ={"SAE_PRESET": "synth-cpu"})
    settings = dataclasses.replace(run_settings(config), variant="topk", k=k,
                                   dict_size=synthetic_model.cfg.num_features)
    return build_sae(settings, SYNTH.d_model, HookSpec(SYNTH.model_name, SYNTH.layer, SYNTH.hook_name))


def test_an_sae_holding_the_true_dictionary_finds_every_feature_and_a_random_one_does_not(synthetic_model):
    true_sae = our_topk_sae(synthetic_model, k=10)
    vectors = synthetic_model.feature_dict.feature_vectors.detach()
    with torch.no_grad():
        true_sae.W_dec.copy_(vectors)
        true_sae.W_enc.copy_(vectors.T)
        true_sae.b_enc.zero_()
        true_sae.b_dec.copy_(synthetic_model.feature_dict.bias)
    found = ground_truth_scores(true_sae, synthetic_model, N_SAMPLES, "cpu")
    random = ground_truth_scores(our_topk_sae(synthetic_model, k=10), synthetic_model, N_SAMPLES, "cpu")

    assert found["mcc"] >= 0.99 and found["uniqueness"] >= 0.99
    assert found["f1"] > 0.5, "at the true L0 most firings of the true dictionary are its features'"
    assert random["mcc"] < 0.5 and random["f1"] < 0.2
    assert found["true_l0"] == random["true_l0"], "both are scored on the same held-out samples"


def test_samples_are_the_same_whatever_else_draws_from_the_global_generator(synthetic_model):
    first = torch.cat([hidden for hidden, _ in sample_batches(synthetic_model, HELDOUT_SEED, 10_000)])
    torch.rand(1000)
    again = torch.cat([hidden for hidden, _ in sample_batches(synthetic_model, HELDOUT_SEED, 10_000)])
    assert torch.equal(first, again) and first.shape == (10_000, SYNTH.d_model)


def test_the_reference_is_the_true_dictionary_and_is_kept_with_the_model(synthetic_model, cache_dir):
    reference = reference_scores(synthetic_model, SYNTH, cache_dir, N_SAMPLES)
    assert reference["mcc"] >= 0.99 and 0.5 < reference["f1"] < 1
    stored = json.loads((model_dir(cache_dir, SYNTH, False) / "reference.json").read_text())
    assert stored[str(N_SAMPLES)] == reference


def _scores(info: dict) -> dict:
    timed = ("seconds", "tokens_per_s")
    return {group: {name: value for name, value in info[group]["means"].items() if not name.endswith(timed)}
            for group in ("core", "ground_truth", "training")}


def test_a_run_on_the_synthetic_preset_scores_against_the_truth_and_repeats_exactly(tiny_synth_run, cache_dir):
    info = json.loads((tiny_synth_run / "final_info.json").read_text())
    validate_final_info(info)
    truth = info["ground_truth"]
    assert truth["status"] == "ok" and set(truth["definitions"]) >= {"mcc", "f1", "precision", "recall"}
    for name in ("mcc", "f1", "precision", "recall", "explained_variance", "reference_f1"):
        assert 0 <= truth["means"][name] <= 1, name
    assert truth["means"]["reference_mcc"] >= 0.99
    assert info["core"]["means"]["heldout_tokens"] == int(TINY_SYNTH["SAE_HELDOUT_TOKENS"])
    assert "ce_loss_score" not in info["core"]["means"]
    assert "not applicable" in info["core"]["saebench_skipped"]
    for group in ("sparse_probing", "tpp", "absorption", "meta_structure", "scr", "unlearning"):
        assert info[group]["status"] == "skipped" and "not applicable" in info[group]["reason"], group
    assert not (tiny_synth_run / "autointerp_contexts.json").exists(), "synthetic samples have no text to explain"

    again = tiny_synth_run.with_name("run_1")
    result = run_experiment(again, {**tiny_environment(cache_dir), **TINY_SYNTH})
    assert result.returncode == 0, result.stderr[-3000:]
    assert _scores(json.loads((again / "final_info.json").read_text())) == _scores(info)


def test_a_language_model_run_has_no_ground_truth_group(tiny_run):
    info = json.loads((tiny_run / "final_info.json").read_text())
    assert "ground_truth" not in info and info["core"]["status"] == "ok"


def test_the_hub_model_is_only_offered_where_one_is_published():
    with pytest.raises(ConfigError, match="synthetic_hub"):
        load_config(TEMPLATE_DIR / "config.toml", environ={"SAE_PRESET": "synth-cpu", "SAE_SYNTHETIC_HUB": "true"})
    config = load_config(TEMPLATE_DIR / "config.toml", environ={"SAE_PRESET": "synth-16k", "SAE_SYNTHETIC_HUB": "1"})
    assert config.preset_spec.hub_model == "decoderesearch/synth-sae-bench-16k-v1" and config.preset_spec.needs_gpu
