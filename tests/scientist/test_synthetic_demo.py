"""The ground-truth preset through the whole loop: make demo-synth's scripted idea (TopK at the synthetic model's
true L0, and at twice it) on synth-cpu goes through the baseline, runs, notes with the reference line, plots,
dashboards, a paper whose table has the true dictionary's row, and its review; the claim checker finds nothing to
flag in the scripted prose, which was written before any run, against the numbers the runs produce."""

import json
import shutil

import pytest

from scientist.experiment.manifest import load_manifest
from scientist.launch.cli import main
from tests.conftest import REPO, TEMPLATE_DIR

DEMO_SCRIPT = REPO / "demo" / "synth_script.json"
# Smaller than synth-cpu's config.toml sizes (a third of the samples, two baseline seeds), large enough for the
# scripted prose's claims (TopK finds the true features better than the ReLU baseline) to be tested by real numbers.
SYNTH_ENV = {
    "SAE_TRAINING_TOKENS": "100000",
    "SAE_HELDOUT_TOKENS": "16384",
    "SAE_DICT_SIZE": "1024",
    "SAE_BATCH_SIZE": "1024",
    "SAE_EPOCHS": "2",
    "SAE_LR": "0.002",
    "SAE_BASELINE_SEEDS": "2",
    "SAE_FRONTIER_SCALES": "0.5,2",
}


@pytest.fixture
def synth_templates(tmp_path, monkeypatch):
    for name, value in SYNTH_ENV.items():
        monkeypatch.setenv(name, value)
    root = tmp_path / "templates"
    shutil.copytree(TEMPLATE_DIR, root / "sae_variants",
                    ignore=shutil.ignore_patterns(".venv", "run_*", "*.png", "__pycache__", "logs"))
    (root / "sae_variants" / ".venv").symlink_to(TEMPLATE_DIR / ".venv")
    return root


def test_the_synthetic_demo_goes_through_the_loop_and_its_claims_hold(synth_templates, tmp_path, latex_tools):
    results = tmp_path / "results"
    code = main(["--experiment", "sae_variants", "--model", "demo", "--demo-script", str(DEMO_SCRIPT),
                 "--preset", "synth-cpu", "--templates-dir", str(synth_templates), "--results-dir", str(results),
                 "--max-runs", "2", "--run-timeout", "600"])
    assert code == 0

    [folder] = (results / "sae_variants").glob("*_*")
    state = json.loads((folder / "state.json").read_text())
    assert state["stage"] == "done" and sorted(state["runs"]) == ["1", "2"]
    assert state["paper"]["contradictions"] == [] and state["notes_contradictions"] == []

    baseline = json.loads((folder / "run_0" / "final_info.json").read_text())
    assert baseline["training"]["preset"] == "synth-cpu" and baseline["seeds"]["seeds"] == [0, 1]
    for number in (1, 2):
        truth = json.loads((folder / f"run_{number}" / "final_info.json").read_text())["ground_truth"]["means"]
        assert truth["f1"] > baseline["ground_truth"]["means"]["f1"], "the scripted prose says so"
        assert truth["mcc"] > baseline["ground_truth"]["means"]["mcc"]
    notes = (folder / "notes.txt").read_text()
    assert "Reference: F1" in notes and "ground_truth.reference_f1" in notes and "not in registry" not in notes
    assert "CE," not in notes.split("Frontier:")[1].split("Summary:")[0], "no language-model metric is judged"

    plots = [plot.file for plot in load_manifest(TEMPLATE_DIR).plots]
    assert all((folder / plot).is_file() for plot in plots)
    assert (folder / "run_1" / "dashboard" / "index.html").is_file()
    table = (folder / "latex" / "results_table_generated.tex").read_text()
    assert "F1" in table and "MCC" in table and "Reference (see caption)" in table and "CE" not in table
    assert (folder / "paper.pdf").stat().st_size > 10_000
    review = json.loads((folder / "review.json").read_text())
    assert review["meta_review"]["Decision"] in ("Accept", "Reject")
