"""The runs of one idea: plan, edit, lint, run, record, interpret, up to --max-runs successful runs.

AI-Scientist's semantics, with its known failures closed:
- an edit that changed nothing is reported to the coder, and the same code is never run twice;
- lint errors go back to the coder without using a run;
- the results block in notes.txt is written by code from final_info.json, with better/worse taken from the
  metric registry; the LLM only adds its interpretation below it.
"""

import hashlib
import logging
import re
from pathlib import Path

from scientist.experiment.briefing import baseline_block, budget_text
from scientist.experiment.manifest import Manifest
from scientist.experiment.metrics import results_block
from scientist.experiment.noise import read_frontier
from scientist.experiment.runner import FATAL_LINT_CODES, RunAttempts, lint
from scientist.llm.prompts import render
from scientist.paper.claims import contradictions_by_file
from scientist.pipeline.base import IdeaRun
from scientist.store.files import atomic_write_text
from scientist.store.folder import IdeaFolder
from scientist.store.state import RunRecord

log = logging.getLogger(__name__)
RUN_COMMAND = "python experiment.py --out_dir=run_i"


def description_from(reply: str) -> str | None:
    match = re.search(r"^\s*DESCRIPTION:\s*(.+)$", reply, flags=re.MULTILINE)
    return match.group(1).strip() if match else None


# An edit block in a reply: its file name on a line of its own, then a fenced block.
EDIT_BLOCK = re.compile(r"^[^\s`]+\n```", flags=re.MULTILINE)


def interpretation_from(reply: str) -> str | None:
    """The prose after INTERPRETATION:, without any edit block that follows it: code is not part of the notes (and
    its numbers are not claims about the results)."""
    match = re.search(r"^\s*INTERPRETATION:\s*(.+?)(?:^\s*DESCRIPTION:|^\s*ALL_COMPLETED|\Z)", reply,
                      flags=re.MULTILINE | re.DOTALL)
    if not match:
        return None
    return EDIT_BLOCK.split(match.group(1), maxsplit=1)[0].strip() or None


def main_run_from(reply: str) -> int | None:
    """The run the coder names as its main result ("MAIN_RUN: 2" or "MAIN_RUN: run_2"), repeated on --seeds seeds."""
    match = re.search(r"^\s*MAIN_RUN:\s*(?:run_)?(\d+)\b", reply, flags=re.MULTILINE)
    return int(match.group(1)) if match else None


def correction_from(reply: str) -> str | None:
    match = re.search(r"^\s*CORRECTION:\s*(.+)", reply, flags=re.MULTILINE | re.DOTALL)
    return match.group(1).strip() if match else None


def notes_contradictions(folder: IdeaFolder, manifest: Manifest) -> list[str]:
    """What the claim checker finds wrong in notes.txt (the paper is checked by the write-up stage), judged by the
    template's manifest (an idea folder made before manifests existed has no copy of its own)."""
    return contradictions_by_file(folder.path, manifest).get(folder.notes.name, [])


def code_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


class RunsStage:
    """The coder edits the experiment and it runs, up to --max-runs successful runs (--search linear, the default)."""

    def applies(self, idea: IdeaRun) -> bool:
        return idea.config.search == "linear"

    def run(self, idea: IdeaRun) -> None:
        ExperimentLoop(idea).run()


class ExperimentLoop:
    def __init__(self, idea: IdeaRun):
        self.idea_run, self.folder, self.idea = idea, idea.folder, idea.idea
        self.registry = idea.manifest.metrics
        self.coder = idea.coder(*idea.manifest.editable)
        self.settings = idea.config
        self.baseline = self.folder.read_final_info(0)
        self.frontier = read_frontier(self.folder.path, idea.manifest.baseline_plan.frontier_x)
        # The first editable file is the experiment the run command runs.
        self.experiment_py = self.folder.path / idea.manifest.editable[0]
        self.attempts = RunAttempts(self.folder.path, idea.manifest)
        self.last_failure = ""

    @property
    def state(self):
        return self.idea_run.state

    def update(self, **changes):
        self.idea_run.update(**changes)

    def run(self) -> int:
        """Run the idea's experiments; return the number of successful runs."""
        prompt = render("coder_plan", title=self.idea["Title"], experiment=self.idea["Experiment"],
                        max_runs=self.settings.max_runs, run_command=RUN_COMMAND,
                        baseline_results=baseline_block(self.baseline, self.registry, self.frontier),
                        budget=budget_text(self.baseline, self.registry, self.frontier))
        run_number, fails_in_row, description = 1, 0, None
        while True:
            if fails_in_row >= self.settings.max_iters:
                reason = f"{fails_in_row} failed tries in a row at run {run_number}; the last: {self.last_failure}"
                self.folder.log(f"ending the idea: {reason}")
                self.update(status="out_of_tries", reason=reason)
                break
            last_run_done = run_number > self.settings.max_runs
            self.update(stage="interpreting" if last_run_done else "coding", run=run_number, tries=fails_in_row + 1)
            digest_before = code_digest(self.experiment_py)
            reply = self.coder.ask(prompt, stage=f"run_{run_number}")
            if last_run_done:
                self.keep_last_run_code(digest_before)
            if run_number > 1 and fails_in_row == 0:
                self.record_interpretation(run_number - 1, reply)
            if main_run_from(reply) in self.state.runs:
                self.update(main_run=main_run_from(reply))
            if last_run_done:
                break
            description = description_from(reply) or description
            changed = code_digest(self.experiment_py) != digest_before
            if "ALL_COMPLETED" in reply and not changed:
                self.folder.log("coder: ALL_COMPLETED")
                break
            prompt, ran = self.try_run(run_number, description, changed)
            if ran:
                run_number, fails_in_row = run_number + 1, 0
            else:
                fails_in_row += 1
        if self.state.status == "running":
            self.update(status="runs_done")
        return run_number - 1

    def try_run(self, run_number: int, description: str | None, changed: bool) -> tuple[str, bool]:
        """Lint and run the current code; return the next prompt for the coder and whether the run succeeded."""
        digest = code_digest(self.experiment_py)
        if not changed or digest in self.state.ran_code:
            detail = "" if not changed else " that has not already been run"
            self.failed_try(run_number, f"the edit changed nothing{detail}; not run")
            return render("coder_no_change", detail=detail, run_number=run_number), False
        self.folder.commit(f"Coder edit for run {run_number}: {description or 'no description'}")
        problems = lint(self.experiment_py)
        if problems:
            self.failed_try(run_number, f"lint gate failed:\n{problems}")
            return render("coder_lint_failed", select=FATAL_LINT_CODES, lint_output=problems), False
        self.update(stage="running")
        self.state.ran_code.append(digest)
        result, replayed = self.attempts.run(self.idea_run.python, run_number, digest, self.settings.run_timeout,
                                             self.idea_run.heartbeat)
        if replayed:
            self.folder.log(f"run {run_number}: finished before the resume; its result is reused, not run again")
        if result.timed_out:
            self.failed_try(run_number, f"timed out after {self.settings.run_timeout:.0f} s")
            return render("coder_run_timeout", run_number=run_number, timeout_s=self.settings.run_timeout), False
        if not result.ok:
            self.failed_try(run_number, f"failed with exit code {result.returncode}")
            return render("coder_run_failed", run_number=run_number, returncode=result.returncode,
                          stderr_tail=result.stderr_tail), False
        info = self.folder.read_final_info(run_number)
        block = results_block(run_number, description or "no description given", self.baseline, info,
                              self.registry, self.frontier)
        self.folder.append_notes(block)
        commit = self.folder.commit(f"Run {run_number} results: {description or 'no description'}")
        self.state.runs[run_number] = RunRecord(description, commit, round(result.seconds, 1))
        self.folder.log(f"run {run_number}: succeeded in {result.seconds:.0f} s ({commit[:10]})")
        if run_number == self.settings.max_runs:
            return render("coder_last_run", run_number=run_number, results_block=block), True
        return render("coder_next_run", run_number=run_number, next_run=run_number + 1, results_block=block), True

    def failed_try(self, run_number: int, what: str):
        self.last_failure = what.splitlines()[0]
        self.folder.log(f"run {run_number}: {what}")

    def keep_last_run_code(self, digest_of_last_run: str):
        """After the last run the coder only interprets; an edit it makes anyway is undone, so that experiment.py
        stays the code of the last run."""
        if code_digest(self.experiment_py) != digest_of_last_run:
            self.folder.repo.git.checkout("HEAD", "--", self.experiment_py.name)
            self.folder.log(f"the coder edited {self.experiment_py.name} after the last run; the edit was undone")

    def record_interpretation(self, run_number: int, reply: str):
        text = interpretation_from(reply)
        if text:
            self.folder.append_notes(f"Interpretation of run {run_number} (written by the LLM coder):\n{text}")
            self.folder.commit(f"Coder's interpretation of run {run_number}")
            self.check_interpretation(run_number, text)

    def check_interpretation(self, run_number: int, text: str):
        """The claim checker reads notes.txt after each interpretation. Contradictions go back to the coder once; its
        correction replaces the interpretation, and what still contradicts the results is kept in state.json."""
        found = notes_contradictions(self.folder, self.idea_run.manifest)
        if not found:
            return
        what = f"your interpretation of run {run_number}"
        code = self.experiment_py.read_text()
        reply = self.coder.ask(render("coder_contradictions", what=what, contradictions="\n".join(found)),
                               stage=f"notes_check_{run_number}")
        if self.experiment_py.read_text() != code:
            self.experiment_py.write_text(code)
            self.folder.log(f"the coder edited experiment.py while correcting {what}; the edit was undone")
        correction = correction_from(reply)
        if correction:
            notes = self.folder.notes
            atomic_write_text(notes, notes.read_text().replace(
                text, f"{correction}\n(Corrected after the claim check.)", 1))
            self.folder.commit(f"Coder's interpretation of run {run_number}, corrected after the claim check")
        self.record_contradictions(notes_contradictions(self.folder, self.idea_run.manifest))

    def record_contradictions(self, remaining: list[str]):
        for contradiction in remaining:
            self.folder.log(f"notes.txt contradicts the results: {contradiction}")
        self.update(notes_contradictions=remaining)
