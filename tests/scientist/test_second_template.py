"""The template contract is not the SAE template's: templates/modular_arithmetic (a grokking experiment written in
AI-Scientist's file contract, with its own manifest) goes through a whole scripted launch: baseline, runs, notes,
plots, paper and review, with the orchestrator unchanged."""

import json
import shutil

import pytest

from scientist.experiment.manifest import load_manifest
from scientist.launch.cli import main
from tests.conftest import REPO

GROKKING = REPO / "templates" / "modular_arithmetic"
DEMO_SCRIPT = REPO / "demo" / "modular_arithmetic.json"


@pytest.fixture
def grokking_templates(tmp_path):
    """The template at its own default settings (about 30 s a run), which the demo's prose describes: its paper's
    claims about the runs must hold against their numbers."""
    root = tmp_path / "templates"
    shutil.copytree(GROKKING, root / GROKKING.name,
                    ignore=shutil.ignore_patterns(".venv", "run_*", "*.png", "__pycache__", "logs"))
    (root / GROKKING.name / ".venv").symlink_to(GROKKING / ".venv")
    return root


def test_a_second_template_goes_through_baseline_runs_notes_plots_paper_and_review(grokking_templates, tmp_path,
                                                                                     latex_tools):
    results = tmp_path / "results"
    code = main(["--experiment", GROKKING.name, "--model", "demo", "--demo-script", str(DEMO_SCRIPT),
                 "--templates-dir", str(grokking_templates), "--results-dir", str(results), "--max-runs", "2",
                 "--run-timeout", "600"])
    assert code == 0

    baseline = json.loads((grokking_templates / GROKKING.name / "run_0" / "final_info.json").read_text())
    assert baseline["training"]["means"]["steps"] == baseline["config"]["means"]["steps"] > 0
    [folder] = (results / GROKKING.name).glob("*_*")
    state = json.loads((folder / "state.json").read_text())
    assert state["stage"] == "done" and sorted(state["runs"]) == ["1", "2"]
    assert state["paper"]["contradictions"] == [] and state["notes_contradictions"] == []

    notes = (folder / "notes.txt").read_text()
    # The results blocks are judged by this template's registry: its metrics, its directions.
    assert "final.val_accuracy" in notes and "(higher is better)" in notes and "not in registry" not in notes
    plots = [plot.file for plot in load_manifest(GROKKING).plots]
    assert plots and all((folder / plot).is_file() for plot in plots)

    assert (folder / "paper.pdf").is_file() and (folder / "paper.pdf").stat().st_size > 10_000
    table = (folder / "latex" / "results_table_generated.tex").read_text()
    assert "Val acc" in table
    review = json.loads((folder / "review.json").read_text())
    assert review["meta_review"]["Decision"] in ("Accept", "Reject")
    assert (results / GROKKING.name / "index.html").is_file()
