"""The research loop end to end with scripted replies: aider's real edit code, the real flake8 gate, real runs of
the real template at tiny sizes, and real git history."""

import json
import re

import pytest

from scientist.launch.cli import main

FENCE = "```"
IDEA = {"Name": "probe_idea", "Title": "A probe idea", "Experiment": "Change the SAE and measure it.",
        "Interestingness": 3, "Feasibility": 9, "Novelty": 2}


def edit(search: str, replace: str, fname: str = "experiment.py") -> str:
    return f"{fname}\n{FENCE}python\n<<<<<<< SEARCH\n{search}=======\n{replace}>>>>>>> REPLACE\n{FENCE}\n"


MAIN_START = "def main(out_dir: Path) -> int:\n"
# The L1 coefficient in experiment.py's run_settings(), where an idea sets it.
PENALTY = "        sparsity_penalty={},\n"
PLOT_LABELS = 'labels = {\n    "run_0": "Baseline",\n}\n'


def launch(templates_dir, tmp_path, *extra) -> int:
    ideas = tmp_path / "ideas.json"
    ideas.write_text(json.dumps([IDEA]))
    return main(["--model", "scripted/demo", "--ideas", str(ideas), "--templates-dir", str(templates_dir),
                 "--results-dir", str(tmp_path / "results"), "--run-timeout", "900", "--no-writeup", *extra])


def idea_folder(tmp_path):
    (folder,) = (tmp_path / "results" / "sae_variants").glob("*_probe_idea")
    return folder


def user_prompts(handler) -> list[str]:
    return [messages[-1]["content"] for messages in handler.prompts]


def test_a_failed_run_is_fixed_then_recorded_plotted_and_committed(templates_dir, tmp_path, scripted):
    handler = scripted([
        "DESCRIPTION: crash on purpose\n" + edit(MAIN_START, MAIN_START + '    raise RuntimeError("boom at start")\n'),
        "DESCRIPTION: no crash, L1 coefficient 0.5\n"
        + edit(MAIN_START + '    raise RuntimeError("boom at start")\n', MAIN_START)
        + edit(PENALTY.format(0.6), PENALTY.format(0.5)),
        "INTERPRETATION: the table marks each change. Run 1 reaches an explained variance of 1.5.\nALL_COMPLETED",
        "CORRECTION: the table marks each change.",
        edit(PLOT_LABELS, 'labels = {\n    "run_0": "Baseline",\n    "run_1": "L1 0.5",\n}\n', "plot.py"),
        f"notes.txt\n{FENCE}\n<<<<<<< SEARCH\n=======\n## Figures\nmetrics_comparison.png compares runs.\n"
        f">>>>>>> REPLACE\n{FENCE}\n",
    ])
    assert launch(templates_dir, tmp_path, "--max-runs", "3") == 0
    folder = idea_folder(tmp_path)
    prompts = user_prompts(handler)
    assert "boom at start" in prompts[1] and "failed with exit code" in prompts[1]
    assert not handler.replies

    info = json.loads((folder / "run_1" / "final_info.json").read_text())
    notes = (folder / "notes.txt").read_text()
    assert "## Run 1: no crash, L1 coefficient 0.5" in notes
    assert info["settings"]["means"]["sparsity_penalty"] == 0.5  # the result records the value that ran
    row = re.search(r"^core\.ce_loss_score  .*$", notes, flags=re.MULTILINE)
    run_cell = re.split(r"\s{2,}", row.group(0))[2]  # metric, baseline (mean ± std on seeds), run_1, ...
    assert float(run_cell) == pytest.approx(info["core"]["means"]["ce_loss_score"], rel=1e-5)
    assert "Interpretation of run 1 (written by the LLM coder):\nthe table marks each change.\n" \
        "(Corrected after the claim check.)" in notes
    assert "explained variance of 1.5" not in notes, "the contradiction went back to the coder and was corrected"
    assert "claim checker" in prompts[3] and "core.explained_variance" in prompts[3]
    assert "## Figures" in notes
    assert (folder / "metrics_comparison.png").stat().st_size > 10_000
    for run in ("run_0", "run_1"):  # the feature dashboards of the baseline and of the run
        features = json.loads((folder / run / "dashboard" / "features.json").read_text())
        assert features["run"] == run and features["features"]

    log = [c.message for c in __import__("git").Repo(folder).iter_commits()]
    assert any(m.startswith("Coder edit for run 1: crash on purpose") for m in log)
    assert any(m.startswith("Run 1 results: no crash") for m in log)
    assert (folder / "cost_ledger.json").exists()
    state = json.loads((folder / "state.json").read_text())
    assert state["stage"] == "done" and list(state["runs"]) == ["1"]
    assert state["notes_contradictions"] == []


def test_lint_errors_go_back_to_the_coder_without_using_a_run(templates_dir, tmp_path, scripted):
    handler = scripted([
        "DESCRIPTION: call a name that does not exist\n"
        + edit(MAIN_START, MAIN_START + "    undefined_helper_xyz()\n"),
        "I am not sure how to fix it.",
    ])
    assert launch(templates_dir, tmp_path, "--max-iters", "2") == 0
    folder = idea_folder(tmp_path)
    prompts = user_prompts(handler)
    assert "F821" in prompts[1] and "undefined_helper_xyz" in prompts[1]
    assert not (folder / "logs" / "run_1.stdout").exists()
    state = json.loads((folder / "state.json").read_text())
    assert state["status"] == "out_of_tries" and state["runs"] == {}


def test_an_edit_that_changes_nothing_is_reported_and_tries_run_out(templates_dir, tmp_path, scripted):
    handler = scripted(["DESCRIPTION: nothing yet\nI will think first."] * 3)
    assert launch(templates_dir, tmp_path, "--max-iters", "3") == 0
    folder = idea_folder(tmp_path)
    prompts = user_prompts(handler)
    assert len(prompts) == 3
    assert all("changed nothing in experiment.py" in p for p in prompts[1:])
    assert json.loads((folder / "state.json").read_text())["status"] == "out_of_tries"
    assert "3 failed tries in a row" in (folder / "log.txt").read_text()


def test_a_search_block_that_does_not_match_goes_back_to_the_coder(templates_dir, tmp_path, scripted):
    handler = scripted([
        "DESCRIPTION: edit a line that is not there\n" + edit("    this_line_is_not_in_the_file = 1\n", "    x = 2\n"),
        "Sorry, I cannot find it.",
        "ALL_COMPLETED",
    ])
    assert launch(templates_dir, tmp_path) == 0
    prompts = user_prompts(handler)
    assert "SearchReplaceNoExactMatch" in prompts[1]
    assert "changed nothing in experiment.py" in prompts[2]
    assert not (idea_folder(tmp_path) / "run_1").exists()


def test_all_completed_ends_the_runs_before_max_runs(templates_dir, tmp_path, scripted):
    handler = scripted(["Nothing to improve.\nALL_COMPLETED"])
    assert launch(templates_dir, tmp_path) == 0
    assert len(handler.prompts) == 1
    assert "ALL_COMPLETED" in (idea_folder(tmp_path) / "log.txt").read_text()


def test_the_budget_stops_the_launch_cleanly(templates_dir, tmp_path, scripted):
    import litellm

    handler = scripted(["DESCRIPTION: nothing\nThinking."] * 5)
    litellm.register_model({"scripted/demo": {
        "max_tokens": 8192, "max_input_tokens": 131072, "max_output_tokens": 8192,
        "input_cost_per_token": 0.01, "output_cost_per_token": 0.01, "litellm_provider": "scripted", "mode": "chat",
    }})
    assert launch(templates_dir, tmp_path, "--budget-usd", "0.25") == 3
    folder = idea_folder(tmp_path)
    ledger = json.loads((folder / "cost_ledger.json").read_text())
    assert len(handler.prompts) == 1
    assert "budget stop" in (folder / "log.txt").read_text()
    assert ledger


def test_the_last_run_is_interpreted_and_later_edits_are_undone(templates_dir, tmp_path, scripted):
    scripted([
        "DESCRIPTION: L1 coefficient 0.4\n" + edit(PENALTY.format(0.6), PENALTY.format(0.4)),
        "INTERPRETATION: only one run was allowed.\n" + edit(PENALTY.format(0.4), PENALTY.format(0.3)),
        edit(PLOT_LABELS, 'labels = {\n    "run_0": "Baseline",\n    "run_1": "L1 0.4",\n}\n', "plot.py"),
        "The figures are described.\n" + edit(PLOT_LABELS, PLOT_LABELS, "plot.py"),
    ])
    assert launch(templates_dir, tmp_path, "--max-runs", "1") == 0
    folder = idea_folder(tmp_path)
    notes = (folder / "notes.txt").read_text()
    assert "Interpretation of run 1 (written by the LLM coder):\nonly one run was allowed.\n\n" in notes
    assert "SEARCH" not in notes, "the edit that came with the interpretation is not part of the notes"
    assert PENALTY.format(0.4) in (folder / "experiment.py").read_text()
    assert "edit was undone" in (folder / "log.txt").read_text()
    # The notes coder may edit only notes.txt: its edit to plot.py is refused.
    assert '"run_1": "L1 0.4"' in (folder / "plot.py").read_text()
