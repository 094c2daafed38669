"""The claim checker: numbers and directions written in notes.txt and the paper must agree with the run files."""

import json
import shutil
from pathlib import Path

import pytest

from scientist.experiment import metrics
from scientist.experiment.manifest import MANIFEST_FILE
from scientist.paper import claims as claims_module
from scientist.paper.claims import ClaimsError, check_idea, main
from tests.conftest import TEMPLATE_DIR
from tests.scientist.conftest import SAE_METRICS

OFFLINE_REASON = "preset gemma-3-270m runs offline; this SAEBench eval needs datasets from the Hugging Face hub"
# core means of the demo idea (ReLU baseline, TopK k=32, TopK k=64), rounded as the results table prints them.
BASELINE = {"explained_variance": 0.897405, "mse": 285.095, "cossim": 0.992074, "l0": 70.6872, "l2_ratio": 0.987768,
            "dead_fraction": 0.0, "dense_fraction": 0.104004, "kl_div_score": 0.794431, "ce_loss_score": 0.802018,
            "kl_div_with_sae": 1.95913}
TOPK_32 = {"explained_variance": 0.937032, "mse": 174.976, "cossim": 0.995231, "l0": 32.0, "l2_ratio": 0.996144,
           "dead_fraction": 0.120605, "dense_fraction": 0.0180664, "kl_div_score": 0.923345, "ce_loss_score": 0.931992,
           "kl_div_with_sae": 0.730542}
TOPK_64 = {"explained_variance": 0.952376, "mse": 132.34, "cossim": 0.99639, "l0": 64.0, "l2_ratio": 0.99708,
           "dead_fraction": 0.03125, "dense_fraction": 0.0512695, "kl_div_score": 0.936366, "ce_loss_score": 0.939457,
           "kl_div_with_sae": 0.60645}
DESCRIPTIONS = {1: "TopK activation (k=32) instead of ReLU with an L1 penalty", 2: "TopK activation with k=64"}


def find_claims(text: str, path: Path) -> list:
    return claims_module.find_claims(text, path, SAE_METRICS)


def results_block(run_number: int, description: str, baseline: dict, run: dict) -> str:
    return metrics.results_block(run_number, description, baseline, run, SAE_METRICS)


def final_info(core: dict, training: dict | None = None) -> dict:
    """A final_info.json shaped like the harness's."""
    return {
        "training": {"status": "ok", "means": {"training_steps": 438, "training_tokens": 897024, "final_loss": 4.83,
                                               **(training or {})}},
        "settings": {"status": "ok", "means": {"dict_size": 2048, "k": 32}, "choices": {"variant": "topk"}},
        "core": {"status": "ok", "means": core},
        "sparse_probing": {"status": "skipped", "means": {}, "reason": OFFLINE_REASON},
    }


def results_blocks(runs: dict[int, dict]) -> str:
    """What the loop appends to notes.txt after each run, written by the real code."""
    return "\n".join(results_block(n, DESCRIPTIONS.get(n, "a run"), final_info(runs[0]), final_info(core))
                     for n, core in runs.items() if n > 0)


def make_idea(folder: Path, llm_notes: str = "", runs: dict[int, dict] | None = None, latex: dict | None = None,
              interpreted_run: int = 1) -> Path:
    """An idea folder: the SAE template's manifest, run_N/final_info.json, notes.txt with the code's results blocks
    then the LLM's text."""
    runs = {0: BASELINE, 1: TOPK_32, 2: TOPK_64} if runs is None else runs
    folder.mkdir(parents=True)
    shutil.copyfile(TEMPLATE_DIR / MANIFEST_FILE, folder / MANIFEST_FILE)
    for number, core in runs.items():
        (folder / f"run_{number}").mkdir()
        (folder / f"run_{number}" / "final_info.json").write_text(json.dumps(final_info(core)))
    notes = results_blocks(runs) if 0 in runs else ""
    if llm_notes:
        notes += f"\nInterpretation of run {interpreted_run} (written by the LLM coder):\n{llm_notes}\n"
    (folder / "notes.txt").write_text(notes)
    for name, text in (latex or {}).items():
        (folder / "latex" / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / "latex" / name).write_text(text)
    return folder


def contradictions_in(tmp_path: Path, llm_notes: str, **kwargs) -> list[str]:
    _, contradictions = check_idea(make_idea(tmp_path / "idea", llm_notes, **kwargs))
    return [str(c) for c in contradictions]


def line_of(path: Path, text: str) -> int:
    return next(n for n, line in enumerate(path.read_text().splitlines(), 1) if text in line)


def test_a_worse_mse_called_an_improvement_is_caught(tmp_path, capsys):
    idea = make_idea(tmp_path / "idea", "MSE improved from 3.281 to 3.422, a better reconstruction quality.")
    assert main([str(idea)]) == 1
    out = capsys.readouterr().out
    line = line_of(idea / "notes.txt", "MSE improved")
    assert (f'notes.txt:{line}: "MSE improved from 3.281 to 3.422, a better reconstruction quality.": core.mse is '
            "lower-is-better and went 285.095 -> 174.976 in run_1; 3.281 -> 3.422 is worse, not better; "
            "3.281/3.422 match no run") in out
    assert "1 contradiction(s) in 1 claims checked" in out


def test_a_worse_number_called_better_is_caught_even_when_the_numbers_are_right(tmp_path):
    runs = {0: {**BASELINE, "mse": 3.281, "cossim": 0.965}, 1: {**TOPK_32, "mse": 3.422, "cossim": 0.961}}
    found = contradictions_in(tmp_path, "MSE went from 3.281 to 3.422 (better reconstruction quality), and cosine "
                                        "similarity was enhanced from 0.965 to 0.961.", runs=runs)
    assert len(found) == 2
    assert "core.mse is lower-is-better and went 3.281 -> 3.422 in run_1; 3.281 -> 3.422 is worse, not better" \
        in found[0]
    assert "core.cossim is higher-is-better and went 0.965 -> 0.961 in run_1; 0.965 -> 0.961 is worse, not better" \
        in found[1]


TRUE_NOTES = """\
MSE fell from 285.1 to 175.0 in run 1, and the explained variance rose from 0.897 to 0.937.
Run 1 reaches an explained variance of 0.937 and a CE loss score of 0.93.
Explained variance and cosine similarity both improved, while the dead fraction rose from 0% to 12.1%.
Compared with the baseline, run 1 has fewer dense features and a lower MSE.
The L2 ratio improved in run 1; the KL divergence with the SAE decreased.
Run 2 further improves the explained variance over run 1 (0.937 -> 0.952 in run 2).
Run 2 has fewer dead features than run 1, at 3.1%, with an L0 of 64.
"""
TRUE_PAPER = r"""\section{Results}
% A comment is not checked: MSE improved from 1 to 2.
Replacing the ReLU with TopK raises the CE loss score from $0.802$ to $0.932$ (run~1),
and the $L_0$ of the baseline, 70.7, drops to 32.
TopK with $k=64$ reaches a KL divergence score of 0.936, and its MSE is 132.3 \cite{gao2024}.
Table~\ref{tab:results} shows that MSE is 38.6\% lower in run~1; dead features increased to 12\%.
With an L0 of only 32, TopK still improves on the baseline, which had an L0 of 70.7.
TopK reaches an explained variance of 0.952 vs 0.897 for the baseline.
\input{results_table_generated.tex}
"""


def test_true_claims_are_not_flagged(tmp_path):
    idea = make_idea(tmp_path / "idea", TRUE_NOTES, latex={"sections/results.tex": TRUE_PAPER})
    claims, contradictions = check_idea(idea)
    assert [str(c) for c in contradictions] == []
    found = {(c.kind, c.metric) for c in claims}
    assert {("change", "core.mse"), ("change", "core.explained_variance"), ("value", "core.explained_variance"),
            ("value", "core.ce_loss_score"), ("direction", "core.cossim"), ("change", "core.dead_fraction"),
            ("direction", "core.dense_fraction"), ("direction", "core.mse"), ("direction", "core.l2_ratio"),
            ("direction", "core.kl_div_with_sae"), ("direction", "core.dead_fraction"), ("value", "core.l0"),
            ("change", "core.ce_loss_score"), ("value", "core.kl_div_score"), ("value", "core.mse")} <= found
    assert {c.path for c in claims} == {Path("notes.txt"), Path("latex/sections/results.tex")}
    dead = next(c for c in claims if c.kind == "change" and c.metric == "core.dead_fraction")
    assert dead.values == (0.0, 0.121)


@pytest.mark.parametrize("sentence, measured", [
    # change claims, a higher-is-better and a lower-is-better metric
    ("Explained variance fell from 0.897 to 0.937 in run 1.", "0.897 -> 0.937 is higher, not lower"),
    ("Run 1 reduced the MSE from 285.1 to 195.0.", "195 is not run_1's value"),
    ("The dead fraction dropped from 0% to 12% in run 1.", "0 -> 0.12 is higher, not lower"),
    ("Cosine similarity went 0.992 -> 0.999 in run 1.", "0.999 is not run_1's value"),
    # direction claims: better/worse by the registry, higher/lower by the sign
    ("Run 2 made the explained variance worse.", "0.897405 -> 0.952376 in run_2: better, not worse"),
    ("Run 1 improved the dead fraction.", "core.dead_fraction is lower-is-better and went 0 -> 0.120605 in run_1: "
                                          "worse, not better"),
    ("In run 1 the MSE increased.", "285.095 -> 174.976 in run_1: lower, not higher"),
    ("The CE loss score decreased in run 2.", "0.802018 -> 0.939457 in run_2: higher, not lower"),
    ("Run 2 has lower explained variance than run 1.", "0.937032 -> 0.952376 in run_2 (from run_1): higher, not lower"),
    ("The explained variance of run 1 improves on run 2.", "0.952376 -> 0.937032 in run_1 (from run_2): worse, "
                                                           "not better"),
    ("The MSE got worse.", "285.095 -> 174.976 in run_1: better, not worse"),  # the run of the notes section
    # values attributed to a run
    ("Run 1 reaches an explained variance of 0.947.", "core.explained_variance is 0.937032 in run_1; "
                                                      "0.947 matches no run"),
    ("We measured a CE loss score of 0.94 for run_1.", "0.94 is run_2's value"),
    ("The dead fraction of run 2 is 12%.", "core.dead_fraction is 0.03125 in run_2; 0.12 is run_1's value"),
    ("Run 3 reaches an MSE of 100.5.", "there are no results of run_3"),
])
def test_false_claims_are_flagged(tmp_path, sentence, measured):
    [found] = contradictions_in(tmp_path, sentence)
    assert f'"{sentence}": ' in found
    assert measured in found


@pytest.mark.parametrize("written, agrees", [
    ("0.93", True), ("0.932", True), ("0.9320", True), ("93.2%", True), ("93%", True),
    ("0.931", False), ("0.94", False), ("0.9", True), ("94%", False),
])
def test_a_value_agrees_when_the_measured_one_rounds_to_it(tmp_path, written, agrees):
    found = contradictions_in(tmp_path, f"Run 1 reaches a CE loss score of {written}.")  # measured: 0.931992
    assert (found == []) == agrees, found


@pytest.mark.parametrize("sentence, agrees", [
    ("The baseline has an L0 of 70.7.", True), ("The baseline has an L0 of 71.", True),
    ("The baseline has an L0 of 70.", True), ("The baseline has an L0 of 69.", False),
    ("The baseline has an MSE of 290.", False), ("The baseline has a dictionary size of 2,000.", False),
    ("The baseline has a dictionary size of 2,048.", True),
])
def test_a_whole_number_ending_in_zero_may_be_one_percent_off(tmp_path, sentence, agrees):
    found = contradictions_in(tmp_path, sentence)  # measured: L0 70.6872, MSE 285.095, dictionary size 2048
    assert (found == []) == agrees, found


def test_percentages_of_dead_features_are_fractions_and_counts_are_not_checked(tmp_path):
    path = Path("notes.txt")
    [rise] = find_claims("Dead features rose from 0% to 12.1% in run 1.", path)
    assert (rise.kind, rise.metric, rise.values, rise.run) == ("change", "core.dead_fraction", (0.0, 0.121), 1)
    [value] = find_claims("The dead fraction of run 2 is 3.1 percent.", path)
    assert (value.values, value.places) == ((0.031,), (3,))
    assert find_claims("Run 1 has a dead fraction of 247.", path) == []
    assert contradictions_in(tmp_path, "Dead features rose from 0% to 12.1% in run 1.") == []


@pytest.mark.parametrize("name, key", [
    ("explained variance", "core.explained_variance"), ("EV", "core.explained_variance"),
    ("mean squared error", "core.mse"), ("cosine similarity", "core.cossim"), ("cossim", "core.cossim"),
    ("CE loss score", "core.ce_loss_score"), ("cross-entropy loss score", "core.ce_loss_score"),
    ("KL divergence score", "core.kl_div_score"), ("KL score", "core.kl_div_score"), ("L0", "core.l0"),
    ("fraction of dead features", "core.dead_fraction"), ("dense fraction", "core.dense_fraction"),
    ("L2 ratio", "core.l2_ratio"), ("core.kl_div_with_sae", "core.kl_div_with_sae"),
    ("training steps", "training.training_steps"), ("mse_per_token", "core.mse_per_token"),
])
def test_metric_names_map_to_registry_keys(name, key):
    [claim] = find_claims(f"Run 1 reaches a {name} of 0.5.", Path("notes.txt"))
    assert (claim.metric, claim.run, claim.values, claim.kind) == (key, 1, (0.5,), "value")


def test_the_results_blocks_written_by_code_are_not_checked(tmp_path):
    # Blocks made from other numbers than the run files hold: if they were read, they would contradict them.
    stale = results_blocks({0: {**BASELINE, "mse": 1.0}, 1: {**TOPK_32, "mse": 2.0}, 2: TOPK_64})
    assert "core.mse" in stale and "Summary:" in stale and "skipped: sparse_probing" in stale
    assert find_claims(stale, Path("notes.txt")) == []

    idea = make_idea(tmp_path / "idea", "Run 1 reaches an MSE of 2.0.")
    notes = (idea / "notes.txt").read_text()
    (idea / "notes.txt").write_text(stale + "\n" + notes)
    claims, contradictions = check_idea(idea)
    assert [(c.line, c.values) for c in claims] == [(line_of(idea / "notes.txt", "Run 1 reaches"), (2.0,))]
    assert len(contradictions) == 1


def test_the_llm_text_after_a_block_takes_its_run_from_the_section(tmp_path):
    notes = "Doubling k raised the explained variance to 0.952 and the MSE fell to 132.3."
    idea = make_idea(tmp_path / "idea", notes, interpreted_run=2)
    claims, contradictions = check_idea(idea)
    assert sorted((c.kind, c.metric, c.run) for c in claims) == [
        ("direction", "core.mse", 2), ("value", "core.explained_variance", 2), ("value", "core.mse", 2)]
    assert contradictions == []
    assert len(contradictions_in(tmp_path / "other", notes, interpreted_run=1)) == 2


def test_latex_comments_and_generated_files_are_skipped(tmp_path):
    paper = ("\\section{Results}\n"
             "% MSE improved from 3.281 to 3.422.\n"
             "TopK lowers the MSE from 285.1 to 175.0 and\n"
             "reaches an explained variance of 0.961.\n")
    latex = {"sections/results.tex": paper, "sections/results_table_generated.tex": "MSE improved from 1 to 2.\n"}
    found = contradictions_in(tmp_path, "", latex=latex)
    assert found == ['latex/sections/results.tex:4: "TopK lowers the MSE from 285.1 to 175.0 and reaches an '
                     'explained variance of 0.961.": core.explained_variance is 0.897405 in baseline, 0.937032 in '
                     'run_1, 0.952376 in run_2; 0.961 matches no run']


@pytest.mark.parametrize("sentence", [
    "The panels show the CE loss score and the KL score (higher is better) for each run.",
    "We expect run 3 to improve the MSE from 132.3 to 100.0.",
    "Run 1 did not improve the dead fraction.",
    "TopK runs should show fewer dense features than the L1 baseline.",
    "Increasing k from 32 to 64 mattered more than the explained variance suggests.",
    "The baseline's explained variance is higher.",
])
def test_sentences_that_claim_nothing_checkable_are_not_claims(sentence):
    assert find_claims(sentence, Path("notes.txt")) == []


def test_a_relative_change_is_not_read_as_a_value():
    claims = find_claims("MSE is 38.6% lower in run 1 and the explained variance is 4.4% higher.", Path("notes.txt"))
    assert [(c.kind, c.metric, c.sense, c.run) for c in claims] == [
        ("direction", "core.mse", "lower", 1), ("direction", "core.explained_variance", "higher", 1)]


def test_a_claim_that_names_no_run_may_hold_for_any_run(tmp_path):
    paper = ("TopK reaches an explained variance of 0.952.\nIt reaches an explained variance of 0.962.\n\n"
             "The dead fraction rose.\nTopK made the MSE worse.\n")
    found = contradictions_in(tmp_path, "", latex={"sections/results.tex": paper})
    assert len(found) == 2
    assert "0.962 matches no run" in found[0]
    assert "0.897405 in baseline, 0.937032 in run_1, 0.952376 in run_2" in found[0]
    assert found[1].endswith("core.mse is lower-is-better and went 285.095 -> 174.976 in run_1, 285.095 -> 132.34 "
                             "in run_2: better, not worse")


@pytest.mark.parametrize("training, core, reason", [
    ({"training_steps": 0}, {"l0": 0.0, "explained_variance": -0.78}, "never trained"),
    ({}, {"l0": 40.0, "explained_variance": -0.2}, "worse than the mean"),
])
def test_a_degenerate_baseline_is_flagged(tmp_path, capsys, training, core, reason):
    idea = make_idea(tmp_path / "idea")
    (idea / "run_0" / "final_info.json").write_text(json.dumps(final_info({**BASELINE, **core}, training)))
    assert main([str(idea)]) == 1
    out = capsys.readouterr().out
    assert out.startswith("run_0/final_info.json: not a usable baseline (") and reason in out


def test_a_missing_baseline_is_flagged(tmp_path):
    found = contradictions_in(tmp_path, "Run 1 reaches an explained variance of 0.937.", runs={1: TOPK_32})
    assert found == ["run_0: missing: no baseline, so no change or direction claim could be checked"]


def test_a_failed_run_without_results_is_not_an_error(tmp_path):
    idea = make_idea(tmp_path / "idea", "Run 3 reaches an explained variance of 0.96.")
    (idea / "run_3").mkdir()
    [contradiction] = check_idea(idea)[1]
    assert contradiction.measured == "there are no results of run_3"


def test_the_command_line_exit_codes(tmp_path, capsys):
    good = make_idea(tmp_path / "good", TRUE_NOTES)
    assert main([str(good)]) == 0
    assert capsys.readouterr().out.strip().startswith("no contradictions in ")

    bad = make_idea(tmp_path / "bad", "Run 1 reaches an explained variance of 0.947.")
    assert main([str(bad)]) == 1
    assert "0.947 matches no run" in capsys.readouterr().out

    assert main([str(tmp_path / "nowhere")]) == 2
    assert "nowhere: no such folder" in capsys.readouterr().err

    (tmp_path / "empty").mkdir()
    assert main([str(tmp_path / "empty")]) == 2
    assert "no run_N/final_info.json" in capsys.readouterr().err

    (good / "run_2" / "final_info.json").write_text("{not json")
    assert main([str(good)]) == 2
    err = capsys.readouterr().err
    assert "run_2/final_info.json: not valid JSON" in err and "Traceback" not in err
    with pytest.raises(ClaimsError, match="run_2/final_info.json"):
        check_idea(good)


def test_the_demo_notes_have_nothing_to_contradict(tmp_path, capsys):
    """The LLM's text in the demo idea's notes: descriptions, expectations and "higher is better" are no claims."""
    idea = make_idea(tmp_path / "idea", "TopK at k=32 is compared with the ReLU baseline in the table above; the "
                                        "verdict column says which metrics moved in the right direction, and L0 is "
                                        "now fixed by construction rather than by the penalty.")
    with open(idea / "notes.txt", "a") as notes:
        notes.write("\n## Figures\n"
                    "- metrics_comparison.png: model behaviour preservation (CE loss score and KL score, higher is "
                    "better), sparsity (L0 and the fraction of dead features), reconstruction (explained variance "
                    "and cosine similarity).\n"
                    "- feature_density.png: dead features are counted in the legend. TopK runs should show fewer "
                    "very dense features than the L1 baseline.\n"
                    "- training_curves.png: loss, MSE, L0 and dead fraction against training tokens for each run.\n")
    assert main([str(idea)]) == 0
    assert capsys.readouterr().out == "no contradictions in 0 claims checked\n"
