"""experiment.py's Settings: the values a run uses are written in the file, checked before any work, and recorded in
final_info.json as they ran; a loss's own diagnostics reach the training log and final_info.json."""

import ast
import dataclasses
import json
import math
import re
import time
import tomllib

import numpy as np
import pytest
import torch

from experiment import CustomSAE, Settings, build_sae, run_settings, train
from sae_harness.config import MOVED_TO_EXPERIMENT, ConfigError, load_config
from sae_harness.results import harness_config, validate_final_info, validate_group
from sae_harness.sae_base import HookSpec, LossParts
from sae_harness.settings import (
    SettingsReads,
    check_settings,
    given_settings,
    settings_attributes,
    settings_group,
    settings_values,
)
from tests.conftest import TEMPLATE_DIR
from tests.template.conftest import edited_template, import_experiment, run_experiment, tiny_environment

# SAEBench's core and interpretability evals are most of a tiny run's time; not needed here.
NO_SAEBENCH = {"SAE_RUN_SAEBENCH": "false", "SAE_RUN_INTERP_EVALS": "false"}
HOOK = HookSpec("google/gemma-3-270m", 6, "blocks.6.hook_resid_post")


def test_the_comments_of_run_settings_give_config_tomls_values():
    """run_settings() reads some values from config.toml and shows each one in a comment; the comments must not
    drift from the file."""
    source = (TEMPLATE_DIR / "experiment.py").read_text()
    function = next(node for node in ast.parse(source).body
                    if isinstance(node, ast.FunctionDef) and node.name == "run_settings")
    body = "\n".join(source.splitlines()[function.lineno - 1:function.end_lineno])
    config = load_config(TEMPLATE_DIR / "config.toml", environ={})
    shown = dict(re.findall(r"^ +\w+=config\.(\w+), +# (\S+)$", body, re.MULTILINE))
    assert {"dict_size", "batch_size", "epochs", "lr", "warmup_steps", "seed"} <= set(shown)
    for name, text in shown.items():
        assert float(text) == getattr(config, name), (name, text)
    settings = run_settings(config)
    assert {f.name for f in dataclasses.fields(Settings)} == set(settings_group(settings)["means"]) | set(
        settings_group(settings)["choices"])


def test_the_settings_group_holds_every_field_as_set():
    settings = dataclasses.replace(run_settings(load_config(TEMPLATE_DIR / "config.toml", environ={})),
                                   variant="topk", k=64)
    group = settings_group(settings)
    assert group["status"] == "ok"
    assert group["means"]["k"] == 64 and group["means"]["dict_size"] == 2048
    assert group["choices"] == {"variant": "topk", "dead_feature_method": "resample"}


@pytest.mark.parametrize("changes, message", [
    ({"variant": "gated"}, "experiment.py (run_settings): variant = 'gated' is invalid; use one of: relu, topk, "
                           "batchtopk, jumprelu"),
    ({"k": 0}, "k = 0 is invalid; use 1 <= k <= dict_size"),
    ({"dead_feature_method": "ghosts"}, "dead_feature_method = 'ghosts' is invalid; use one of: resample, ghost, none"),
    ({"lr": 3.0}, "lr = 3.0 is invalid; use a learning rate between 0 and 1"),
])
def test_a_bad_setting_is_refused_naming_experiment_py_and_the_field(tiny_settings, changes, message):
    with pytest.raises(ConfigError) as raised:
        dataclasses.replace(tiny_settings, **changes)
    assert message in str(raised.value)


def test_a_setting_final_info_cannot_record_is_refused():
    @dataclasses.dataclass(frozen=True)
    class WithATensor:
        variant: str = "relu"
        dict_size: int = 8
        batch_size: int = 8
        epochs: int = 1
        lr: float = 1e-3
        seed: int = 0
        weights: object = dataclasses.field(default_factory=lambda: torch.ones(3))

    with pytest.raises(ConfigError, match="weights = tensor.* is a Tensor; a setting must be a number, a string"):
        check_settings(WithATensor(), [])

    @dataclasses.dataclass(frozen=True)
    class WithoutDictSize:
        variant: str = "relu"
        batch_size: int = 8
        epochs: int = 1
        lr: float = 1e-3
        seed: int = 0

    with pytest.raises(ConfigError, match="'dict_size' is a required property"):
        check_settings(WithoutDictSize(), [])


@pytest.mark.parametrize("name", MOVED_TO_EXPERIMENT)
def test_the_knobs_experiment_py_sets_are_refused_in_config_toml_and_the_environment(name, tmp_path):
    path = tmp_path / "config.toml"
    path.write_text(f"{name} = 1\n")
    with pytest.raises(ConfigError, match=f"config.toml: {name} is no longer read from config.toml or SAE_\\* "
                                          f"variables; set it in experiment.py's run_settings\\(\\)"):
        load_config(path, environ={})
    with pytest.raises(ConfigError, match=f"environment variable SAE_{name.upper()}: {name} is no longer read"):
        load_config(TEMPLATE_DIR / "config.toml", environ={f"SAE_{name.upper()}": "1"})
    assert name not in tomllib.loads((TEMPLATE_DIR / "config.toml").read_text())


class CountingSAE(CustomSAE):
    """CustomSAE whose loss reports the step number and a per-token quantity as diagnostics."""

    steps = 0

    def training_loss(self, x):
        parts = super().training_loss(x)
        self.steps += 1
        parts.diagnostics = {"step": float(self.steps), "l0": (parts.features > 0).float().sum(dim=-1).mean()}
        return parts


def test_a_losss_diagnostics_are_logged_and_averaged_over_the_last_log_every_steps(tiny_workspace, tiny_settings):
    sae = CountingSAE(tiny_settings, d_in=640, d_sae=tiny_settings.dict_size, hook=tiny_workspace.hook,
                      generator=torch.Generator().manual_seed(0))
    tiny_workspace.initialise_decoder_bias(sae)
    facts = train(sae, tiny_workspace, tiny_settings)
    steps, every = facts["training_steps"], tiny_workspace.config.log_every
    assert steps == 48 and every == 4
    assert facts["diagnostic.step"] == sum(range(steps - every + 1, steps + 1)) / every == 46.5
    rows = facts["log"]
    assert [row["diagnostic.step"] for row in rows] == [row["step"] for row in rows]
    assert [row["diagnostic.l0"] for row in rows] == pytest.approx([row["l0"] for row in rows])
    assert 0 < facts["diagnostic.l0"] <= tiny_settings.dict_size


def test_a_diagnostic_that_is_not_one_number_is_refused_by_name():
    parts = LossParts(total=torch.zeros(()), mse=torch.zeros(()), sparsity=torch.zeros(()),
                      features=torch.zeros(2, 3), diagnostics={"per_prefix": torch.zeros(5)})
    with pytest.raises(ValueError, match=r"LossParts.diagnostics\['per_prefix'\] has shape \(5,\); give one number"):
        parts.logged_diagnostics()


def test_a_run_records_the_settings_experiment_py_set_not_config_tomls(tmp_path, cache_dir):
    """experiment.py picks TopK with k = 64 and 512 features; the environment says 256 features. What final_info.json
    records is what trained: the exported SAE, the feature count and the L0 agree with it."""
    template = edited_template(tmp_path, [
        ('        variant="relu",\n', '        variant="topk",\n'),
        ("        k=32,\n", "        k=64,\n"),
        ("        dict_size=config.dict_size,  # 2048\n", "        dict_size=512,\n"),
    ])
    out_dir = tmp_path / "run_1"
    env = tiny_environment(cache_dir, **NO_SAEBENCH)
    assert env["SAE_DICT_SIZE"] == "256"
    result = run_experiment(out_dir, env, template)
    assert result.returncode == 0, result.stderr[-3000:]
    info = json.loads((out_dir / "final_info.json").read_text())
    validate_final_info(info)
    settings = info["settings"]
    assert settings["choices"]["variant"] == "topk" and info["training"]["sae_class"] == "TopKSAE"
    assert settings["means"]["k"] == 64 and settings["means"]["dict_size"] == 512
    # TopK reads k, never the L1 penalty or the target L0; as written in run_settings(), nothing overridden.
    assert settings["unused"] == {"sparsity_penalty": 0.6, "target_l0": 20.0} and "overridden_in_code" not in settings
    assert settings["means"]["batch_size"] == 512 and settings["means"]["warmup_steps"] == 5  # from the environment
    assert "k" not in info["training"]["means"] and "dict_size" not in info["training"]["means"]
    # The training group's copy of the configuration leaves out what the settings record: no stale 256 anywhere.
    assert "dict_size" not in info["training"]["config"] and info["training"]["config"]["training_tokens"] == 8192
    cfg = json.loads((out_dir / "sae" / "cfg.json").read_text())
    assert (cfg["k"], cfg["d_sae"]) == (64, 512)
    assert np.load(out_dir / "feature_frequencies.npy").shape == (512,)
    assert 32 < info["core"]["means"]["l0"] <= 64


def test_a_diagnostic_of_the_loss_lands_in_final_info_json(tmp_path, cache_dir):
    template = edited_template(tmp_path, [(
        "        return LossParts(total=mse + sparsity, mse=mse, sparsity=sparsity, features=features.dense())\n",
        "        return LossParts(total=mse + sparsity, mse=mse, sparsity=sparsity, features=features.dense(),\n"
        "                         diagnostics={\"l1\": l1.detach(), \"half_mse\": mse.detach() / 2})\n",
    )])
    out_dir = tmp_path / "run_1"
    result = run_experiment(out_dir, tiny_environment(cache_dir, **NO_SAEBENCH), template)
    assert result.returncode == 0, result.stderr[-3000:]
    info = json.loads((out_dir / "final_info.json").read_text())
    validate_final_info(info)
    means = info["training"]["means"]
    assert math.isfinite(means["diagnostic.l1"]) and means["diagnostic.l1"] > 0
    rows = [json.loads(line) for line in (out_dir / "training_log.jsonl").read_text().splitlines()]
    assert all(row["diagnostic.half_mse"] == pytest.approx(row["mse"] / 2) for row in rows)
    assert min(row["mse"] for row in rows) / 2 <= means["diagnostic.half_mse"] <= max(row["mse"] for row in rows) / 2


def test_build_sae_makes_the_variant_the_settings_name_seeded_by_them(tiny_settings):
    for variant, sae_class in (("relu", "CustomSAE"), ("topk", "TopKSAE"), ("jumprelu", "JumpReLUSAE")):
        settings = dataclasses.replace(tiny_settings, variant=variant, k=7, dict_size=64)
        sae = build_sae(settings, 16, HOOK)
        assert type(sae).__name__ == sae_class and sae.cfg.d_sae == 64 and sae.settings is settings
        assert torch.equal(sae.W_dec, build_sae(settings, 16, HOOK).W_dec)
        assert not torch.equal(sae.W_dec, build_sae(dataclasses.replace(settings, seed=1), 16, HOOK).W_dec)


# What ran: values reported by the SAE and the trainer, fields read by the run's code.

def test_settings_reads_notes_the_runs_reads_not_the_dataclass_machinerys_and_puts_the_class_back(tiny_settings):
    settings = dataclasses.replace(tiny_settings)
    with SettingsReads(settings) as reads:
        text, _ = repr(settings), hash(settings)
        changed = dataclasses.replace(settings, k=7)  # reads every field, and __post_init__ checks them
        assert reads.names == set() and "k=32" in text
        assert isinstance(settings, Settings) and settings.lr == 0.003 and changed.seed == 0
    assert reads.names == {"lr", "seed"}
    assert type(settings) is Settings and settings == tiny_settings
    assert settings.k == 32 and reads.names == {"lr", "seed"}  # a read after the block is not the run's


def test_settings_attributes_reads_an_objects_fields_and_aliases(tiny_settings):
    class Holder:
        pass

    holder = Holder()
    holder.k, holder.k_aux, holder.l1_coefficient = torch.tensor(64), 5, 0.3
    assert settings_attributes(holder, tiny_settings) == {"k": 64, "sparsity_penalty": 0.3}
    holder.sparsity_penalty = 0.5  # the field's own name wins over an alias
    assert settings_attributes(holder, tiny_settings)["sparsity_penalty"] == 0.5


def test_the_settings_group_records_what_ran_notes_overrides_and_moves_unread_fields_out_of_means(tiny_settings,
                                                                                                   tiny_config):
    read = {"variant", "sparsity_penalty", "dict_size", "batch_size", "epochs", "lr", "seed", "dead_feature_method"}
    # An SAE holding its coefficient as a float32 tensor reports 0.6000000238: the same value, not an override.
    float32_penalty = torch.tensor(0.6).item()
    group = settings_group(tiny_settings, {"k": 64, "lr": 0.003, "dict_size": 256,
                                           "sparsity_penalty": float32_penalty}, read)
    validate_group("settings", group)
    assert group["means"]["k"] == 64 and group["overridden_in_code"] == {"k": {"run_settings": 32, "ran": 64}}
    assert group["means"]["sparsity_penalty"] == 0.6 != float32_penalty
    assert group["unused"] == {"target_l0": 20.0, "warmup_steps": 5, "resample_every": 10, "dead_feature_window": 0}
    assert not set(group["unused"]) & set(group["means"])
    # What run_settings() gave can be rebuilt from the group; the configuration shown beside it has none of it.
    assert given_settings(group) == settings_values(tiny_settings)
    shown = harness_config(tiny_config, group)
    assert not set(settings_values(tiny_settings)) & set(shown) and "training_tokens" in shown
    assert "frontier_scales" not in shown and "baseline_seeds" not in shown  # baseline.py's alone


def test_a_knob_written_into_the_sae_or_the_trainer_is_recorded_as_it_ran(tmp_path, tiny_workspace, monkeypatch):
    """An idea's CustomSAE hard-codes k and its L1 coefficient, its trainer the learning rate and the batch size:
    final_info.json records the values that ran, notes each difference from run_settings(), and lists as unused only
    the field nothing read."""
    template = edited_template(tmp_path, [
        ("        self.l1_coefficient = settings.sparsity_penalty\n",
         "        self.l1_coefficient = 0.3\n        self.k = 64\n"),
        ("lr=settings.lr, betas", "lr=1e-3, betas"),
        ("workspace.train.epoch(settings.batch_size, generator)", "workspace.train.epoch(256, generator)"),
    ])
    edited = import_experiment(template, monkeypatch)
    config = dataclasses.replace(tiny_workspace.config, run_saebench=False, run_interp_evals=False)
    workspace = dataclasses.replace(tiny_workspace, config=config, loaded_model=tiny_workspace.model)
    settings = edited.run_settings(config)
    info = edited.run(workspace, settings, tmp_path / "run_1", time.perf_counter())

    validate_final_info(info)
    assert json.loads((tmp_path / "run_1" / "final_info.json").read_text()) == info
    group = info["settings"]
    assert group["overridden_in_code"] == {
        "sparsity_penalty": {"run_settings": 0.6, "ran": 0.3}, "k": {"run_settings": 32, "ran": 64},
        "lr": {"run_settings": 0.003, "ran": 0.001}, "batch_size": {"run_settings": 512, "ran": 256}}
    assert {name: group["means"][name] for name in ("sparsity_penalty", "k", "lr", "batch_size", "epochs")} == {
        "sparsity_penalty": 0.3, "k": 64, "lr": 0.001, "batch_size": 256, "epochs": 3}
    assert group["unused"] == {"target_l0": 20.0}
    assert info["training"]["means"]["training_tokens"] == info["training"]["means"]["training_steps"] * 256 == 3 * 8192
    assert not {"k", "lr", "batch_size", "sparsity_penalty", "target_l0"} & set(info["training"]["config"])
    assert type(settings) is edited.Settings  # SettingsReads put the class back
