"""The autointerp stage on hand-written run folders: real idea folder, manifest (the SAE template's), ledger, budget
and LLM client, with only the LLM's words scripted. Scores follow from the scripted answers, unreadable replies are
failures and never scores, and a resumed idea gets its replies back from the ledger without paying again."""

import json
import shutil
import tempfile
from pathlib import Path

import pytest

from scientist.experiment.manifest import ManifestError, load_manifest
from scientist.launch.cli import build_parser
from scientist.launch.config import LaunchConfig
from scientist.llm.ledger import Budget, Ledger
from scientist.llm.scripted import DEMO_MODEL
from scientist.paper.claims import check_idea
from scientist.pipeline import stages
from scientist.pipeline.autointerp import (
    GROUP,
    NOTES_HEADER,
    RESULTS_FILE,
    AutointerpStage,
    FeatureContexts,
    explanation_from,
    picks_from,
    read_contexts,
    shown_order,
)
from scientist.pipeline.base import IdeaRun
from scientist.store.folder import IdeaFolder, read_final_info, read_results, run_dir
from scientist.store.state import RunRecord
from tests.conftest import TEMPLATE_DIR

CONTEXTS = "autointerp_contexts.json"
N_FEATURES = 2
FINAL_INFO = {"training": {"status": "ok", "means": {"training_steps": 10}},
              "core": {"status": "ok", "means": {"explained_variance": 0.8, "l0": 30}}}


def contexts_file(run: int) -> dict:
    """Three features (the stage scores the first N_FEATURES), each with two marked top contexts and four scoring
    contexts, two of them activating."""
    return {"max_token_marker": ["[[", "]]"], "features": [
        {"id": 10 * run + i,
         "explanation_contexts": [{"text": f"run {run} feature {i}: the[[ cat]] sat"},
                                  {"text": f"a[[ cat]] and a dog, line\nbreak {i}"}],
         "scoring_contexts": [{"text": f"cats {i} {k}", "activating": True} for k in range(2)]
                             + [{"text": f"stocks {i} {k}", "activating": False} for k in range(2)]}
        for i in range(3)]}


def features_of(run: int) -> list[FeatureContexts]:
    """The features of run's contexts that the stage scores, as the stage reads them."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / CONTEXTS
        path.write_text(json.dumps(contexts_file(run)))
        return list(read_contexts(path).features)[:N_FEATURES]


def answer(feature: FeatureContexts, right: bool) -> str:
    """The detection reply naming the activating excerpts (right) or exactly the others (wrong)."""
    order = shown_order(feature)
    picked = [n for n, i in enumerate(order, 1) if feature.scoring[i][1] == right]
    return "Activating: " + (", ".join(map(str, picked)) or "none")


def replies(run: int, right: bool) -> list[str]:
    return [reply for feature in features_of(run)
            for reply in (f"Explanation: the word cat (feature {feature.id})", answer(feature, right))]


def make_idea(tmp_path: Path, model: str = "demo", script: dict | None = None, runs: int = 1) -> IdeaRun:
    """An idea folder made from a small template (the SAE template's manifest, a baseline run_0 with contexts), with
    `runs` finished runs that have contexts too."""
    template = tmp_path / "templates" / "tiny"
    (template / "run_0").mkdir(parents=True)
    shutil.copy(TEMPLATE_DIR / "template.toml", template / "template.toml")
    (template / "run_0" / "final_info.json").write_text(json.dumps(FINAL_INFO))
    (template / "run_0" / CONTEXTS).write_text(json.dumps(contexts_file(0)))
    script_path = tmp_path / "script.json"
    script_path.write_text(json.dumps(script if script is not None else
                                      {"idea": {}, "replies": [], "autointerp": {"features": N_FEATURES}}))
    config = LaunchConfig(experiment="tiny", model=model, templates_dir=tmp_path / "templates",
                          results_dir=tmp_path / "results", demo_script=script_path,
                          autointerp_features=N_FEATURES + 5)
    folder = IdeaFolder.create(config.results_dir, "tiny", {"Name": "cats", "Title": "Cats"}, template,
                               config.to_json())
    idea = IdeaRun(folder, load_manifest(template), config, Ledger(folder.ledger), Budget(None),
                   DEMO_MODEL if config.demo else model)
    for run in range(1, runs + 1):
        (folder.path / f"run_{run}").mkdir()
        (folder.path / f"run_{run}" / "final_info.json").write_text(json.dumps(FINAL_INFO))
        (folder.path / f"run_{run}" / CONTEXTS).write_text(json.dumps(contexts_file(run)))
        idea.state.runs[run] = RunRecord(f"run {run}")
    return idea


def result(idea: IdeaRun, run: int) -> dict:
    return json.loads((idea.folder.path / f"run_{run}" / RESULTS_FILE).read_text())


def test_the_stage_comes_after_the_runs_and_their_seeds_and_before_the_plots(tmp_path):
    names = [type(stage).__name__ for stage in stages(make_idea(tmp_path))]
    assert names[:4] == ["RunsStage", "SeedsStage", "AutointerpStage", "PlotStage"]


def test_right_answers_score_one_wrong_answers_zero_each_paid_once(tmp_path, scripted):
    idea = make_idea(tmp_path)
    llm = scripted(replies(0, right=True) + replies(1, right=False))
    stage = AutointerpStage()
    assert stage.applies(idea)
    stage.run(idea)

    assert len(llm.prompts) == 2 * 2 * N_FEATURES and not llm.replies
    assert [e.stage for e in idea.ledger.entries] == ["autointerp"] * len(llm.prompts)
    best, worst = result(idea, 0), result(idea, 1)
    assert best["means"] == {"detection_accuracy": 1.0, "scored_features": N_FEATURES, "failed_features": 0}
    assert worst["means"] == {"detection_accuracy": 0.0, "scored_features": N_FEATURES, "failed_features": 0}
    assert worst["model"] == DEMO_MODEL and worst["rule"].startswith("detection accuracy")
    first = worst["features"][0]
    assert first["id"] == 10 and first["explanation"] == "the word cat (feature 10)"
    assert first["labels"] == [not p for p in first["predictions"]] and first["correct"] == 0
    assert sorted(first["shown"]) == [0, 1, 2, 3]
    # The prompts: the top contexts with their marks for the explanation; the explanation and unmarked, shuffled
    # scoring contexts for the detection.
    explain, detect = llm.prompts[0][-1]["content"], llm.prompts[1][-1]["content"]
    assert '"run 0 feature 0: the[[ cat]] sat"' in explain and "stocks" not in explain
    assert "the word cat (feature 0)" in detect and "[[" not in detect and "cats 0 1" in detect

    for run, score in ((0, 1.0), (1, 0.0)):
        group = read_results(idea.folder.path, run)[GROUP]
        assert group["status"] == "ok" and group["means"]["detection_accuracy"] == score
        assert group["model"] == DEMO_MODEL and (run_dir(idea.folder.path, run) / RESULTS_FILE).is_file()
        assert read_final_info(idea.folder.path, run) == FINAL_INFO, "final_info.json stays what the run wrote"
    notes = idea.folder.notes.read_text()
    assert NOTES_HEADER in notes
    assert "- run_0 (baseline): detection_accuracy 1; 2 features scored, 0 failed" in notes
    assert "- run_1: detection_accuracy 0 against 1 for the baseline: worse; 2 features scored" in notes
    _, contradictions = check_idea(idea.folder.path, idea.manifest)
    assert contradictions == [], "the notes' block agrees with the result files"
    assert not idea.folder.repo.is_dirty(untracked_files=True), "the scores are committed"


def test_unreadable_replies_are_failures_never_scores(tmp_path, scripted):
    idea = make_idea(tmp_path)
    f0, f1 = features_of(0)
    llm = scripted([
        # run_0: the first feature is scored, the second's detection reply names an excerpt that does not exist.
        "Explanation: cats", answer(f0, right=True), "Explanation: cats", "Activating: 2, 9",
        # run_1: no explanation line at all, then a detection reply with no "Activating:" line.
        "I cannot tell what this feature does.", "Explanation: cats", "The excerpts about cats.",
    ])
    AutointerpStage().run(idea)
    assert not llm.replies

    partial = result(idea, 0)
    assert partial["status"] == "ok"
    assert partial["means"] == {"detection_accuracy": 1.0, "scored_features": 1, "failed_features": 1}
    assert "'9', not an excerpt number from 1 to 4" in partial["features"][1]["failure"]
    assert partial["features"][1]["reply"] == "Activating: 2, 9"

    failed = result(idea, 1)
    assert failed["status"] == "failed" and failed["means"] == {}
    assert failed["reason"].startswith(f"all {N_FEATURES} features failed")
    assert 'no "Explanation:" line' in failed["features"][0]["failure"]
    assert 'found 0' in failed["features"][1]["failure"]
    group = read_results(idea.folder.path, 1)[GROUP]
    assert group["status"] == "failed" and group["means"] == {} and group["reason"] == failed["reason"]
    assert "- run_1: autointerp failed: all 2 features failed" in idea.folder.notes.read_text()


def test_a_resumed_idea_replays_its_replies_and_pays_nothing(tmp_path, scripted):
    idea = make_idea(tmp_path)
    scripted(replies(0, right=True) + replies(1, right=True))
    AutointerpStage().run(idea)
    paid = idea.ledger.entries
    before = {run: result(idea, run) for run in (0, 1)}

    # What a resume does: the tracked files go back to the first commit (run_0 loses its scores; run_1, untracked,
    # keeps them), and a new process reads the ledger from disk. The scripted model has nothing more to say.
    idea.folder.prepare_replay({1})
    assert not (idea.folder.path / "run_0" / RESULTS_FILE).exists()
    resumed = IdeaRun(idea.folder, idea.manifest, idea.config, Ledger(idea.folder.ledger), Budget(None), idea.model)
    resumed.state.runs = idea.state.runs
    llm = scripted([])
    AutointerpStage().run(resumed)

    assert llm.prompts == [], "no call reached the model"
    assert resumed.ledger.entries == paid, "no new paid entry"
    assert {run: result(resumed, run) for run in (0, 1)} == before
    assert read_results(idea.folder.path, 0)[GROUP]["means"]["detection_accuracy"] == 1.0
    assert idea.folder.notes.read_text().count(NOTES_HEADER) == 1


@pytest.mark.parametrize("model, script", [
    ("scripted/demo", None),  # a test's scripted model, not the demo: no autointerp replies
    ("demo", {"idea": {}, "replies": []}),  # the demo, with a script that does not script autointerp
])
def test_a_scripted_model_without_autointerp_replies_skips_the_stage_and_says_why(tmp_path, scripted, model, script):
    idea = make_idea(tmp_path, model=model, script=script)
    llm = scripted([])
    AutointerpStage().run(idea)
    assert llm.prompts == [] and not (idea.folder.path / "run_0" / RESULTS_FILE).exists()
    log = (idea.folder.path / "log.txt").read_text()
    assert "autointerp skipped: the scripted model has no autointerp replies" in log


def test_a_bad_contexts_file_is_a_failed_run_that_names_the_field(tmp_path, scripted):
    idea = make_idea(tmp_path)
    broken = contexts_file(1)
    broken["features"][0]["scoring_contexts"][2]["activating"] = "no"
    (idea.folder.path / "run_1" / CONTEXTS).write_text(json.dumps(broken))
    scripted(replies(0, right=True))
    AutointerpStage().run(idea)
    failed = result(idea, 1)
    assert failed["status"] == "failed"
    assert "features[0].scoring_contexts[2].activating must be true or false" in failed["reason"]


def test_no_stage_without_the_manifest_table_or_with_zero_features(tmp_path):
    idea = make_idea(tmp_path)
    assert AutointerpStage().applies(idea)
    idea.config = LaunchConfig.from_json({**idea.config.to_json(), "autointerp_features": 0})
    assert not AutointerpStage().applies(idea)
    template = idea.manifest.path
    text = (template / "template.toml").read_text()
    (template / "template.toml").write_text(text.replace('[autointerp]\ncontexts = "autointerp_contexts.json"\n', ""))
    assert load_manifest(template).autointerp is None


@pytest.mark.parametrize("contexts", ["", "/abs/contexts.json", "../contexts.json"])
def test_the_manifest_refuses_a_contexts_path_outside_the_run_folder(tmp_path, contexts):
    shutil.copy(TEMPLATE_DIR / "template.toml", tmp_path / "template.toml")
    text = (tmp_path / "template.toml").read_text()
    (tmp_path / "template.toml").write_text(text.replace('contexts = "autointerp_contexts.json"',
                                                         f"contexts = {json.dumps(contexts)}"))
    with pytest.raises(ManifestError, match="autointerp.contexts must be a file name inside a run folder"):
        load_manifest(tmp_path)


def test_the_flag_reaches_the_launch_config_and_refuses_negatives(capsys):
    base = ["--model", "demo"]
    assert build_parser().parse_args(base).autointerp_features == 8
    assert build_parser().parse_args([*base, "--autointerp-features", "0"]).autointerp_features == 0
    with pytest.raises(SystemExit):
        build_parser().parse_args([*base, "--autointerp-features", "-1"])
    assert "-1 is below 0" in capsys.readouterr().err
    older = {"experiment": "x", "model": "demo", "templates_dir": "t", "results_dir": "r", "demo_script": "s"}
    assert LaunchConfig.from_json(older).autointerp_features == 8, "a launch.json from before the flag"


@pytest.mark.parametrize("reply, picks", [
    ("Activating: 1, 3", {1, 3}),
    ("Some thought first.\n**Activating:** 2 4.", {2, 4}),
    ("activating: none", set()),
    ("Activating: 0", None),
    ("Activating: one", None),
    ("Activating:", None),
    ("Activating: 1\nActivating: 2", None),
])
def test_detection_replies_are_read_strictly(reply, picks):
    assert picks_from(reply, 4)[0] == picks


def test_explanations_are_read_from_their_line():
    assert explanation_from("Thinking...\nExplanation: the word cat\n") == "the word cat"
    assert explanation_from("the word cat") is None
    assert explanation_from("Explanation:   ") is None
