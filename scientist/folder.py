"""An idea's folder: a copy of the template, its own git history, log.txt, state.json and notes.txt.

results/<experiment>/<timestamp>_<idea name>/ is created from the template, with the idea (idea.json) and the
launch's settings (launch.json); every coder edit and every run is a commit, so the exact code of each run can be
recovered with `git show <commit>:experiment.py`.

What must survive a resume stays out of git: the journals of finished work (cost_ledger.json, run_attempts.json),
the runs' outputs (run_1/, run_2/, ...) and log.txt. A resume (`prepare_replay`) sets the tracked files back to the
first commit and replays the idea from the journals, so it is done exactly as before and nothing is done twice.
"""

import json
import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import git

from .files import atomic_write_text

# What is not copied from the template: environments, caches, and runs other than the baseline.
TEMPLATE_IGNORE = shutil.ignore_patterns(".venv", "__pycache__", "*.pyc", ".pytest_cache", "*.png")
# Large or generated files stay out of the idea's git history (SAE weights are in run_i/sae/).
IDEA_GITIGNORE = ("__pycache__/\n*.pyc\nrun_*/sae/\n*.npy\n.aider*\nlogs/\nlatex/paper.*\n!latex/paper.tex\n"
                  "/run_[1-9]*/\n/log.txt\n/cost_ledger.json\n/run_attempts.json\n")
SURVIVES_REPLAY = ("/run_*/", "/log.txt", "/cost_ledger.json", "/run_attempts.json", "/logs/")
STAGING = ".staging"
IDEA_FILE = "idea.json"
LAUNCH_FILE = "launch.json"
STATE_FILE = "state.json"


class FolderError(Exception):
    """A folder given to resume is not an idea folder; the message says what is missing."""


def slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_")[:60] or "idea"


@dataclass
class IdeaFolder:
    path: Path
    repo: git.Repo

    @classmethod
    def create(cls, results_dir: Path, experiment: str, idea: dict, template_dir: Path,
               launch: dict | None = None) -> "IdeaFolder":
        final = Path(results_dir) / experiment / f"{time.strftime('%Y%m%d_%H%M%S')}_{slug(idea['Name'])}"
        # Made under .staging/ and renamed into place once committed: a launch killed half-way through leaves no
        # folder that looks like an idea but cannot be resumed.
        path = final.parent / STAGING / final.name
        shutil.rmtree(path, ignore_errors=True)
        shutil.copytree(template_dir, path, ignore=_ignore_runs_but_baseline(TEMPLATE_IGNORE))
        (path / ".gitignore").write_text(IDEA_GITIGNORE)
        (path / "notes.txt").touch()
        (path / IDEA_FILE).write_text(json.dumps(idea, indent=2) + "\n")
        (path / LAUNCH_FILE).write_text(json.dumps(launch or {}, indent=2, sort_keys=True) + "\n")
        atomic_write_text(path / STATE_FILE, json.dumps({"idea": idea["Name"], "stage": "queued",
                                                         "status": "queued"}, indent=2, sort_keys=True))
        repo = git.Repo.init(path)
        with repo.config_writer() as config:
            config.set_value("user", "name", "SAE Scientist")
            config.set_value("user", "email", "scientist@localhost")
        cls(path, repo).commit("Template copy with the baseline run_0")
        path.rename(final)
        return cls(final, git.Repo(final))

    @classmethod
    def open(cls, path: Path) -> "IdeaFolder":
        missing = [name for name in (IDEA_FILE, LAUNCH_FILE, STATE_FILE, ".git") if not (path / name).exists()]
        if missing:
            raise FolderError(f"{path}: not an idea folder made by this version (no {', '.join(missing)}); give "
                              "--resume a folder under results/<experiment>/ that holds state.json")
        return cls(path, git.Repo(path))

    @property
    def idea(self) -> dict:
        return json.loads((self.path / IDEA_FILE).read_text())

    @property
    def launch(self) -> dict:
        return json.loads((self.path / LAUNCH_FILE).read_text())

    @property
    def state(self) -> dict:
        return json.loads((self.path / STATE_FILE).read_text())

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
        with open(self.path / "log.txt", "a", encoding="utf-8") as log:
            log.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {message}\n")

    def append_notes(self, text: str):
        with open(self.path / "notes.txt", "a", encoding="utf-8") as notes:
            notes.write(text.rstrip("\n") + "\n\n")

    def save_state(self, state: dict):
        atomic_write_text(self.path / STATE_FILE, json.dumps(state, indent=2, sort_keys=True))

    def read_final_info(self, run_number: int) -> dict:
        return json.loads((self.path / f"run_{run_number}" / "final_info.json").read_text())


def _ignore_runs_but_baseline(base_ignore):
    def ignore(directory: str, names: list[str]) -> set[str]:
        skipped = set(base_ignore(directory, names))
        skipped |= {n for n in names if n.startswith("run_") and n != "run_0"}
        return skipped
    return ignore
