"""Configuration: sources in order, and bad values refused with a message naming the source, field and fix."""

import pytest

from sae_harness.config import ConfigError, load_config
from tests.conftest import TEMPLATE_DIR
from tests.template.conftest import run_experiment, tiny_environment


def test_preset_table_then_environment_override_the_file(tmp_path):
    path = tmp_path / "config.toml"
    path.write_text('preset = "gpt2"\ndict_size = 512\n[presets.gpt2]\ndict_size = 1024\nlr = 1e-3\n')
    config = load_config(path, environ={"SAE_LR": "2e-4"})
    assert (config.preset, config.dict_size, config.lr) == ("gpt2", 1024, 2e-4)
    assert config.preset_spec.layer == 8
    assert config.sources["lr"] == "environment variable SAE_LR"


@pytest.mark.parametrize("text, environ, expected", [
    ("dict_size = -3\n", {}, "config.toml: dict_size = -3 is invalid; use a positive number of features"),
    ("dictsize = 3\n", {}, "config.toml: unknown field 'dictsize'"),
    ('preset = "gpt5"\n', {}, "preset = 'gpt5' is invalid; use one of: gemma-3-270m"),
    ("lr = 3e-4\n", {"SAE_LR": "fast"}, "environment variable SAE_LR: lr = 'fast' is not a valid float"),
    ("variant = 'topk'\n", {},
     "config.toml: variant is no longer read from config.toml or SAE_* variables; set it in experiment.py's "
     "run_settings() (Settings.variant)"),
    ("epochs = [\n", {}, "not valid TOML"),
    ('frontier_scales = "0.5,x"\n', {}, "config.toml: frontier_scales = '0.5,x' is invalid; give positive numbers "
                                        "separated by commas"),
    ("", {"SAE_FRONTIER_SCALES": "1,-2"}, "environment variable SAE_FRONTIER_SCALES: frontier_scales = '1,-2' is "
                                          "invalid"),
    ("baseline_seeds = 0\n", {}, "config.toml: baseline_seeds = 0 is invalid; use 1 or more"),
])
def test_bad_values_name_the_source_and_the_field(tmp_path, text, environ, expected):
    path = tmp_path / "config.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=None) as raised:
        load_config(path, environ=environ)
    assert expected in str(raised.value).replace(str(tmp_path) + "/", "")


def test_experiment_with_a_bad_value_exits_with_a_message_and_writes_nothing(tmp_path, cache_dir):
    out_dir = tmp_path / "run_1"
    result = run_experiment(out_dir, tiny_environment(cache_dir, SAE_DICT_SIZE="-5"))
    assert result.returncode == 2
    assert "environment variable SAE_DICT_SIZE: dict_size = -5 is invalid" in result.stderr
    assert "Traceback" not in result.stderr
    assert not out_dir.exists()


def test_the_baseline_fields_default_to_three_seeds_and_four_frontier_factors():
    config = load_config(TEMPLATE_DIR / "config.toml", environ={})
    assert config.baseline_seeds == 3 and config.frontier_scale_values() == (0.4, 0.7, 1.3, 1.75)
    assert load_config(TEMPLATE_DIR / "config.toml", environ={"SAE_FRONTIER_SCALES": ""}).frontier_scale_values() == ()
