"""The reference line of a ground-truth preset: each run's results block and the paper's table show, beside the
runs, what the true features score (Metric.reference), read from the result files. The results are planted under
the SAE template's manifest, shaped as the synthetic preset writes them."""

import json
import shutil
from pathlib import Path

import pytest

from scientist.experiment.manifest import MANIFEST_FILE
from scientist.experiment.metrics import results_block
from scientist.paper import generated, latex
from scientist.paper.claim_text import find_claims
from scientist.store.folder import IdeaFolder, read_results
from tests.conftest import TEMPLATE_DIR
from tests.scientist.conftest import SAE_MANIFEST, SAE_METRICS

REFERENCE = {"reference_f1": 0.7085, "reference_mcc": 1.0, "reference_precision": 0.6905, "reference_k": 10}


def final_info(f1: float, mcc: float) -> dict:
    return {
        "training": {"status": "ok", "means": {"training_steps": 780}},
        "settings": {"status": "ok", "means": {"seed": 0}},
        "core": {"status": "ok", "means": {"explained_variance": 0.89, "l0": 30.0}},
        "ground_truth": {"status": "ok", "means": {"f1": f1, "mcc": mcc, **REFERENCE}},
        "sparse_probing": {"status": "skipped", "reason": "not applicable: no text"},
    }


@pytest.fixture
def idea(tmp_path) -> Path:
    folder = tmp_path / "idea"
    for number, (f1, mcc) in {0: (0.1459, 0.2855), 1: (0.52, 0.81)}.items():
        (folder / f"run_{number}").mkdir(parents=True)
        (folder / f"run_{number}" / "final_info.json").write_text(json.dumps(final_info(f1, mcc)))
    shutil.copyfile(TEMPLATE_DIR / MANIFEST_FILE, folder / MANIFEST_FILE)
    (folder / "state.json").write_text(json.dumps({"idea": "ref", "runs": {
        "1": {"description": "TopK at the true L0", "commit": "c", "seconds": 1.0}}}))
    return folder


def test_the_results_block_shows_how_far_a_run_is_from_the_reference(idea):
    block = results_block(1, "TopK", read_results(idea, 0), read_results(idea, 1), SAE_METRICS)
    reference = " ".join(block.split("Reference:")[1].split("Summary:")[0].split())  # its line breaks undone
    assert "F1 0.7085 (ground_truth.reference_f1; run_1 0.52)" in reference
    assert "MCC 1 (ground_truth.reference_mcc; run_1 0.81)" in reference
    assert block.index("Reference:") < block.index("Summary:"), "code's own words, before the summary"
    assert find_claims(block, Path("notes.txt"), SAE_METRICS) == []


def test_a_run_without_reference_values_gets_no_reference_line(idea):
    plain = {group: body for group, body in final_info(0.5, 0.5).items() if group != "ground_truth"}
    assert "Reference:" not in results_block(1, "x", plain, plain, SAE_METRICS)


def test_the_paper_table_has_a_reference_row_from_the_baseline_and_says_what_it_is(idea):
    latex_dir = idea / "latex"
    latex_dir.mkdir()
    generated.write_results_table(IdeaFolder(idea).finished_runs(), SAE_METRICS, latex_dir)
    table = (latex_dir / latex.TABLE_FILE).read_text()
    [row] = [line for line in table.splitlines() if generated.REFERENCE_DESCRIPTION in line]
    assert "0.7085" in row and "& 1 " in row + " "
    assert "Reference row, F1, MCC: the true dictionary as a TopK SAE" in table
    assert SAE_MANIFEST.metrics.lookup("ground_truth", "f1").reference == "ground_truth.reference_f1"
