"""What every stage of an idea gets (IdeaRun) and what every stage is (Stage)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from scientist.experiment.manifest import Manifest
from scientist.launch.config import LaunchConfig
from scientist.launch.progress import ProgressView
from scientist.llm.coder import Coder
from scientist.llm.ledger import Budget, Ledger
from scientist.store.folder import IdeaFolder
from scientist.store.state import IdeaState

# Plots and template stages run the template's own code, not the coder's experiment: a fixed limit, not --run-timeout.
PLOT_TIMEOUT_S = 600.0


@dataclass
class IdeaRun:
    """One idea on its way through the pipeline: its folder, its template's manifest, the launch's settings, the
    LLM's ledger and budget, and its state (saved to state.json at every change)."""

    folder: IdeaFolder
    manifest: Manifest
    config: LaunchConfig
    ledger: Ledger
    budget: Budget
    model: str
    """The litellm model string the coders use (the scripted one for the demo)."""
    view: ProgressView | None = None
    state: IdeaState = field(init=False)

    def __post_init__(self):
        self.state = IdeaState(idea=self.folder.idea["Name"], stage="starting", status="running")

    @property
    def idea(self) -> dict:
        return self.folder.idea

    @property
    def python(self) -> Path:
        """The experiment environment's python (the template's, which the idea folder shares)."""
        return self.config.template / self.manifest.python

    def update(self, **changes):
        for key, value in changes.items():
            setattr(self.state, key, value)
        self.folder.save_state(self.state)
        if self.view:
            self.view.show(self.state)

    def heartbeat(self, activity: str):
        if self.view:
            self.view.show(self.state, activity)

    def coder(self, *files: str) -> Coder:
        """An aider session over these files of the idea folder, paid from the idea's ledger."""
        return Coder(self.folder.path, list(files), self.model, self.ledger, self.budget)


class Stage(Protocol):
    """One step of an idea after its folder is made. A new stage is a class with these two methods in a file of its
    own, and one line in scientist/pipeline/__init__.py's STAGES."""

    def applies(self, idea: IdeaRun) -> bool:
        """Whether this idea goes through the stage (a paper needs a run, and no --no-writeup)."""

    def run(self, idea: IdeaRun) -> None:
        """Do the stage; a failure the idea can go on without is logged, not raised."""
