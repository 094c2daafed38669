"""SAEBench's absorption and meta_structure evals on the offline Gemma 3 270M: real model, real SAEBench code, at
test sizes. The letter probe is trained once into the shared cache (about two minutes the first time)."""

import math
import socket

import pytest
import torch

SMALL = dict(vocab_sample=600, llm_batch_size=32, k_sparse_probe_epochs=20, max_k_value=3, min_letters=5)


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    """Any connection (the hub included) fails the test: these evals must run offline."""

    def refuse(self, address):
        raise AssertionError(f"network access to {address} during an offline eval")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)


@pytest.fixture(scope="module")
def random_sae(tiny_settings, tiny_workspace):
    from experiment import build_sae

    return build_sae(tiny_settings, tiny_workspace.preset.d_model, tiny_workspace.hook, "cpu")


@pytest.fixture(scope="module")
def small_sizes():
    from sae_harness.absorption import AbsorptionSizes

    return AbsorptionSizes(**SMALL)


def assert_finite_means(group, names):
    assert group.status == "ok", group.reason
    assert set(group.means) == names
    assert all(math.isfinite(value) for value in group.means.values()), group.means


def test_absorption_scores_each_sae_on_its_own_and_repeats_exactly(tiny_workspace, random_sae, tiny_trained_sae,
                                                                    small_sizes):
    import random

    from sae_harness.absorption import absorption_group

    names = {f"mean.{name}" for name in ("mean_absorption_fraction_score", "mean_full_absorption_score",
                                          "mean_num_split_features", "std_dev_absorption_fraction_score",
                                          "std_dev_full_absorption_score", "std_dev_num_split_features")}
    random_result = absorption_group(random_sae, tiny_workspace, "run_1", small_sizes)
    trained_result = absorption_group(tiny_trained_sae, tiny_workspace, "run_1", small_sizes)
    # The repeat also runs where a caller would: under no_grad, with its own generator states, which it keeps.
    random.seed(7)
    torch.manual_seed(7)
    expected_draws = (random.random(), torch.rand(1).item())
    random.seed(7)
    torch.manual_seed(7)
    with torch.no_grad():
        repeated = absorption_group(tiny_trained_sae, tiny_workspace, "run_1", small_sizes)
        assert not torch.is_grad_enabled()
    assert (random.random(), torch.rand(1).item()) == expected_draws

    for group in (random_result, trained_result):
        assert_finite_means(group, names)
        assert 0.0 <= group.means["mean.mean_absorption_fraction_score"] <= 1.0
    # Same run name, different weights: each SAE gets its own results, never the other's cached ones.
    assert random_result.means != trained_result.means
    assert random_result.details["saebench"]["sae_lens_id"] != trained_result.details["saebench"]["sae_lens_id"]
    assert repeated.means == trained_result.means
    assert len(trained_result.details["saebench"]["eval_result_details"]) >= SMALL["min_letters"]


def test_meta_structure_gives_finite_decoder_variance_explained(tiny_workspace, tiny_trained_sae):
    from sae_harness.meta_structure import MetaStructureSizes, meta_structure_group

    sizes = MetaStructureSizes(train_steps=50, train_batch_size=256)
    group = meta_structure_group(tiny_trained_sae, tiny_workspace, sizes)
    assert_finite_means(group, {"meta_structure.decoder_fraction_variance_explained",
                                "meta_structure.train_time_seconds", "meta_structure.final_reconstruction_mse"})
    assert group.means["meta_structure.decoder_fraction_variance_explained"] <= 1.0
