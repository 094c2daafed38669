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
from scientist.llm.vision import vision_model
from scientist.store.folder import IdeaFolder
from scientist.store.state import IdeaState

# The one line of log.txt that says an idea's figures and pages are shown to no model.
VISION_SKIPPED = ("no vision-capable model: litellm's model information says {model} takes no images and "
                  "--vision-model names none; the figure check and the reviewers' page images are skipped")

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
    _vision_skip_logged: bool = field(default=False, init=False, repr=False)

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

    def vision_model(self) -> str | None:
        """The model the figure check and the reviewers show images to; None when the launch has none, which the
        idea's log.txt says once."""
        model = vision_model(self.model, self.config.vision_model)
        if model is None and not self._vision_skip_logged:
            self.folder.log(VISION_SKIPPED.format(model=self.model))
            self._vision_skip_logged = True
        return model

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
