"""An idea's folder: a copy of the template, its own git history, log.txt, state.json and notes.txt.

results/<experiment>/<timestamp>_<idea name>/ is created from the template, with the idea (idea.json) and the
launch's settings (launch.json); every coder edit and every run is a commit, so the exact code of each run can be
recovered with `git show <commit>:experiment.py`.

What must survive a resume stays out of git: the journals of finished work (cost_ledger.json, run_attempts.json),
the runs' outputs (run_1/, run_2/, ...) and log.txt. A resume (`prepare_replay`) sets the tracked files back to the
first commit and replays the idea from the journals, so it is done exactly as before and nothing is done twice.
"""

import functools
import json
import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import git

from scientist.experiment.manifest import load_manifest
from scientist.store.files import atomic_write_text
from scientist.store.state import IdeaState

# What is not copied from the template: environments, caches, and runs other than the baseline.
TEMPLATE_IGNORE = shutil.ignore_patterns(".venv", "__pycache__", "*.pyc", ".pytest_cache", "*.png")
# Generated files stay out of the idea's git history; the template's manifest adds its large outputs (run.untracked).
IDEA_GITIGNORE = ("__pycache__/\n*.pyc\n.aider*\nlogs/\nlatex/paper.*\n!latex/paper.tex\n"
                  "/run_[1-9]*/\n/log.txt\n/cost_ledger.json\n/run_attempts.json\n/nodes/\n/tree/\n/tree.html\n")
SURVIVES_REPLAY = ("/run_*/", "/log.txt", "/cost_ledger.json", "/run_attempts.json", "/logs/")
STAGING = ".staging"
IDEA_FILE = "idea.json"
LAUNCH_FILE = "launch.json"
STATE_FILE = "state.json"
NOTES_FILE = "notes.txt"
LOG_FILE = "log.txt"
TREE_FILE = "tree.json"
"""A tree search's nodes (scientist/search/tree.py), rewritten as the search goes."""
NODES_DIR = "nodes"
"""Where a tree search's nodes get their own work trees (git worktree), one folder per node; not in git."""
LEDGER_FILE = "cost_ledger.json"
FINAL_INFO_FILE = "final_info.json"
RUN_DIR = re.compile(r"run_(\d+)")


class FolderError(Exception):
    """A folder given to resume is not an idea folder; the message says what is missing."""


def slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_")[:60] or "idea"


def run_dir(folder: Path, number: int) -> Path:
    return Path(folder) / f"run_{number}"


def final_info_path(folder: Path, number: int) -> Path:
    return run_dir(folder, number) / FINAL_INFO_FILE


class ResultsError(Exception):
    """A run's final_info.json cannot be read as results; the message names the file and why."""


def read_final_info(folder: Path, number: int) -> dict:
    """run_<number>/final_info.json of the folder (an idea folder or a template): the one reader of result files
    (read_result_file)."""
    return read_result_file(final_info_path(folder, number))


def read_result_file(path: Path) -> dict:
    """A result file (a final_info.json, or a seeds summary). Raises ResultsError when it is missing, not JSON,
    holds NaN or infinity (a result records those as null), or is not an object."""
    try:
        info = json.loads(path.read_text(encoding="utf-8"), parse_constant=_refuse_constant)
    except FileNotFoundError:
        raise ResultsError(f"{path}: missing") from None
    except (OSError, UnicodeDecodeError, ValueError) as err:
        raise ResultsError(f"{path}: not valid JSON ({err})") from None
    if not isinstance(info, dict):
        raise ResultsError(f"{path}: not a JSON object")
    return info


def _refuse_constant(name: str):
    raise ValueError(f"{name} is not a number a result may hold")


def run_numbers(folder: Path) -> list[int]:
    """The numbers of the run_<n> folders present, in order."""
    return sorted(int(m[1]) for path in Path(folder).iterdir() if path.is_dir() and (m := RUN_DIR.fullmatch(path.name)))


def is_idea_folder(path: Path) -> bool:
    return (Path(path) / STATE_FILE).is_file()


def read_state(path: Path) -> IdeaState:
    return IdeaState.from_json(json.loads((Path(path) / STATE_FILE).read_text(encoding="utf-8")))


LATE_RESULTS = {"autointerp": "autointerp.json"}
"""Groups that stages after the runs score (the autointerp stage, from the run's contexts), each in a file of the run
folder: never written into final_info.json, which stays what the run itself wrote, so that a replayed idea's runs
stage sees exactly what it saw before. Its top-level keys status, means, reason, model and rule form the group."""


SEED_SUMMARY_FILE = "seeds.json"
"""An idea's run repeated on more seeds (scientist/pipeline/seeds.py) keeps their summary here, beside the
final_info.json the run wrote, for the same reason as LATE_RESULTS. The baseline's summary is its final_info.json:
run_0 is built before any idea and never replayed."""
FRONTIER_DIR = "frontier"
"""run_0/frontier/<point>/final_info.json: the baseline at other sparsity settings (experiment/noise.py reads them)."""
SEEDS_DIR = "seeds"
"""A run's results on more seeds: <run>/seeds/seed_<s>/final_info.json."""


def read_results(folder: Path, number: int) -> dict:
    """The run's results as the notes' later blocks, the paper, the claim checker and the report read them: its
    seeds' summary when it has one (else read_final_info), joined with the groups of LATE_RESULTS it has."""
    summary = run_dir(folder, number) / SEED_SUMMARY_FILE
    info = read_result_file(summary) if summary.is_file() else read_final_info(folder, number)
    for group, name in LATE_RESULTS.items():
        path = run_dir(folder, number) / name
        try:
            late = json.loads(path.read_text(encoding="utf-8"), parse_constant=_refuse_constant)
        except FileNotFoundError:
            continue
        except (OSError, UnicodeDecodeError, ValueError) as err:
            raise ResultsError(f"{path}: not valid JSON ({err})") from None
        if isinstance(late, dict):
            info[group] = {key: late[key] for key in ("status", "means", "reason", "model", "rule") if key in late}
    return info


@dataclass(frozen=True)
class FinishedRun:
    """A run with results: its number, its description (the baseline's is None) and its final_info."""

    number: int
    description: str | None
    info: dict


@dataclass
class IdeaFolder:
    path: Path

    @classmethod
    def create(cls, results_dir: Path, experiment: str, idea: dict, template_dir: Path,
               launch: dict | None = None) -> "IdeaFolder":
        final = Path(results_dir) / experiment / f"{time.strftime('%Y%m%d_%H%M%S')}_{slug(idea['Name'])}"
        # Made under .staging/ and renamed into place once committed: a launch killed half-way through leaves no
        # folder that looks like an idea but cannot be resumed.
        path = final.parent / STAGING / final.name
        shutil.rmtree(path, ignore_errors=True)
        shutil.copytree(template_dir, path, ignore=_ignore_runs_but_baseline(TEMPLATE_IGNORE))
        untracked = "".join(f"{pattern}\n" for pattern in load_manifest(template_dir).untracked)
        (path / ".gitignore").write_text(IDEA_GITIGNORE + untracked)
        (path / NOTES_FILE).touch()
        (path / IDEA_FILE).write_text(json.dumps(idea, indent=2) + "\n")
        (path / LAUNCH_FILE).write_text(json.dumps(launch or {}, indent=2, sort_keys=True) + "\n")
        cls(path).save_state(IdeaState(idea=idea["Name"]))
        repo = git.Repo.init(path)
        with repo.config_writer() as config:
            config.set_value("user", "name", "SAE Scientist")
            config.set_value("user", "email", "scientist@localhost")
        cls(path).commit("Template copy with the baseline run_0")
        path.rename(final)
        return cls(final)

    @classmethod
    def open(cls, path: Path) -> "IdeaFolder":
        missing = [name for name in (IDEA_FILE, LAUNCH_FILE, STATE_FILE, ".git") if not (path / name).exists()]
        if missing:
            raise FolderError(f"{path}: not an idea folder made by this version (no {', '.join(missing)}); give "
                              "--resume a folder under results/<experiment>/ that holds state.json")
        return cls(path)

    @functools.cached_property
    def repo(self) -> git.Repo:
        return git.Repo(self.path)

    @property
    def idea(self) -> dict:
        return json.loads((self.path / IDEA_FILE).read_text())

    @property
    def launch(self) -> dict:
        return json.loads((self.path / LAUNCH_FILE).read_text())

    @property
    def state(self) -> IdeaState:
        return read_state(self.path)

    def prepare_replay(self, finished_runs: set[int]) -> str:
        """Set the folder back to its first commit, for the idea to be replayed from its journals.

        The interrupted history stays reachable under a tag (returned); a git lock left by a killed commit is
        removed; a run folder that no finished run accounts for (a run killed half-way) is deleted.
        """
        (self.path / ".git" / "index.lock").unlink(missing_ok=True)
        tag = f"interrupted-{time.strftime('%Y%m%d_%H%M%S')}"
        if tag not in self.repo.tags:
            self.repo.create_tag(tag)
        first = self.repo.git.rev_list("--max-parents=0", "HEAD").split()[0]
        self.repo.git.reset("--hard", first)
        # Untracked files go too (paper build files, plots), except the journals, the runs and the logs.
        self.repo.git.clean("-fdx", *(arg for keep in SURVIVES_REPLAY for arg in ("-e", keep)))
        for run_dir in self.path.glob("run_*"):
            number = run_dir.name.removeprefix("run_")
            if run_dir.is_dir() and number.isdigit() and int(number) > 0 and int(number) not in finished_runs:
                shutil.rmtree(run_dir)
        return tag

    def commit(self, message: str) -> str:
        """Commit everything that changed; with nothing changed, no empty commit: the current one is returned."""
        if self.repo.head.is_valid() and not self.repo.is_dirty(untracked_files=True):
            return self.repo.head.commit.hexsha
        self.repo.git.add(A=True)
        self.repo.index.commit(message)
        return self.repo.head.commit.hexsha

    def log(self, message: str):
        with open(self.path / LOG_FILE, "a", encoding="utf-8") as log:
            log.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {message}\n")

    @property
    def notes(self) -> Path:
        return self.path / NOTES_FILE

    @property
    def ledger(self) -> Path:
        return self.path / LEDGER_FILE

    def append_notes(self, text: str):
        with open(self.notes, "a", encoding="utf-8") as notes:
            notes.write(text.rstrip("\n") + "\n\n")

    def save_state(self, state: IdeaState):
        atomic_write_text(self.path / STATE_FILE, json.dumps(state.to_json(), indent=2, sort_keys=True))

    def read_final_info(self, run_number: int) -> dict:
        return read_final_info(self.path, run_number)

    def finished_runs(self) -> list[FinishedRun]:
        """The baseline, then each run that state.json records as successful and whose final_info.json exists."""
        described = [(0, None)] + [(n, r.description) for n, r in sorted(self.state.runs.items())]
        return [FinishedRun(number, description, read_results(self.path, number)) for number, description in described
                if final_info_path(self.path, number).is_file()]


def _ignore_runs_but_baseline(base_ignore):
    """The template less its runs other than run_0, and less the weights of run_0's extra seeds and frontier
    points: an idea reads their results, never their SAEs."""
    def ignore(directory: str, names: list[str]) -> set[str]:
        skipped = set(base_ignore(directory, names))
        skipped |= {n for n in names if n.startswith("run_") and n != "run_0"}
        if Path(directory).parent.name in (SEEDS_DIR, FRONTIER_DIR) and Path(directory).parent.parent.name == "run_0":
            skipped |= {n for n in names if n == "sae"}
        return skipped
    return ignore
