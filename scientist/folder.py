"""An idea's folder: a copy of the template, its own git history, log.txt, state.json and notes.txt.

results/<experiment>/<timestamp>_<idea name>/ is created from the template; every coder edit and every run is
a commit, so the exact code of each run can be recovered with `git show <commit>:experiment.py`.
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
IDEA_GITIGNORE = "__pycache__/\n*.pyc\nrun_*/sae/\n*.npy\n.aider*\nlogs/\nlatex/paper.*\n!latex/paper.tex\n"


def slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_")[:60] or "idea"


@dataclass
class IdeaFolder:
    path: Path
    repo: git.Repo

    @classmethod
    def create(cls, results_dir: Path, experiment: str, idea_name: str, template_dir: Path) -> "IdeaFolder":
        path = Path(results_dir) / experiment / f"{time.strftime('%Y%m%d_%H%M%S')}_{slug(idea_name)}"
        shutil.copytree(template_dir, path, ignore=_ignore_runs_but_baseline(TEMPLATE_IGNORE))
        (path / ".gitignore").write_text(IDEA_GITIGNORE)
        (path / "notes.txt").touch()
        repo = git.Repo.init(path)
        with repo.config_writer() as config:
            config.set_value("user", "name", "SAE Scientist")
            config.set_value("user", "email", "scientist@localhost")
        folder = cls(path, repo)
        folder.commit("Template copy with the baseline run_0")
        return folder

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
        atomic_write_text(self.path / "state.json", json.dumps(state, indent=2, sort_keys=True))

    def read_final_info(self, run_number: int) -> dict:
        return json.loads((self.path / f"run_{run_number}" / "final_info.json").read_text())


def _ignore_runs_but_baseline(base_ignore):
    def ignore(directory: str, names: list[str]) -> set[str]:
        skipped = set(base_ignore(directory, names))
        skipped |= {n for n in names if n.startswith("run_") and n != "run_0"}
        return skipped
    return ignore
