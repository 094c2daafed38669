"""The baseline every idea is compared with: refused when degenerate, rebuilt when what made it has changed."""

import json
import os
import shutil

import pytest

from scientist.experiment.baseline import FINGERPRINT_FILE, ensure_baseline, fingerprint, fingerprint_changes
from scientist.experiment.manifest import load_manifest
from scientist.store.folder import IdeaFolder
from tests.scientist.conftest import SAE_MANIFEST


@pytest.mark.parametrize("training, core, problem", [
    ({"training_steps": 0}, {"l0": 0.0, "explained_variance": -0.78}, "never trained"),
    ({"training_steps": 100}, {"l0": 0.0, "explained_variance": 0.5}, "no active features"),
    ({"training_steps": 100}, {"l0": 40.0, "explained_variance": -0.2}, "worse than the mean"),
    ({"training_steps": 100}, {"l0": 40.0, "explained_variance": 0.9}, None),
])
def test_a_degenerate_baseline_is_refused(training, core, problem):
    reason = SAE_MANIFEST.baseline_problem({"training": {"means": training}, "core": {"means": core}})
    assert (reason is None) if problem is None else (problem in reason)


def test_the_fingerprint_names_what_changed(templates_dir, tmp_path):
    template = tmp_path / "t"
    shutil.copytree(templates_dir / "sae_variants", template, symlinks=True, ignore=shutil.ignore_patterns("run_*"))
    manifest = load_manifest(template)
    before = fingerprint(manifest, {"SAE_PRESET": "gpt2", "SAE_CACHE_DIR": "/a", "HOME": "/h"})
    assert before["settings"] == {"SAE_PRESET": "gpt2"}
    assert {"experiment.py", "config.toml", "sae_topk.py", "sae_harness/evaluation.py"} <= set(before["files"])
    assert "plot.py" not in before["files"]

    with open(template / "config.toml", "a") as config:
        config.write("\n# a comment is still a change\n")
    after = fingerprint(manifest, {"SAE_PRESET": "gemma-3-270m", "SAE_SEED": "1", "SAE_CACHE_DIR": "/b"})
    assert fingerprint_changes(before, after) == ["config.toml changed", "SAE_PRESET changed", "SAE_SEED added"]


def test_a_baseline_made_with_other_settings_is_moved_aside_and_rebuilt(templates_dir, tmp_path):
    template = tmp_path / "sae_variants"
    shutil.copytree(templates_dir / "sae_variants", template, symlinks=True)
    manifest = load_manifest(template)
    old_info = (template / "run_0" / "final_info.json").read_text()

    ensure_baseline(manifest, timeout_s=1200)
    assert not list(template.glob("run_0.stale-*")), "an up-to-date baseline is kept"

    environ = {**os.environ, "SAE_SEED": "7"}
    ensure_baseline(manifest, timeout_s=1200, environ=environ)
    [stale] = template.glob("run_0.stale-*")
    assert (stale / "final_info.json").read_text() == old_info
    rebuilt = json.loads((template / "run_0" / "final_info.json").read_text())
    assert rebuilt["settings"]["means"]["seed"] == 7
    assert json.loads((template / "run_0" / FINGERPRINT_FILE).read_text())["settings"]["SAE_SEED"] == "7"

    folder = IdeaFolder.create(tmp_path / "results", "sae_variants", {"Name": "idea"}, template)
    assert (folder.path / "run_0" / "final_info.json").exists()
    assert not list(folder.path.glob("run_0.stale-*"))
