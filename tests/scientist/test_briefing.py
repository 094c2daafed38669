"""What the coder's first prompt and the idea generator are told about the baseline: its values with their seed
spread, its frontier, the rule, and a budget whose numbers come from run_0/final_info.json, not from prompt text."""

import json
import re
import shutil

from scientist.experiment.briefing import baseline_block, budget_text, judging_values, template_judging_values
from scientist.experiment.manifest import MetricRegistry
from scientist.ideas.generation import generate_ideas
from scientist.llm.ledger import Budget, Ledger
from scientist.llm.prompts import PROMPTS_DIR, render
from scientist.llm.scripted import DEMO_MODEL
from tests.conftest import TEMPLATE_DIR
from tests.scientist.conftest import SAE_METRICS
from tests.scientist.test_noise import FRONTIER, result, seeded_baseline

JUDGING_PROMPTS = ("coder_plan", "idea_first")


def table_row(block: str, key: str) -> list[str]:
    [line] = [line for line in block.splitlines() if line.startswith(key + " ")]
    return re.split(r"\s{2,}", line)


def test_the_baseline_block_shows_the_baseline_not_a_comparison_with_itself():
    block = baseline_block(seeded_baseline(), SAE_METRICS, FRONTIER)
    lines = block.splitlines()
    assert lines[0] == "baseline (run_0): mean of 3 seeds (0, 1, 2)."
    assert re.split(r"\s{2,}", lines[2]) == ["key metric", "baseline", "judged"]
    assert lines[3].startswith("core.explained_variance ")
    assert table_row(block, "core.explained_variance")[1:] == [
        "0.9 ± 0.002", "higher is better, along the frontier; noise 0.004"]
    assert table_row(block, "core.dead_fraction")[1:] == ["0 ± 0", "lower is better; noise 1e-09"]
    assert table_row(block, "core.l0")[1:] == ["60 ± 1.5", "info"]
    assert " same" not in block and "+0" not in block
    assert "Not scored: settings.k 32, settings.seed 0, training.training_tokens 1198080" in block
    assert "Rule: A change counts as better or worse only when it exceeds the larger of 2 standard" in block


def test_the_baseline_block_lists_the_frontier_points_by_x_with_the_baseline_marked():
    block = baseline_block(seeded_baseline(), SAE_METRICS, FRONTIER)
    lines = block.splitlines()
    start = lines.index("Baseline frontier: the baseline and its runs at other sparsity settings (one seed each):")
    assert re.split(r"\s{2,}", lines[start + 1]) == ["L0", "EV", "MSE", "CosSim", "CE", "KL"]
    rows = [re.split(r"\s{2,}", line) for line in lines[start + 2:start + 6]]
    assert [row[0] for row in rows] == ["15", "30", "60", "120"]
    assert rows[2] == ["60", "0.9", "250", "0.99", "0.82", "0.8", "baseline (run_0)"]
    assert rows[0][1:3] == ["0.7", "500"]
    flat = re.sub(r"\n\s+", " ", block)
    assert "the baseline and its 3 runs at other sparsity settings (L0 from 15 to 120)" in flat


def test_a_single_seed_baseline_without_a_frontier_still_reads():
    block = baseline_block(result(), SAE_METRICS)
    assert block.startswith("baseline (run_0): one run.\n")
    assert table_row(block, "core.explained_variance")[1:] == ["0.9", "higher is better; noise 0.0009"]
    assert "Frontier" not in block
    assert "The baseline ran on one seed" in block


def test_the_budget_numbers_come_from_the_baselines_results():
    baseline = result({"l0": 42.5}, training={"training_tokens": 777216})
    baseline["settings"]["means"]["dict_size"] = 3072
    text = budget_text(baseline, SAE_METRICS, FRONTIER)
    assert text.startswith("training.training_tokens = 777216 — activation vectors seen in training")
    assert "; settings.dict_size = 3072 — number of SAE features" in text
    assert "; core.l0 = 42.5 — mean active features per token" in text
    assert "core.l0" not in budget_text(baseline, SAE_METRICS), "without a frontier there is no sparsity x"
    assert budget_text(None, SAE_METRICS, FRONTIER).startswith("unknown")
    assert budget_text({"final": {"status": "ok", "means": {"acc": 1.0}}}, SAE_METRICS) == (
        "not recorded in the baseline's results")


PLACEHOLDERS = {"coder_plan": ("{baseline_results}", "{budget}", "{max_runs}"),
                "idea_first": ("{noise_rule}", "{frontier_rule}", "{budget}", "{max_runs}")}


def test_the_prompts_state_the_rule_the_frontier_and_the_budget_from_code_not_from_their_text():
    for name, placeholders in PLACEHOLDERS.items():
        text = (PROMPTS_DIR / f"{name}.txt").read_text()
        for placeholder in placeholders:
            assert placeholder in text, (name, placeholder)
        assert "within noise" in text or "seed noise" in text
        assert not re.search(r"\d{3,}", text), f"prompts/{name}.txt types a number; it belongs to the results"
    baseline = seeded_baseline()
    baseline["training"]["means"]["training_tokens"] = 555555
    prompt = render("coder_plan", title="t", experiment="e", max_runs=4, run_command="python experiment.py",
                    baseline_results=baseline_block(baseline, SAE_METRICS, FRONTIER),
                    budget=budget_text(baseline, SAE_METRICS, FRONTIER))
    assert "training.training_tokens = 555555" in prompt and "core.l0 = 60" in prompt
    assert "over its 3 seeds (0, 1, 2)" in prompt
    assert "judged against the baseline frontier at the run's own L0" in " ".join(prompt.split())  # wrapped
    assert "up to 4 runs" in prompt
    idea_prompt = render("idea_first", task_description="t", code="c", previous_ideas="-", num_reflections=1,
                         max_runs="4", **judging_values(baseline, SAE_METRICS, FRONTIER))
    assert "training.training_tokens = 555555" in idea_prompt and "over its 3 seeds (0, 1, 2)" in idea_prompt
    assert "judged against the baseline frontier at the run's own L0" in idea_prompt


def test_a_template_without_a_baseline_or_a_manifest_says_the_budget_is_unknown(tmp_path):
    assert template_judging_values(tmp_path) == {"noise_rule": "", "frontier_rule": "",
                                                 "budget": "unknown (the template has no baseline run_0 yet)"}
    assert judging_values(None, MetricRegistry(()), None)["budget"].startswith("unknown")


def planted_template(tmp_path):
    """The template's manifest, prompt and code, with a planted run_0 and its frontier instead of a trained one."""
    template = tmp_path / "sae_variants"
    template.mkdir()
    for name in ("prompt.json", "experiment.py", "template.toml"):
        shutil.copy(TEMPLATE_DIR / name, template / name)
    (template / "run_0").mkdir()
    baseline = seeded_baseline()
    baseline["training"]["means"]["training_tokens"] = 424242
    (template / "run_0" / "final_info.json").write_text(json.dumps(baseline))
    for number, point in enumerate(FRONTIER.points):
        folder = template / "run_0" / "frontier" / f"point_{number}"
        folder.mkdir(parents=True)
        (folder / "final_info.json").write_text(json.dumps(point))
    return template


def test_idea_generation_tells_the_model_the_rule_and_the_budget(tmp_path, scripted):
    template = planted_template(tmp_path)
    values = template_judging_values(template)
    assert "training.training_tokens = 424242" in values["budget"]
    assert "its 3 runs at other sparsity settings" in values["frontier_rule"]
    idea = {"Name": "tied_init", "Title": "Tied encoder initialisation", "Experiment": "Tie the encoder.",
            "Interestingness": 6, "Feasibility": 8, "Novelty": 5}
    handler = scripted([f"THOUGHT:\nI am done\n\nNEW IDEA JSON:\n```json\n{json.dumps(idea)}\n```\n"])
    generate_ideas(template, tmp_path / "launch" / "ideas.json", [], DEMO_MODEL, Ledger(tmp_path / "ledger.json"),
                   Budget(None), num_ideas=1, num_reflections=0, max_runs=3)
    prompt = handler.prompts[0][-1]["content"]
    assert "training.training_tokens = 424242" in prompt
    assert "Each idea gets at most 3 runs" in prompt
    assert "over its 3 seeds (0, 1, 2)" in prompt and "interpolated linearly in log L0" in prompt
