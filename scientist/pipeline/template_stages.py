"""The template's own stages (its manifest's [[stages]]): template code, not the coder's, run in the sandbox for
the baseline and each run that lacks the stage's output, with the runs named on the command line."""

from scientist.experiment.manifest import Stage as StageSpec
from scientist.experiment.runner import run_python
from scientist.pipeline.base import PLOT_TIMEOUT_S, IdeaRun


class TemplateStage:
    def __init__(self, spec: StageSpec):
        self.spec = spec

    def applies(self, idea: IdeaRun) -> bool:
        return bool(idea.state.runs)

    def run(self, idea: IdeaRun) -> None:
        """A run that has the output already (a resumed idea) keeps it; a failure is logged and the idea goes on."""
        folder, spec = idea.folder, self.spec
        runs = [f"run_{n}" for n in [0, *sorted(idea.state.runs)]]
        missing = [run for run in runs if (not spec.needs or (folder.path / run / spec.needs).exists())
                   and not (spec.output and (folder.path / run / spec.output).exists())]
        if not missing:
            return
        idea.update(stage=spec.name.lower())
        result = run_python(idea.manifest, idea.python, ["-m", spec.module, "--run", *missing], folder.path,
                            PLOT_TIMEOUT_S, spec.module, idea.heartbeat)
        if not result.ok:
            folder.log(f"{spec.name} failed (exit {result.returncode}); the idea goes on without it:\n"
                       f"{result.stderr_tail[-500:]}")
