"""Resume after SIGKILL: the whole pipeline (coding, runs, the main run's extra seeds, interpretations, plots, figure
notes, paper, reviews) is killed at many points, resumed with --resume each time, and must end exactly where an
uninterrupted launch ends: the same runs, notes, code, paper sections and reviews, each LLM call paid once and each
finished run and seed run once."""

import json
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from scientist.paper.review import pdf_text
from tests.conftest import REPO as REPO_ROOT

DEMO_SCRIPT = REPO_ROOT / "demo" / "script.json"
# Sections whose demo text claims what the default sizes show; at the tests' tiny sizes those claims may not hold,
# and a claim the checker flags would ask the scripted model one extra question.
NEUTRAL_SECTIONS = {
    "abstract": "We replace the ReLU and L1 penalty of a sparse autoencoder with a TopK activation and compare two "
                "values of $k$ with the baseline; Table~\\ref{tab:results} gives the numbers.",
    "results": "Table~\\ref{tab:results} compares the two TopK runs with the baseline, and "
               "Figure~\\ref{fig:metrics_comparison} shows the same metrics side by side.",
    "conclusion": "The runs use one model, one layer, a small budget and a single seed; more seeds come next.",
}
TIMING = re.compile(r"seconds|tokens_per_s")
# One "key value (baseline value)" entry of a notes fact list whose key is a timing.
TIMING_FACT = re.compile(r"\S*(?:seconds|tokens_per_s)\S* \S+(?: \(baseline \S+\))?,? ?")
POLL_S = 0.05


def neutral_script(path: Path) -> Path:
    script = json.loads(DEMO_SCRIPT.read_text())
    for index, reply in enumerate(script["replies"]):
        for section, text in NEUTRAL_SECTIONS.items():
            if reply.startswith(f"I will write the {section} section."):
                head = reply[:reply.index("=======\n") + len("=======\n")]
                script["replies"][index] = f"{head}{text}\n>>>>>>> REPLACE\n```\n"
    path.write_text(json.dumps(script))
    return path


@dataclass
class Snapshot:
    """What a poll of the idea folder sees."""

    folder: Path | None
    calls: int
    attempts: int
    stage: str

    def running(self, run: int, since: float) -> bool:
        """Run `run` is under way in this process (its stderr log was written since the process started)."""
        log = self.folder / "logs" / f"run_{run}.stderr" if self.folder else None
        return (self.stage == "running" and self.attempts < run and log is not None and log.exists()
                and log.stat().st_mtime > since and log.stat().st_size > 0)

    def running_seed(self, seed: int, since: float) -> bool:
        """Run 2's repeat on `seed` is under way in this process."""
        log = self.folder / "logs" / f"run_2_seeds_seed_{seed}.stderr" if self.folder else None
        return (self.stage == "seeds" and log is not None and log.exists() and log.stat().st_mtime > since
                and log.stat().st_size > 0)

    def seeds_finished(self) -> list[str]:
        """The seeds stage's lines in log.txt saying a seed run finished (a resumed seed run would add one)."""
        log = self.folder / "log.txt" if self.folder else None
        text = log.read_text() if log and log.exists() else ""
        return re.findall(r"seeds: run 2 on seed \d+ finished in", text)

    def replaying_for(self, seconds: float, since: float) -> bool:
        """This process started replaying (it logged "resumed:") at least `seconds` ago."""
        log = self.folder / "log.txt" if self.folder else None
        lines = [line for line in log.read_text().splitlines() if " resumed: " in line] if log and log.exists() else []
        if not lines:
            return False
        started = time.mktime(time.strptime(lines[-1][:19], "%Y-%m-%d %H:%M:%S"))
        return started >= int(since) and time.time() - started >= seconds


def entries(path: Path) -> list:
    try:
        return json.loads(path.read_text())["entries"]
    except (OSError, ValueError):
        return []


def snapshot(results: Path) -> Snapshot:
    folders = sorted((results / "sae_variants").glob("*_topk_activation"))
    if not folders:
        return Snapshot(None, 0, 0, "")
    folder = folders[0]
    try:
        stage = json.loads((folder / "state.json").read_text())["stage"]
    except (OSError, ValueError, KeyError):
        stage = ""
    return Snapshot(folder, len(entries(folder / "cost_ledger.json")), len(entries(folder / "run_attempts.json")),
                    stage)


def calls(n):
    return f"after LLM call {n}", lambda s, since: s.calls >= n


# In pipeline order; each point is met only by progress made after the previous kill. The demo's calls: 1-3 the runs,
# 4-15 autointerp, 16 plot.py, 17 the figure descriptions, 18-21 the figure check (one a figure), 22 the plot coder's
# fix, 23-27 the citation rounds, 28-36 the sections, 37-45 their checks, 46-48 the reviews, 49 the meta-review.
KILL_POINTS = [
    ("idea folder made, before any LLM call", lambda s, since: s.folder is not None),
    calls(1),
    ("in the middle of run 1", lambda s, since: s.running(1, since)),
    ("run 1 finished", lambda s, since: s.attempts >= 1),
    calls(2),
    ("in the middle of run 2", lambda s, since: s.running(2, since)),
    ("run 2 finished", lambda s, since: s.attempts >= 2),
    calls(3),
    ("in the middle of run 2 on seed 1", lambda s, since: s.running_seed(1, since)),
    ("run 2 on seed 1 finished, seed 2 under way", lambda s, since: s.running_seed(2, since)),
    calls(4),
    calls(5),
    ("figure check started", lambda s, since: s.stage == "checking figures"),
    calls(19),
    calls(22),
    ("paper stage started", lambda s, since: s.stage == "writing paper"),
    ("while replaying what was done", lambda s, since: s.replaying_for(2.0, since)),
    calls(24),
    calls(26),
    calls(28),
    calls(32),
    calls(37),
    calls(42),
    ("reviews started", lambda s, since: s.stage == "reviewing paper"),
    calls(47),
    calls(48),
]


def start(args: list[str], log: Path) -> subprocess.Popen:
    with open(log, "ab") as out:
        return subprocess.Popen([sys.executable, str(REPO_ROOT / "launch_scientist.py"), *args], cwd=REPO_ROOT,
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def kill_when(process: subprocess.Popen, results: Path, point, timeout_s: float = 600) -> Snapshot:
    name, met = point
    since = time.time()
    while time.time() - since < timeout_s:
        seen = snapshot(results)
        if met(seen, since):
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            return seen
        if process.poll() is not None:
            pytest.fail(f"the launch ended (exit {process.returncode}) before the kill point: {name}")
        time.sleep(POLL_S)
    pytest.fail(f"kill point not reached in {timeout_s} s: {name}")


def notes_without_timings(notes: str) -> list[str]:
    """The notes' paragraphs with their line wrapping undone and timing entries dropped: a timing's length moves
    where the lines of a fact list break, so lines cannot be compared one by one."""
    paragraphs = (" ".join(paragraph.split()) for paragraph in notes.split("\n\n"))
    return [text for text in (TIMING_FACT.sub("", p) for p in paragraphs) if not TIMING.search(text)]


def comparable(folder: Path) -> dict:
    """Everything a resumed idea must have exactly as an uninterrupted one; timings and commit ids aside."""
    state = json.loads((folder / "state.json").read_text())
    for run in state["runs"].values():
        run.pop("commit"), run.pop("seconds")

    def without_timings(value):
        if isinstance(value, dict):
            return {k: without_timings(v) for k, v in value.items() if not TIMING.search(k)}
        return value

    git_log = subprocess.run(["git", "log", "--format=%s"], cwd=folder, capture_output=True, text=True).stdout
    return {
        # A run records where its settings came from: the folder's own path, which differs between the two.
        "runs": {p.name: without_timings(json.loads((p / "final_info.json").read_text().replace(str(folder), "")))
                 for p in sorted(folder.glob("run_*")) if p.is_dir()},
        "seed_summaries": {p.parent.name: without_timings(json.loads(p.read_text().replace(str(folder), "")))
                           for p in sorted(folder.glob("run_*/seeds.json"))},
        "notes": notes_without_timings((folder / "notes.txt").read_text()),
        "code": {name: (folder / name).read_text() for name in ("experiment.py", "plot.py")},
        "sections": {p.name: p.read_text() for p in sorted((folder / "latex" / "sections").glob("*.tex"))},
        "review": json.loads((folder / "review.json").read_text()),
        "state": state,
        # Each call once, with the same reply. (Request digests differ: prompts carry the runs' timings.)
        "llm_calls": [(e["stage"], e["reply"]) for e in entries(folder / "cost_ledger.json")],
        "run_attempts": [(e["key"], e["result"]["returncode"]) for e in entries(folder / "run_attempts.json")],
        "commits": git_log.splitlines(),
        "pdf": (folder / "paper.pdf").exists(),
    }


def test_a_launch_killed_at_many_points_and_resumed_ends_as_an_uninterrupted_one(
        templates_dir, tmp_path, latex_tools):
    script = neutral_script(tmp_path / "script.json")
    launch_args = ["--model", "demo", "--demo-script", str(script), "--max-runs", "2", "--seeds", "3",
                   "--writeup", "latex",
                   "--templates-dir", str(templates_dir), "--run-timeout", "900"]
    reference_results, killed_results = tmp_path / "reference", tmp_path / "killed"
    reference = start([*launch_args, "--results-dir", str(reference_results)], tmp_path / "reference.log")

    log = tmp_path / "killed.log"
    process = start([*launch_args, "--results-dir", str(killed_results)], log)
    survived = []
    for point in KILL_POINTS:
        seen = kill_when(process, killed_results, point)
        survived.append((point[0], seen.calls, seen.attempts, seen.stage))
        process = start(["--resume", str(seen.folder)], log)
    assert process.wait(timeout=900) == 0, log.read_text()[-3000:]
    assert reference.wait(timeout=900) == 0, (tmp_path / "reference.log").read_text()[-3000:]

    resumed, uninterrupted = snapshot(killed_results).folder, snapshot(reference_results).folder
    assert len(survived) == len(KILL_POINTS) >= 20
    expected, got = comparable(uninterrupted), comparable(resumed)
    assert got["state"]["stage"] == "done" and expected["pdf"]
    for key in expected:
        assert got[key] == expected[key], key
    # Each finished run ran once; a run killed half-way left no record and ran again from the start.
    assert len(got["run_attempts"]) == len({key for key, _ in got["run_attempts"]}) == 2
    # So did each seed of the main run: seed 1, killed once half-way, finished once, before seed 2 was killed.
    assert Snapshot(resumed, 0, 0, "").seeds_finished() == ["seeds: run 2 on seed 1 finished in",
                                                           "seeds: run 2 on seed 2 finished in"]
    assert got["runs"]["run_2"] == expected["runs"]["run_2"]
    # The demo's run 2 trained with k = 64 (set in run_settings), and its results and notes say so.
    assert got["runs"]["run_2"]["settings"]["means"]["k"] == 64
    assert any(re.search(r"settings\.k 64 \(baseline", line) for line in got["notes"])
    summary = json.loads((resumed / "run_2" / "seeds.json").read_text())
    assert summary["seeds"]["seeds"] == [0, 1, 2] and len(summary["core"]["per_seed"]["explained_variance"]) == 3
    tags = subprocess.run(["git", "tag"], cwd=resumed, capture_output=True, text=True).stdout.split()
    assert tags, "the interrupted histories are kept under tags"
    shows_citations_and_figures_seen(resumed)


def shows_citations_and_figures_seen(folder: Path):
    """The demo scripts issue 20's steps: the scripted model sees images (the figure check, the reviewers' pages) and
    gathers citations from the script's literature records."""
    stages = [entry["stage"] for entry in entries(folder / "cost_ledger.json")]
    assert stages.count("figure_check") == 4 and stages.count("plot_feedback") == 1
    assert stages.count("citations") == 5
    # The check's feedback on the frequency-rank figure reached the plot coder, whose fix is in the notes.
    assert "clipped to 1e-7, which is the flat tail" in (folder / "notes.txt").read_text()
    script = json.loads(DEMO_SCRIPT.read_text())
    titles = [paper["title"] for paper in script["citations"]["papers"]]
    bib = (folder / "latex" / "references.bib").read_text()
    # The four papers chosen in the rounds, and not the one left out, each noting where it came from.
    assert [title in bib for title in titles] == [True, True, True, True, False]
    assert bib.count("demo script") == 4
    record = json.loads((folder / "latex" / "citations.json").read_text())
    assert [citation["engine"] for citation in record["citations"]] == ["demo script"] * 4
    assert "Scaling and evaluating sparse autoencoders" in " ".join(pdf_text(folder / "paper.pdf").split())
    review = json.loads((folder / "review.json").read_text())
    assert review["pages_shown"] > 0
    assert all(r["Figures_readable"] is True and len(r["Figure_review"]) == 4 for r in review["reviews"])
