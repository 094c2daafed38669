"""The layer sweep (one language-model pass for all layers, one SAE per layer), the ghost-gradient option of the
baseline trainer and the dead-feature comparison, at tiny sizes on the offline model; and their commands,
layer_sweep.py and dead_features.py beside experiment.py."""

import dataclasses
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import experiment
from experiment import CustomTrainer, build_sae, run_settings
from sae_harness.activations import ActivationSource, MultiLayerSource, cache_path
from sae_harness.config import ConfigError, load_config
from sae_harness.dead_features import compare_methods, plot_dead_fraction
from sae_harness.layer_sweep import (
    DENSITY_BINS,
    METRICS,
    layer_keys,
    parse_layers,
    plot_by_layer,
    plot_feature_density_by_layer,
    prepare_layers,
    run_sweep,
)
from sae_harness.results import validate_final_info
from sae_harness.sae_base import HookSpec
from tests.conftest import TEMPLATE_DIR
from tests.template.conftest import tiny_environment

LAYERS = [0, 2, 4]


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Work this small gains little from a second thread, and loses several times over when the cores are busy (a
    thread waits on the other at every small op). The code under test is the same."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def sweep_config(tiny_config, tmp_path_factory):
    """The tiny configuration, smaller still, with an activation cache of its own so that the sweep computes every
    layer. SAEBench's core eval (full forward passes through a 262k-token unembedding) is most of the sweep's time,
    so its prompts are short ones; the interpretability evals (tests/template/test_dataset_evals.py) are off."""
    return dataclasses.replace(tiny_config, cache_dir=str(tmp_path_factory.mktemp("sweep_cache")),
                               training_tokens=4096, heldout_tokens=1024, context_length=32, eval_batch_prompts=2,
                               run_interp_evals=False)


@pytest.fixture(scope="module")
def sweep_settings(sweep_config):
    return run_settings(sweep_config)


@pytest.fixture(scope="module")
def sweep_dir(sweep_config, sweep_settings, tiny_workspace, tmp_path_factory):
    out_dir = tmp_path_factory.mktemp("sweep") / "sweep"
    run_sweep(sweep_config, sweep_settings, LAYERS, out_dir, experiment.run, model=tiny_workspace.model)
    return out_dir


def test_sweep_writes_finite_metrics_and_a_run_folder_per_layer(sweep_dir, sweep_config, sweep_settings):
    sweep = json.loads((sweep_dir / "sweep.json").read_text())
    assert [record["layer"] for record in sweep["layers"]] == LAYERS
    for record in sweep["layers"]:
        for name in METRICS:
            assert isinstance(record[name], float) and math.isfinite(record[name]), (record["layer"], name)
        assert 0 < record["explained_variance"] <= 1 and record["l0"] > 0
        run = sweep_dir / f"layer_{record['layer']}"
        info = json.loads((run / "final_info.json").read_text())
        validate_final_info(info)
        assert info["training"]["hook_name"] == f"blocks.{record['layer']}.hook_resid_post"
        assert info["training"]["means"]["layer"] == record["layer"]
        assert info["settings"]["means"]["dict_size"] == sweep_settings.dict_size == sweep_config.dict_size
        assert info["core"]["means"]["ce_loss_score"] == record["ce_loss_score"]
        assert np.load(run / "feature_frequencies.npy").shape == (sweep_config.dict_size,)
        assert (run / "sae" / "cfg.json").exists()
    assert "SAEBench" in sweep["ce_loss_score_source"]
    assert sweep["variant"] == "relu" and sweep["settings"]["k"] == sweep_settings.k
    # Different layers give different SAEs: the numbers are not one layer's copied three times.
    assert len({record["mse"] for record in sweep["layers"]}) == len(LAYERS)


def test_a_sweep_run_again_reuses_the_layers_it_finished_and_retrains_on_new_settings(
        sweep_dir, sweep_config, sweep_settings, tiny_workspace, tmp_path):
    import shutil

    again = tmp_path / "sweep"
    shutil.copytree(sweep_dir, again)
    shutil.rmtree(again / "layer_4")
    trained = []

    def run(workspace, settings, out_dir, started):
        trained.append(workspace.preset.layer)
        return experiment.run(workspace, settings, out_dir, started)

    sweep = run_sweep(sweep_config, sweep_settings, LAYERS, again, run, model=tiny_workspace.model)
    assert trained == [4]
    first = json.loads((sweep_dir / "sweep.json").read_text())
    assert [r["mse"] for r in sweep["layers"][:2]] == [r["mse"] for r in first["layers"][:2]]
    without_saebench = dataclasses.replace(sweep_config, run_saebench=False)
    run_sweep(without_saebench, sweep_settings, [0], again, run, model=tiny_workspace.model)
    assert trained == [4, 0]
    # A setting experiment.py changes retrains the layer too, although the configuration is the same.
    run_sweep(without_saebench, dataclasses.replace(sweep_settings, seed=1), [0], again, run,
              model=tiny_workspace.model)
    assert trained == [4, 0, 0]


def test_charts_are_drawn_from_sweep_json(sweep_dir, tmp_path):
    sweep = json.loads((sweep_dir / "sweep.json").read_text())
    for name in ("by_layer.png", "feature_density_by_layer.png"):
        png = (sweep_dir / name).read_bytes()
        assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 20_000, name
    drawn = plot_by_layer(sweep, tmp_path / "by_layer.png")
    for name in ("mse", "explained_variance", "ce_loss_score", "l0", "l1"):
        assert drawn[name] == (LAYERS, [record[name] for record in sweep["layers"]]), name
    # The chart in the sweep folder is the one these numbers draw.
    assert (tmp_path / "by_layer.png").read_bytes() == (sweep_dir / "by_layer.png").read_bytes()
    counts = plot_feature_density_by_layer(sweep, sweep_dir, tmp_path / "density.png")
    for layer in LAYERS:
        frequencies = np.load(sweep_dir / f"layer_{layer}" / "feature_frequencies.npy")
        expected, _ = np.histogram(np.log10(frequencies[frequencies > 0]), bins=DENSITY_BINS)
        assert counts[layer].tolist() == expected.tolist()
        assert counts[layer].sum() == np.count_nonzero(frequencies)


def test_one_forward_pass_per_batch_reaches_the_deepest_layer(tiny_workspace, sweep_config, monkeypatch):
    model = tiny_workspace.model
    calls = []
    real = model.run_with_cache

    def counting(*args, **kwargs):
        calls.append((sorted(kwargs["names_filter"]), kwargs["stop_at_layer"]))
        return real(*args, **kwargs)

    monkeypatch.setattr(model, "run_with_cache", counting)
    source = MultiLayerSource(model, layer_keys(sweep_config, "cpu", LAYERS, "heldout", 300), lm_batch_prompts=1)
    batches = list(source.batches(desc="test"))
    hooks = sorted(f"blocks.{layer}.hook_resid_post" for layer in LAYERS)
    assert calls == [(hooks, 5)] * len(batches) and len(batches) >= 2
    assert sum(len(batch[0]) for batch in batches) == 300


def test_each_layer_matches_the_single_layer_source(sweep_dir, sweep_config, tiny_workspace):
    n = sweep_config.heldout_tokens
    for layer, key in layer_keys(sweep_config, "cpu", LAYERS, "heldout", n).items():
        cached = np.load(cache_path(Path(sweep_config.cache_dir), key))
        assert cached.shape == (n, 640)
        single = ActivationSource(tiny_workspace.model, key, layer, lm_batch_prompts=16)
        first = next(single.batches(desc="test")).numpy()
        assert len(first) > 200
        assert np.allclose(cached[:len(first)], first, rtol=1e-4, atol=1e-3), layer
    # Layers differ, so the comparison above could fail.
    keys = layer_keys(sweep_config, "cpu", [0, 4], "heldout", n)
    paths = [cache_path(Path(sweep_config.cache_dir), key) for key in keys.values()]
    assert not np.allclose(np.load(paths[0])[:50], np.load(paths[1])[:50], atol=1e-2)


def test_sweep_and_single_layer_runs_share_one_cache(sweep_dir, sweep_config, tiny_config, tiny_workspace):
    # The sweep's cache entry for a layer is the one a run at that layer reads (tiny_workspace is a run at layer 6).
    (swept,) = prepare_layers(tiny_config, [6], model=tiny_workspace.model)
    assert swept.train.path == tiny_workspace.train.path
    assert swept.scale == tiny_workspace.scale
    assert torch.equal(swept.heldout, tiny_workspace.heldout)
    assert swept.hook == tiny_workspace.hook
    # A second sweep over cached layers never calls the language model.
    again = prepare_layers(sweep_config, [2, 4], model=object())
    assert [workspace.preset.layer for workspace in again] == [2, 4]
    assert [len(workspace.train) for workspace in again] == [sweep_config.training_tokens] * 2


@pytest.mark.parametrize("text, expected", [("all", list(range(18))), ("5, 1,5", [1, 5]), ("17", [17])])
def test_layers_argument(text, expected):
    assert parse_layers(text, 18) == expected


@pytest.mark.parametrize("text, message", [("18", "the model has layers 0 to 17"), ("1,x", "give 'all' or layer"),
                                           ("", "none given")])
def test_bad_layers_argument_is_refused(text, message):
    with pytest.raises(ConfigError, match=message):
        parse_layers(text, 18)


# Ghost gradients.

def make_trainer(settings):
    hook = HookSpec("google/gemma-3-270m", 6, "blocks.6.hook_resid_post")
    return CustomTrainer(build_sae(dataclasses.replace(settings, variant="relu"), 640, hook), settings,
                         total_steps=100)


def test_ghost_loss_trains_only_dead_features_and_matches_the_main_error(tiny_settings, tiny_workspace):
    trainer = make_trainer(dataclasses.replace(tiny_settings, dead_feature_method="ghost"))
    sae = trainer.sae
    tiny_workspace.initialise_decoder_bias(sae)
    x = tiny_workspace.heldout[:256] * tiny_workspace.scale
    parts = sae.training_loss(x)
    assert trainer.ghost_gradient_loss(x, parts.features).item() == 0.0  # nothing is dead yet
    dead = torch.zeros(256, dtype=torch.bool)
    dead[::4] = True
    trainer.steps_since_fired[dead] = trainer.dead_window
    ghost = trainer.ghost_gradient_loss(x, parts.features)
    # Rescaled per token to the main reconstruction error, so its value is the main MSE.
    assert ghost.item() == pytest.approx(parts.mse.item(), rel=1e-4)
    ghost.backward()
    assert sae.W_enc.grad[:, ~dead].abs().max() == 0 and sae.W_enc.grad[:, dead].abs().sum(dim=0).min() > 0
    assert sae.b_enc.grad[~dead].abs().max() == 0 and sae.b_enc.grad[dead].abs().min() > 0
    assert sae.W_dec.grad[~dead].abs().max() == 0 and sae.W_dec.grad[dead].abs().sum(dim=1).min() > 0
    assert sae.b_dec.grad is None


@pytest.fixture(scope="module")
def dead_comparison(tiny_settings, tiny_workspace):
    """Each method trained from the same start, in which three quarters of the features never fire."""
    settings = dataclasses.replace(tiny_settings, epochs=6, lr=0.01)
    return compare_methods(tiny_workspace, settings, ["none", "ghost", "resample"], build_sae, experiment.train,
                           force_dead=0.75)


def test_ghost_gradients_revive_features_that_never_fire(dead_comparison):
    none, ghost, resample = (dead_comparison["methods"][m] for m in ("none", "ghost", "resample"))
    assert none["forced_dead"] == ghost["forced_dead"] == 192
    # Without a method, silenced features get no gradient at all and stay silent.
    assert none["forced_dead_revived"] == 0 and max(none["log"]["ghost_loss"]) == 0
    assert ghost["forced_dead_revived"] >= 5, ghost["forced_dead_revived"]
    assert ghost["heldout"]["dead_fraction"] < none["heldout"]["dead_fraction"]
    assert max(ghost["log"]["ghost_loss"]) > 0
    # Ghost gradients never resample; reconstruction does not suffer.
    assert ghost["resampled_features"] == 0 < resample["resampled_features"]
    assert ghost["heldout"]["explained_variance"] > none["heldout"]["explained_variance"] - 0.05
    assert not np.allclose(ghost["log"]["dead_fraction"], resample["log"]["dead_fraction"])


def test_dead_fraction_chart_plots_the_logged_curves(dead_comparison, tmp_path):
    drawn = plot_dead_fraction(dead_comparison, tmp_path / "dead_fraction.png")
    for method, result in dead_comparison["methods"].items():
        assert drawn[method] == (result["log"]["tokens"], result["log"]["dead_fraction"])
    assert (tmp_path / "dead_fraction.png").stat().st_size > 20_000


def test_dead_feature_method_defaults_to_resampling_and_refuses_bad_values(tmp_path):
    settings = run_settings(load_config(TEMPLATE_DIR / "config.toml", environ={}))
    assert (settings.dead_feature_method, settings.dead_feature_window) == ("resample", 0)
    assert make_trainer(settings).dead_window == settings.resample_every
    with pytest.raises(ConfigError) as raised:
        dataclasses.replace(settings, dead_feature_method="ghosts")
    assert ("experiment.py (run_settings): dead_feature_method = 'ghosts' is invalid; "
            "use one of: resample, ghost, none") in str(raised.value)
    path = tmp_path / "config.toml"
    path.write_text("dead_feature_window = -1\n")
    with pytest.raises(ConfigError, match="dead_feature_window = -1 is invalid"):
        load_config(path, environ={})


# The commands: small scripts beside experiment.py that hand its functions to the harness.

def command(args: list[str], cache_dir, tmp_path) -> subprocess.CompletedProcess:
    env = tiny_environment(cache_dir, SAE_RUN_SAEBENCH="false", SAE_RUN_INTERP_EVALS="false",
                           SAE_TRAINING_TOKENS="4096", SAE_EPOCHS="1")
    return subprocess.run([sys.executable, *args], cwd=TEMPLATE_DIR, env=env, capture_output=True, text=True,
                          timeout=900)


def test_the_layer_sweep_command_trains_experiment_pys_sae_per_layer(cache_dir, tmp_path):
    result = command(["layer_sweep.py", "--out_dir", str(tmp_path / "sweep"), "--layers", "1,3"], cache_dir, tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    sweep = json.loads((tmp_path / "sweep" / "sweep.json").read_text())
    assert [record["layer"] for record in sweep["layers"]] == [1, 3]
    assert sweep["ce_loss_score_source"] == "not computed: run_saebench = false"
    for layer in (1, 3):
        info = json.loads((tmp_path / "sweep" / f"layer_{layer}" / "final_info.json").read_text())
        assert info["training"]["sae_class"] == "CustomSAE" and info["settings"]["choices"]["variant"] == "relu"
        assert info["training"]["means"]["training_steps"] == 4096 // 512
    assert (tmp_path / "sweep" / "by_layer.png").stat().st_size > 10_000


def test_the_dead_feature_command_compares_the_methods_it_is_given(cache_dir, tmp_path):
    out = tmp_path / "deadcmp"
    result = command(["dead_features.py", "--out_dir", str(out), "--methods", "resample,ghost", "--force_dead", "0.5"],
                     cache_dir, tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    comparison = json.loads((out / "dead_features.json").read_text())
    assert list(comparison["methods"]) == ["resample", "ghost"]
    assert comparison["methods"]["ghost"]["forced_dead"] == 128  # half of the tiny 256 features
    assert comparison["settings"]["dead_feature_method"] == "resample"  # run_settings()'s own, recorded as set
    assert (out / "dead_fraction.png").stat().st_size > 10_000
    bad = command(["dead_features.py", "--out_dir", str(out), "--methods", "resample,ghosts"], cache_dir, tmp_path)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert "dead_feature_method = 'ghosts' is invalid; use one of: resample, ghost, none" in bad.stderr


@pytest.mark.parametrize("module, script", [("sae_harness.layer_sweep", "layer_sweep.py"),
                                            ("sae_harness.dead_features", "dead_features.py")])
def test_the_harness_modules_point_to_the_commands_beside_experiment_py(module, script, cache_dir, tmp_path):
    result = command(["-m", module, "--out_dir", str(tmp_path / "x")], cache_dir, tmp_path)
    assert result.returncode == 1 and f"python {script}" in result.stderr
    assert not (tmp_path / "x").exists()
