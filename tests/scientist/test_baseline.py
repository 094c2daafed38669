"""The baseline every idea is compared with: refused when degenerate, rebuilt when what made it has changed."""

import json
import os
import shutil

import pytest

from scientist.experiment.baseline import FINGERPRINT_FILE, ensure_baseline, fingerprint, fingerprint_changes
from scientist.experiment.manifest import load_manifest
from scientist.experiment.noise import read_frontier
from scientist.store.folder import IdeaFolder
from tests.scientist.conftest import SAE_MANIFEST, TINY_RUN_ENV


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

    # One seed and no frontier: this test is about the fingerprint, not the summary.
    environ = {**os.environ, "SAE_SEED": "7", "SAE_BASELINE_SEEDS": "1", "SAE_FRONTIER_SCALES": ""}
    ensure_baseline(manifest, timeout_s=1200, environ=environ)
    [stale] = template.glob("run_0.stale-*")
    assert (stale / "final_info.json").read_text() == old_info
    rebuilt = json.loads((template / "run_0" / "final_info.json").read_text())
    assert rebuilt["settings"]["means"]["seed"] == 7
    assert json.loads((template / "run_0" / FINGERPRINT_FILE).read_text())["settings"]["SAE_SEED"] == "7"

    folder = IdeaFolder.create(tmp_path / "results", "sae_variants", {"Name": "idea"}, template)
    assert (folder.path / "run_0" / "final_info.json").exists()
    assert not list(folder.path.glob("run_0.stale-*"))

    # Back to the first settings (a launch on the first preset again): their baseline is moved back, not rebuilt.
    ensure_baseline(manifest, timeout_s=1200)
    assert (template / "run_0" / "final_info.json").read_text() == old_info
    [aside] = template.glob("run_0.stale-*")
    assert json.loads((aside / FINGERPRINT_FILE).read_text())["settings"]["SAE_SEED"] == "7"


def test_the_baseline_is_summarised_over_its_seeds_beside_its_frontier(templates_dir):
    run_0 = templates_dir / "sae_variants" / "run_0"
    info = json.loads((run_0 / "final_info.json").read_text())
    seeds = int(TINY_RUN_ENV["SAE_BASELINE_SEEDS"])
    assert info["seeds"]["seeds"] == list(range(seeds)) and seeds >= 2
    for seed in range(seeds):
        single = json.loads((run_0 / "seeds" / f"seed_{seed}" / "final_info.json").read_text())
        assert single["settings"]["means"]["seed"] == seed
        assert info["core"]["per_seed"]["explained_variance"][seed] == single["core"]["means"]["explained_variance"]
    # Every scored metric of the core eval has its spread; the seeds trained differently, so it is not zero.
    scored = [m.name for m in SAE_MANIFEST.metrics.metrics if m.group == "core" and m.direction != "info"
              and m.name in info["core"]["means"]]
    assert scored and all(info["core"]["stds"][name] is not None for name in scored)
    assert info["core"]["stds"]["explained_variance"] > 0
    assert json.loads((run_0 / FINGERPRINT_FILE).read_text())["complete"] is True

    points = read_frontier(templates_dir / "sae_variants", SAE_MANIFEST.baseline_plan.frontier_x).points
    assert len(points) == len(TINY_RUN_ENV["SAE_FRONTIER_SCALES"].split(","))
    l0s = sorted(point["core"]["means"]["l0"] for point in points)
    assert l0s[0] < info["core"]["means"]["l0"] < l0s[-1], "the frontier spans the baseline's sparsity"


def test_a_killed_baseline_build_resumes_without_training_again_what_it_finished(templates_dir, tmp_path):
    template = tmp_path / "sae_variants"
    shutil.copytree(templates_dir / "sae_variants", template, symlinks=True)
    run_0 = template / "run_0"
    # As a kill after seed 0 and the first frontier point leaves it: no summary, the rest not trained.
    shutil.copy(run_0 / "seeds" / "seed_0" / "final_info.json", run_0 / "final_info.json")
    shutil.rmtree(run_0 / "seeds")
    first_point, *others = sorted((run_0 / "frontier").iterdir())
    for point in others:
        shutil.rmtree(point)
    fingerprint_record = json.loads((run_0 / FINGERPRINT_FILE).read_text())
    (run_0 / FINGERPRINT_FILE).write_text(json.dumps({**fingerprint_record, "complete": False}))
    kept = {path: path.stat().st_mtime_ns for path in (run_0 / "training_log.jsonl",
                                                      first_point / "final_info.json")}

    ensure_baseline(load_manifest(template), timeout_s=1200)
    assert not list(template.glob("run_0.stale-*")), "an unfinished build of the same code resumes in place"
    assert {path: path.stat().st_mtime_ns for path in kept} == kept, "what finished was not trained again"
    info = json.loads((run_0 / "final_info.json").read_text())
    assert info["seeds"]["seeds"] == list(range(int(TINY_RUN_ENV["SAE_BASELINE_SEEDS"])))
    assert len(list((run_0 / "frontier").iterdir())) == 1 + len(others)
    assert json.loads((run_0 / FINGERPRINT_FILE).read_text())["complete"] is True
