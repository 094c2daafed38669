"""The stages of an idea, listed once and in order. Launch, resume and the workers all drive this pipeline.

    runs (or, with --search tree, the tree search) -> seeds (with --seeds above 1)
    -> autointerp (when the manifest has [autointerp]) -> plots
    -> the template's own stages (its manifest's [[stages]]) -> paper -> review

Autointerp comes before the plots so that the figures, the notes and the paper's table can show its scores.

Each stage is a class with `applies(idea)` and `run(idea)` (base.Stage); a new stage is a file of its own and one
line in `stages`.
"""

from __future__ import annotations

from scientist.pipeline.autointerp import AutointerpStage
from scientist.pipeline.base import IdeaRun, Stage
from scientist.pipeline.paper import PaperStage, ReviewStage
from scientist.pipeline.plots import PlotStage
from scientist.pipeline.runs import RunsStage
from scientist.pipeline.seeds import SeedsStage
from scientist.pipeline.template_stages import TemplateStage
from scientist.pipeline.tree_search import TreeSearchStage

DONE_COMMIT = "Idea done"


def stages(idea: IdeaRun) -> list[Stage]:
    return [
        TreeSearchStage() if idea.config.search == "tree" else RunsStage(),
        SeedsStage(),
        AutointerpStage(),
        PlotStage(),
        *(TemplateStage(spec) for spec in idea.manifest.stages),
        PaperStage(),
        ReviewStage(),
    ]


def run_pipeline(idea: IdeaRun) -> None:
    """Take the idea through every stage that applies to it, then mark it done."""
    for stage in stages(idea):
        if stage.applies(idea):
            stage.run(idea)
    idea.update(stage="done")
    idea.folder.commit(DONE_COMMIT)


__all__ = ["DONE_COMMIT", "IdeaRun", "Stage", "run_pipeline", "stages"]
