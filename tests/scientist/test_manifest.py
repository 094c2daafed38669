"""Template manifests: both shipped templates' load, and a wrong one fails naming its file, the field and the fix."""

import shutil

import pytest

from scientist.experiment.manifest import MANIFEST_FILE, ManifestError, load_manifest
from tests.conftest import REPO

TEMPLATES = sorted(path.parent for path in (REPO / "templates").glob(f"*/{MANIFEST_FILE}"))


@pytest.mark.parametrize("template", TEMPLATES, ids=lambda path: path.name)
def test_each_shipped_template_has_a_manifest_the_orchestrator_reads(template):
    manifest = load_manifest(template)
    assert manifest.name == template.name
    assert manifest.metrics.key_metrics and manifest.plots and manifest.baseline
    assert (template / manifest.final_info_schema).is_file()
    assert all((template / name).is_file() for name in manifest.editable)
    assert all(metric.direction in ("higher", "lower", "target", "info") for metric in manifest.metrics.metrics)


def test_two_templates_ship():
    assert {path.name for path in TEMPLATES} >= {"sae_variants", "modular_arithmetic"}


@pytest.mark.parametrize("change, field, fix", [
    (lambda text: text.replace('direction = "higher"', 'direction = "up"', 1), 'direction', "one of higher, lower"),
    (lambda text: text.replace("[environment]", "[environmen]", 1), "[environment]", "a table"),
    (lambda text: text.replace("first reaches 99\\\\%", "first reaches 99%", 1), "plots[0].caption", "\\%"),
    (lambda text: text.replace("above = 0", "", 1), "baseline.require[0]", "exactly one of above or at_least"),
    (lambda text: text + "\n[[stages]]\nname = 3\n", "stages[0].name", "a string"),
    (lambda text: text + "\nthis is not toml\n", "not valid TOML", "fix the syntax"),
    (lambda text: text.replace('[metrics."config.*"]\n', '[metrics."config.*"]\nkey = true\n'), 'metrics."config.*"',
     "a group rule without key or aliases"),
])
def test_a_wrong_manifest_names_the_file_the_field_and_the_fix(change, field, fix, tmp_path):
    template = tmp_path / "modular_arithmetic"
    template.mkdir()
    source = (REPO / "templates" / "modular_arithmetic" / MANIFEST_FILE).read_text()
    (template / MANIFEST_FILE).write_text(change(source))
    with pytest.raises(ManifestError) as caught:
        load_manifest(template)
    message = str(caught.value)
    assert message.startswith(f"{template / MANIFEST_FILE}: ") and field in message and fix in message
    assert "templates/README.md" in message


def test_a_template_without_a_manifest_is_told_what_to_add(tmp_path):
    shutil.copytree(REPO / "templates" / "modular_arithmetic", tmp_path / "t", ignore=shutil.ignore_patterns(".venv"))
    (tmp_path / "t" / MANIFEST_FILE).unlink()
    with pytest.raises(ManifestError, match="missing; every template needs a template.toml manifest"):
        load_manifest(tmp_path / "t")


def test_a_group_rule_classifies_the_numbers_of_its_group_that_have_no_table():
    """An idea may add a setting of its own: the recorded settings are descriptions of the run, never scores."""
    metrics = load_manifest(REPO / "templates" / "modular_arithmetic").metrics
    assert metrics.lookup("config", "dropout").direction == "info"
    assert metrics.lookup("config", "lr").description == "AdamW peak learning rate"  # its own table wins
    assert metrics.lookup("final", "dropout").direction == "unknown"  # no rule for that group
    sae = load_manifest(REPO / "templates" / "sae_variants").metrics
    assert sae.lookup("settings", "nesting_levels").direction == "info"
