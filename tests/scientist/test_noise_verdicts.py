"""Verdicts that respect the seed noise, where the LLM's words and the paper meet them: the claim checker flags a
direction word said of a change within the noise (and judges frontier metrics against the baseline's frontier),
and the paper's results table shows the baseline as mean ± spread, bolds and marks only changes beyond the noise,
and states the rule. The results are planted: a baseline summarised over three seeds by the real aggregator, its
frontier points, and runs against them, under the SAE template's manifest."""

import json
import re
import shutil
from pathlib import Path

import pytest

from scientist.experiment.manifest import MANIFEST_FILE
from scientist.experiment.metrics import MetricChange, compare, format_number, noise_rule_text, results_block
from scientist.experiment.noise import read_frontier
from scientist.experiment.seeds import aggregate
from scientist.llm.prompts import render
from scientist.paper import generated, latex
from scientist.paper.claim_text import find_claims
from scientist.paper.claims import check_idea, contradictions_by_file
from scientist.pipeline.runs import notes_contradictions
from scientist.store.folder import FRONTIER_DIR, SEED_SUMMARY_FILE, IdeaFolder, read_results
from tests.conftest import TEMPLATE_DIR
from tests.scientist.conftest import SAE_MANIFEST, SAE_METRICS

SEEDS = [0, 1, 2]
# The baseline's core means on each seed (a ReLU SAE at L0 about 70).
BASELINE_SEEDS = [
    {"explained_variance": 0.8961, "mse": 286.2, "cossim": 0.9919, "l0": 70.1, "dead_fraction": 0.0,
     "ce_loss_score": 0.818, "kl_div_score": 0.7931},
    {"explained_variance": 0.8990, "mse": 283.9, "cossim": 0.9922, "l0": 71.3, "dead_fraction": 0.0,
     "ce_loss_score": 0.826, "kl_div_score": 0.7962},
    {"explained_variance": 0.8971, "mse": 285.2, "cossim": 0.9921, "l0": 70.6, "dead_fraction": 0.0,
     "ce_loss_score": 0.821, "kl_div_score": 0.7940},
]
# The baseline at other sparsities (its L1 coefficient scaled): explained variance falls as L0 falls.
FRONTIER_POINTS = {"l1_x4": {"l0": 20.0, "explained_variance": 0.800, "mse": 560.0, "ce_loss_score": 0.70},
                   "l1_x2": {"l0": 40.0, "explained_variance": 0.850, "mse": 420.0, "ce_loss_score": 0.76},
                   "l1_x05": {"l0": 140.0, "explained_variance": 0.930, "mse": 190.0, "ce_loss_score": 0.88}}


def final_info(core: dict, seed: int = 0) -> dict:
    """A final_info.json shaped like the harness's."""
    return {
        "training": {"status": "ok", "means": {"training_steps": 438, "training_tokens": 897024}},
        "settings": {"status": "ok", "means": {"dict_size": 2048, "seed": seed}},
        "core": {"status": "ok", "means": core},
    }


def baseline_summary() -> dict:
    return aggregate([final_info(core, seed) for core, seed in zip(BASELINE_SEEDS, SEEDS)], SEEDS, "settings.seed")


def baseline_mean(name: str) -> float:
    return baseline_summary()["core"]["means"][name]


def baseline_std(name: str) -> float:
    return baseline_summary()["core"]["stds"][name]


def make_idea(folder: Path, runs: dict[int, dict], notes: str = "", latex_text: str = "",
              seeded: dict[int, list[dict]] | None = None, frontier: bool = False) -> Path:
    """An idea folder: the SAE manifest, run_0 summarised over SEEDS (with its frontier points if `frontier`),
    run_N with the given core means (a run in `seeded` also gets seeds.json from those seeds' core means),
    state.json and notes.txt with the LLM's text about run 1."""
    folder.mkdir(parents=True)
    shutil.copyfile(TEMPLATE_DIR / MANIFEST_FILE, folder / MANIFEST_FILE)
    write_json(folder / "run_0" / "final_info.json", baseline_summary())
    for point, core in FRONTIER_POINTS.items() if frontier else ():
        write_json(folder / "run_0" / FRONTIER_DIR / point / "final_info.json", final_info(core))
    for number, core in runs.items():
        write_json(folder / f"run_{number}" / "final_info.json", final_info(core))
    for number, cores in (seeded or {}).items():
        seeds = list(range(len(cores)))
        write_json(folder / f"run_{number}" / SEED_SUMMARY_FILE,
                   aggregate([final_info(core, seed) for core, seed in zip(cores, seeds)], seeds, "settings.seed"))
    write_json(folder / "state.json", {"idea": "noise", "runs": {
        str(number): {"description": f"variant {number}", "commit": "c", "seconds": 1.0} for number in runs}})
    interpretation = f"Interpretation of run 1 (written by the LLM coder):\n{notes}\n" if notes else ""
    (folder / "notes.txt").write_text(interpretation)
    if latex_text:
        (folder / "latex" / "sections").mkdir(parents=True)
        (folder / "latex" / "sections" / "results.tex").write_text(latex_text)
    return folder


def write_json(path: Path, data: dict):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))


def change_of(idea: Path, run: int, key: str) -> MetricChange:
    """The change the loop's code computes for the run against the baseline (noise and frontier included)."""
    changes = compare(read_results(idea, 0), read_results(idea, run), SAE_METRICS, frontier_of(idea))
    return next(change for change in changes if change.key == key)


def frontier_of(idea: Path):
    return read_frontier(idea, SAE_MANIFEST.baseline_plan.frontier_x)


def contradictions(idea: Path) -> list[str]:
    return [str(c) for c in check_idea(idea)[1]]


def results_table(idea: Path) -> str:
    latex_dir = idea / "latex"
    latex_dir.mkdir(exist_ok=True)
    generated.write_results_table(IdeaFolder(idea).finished_runs(), SAE_METRICS, latex_dir, frontier_of(idea))
    return (latex_dir / latex.TABLE_FILE).read_text()


def table_cell(table: str, run: int, heading: str) -> str:
    """The cell of the run's row under the column whose heading starts with `heading`."""
    rows = [[cell.strip() for cell in re.split(r"(?<!\\)&", line.strip().removesuffix(r"\\"))]
            for line in table.split(r"\toprule")[1].split(r"\bottomrule")[0].splitlines() if "&" in line]
    column = next(i for i, cell in enumerate(rows[0]) if cell.startswith(heading))
    return next(row for row in rows[1:] if row[0] == str(run))[column]


# A run at the baseline's sparsity.
AT_BASELINE_L0 = {"explained_variance": 0.8974, "mse": 285.1, "cossim": 0.9921, "l0": 70.7, "dead_fraction": 0.0,
                  "kl_div_score": 0.7944}


def ce_improved_by(folder: Path, stds: float) -> Path:
    """An idea whose run 1 has the CE loss score `stds` standard deviations above the baseline's mean, and whose
    notes and paper say run 1 improved it."""
    ce = baseline_mean("ce_loss_score") + stds * baseline_std("ce_loss_score")
    return make_idea(folder, {1: {**AT_BASELINE_L0, "ce_loss_score": ce}},
                     notes="Run 1 improved the CE loss score.",
                     latex_text="Run~1 improved the CE loss score over the baseline.\n")


@pytest.fixture
def within_noise(tmp_path) -> Path:
    """Run 1's CE loss score is above the baseline's mean by half a standard deviation."""
    return ce_improved_by(tmp_path / "within", 0.5)


@pytest.fixture
def ten_stds(tmp_path) -> Path:
    """Run 1's CE loss score is above the baseline's mean by ten standard deviations."""
    return ce_improved_by(tmp_path / "ten", 10)


def test_the_planted_baseline_is_a_three_seed_summary(within_noise):
    baseline = read_results(within_noise, 0)
    assert baseline["seeds"]["seeds"] == SEEDS
    assert baseline["core"]["per_seed"]["ce_loss_score"] == [0.818, 0.826, 0.821]
    change = change_of(within_noise, 1, "core.ce_loss_score")
    assert change.baseline_std == pytest.approx(baseline_std("ce_loss_score"))
    assert abs(change.delta) < change.noise and change.verdict == "within noise"


def test_a_change_within_the_noise_has_no_bold_and_no_mark(within_noise):
    table = results_table(within_noise)
    change = change_of(within_noise, 1, "core.ce_loss_score")
    assert table_cell(table, 1, "CE") == generated.format_table_number(change.value)
    mean, std = baseline_mean("ce_loss_score"), baseline_std("ce_loss_score")
    assert table_cell(table, 0, "CE") == (f"{generated.format_table_number(mean)} $\\pm$ "
                                          f"{generated.format_table_number(std, generated.SPREAD_DIGITS)}")
    assert table_cell(table, 0, "CE").startswith("0.8217 $\\pm$ 0.004")  # the planted mean and spread


def test_an_improvement_within_the_noise_is_flagged_in_the_notes_and_the_paper(within_noise):
    change = change_of(within_noise, 1, "core.ce_loss_score")
    found = contradictions(within_noise)
    assert len(found) == 2, found
    for text in found:
        assert "improved the CE loss score" in text
        assert (f"a change of {change.delta:+.6g} is within the noise floor of {format_number(change.noise)}"
                in text)
        assert text.endswith("within noise, not better")
    assert found[0].startswith("notes.txt:2:") and found[1].startswith("latex/sections/results.tex:1:")


@pytest.mark.parametrize("sentence", [
    "The CE loss score rose in run 1.",
    "Run 1 has a higher CE loss score than the baseline.",
    "The CE loss score got worse in run 1.",
    "The CE loss score went from 0.822 to 0.824 in run 1 (better).",
])
def test_any_direction_word_said_of_a_change_within_the_noise_is_flagged(tmp_path, sentence):
    ce = baseline_mean("ce_loss_score") + 0.5 * baseline_std("ce_loss_score")
    idea = make_idea(tmp_path / "idea", {1: {**AT_BASELINE_L0, "ce_loss_score": ce}}, notes=sentence)
    [found] = contradictions(idea)
    assert "within the noise floor" in found and "within noise, not " in found


def test_a_run_compared_with_another_run_needs_the_baselines_margin_too(tmp_path):
    """Run 2 is above run 1 by more than the 0.1% floor but by less than twice the baseline's seed spread."""
    ce = baseline_mean("ce_loss_score") + 10 * baseline_std("ce_loss_score")
    runs = {1: {**AT_BASELINE_L0, "ce_loss_score": ce}, 2: {**AT_BASELINE_L0, "ce_loss_score": ce + 0.004}}
    idea = make_idea(tmp_path / "idea", runs, notes="Run 2 has a higher CE loss score than run 1.")
    assert 0.004 > 1e-3 * ce and 0.004 < 2 * baseline_std("ce_loss_score")
    [found] = contradictions(idea)
    assert "(from run_1): within noise, not higher" in found
    assert contradictions(make_idea(tmp_path / "other", runs, notes="Run 2 has a higher CE loss score than the "
                                                                    "baseline.")) == []


def test_the_contradiction_goes_where_the_loop_sends_contradictions_back(within_noise):
    """The runs stage and the plots stage feed notes_contradictions to the coder, the write-up stage the paper's."""
    [notes] = notes_contradictions(IdeaFolder(within_noise), SAE_MANIFEST)
    [paper] = contradictions_by_file(within_noise, SAE_MANIFEST)["results.tex"]
    assert "within noise, not better" in notes and "within noise, not better" in paper


def test_a_change_of_ten_standard_deviations_is_bold_marked_and_may_be_called_an_improvement(ten_stds):
    change = change_of(ten_stds, 1, "core.ce_loss_score")
    assert change.verdict == "better"
    table = results_table(ten_stds)
    assert table_cell(table, 1, "CE") == (rf"\textbf{{{generated.format_table_number(change.value)}}}"
                                          + generated.VERDICT_MARKS["better"])
    assert contradictions(ten_stds) == []


def test_a_change_of_ten_standard_deviations_the_wrong_way_is_marked_worse_not_bold(tmp_path):
    ce = baseline_mean("ce_loss_score") - 10 * baseline_std("ce_loss_score")
    idea = make_idea(tmp_path / "idea", {1: {**AT_BASELINE_L0, "ce_loss_score": ce}},
                     notes="Run 1 improved the CE loss score.")
    assert table_cell(results_table(idea), 1, "CE") == (generated.format_table_number(ce)
                                                        + generated.VERDICT_MARKS["worse"])
    [found] = contradictions(idea)
    assert found.endswith(": worse, not better")


def test_the_caption_states_the_marks_the_noise_rule_and_the_seeds(within_noise):
    table = results_table(within_noise)
    caption = " ".join(re.search(r"\\caption\{(.*)\}\n  \\label", table, re.S)[1].split())
    assert latex.escape_latex(noise_rule_text(read_results(within_noise, 0))) in caption
    assert "baseline: 3 seeds" in caption and r"\textdagger" in caption and r"\textdaggerdbl" in caption
    assert "within the noise" in caption


# --- the frontier: a run at another sparsity is judged against the baseline at that sparsity ---

SPARSER_RUN = {"explained_variance": 0.870, "mse": 330.0, "cossim": 0.990, "l0": 32.0, "dead_fraction": 0.0,
               "ce_loss_score": 0.80, "kl_div_score": 0.78}


@pytest.mark.parametrize("sentence, flagged", [
    ("Run 1 improved the explained variance.", False),
    ("Run 1 made the explained variance worse.", True),
    ("The explained variance of run 1 is lower than the baseline's.", False),  # the raw numbers: 0.897 -> 0.87
])
def test_a_frontier_metric_is_judged_against_the_frontier_at_the_runs_sparsity(tmp_path, sentence, flagged):
    idea = make_idea(tmp_path / "idea", {1: SPARSER_RUN}, notes=sentence, frontier=True)
    change = change_of(idea, 1, "core.explained_variance")
    assert change.value < change.baseline, "below the baseline's point"
    assert change.frontier_value is not None and change.value > change.frontier_value, "above its frontier"
    assert change.verdict == "better"
    found = contradictions(idea)
    assert bool(found) == flagged, found
    if flagged:
        assert f"the baseline's frontier is {format_number(change.frontier_value)} at this run's core.l0 of 32" \
            in found[0]
        assert found[0].endswith(": better, not worse")


def test_the_table_bolds_a_value_above_the_frontier_and_says_which_metrics_the_frontier_judges(tmp_path):
    idea = make_idea(tmp_path / "idea", {1: SPARSER_RUN}, frontier=True)
    table = results_table(idea)
    assert table_cell(table, 1, "EV") == r"\textbf{0.8700}" + generated.VERDICT_MARKS["better"]
    caption = " ".join(table.split())
    assert "are judged against the baseline frontier at the run's own L0" in caption


# --- runs summarised over seeds ---

def test_a_seeded_run_shows_its_mean_and_spread_and_claims_are_judged_by_its_mean(tmp_path):
    seeds = [{**AT_BASELINE_L0, "ce_loss_score": ce} for ce in (0.905, 0.915, 0.910)]
    idea = make_idea(tmp_path / "idea", {1: seeds[0]}, seeded={1: seeds},
                     notes="Run 1 reaches a CE loss score of 0.910, and it improved the CE loss score.")
    assert contradictions(idea) == []  # 0.910 is the mean over its seeds, not its first seed's 0.905
    table = results_table(idea)
    assert table_cell(table, 1, "CE") == r"\textbf{0.9100} $\pm$ 0.0050" + generated.VERDICT_MARKS["better"]
    assert "run 1: 3 seeds" in table


def test_a_single_seed_baseline_still_gives_a_table_without_spread(tmp_path):
    idea = make_idea(tmp_path / "idea", {1: {**AT_BASELINE_L0, "ce_loss_score": 0.95}},
                     notes="Run 1 improved the CE loss score.")
    write_json(idea / "run_0" / "final_info.json", final_info(BASELINE_SEEDS[0]))
    table = results_table(idea)
    assert table_cell(table, 0, "CE") == "0.8180" and r"$\pm$" not in table.split(r"\midrule")[1]
    assert table_cell(table, 1, "CE") == r"\textbf{0.9500}" + generated.VERDICT_MARKS["better"]
    assert "seeds" not in table.split("caption")[1].split("Bold")[0]
    assert contradictions(idea) == []


@pytest.mark.usefixtures("latex_tools")
def test_the_table_with_spreads_and_marks_compiles(tmp_path):
    idea = make_idea(tmp_path / "idea", {1: SPARSER_RUN, 2: {**AT_BASELINE_L0, "ce_loss_score": 0.80}},
                     frontier=True)
    latex_dir = latex.copy_template(TEMPLATE_DIR / "latex", idea)
    generated.write_results_table(IdeaFolder(idea).finished_runs(), SAE_METRICS, latex_dir, frontier_of(idea))
    generated.write_figures(idea, SAE_MANIFEST, latex_dir)
    generated.write_bibliography([], latex_dir)
    result = latex.compile_pdf(latex_dir)
    assert result.ok and result.problems == [], result.problems


def test_the_results_blocks_against_a_seeded_baseline_and_its_frontier_are_not_read_as_claims(tmp_path):
    """Code's own words (the spread, the rule, the frontier's verdicts) are skipped, as the older blocks were."""
    cores = [{**AT_BASELINE_L0, "ce_loss_score": ce} for ce in (0.79, 0.80, 0.81)]
    idea = make_idea(tmp_path / "idea", {1: SPARSER_RUN, 2: cores[0]}, seeded={2: cores}, frontier=True)
    blocks = "\n".join(results_block(number, "a variant", read_results(idea, 0), read_results(idea, number),
                                     SAE_METRICS, frontier_of(idea)) for number in (1, 2))
    assert "Rule:" in blocks and "Frontier:" in blocks and "within noise" in blocks and "better: above" in blocks
    assert find_claims(blocks, Path("notes.txt"), SAE_METRICS) == []


def test_the_writeup_prompt_says_what_the_marks_mean_and_forbids_calling_noise_an_effect():
    prompt = render("writeup_section", title="t", experiment="e", notes="n", section_name="results",
                    section_file="latex/sections/results.tex", tips="", figure_labels="none", references="none")
    assert "bold value with a dagger is better than the baseline by more than the noise threshold" in prompt
    assert "double dagger is worse" in prompt
    assert "never describe such a change as an improvement or a decline" in prompt
    assert set(generated.VERDICT_MARKS) == {"better", "worse"}  # the two marks the prompt explains
