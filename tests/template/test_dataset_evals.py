"""SAEBench's interpretability evals on the offline preset: sparse probing and TPP on the sae-probes texts, with the
run's model and a cache of the model's probing activations; on hub presets the same code, and a failing eval is
recorded with its reason while the run goes on."""

import dataclasses
import json
import math

import pytest
import torch


@pytest.fixture(scope="module")
def trained_and_random(tiny_workspace, tiny_settings, tiny_trained_sae):
    """The session's trained CustomSAE, and a control: the same architecture with a random decoder and an encoder bias
    far below any pre-activation, so that its features carry nothing about the text."""
    from experiment import build_sae

    control = build_sae(tiny_settings, tiny_workspace.preset.d_model, tiny_workspace.hook, "cpu")
    tiny_workspace.initialise_decoder_bias(control)
    with torch.no_grad():
        control.b_enc.fill_(-1e6)
    control.eval()
    control.fold_activation_scale(tiny_workspace.scale)
    return {"trained": tiny_trained_sae, "random": control}


@pytest.fixture(scope="module")
def probing(trained_and_random, tiny_workspace):
    from sae_harness.probing import sparse_probing_means

    return {label: sparse_probing_means(sae, tiny_workspace) for label, sae in trained_and_random.items()}


def test_sparse_probing_reads_offline_data_and_separates_a_trained_sae_from_a_random_one(probing):
    """The control scores at chance (one-vs-rest probes on balanced classes): no label leaks into the features. A
    trained SAE scores clearly above it. (A random SAE whose features do fire scores about as well as a trained one
    on this offline setup; BENCHMARKS.md has the figures.)"""
    trained, _ = probing["trained"]
    control, details = probing["random"]
    assert details["eval_config"]["dataset_names"] == [
        "sae-probes/code_language", "sae-probes/ag_news_topic", "sae-probes/amazon_sentiment"]
    assert set(details["per_dataset"]) == {f"{name}_results" for name in details["eval_config"]["dataset_names"]}
    for means in (trained, control):
        assert all(0.0 <= value <= 1.0 for value in means.values()), means
    # The model's own channels are the same for both SAEs: the reference ceiling comes from the cache.
    assert trained["llm.llm_test_accuracy"] == control["llm.llm_test_accuracy"] > 0.75
    for name in ("sae.sae_top_1_test_accuracy", "sae.sae_test_accuracy"):
        assert abs(control[name] - 0.5) < 0.06, (name, control[name])
        assert trained[name] > control[name] + 0.08, (name, trained[name], control[name])


def test_probing_activations_are_cached_once_and_written_whole(probing, tiny_workspace):
    from sae_harness.probing import ArtifactCache, sparse_probing_config

    cache = ArtifactCache(tiny_workspace, "sparse_probing", sparse_probing_config(tiny_workspace))
    files = sorted(path.name for path in cache.folder.iterdir())
    assert files == sorted(["settings.json", *(f"sae-probes_{name}_activations.pt" for name in
                                              ("code_language", "ag_news_topic", "amazon_sentiment"))])
    assert json.loads((cache.folder / "settings.json").read_text())["hook_name"] == tiny_workspace.preset.hook_name
    assert not [p for p in cache.folder.parent.iterdir() if p.name.startswith(f".{cache.folder.name}-")]
    # A second SAE paid only for itself: the cached files were not rewritten.
    mtimes = {p.name: p.stat().st_mtime_ns for p in cache.folder.glob("*.pt")}
    from sae_harness.probing import sparse_probing_means

    sparse_probing_means(_untrained(tiny_workspace), tiny_workspace)
    assert {p.name: p.stat().st_mtime_ns for p in cache.folder.glob("*.pt")} == mtimes


def _untrained(workspace):
    from experiment import build_sae, run_settings

    sae = build_sae(run_settings(workspace.config), workspace.preset.d_model, workspace.hook, "cpu")
    workspace.initialise_decoder_bias(sae)
    return sae.eval()


def test_tpp_is_finite_and_keeps_autograd_on(trained_and_random, tiny_workspace):
    from sae_harness.evaluation import _guarded
    from sae_harness.probing import tpp_means

    torch.set_grad_enabled(True)
    group = _guarded("tpp", lambda sae, ws, run: _ok(tpp_means(sae, ws)), trained_and_random["trained"],
                     tiny_workspace, "run_1")
    assert torch.is_grad_enabled(), "SAEBench's TPP switched autograd off and it was not restored"
    assert group.status == "ok", group.reason
    totals = {name: value for name, value in group.means.items() if name.endswith("_total_metric")}
    assert set(totals) == {f"tpp_metrics.tpp_threshold_{n}_total_metric" for n in (5, 20)}
    assert all(math.isfinite(value) for value in group.means.values())


def _ok(pair):
    from sae_harness.evaluation import EvalGroup

    means, details = pair
    return EvalGroup("ok", means, details=details)


def test_hub_preset_path_uses_the_loaded_model_and_records_a_failing_eval(trained_and_random, tiny_workspace,
                                                                         tmp_path, monkeypatch):
    """A hub preset (its SAEBench datasets, batch sizes and dtype) with the offline model standing in for the hub
    one: nothing reloads the model, SCR's unreachable hub data is that eval's recorded failure, a forced exception
    inside TPP is recorded with its reason, and the run's final_info.json is still written and valid."""
    from transformer_lens import HookedTransformer

    import sae_harness.probing as probing
    from sae_harness.presets import _hub_preset
    from sae_harness.results import write_run

    hub = dataclasses.replace(
        _hub_preset("hub-standin", tiny_workspace.preset.model_name, tiny_workspace.preset.layer,
                    tiny_workspace.preset.d_model, gpu_prompts=64),
        probe_datasets=tiny_workspace.preset.probe_datasets, corpus=tiny_workspace.preset.corpus)
    # The loader injected: the offline model, loaded before any hub load is refused, stands in for the hub one.
    workspace = dataclasses.replace(tiny_workspace, preset=hub, loaded_model=tiny_workspace.model)

    def no_hub_load(*args, **kwargs):
        raise AssertionError("an eval reloaded the model from the hub")

    monkeypatch.setattr(HookedTransformer, "from_pretrained_no_processing", no_hub_load)
    # No network in tests: the hub's datasets answer at once that they are unreachable, as on an offline machine.
    import datasets
    import huggingface_hub

    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(probing, "tpp_config", lambda ws: (_ for _ in ()).throw(RuntimeError("forced for the test")))
    from experiment import run_settings

    settings = run_settings(workspace.config)
    facts = {"training_steps": 1, "training_tokens": 512, "unique_tokens": 512, "final_loss": 1.0,
             "training_seconds": 1.0, "tokens_per_s": 512.0, "log": []}
    info = write_run(tmp_path / "run_1", workspace, trained_and_random["trained"], facts, settings, wall_started=0.0)

    assert json.loads((tmp_path / "run_1" / "final_info.json").read_text()) == info
    assert info["tpp"]["status"] == "failed" and "forced for the test" in info["tpp"]["reason"]
    assert info["scr"]["status"] == "failed" and info["scr"]["reason"]
    assert info["sparse_probing"]["status"] == "ok"
    assert info["sparse_probing"]["eval_config"]["llm_batch_size"] == hub.lm_batch_prompts["cpu"]
    assert info["sparse_probing"]["eval_config"]["llm_dtype"] == "float32"
    assert info["unlearning"]["status"] == "skipped"
    assert info["core"]["status"] == "ok"


def test_interpretability_evals_can_be_switched_off(tiny_workspace, trained_and_random):
    from sae_harness.evaluation import interpretability_groups

    workspace = dataclasses.replace(tiny_workspace, config=dataclasses.replace(tiny_workspace.config,
                                                                                run_interp_evals=False))
    groups = interpretability_groups(trained_and_random["trained"], workspace, "run_1")
    assert {group.status for group in groups.values()} == {"skipped"}
    assert {group.reason for group in groups.values()} == {"run_interp_evals = false in the configuration"}
