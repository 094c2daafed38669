"""The autointerp stage: the launch's LLM explains a sample of each run's features from their top contexts, then
says in which of a shuffled mix of held-out contexts (some where the feature activates, some where it does not)
each feature activates; code scores the answers.

A run has no network and no API key, so it only writes the contexts (the file the manifest's [autointerp] table
names; templates/README.md gives its format). The calls are made here, through `complete`: paid from the idea's
ledger, counted against the launch's budget, and replayed free on resume. An unparseable reply is that feature's
failure, never a score.

Results: run_i/autointerp.json (the group's status, means, model and rule at its top level; per feature: its
explanation, the scoring contexts' true labels in the order shown, the model's predictions and the number correct,
or why it failed). It is not merged into final_info.json: a resumed idea replays its runs stage from the runs' own
final_info.json, and a run's results block must read as it did the first time. Readers after the runs join it in
through scientist.store.folder.read_results (the paper's table, the claim checker, the report); the template's
plot.py reads it beside final_info.json. The baseline's file goes with the idea folder's reset on resume and is
scored again, free, from the ledger.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path

from scientist.experiment.manifest import MetricRegistry
from scientist.experiment.metrics import compare, format_number
from scientist.llm.client import complete
from scientist.llm.prompts import render
from scientist.pipeline.base import IdeaRun
from scientist.store.files import atomic_write_text
from scientist.store.folder import LATE_RESULTS, run_dir

STAGE = "autointerp"
GROUP = "autointerp"  # the group's name in read_results and the registry (template.toml's autointerp.*)
RESULTS_FILE = LATE_RESULTS["autointerp"]
SCORE = "detection_accuracy"
# In words, without numbers: notes.txt quotes it, and the claim checker reads every number there as a result.
RULE = ("detection accuracy: per feature, the fraction of its held-out scoring contexts (activating and not, shuffled) "
        "whose label the LLM gets right from the explanation alone; the run's score is the mean over the features "
        "scored. A feature whose reply cannot be read is counted as failed, never scored. Guessing scores one half "
        "when a feature has as many activating as non-activating contexts")
REPLY_KEPT = 500  # characters of an unreadable reply kept in autointerp.json, to show what went wrong
NOTES_HEADER = "## Autointerp: feature explanations by the LLM, scored by code (run_i/autointerp.json)"
DEMO_SCRIPT_FIELD = "autointerp"


class AutointerpError(Exception):
    """A contexts file or a demo script that cannot be used; the message names the file, the field and the fix."""


@dataclass(frozen=True)
class FeatureContexts:
    id: int
    explaining: tuple[str, ...]
    """Top contexts, the max token marked."""
    scoring: tuple[tuple[str, bool], ...]
    """(text, whether the feature activates in it), never shown with its label."""


@dataclass(frozen=True)
class Contexts:
    marks: tuple[str, str]
    features: tuple[FeatureContexts, ...]


def read_contexts(path: Path) -> Contexts:
    """A run's contexts file, checked field by field: a template bug is named, not scored."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as err:
        raise AutointerpError(f"{path}: unreadable as JSON ({err})") from None

    def fail(where: str, expected: str):
        raise AutointerpError(f"{path}: {where} must be {expected} (templates/README.md, [autointerp])")

    def texts(items, where: str, labelled: bool) -> list:
        if not isinstance(items, list) or not items:
            fail(where, "a non-empty list")
        found = []
        for i, item in enumerate(items):
            if not isinstance(item, dict) or not isinstance(item.get("text"), str):
                fail(f"{where}[{i}]", 'an object with a "text" string')
            if labelled and not isinstance(item.get("activating"), bool):
                fail(f"{where}[{i}].activating", "true or false")
            found.append((item["text"], item["activating"]) if labelled else item["text"])
        return found

    if not isinstance(data, dict):
        fail("the file", "a JSON object")
    marks = data.get("max_token_marker")
    if not (isinstance(marks, list) and len(marks) == 2 and all(isinstance(m, str) and m for m in marks)):
        fail("max_token_marker", 'two strings, e.g. ["[[", "]]"]')
    if not isinstance(data.get("features"), list):
        fail("features", "a list")
    features = []
    for i, raw in enumerate(data["features"]):
        where = f"features[{i}]"
        if not isinstance(raw, dict) or isinstance(raw.get("id"), bool) or not isinstance(raw.get("id"), int):
            fail(f"{where}.id", "a whole number")
        features.append(FeatureContexts(raw["id"], tuple(texts(raw.get("explanation_contexts"),
                                                              f"{where}.explanation_contexts", False)),
                                        tuple(texts(raw.get("scoring_contexts"), f"{where}.scoring_contexts", True))))
    return Contexts((marks[0], marks[1]), tuple(features))


def numbered(texts: list[str]) -> str:
    """One excerpt a line, as a JSON string: line breaks inside an excerpt cannot run into the next one."""
    return "\n".join(f"{n}. {json.dumps(text, ensure_ascii=False)}" for n, text in enumerate(texts, 1))


def labelled_lines(reply: str, label: str) -> list[str]:
    """What follows "<label>:" on each line that starts with it (any case, markdown bold allowed)."""
    found = []
    for line in reply.splitlines():
        head, colon, rest = line.partition(":")
        if colon and head.strip().strip("*").strip().lower() == label:
            found.append(rest.strip().strip("*").strip())
    return found


def explanation_from(reply: str) -> str | None:
    return next((text for text in labelled_lines(reply, "explanation") if text), None)


def picks_from(reply: str, count: int) -> tuple[set[int] | None, str]:
    """(the excerpt numbers the reply's "Activating:" line names, "") or (None, why it cannot be read)."""
    lines = labelled_lines(reply, "activating")
    if len(lines) != 1:
        return None, f'expected one "Activating:" line, found {len(lines)}'
    listed = lines[0].rstrip(".").strip()
    if listed.lower() == "none":
        return set(), ""
    items = [item for item in listed.replace(",", " ").split() if item]
    if not items:
        return None, 'the "Activating:" line lists nothing (write "none" for no excerpt)'
    picks = set()
    for item in items:
        if not item.isdigit() or not 1 <= int(item) <= count:
            return None, f'the "Activating:" line holds {item!r}, not an excerpt number from 1 to {count}'
        picks.add(int(item))
    return picks, ""


def shown_order(feature: FeatureContexts) -> list[int]:
    """The scoring contexts' order in the prompt: shuffled, and the same on every call (a resumed idea must send the
    same prompt to be given its recorded reply)."""
    order = list(range(len(feature.scoring)))
    random.Random(f"{STAGE}:{feature.id}").shuffle(order)
    return order


class RunScorer:
    """The LLM calls and the scores of one run."""

    def __init__(self, idea: IdeaRun, number: int, n_features: int):
        self.idea, self.number, self.n_features = idea, number, n_features

    def ask(self, prompt: str) -> str:
        idea = self.idea
        return complete(idea.model, [{"role": "user", "content": prompt}], stage=STAGE, ledger=idea.ledger,
                        budget=idea.budget)

    def score(self, contexts_path: Path) -> dict:
        """autointerp.json's content for this run."""
        base = {"model": self.idea.model, "rule": RULE, "contexts": contexts_path.name,
                "features_requested": self.n_features}
        try:
            contexts = read_contexts(contexts_path)
        except AutointerpError as err:
            return {"status": "failed", "means": {}, "reason": str(err), **base, "features": []}
        features = contexts.features[:self.n_features]
        outcomes = []
        for i, feature in enumerate(features, 1):
            self.idea.heartbeat(f"autointerp: run_{self.number}, feature {i} of {len(features)}")
            outcomes.append(self.score_feature(feature, contexts.marks))
        return {**summary(outcomes, len(features)), **base, "features": outcomes}

    def score_feature(self, feature: FeatureContexts, marks: tuple[str, str]) -> dict:
        reply = self.ask(render("autointerp_explain", mark_open=marks[0], mark_close=marks[1],
                                contexts=numbered(list(feature.explaining))))
        explanation = explanation_from(reply)
        if explanation is None:
            return {"id": feature.id, "failure": 'the explanation reply has no "Explanation:" line',
                    "reply": reply[:REPLY_KEPT]}
        order = shown_order(feature)
        reply = self.ask(render("autointerp_detect", explanation=explanation, count=len(order),
                                contexts=numbered([feature.scoring[i][0] for i in order])))
        picks, problem = picks_from(reply, len(order))
        if picks is None:
            return {"id": feature.id, "explanation": explanation, "failure": f"the detection reply: {problem}",
                    "reply": reply[:REPLY_KEPT]}
        labels = [feature.scoring[i][1] for i in order]
        predictions = [n in picks for n in range(1, len(order) + 1)]
        correct = sum(label == prediction for label, prediction in zip(labels, predictions))
        return {"id": feature.id, "explanation": explanation, "shown": order, "labels": labels,
                "predictions": predictions, "correct": correct, "accuracy": correct / len(order)}


def summary(outcomes: list[dict], n_features: int) -> dict:
    """The run's status and means, from its features' outcomes: a score only from features that were scored."""
    scored = [outcome for outcome in outcomes if "failure" not in outcome]
    if not outcomes:
        return {"status": "failed", "means": {}, "reason": "the contexts file lists no feature (no live feature fired "
                                                           "often enough to fill its contexts)"}
    if not scored:
        return {"status": "failed", "means": {}, "reason": f"all {n_features} features failed; the first: "
                                                           f"{outcomes[0]['failure']}"}
    accuracy = sum(outcome["accuracy"] for outcome in scored) / len(scored)
    return {"status": "ok", "means": {SCORE: accuracy, "scored_features": len(scored),
                                      "failed_features": len(outcomes) - len(scored)}}


def features_to_score(idea: IdeaRun) -> tuple[int, str]:
    """(how many features of each run to score, "") or (0, why none are). A scripted model answers only what its
    script holds: the demo's script scripts autointerp with {"autointerp": {"features": N}}, and any other scripted
    model (a test's) has no replies for it."""
    from scientist.llm.scripted import PROVIDER, load_demo_script

    wanted = idea.config.autointerp_features
    if not idea.model.startswith(f"{PROVIDER}/"):
        return wanted, ""
    scripted = load_demo_script(idea.config.demo_script).get(DEMO_SCRIPT_FIELD) if idea.config.demo else None
    if scripted is None:
        return 0, (f"the scripted model has no autointerp replies (a demo script scripts them with "
                   f'"{DEMO_SCRIPT_FIELD}": {{"features": N}})')
    features = scripted.get("features") if isinstance(scripted, dict) else None
    if isinstance(features, bool) or not isinstance(features, int) or features < 1:
        raise AutointerpError(f'{idea.config.demo_script}: "{DEMO_SCRIPT_FIELD}" must be {{"features": N}}, N the '
                              "number of features a run whose replies the script holds (1 or more)")
    return min(wanted, features), ""


class AutointerpStage:
    """Runs after the runs and before the plots, so that the figures and the paper's table can show the scores."""

    def applies(self, idea: IdeaRun) -> bool:
        return idea.manifest.autointerp is not None and idea.config.autointerp_features > 0 and bool(idea.state.runs)

    def run(self, idea: IdeaRun) -> None:
        """Score the baseline and each finished run that has contexts and no autointerp.json yet (a resumed idea
        keeps the scores it has), then add the scores to notes.txt."""
        folder = idea.folder
        n_features, reason = features_to_score(idea)
        if reason:
            folder.log(f"autointerp skipped: {reason}")
            return
        contexts = idea.manifest.autointerp.contexts
        runs = [0, *sorted(idea.state.runs)]
        pending = [n for n in runs if (run_dir(folder.path, n) / contexts).is_file()
                   and not (run_dir(folder.path, n) / RESULTS_FILE).exists()]
        if pending:
            idea.update(stage="autointerp")
        for number in pending:
            result = RunScorer(idea, number, n_features).score(run_dir(folder.path, number) / contexts)
            atomic_write_text(run_dir(folder.path, number) / RESULTS_FILE,
                              json.dumps(result, indent=2, ensure_ascii=False) + "\n")
            folder.log(f"autointerp run_{number}: {run_line(result)}")
        block = notes_block(idea, runs)
        if block and block not in folder.notes.read_text(encoding="utf-8"):
            folder.append_notes(block)
        folder.commit("Autointerp scores")


def read_result(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def run_line(result: dict, baseline: dict | None = None, registry: MetricRegistry | None = None) -> str:
    """One run's outcome in words, its numbers as the result file holds them; beside the baseline's, with the
    registry's verdict, when both are given."""
    if result.get("status") != "ok":
        return f"autointerp failed: {result.get('reason', 'no reason given')}"
    means = result["means"]
    text = f"{SCORE} {format_number(means[SCORE])}"
    if baseline is not None and baseline.get("status") == "ok" and registry is not None:
        [change] = [c for c in compare({GROUP: baseline}, {GROUP: result}, registry) if c.name == SCORE]
        verdict = f": {change.verdict}" if change.verdict in ("better", "worse", "within noise") else ""
        text += f" against {format_number(baseline['means'][SCORE])} for the baseline{verdict}"
    return (f"{text}; {means['scored_features']} features scored, {means['failed_features']} failed "
            f"(model {result['model']})")


def notes_block(idea: IdeaRun, runs: list[int]) -> str:
    """The scores of every run that has them, each beside the baseline's, written from the result files."""
    results = {n: result for n in runs if (result := read_result(run_dir(idea.folder.path, n) / RESULTS_FILE))}
    if not results:
        return ""
    baseline = results.get(0)
    lines = [NOTES_HEADER, f"Rule: {RULE}.", ""]
    for number, result in results.items():
        name = "run_0 (baseline)" if number == 0 else f"run_{number}"
        lines.append(f"- {name}: {run_line(result, None if number == 0 else baseline, idea.manifest.metrics)}")
    return "\n".join(lines) + "\n"
