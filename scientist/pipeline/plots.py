"""The plot stage: the coder names the runs in plot.py, plot.py runs (with retries) in the sandbox, and the coder
describes each figure in notes.txt, which the claim checker then reads."""

from scientist.experiment.runner import PLOT_FILE, run_plot
from scientist.llm.prompts import render
from scientist.pipeline.base import PLOT_TIMEOUT_S, IdeaRun
from scientist.pipeline.runs import notes_contradictions


class PlotStage:
    def applies(self, idea: IdeaRun) -> bool:
        return bool(idea.state.runs)

    def run(self, idea: IdeaRun) -> None:
        folder = idea.folder
        runs = "\n".join(f"run_{n}: {r.description}" for n, r in sorted(idea.state.runs.items()))
        idea.update(stage="plotting")
        plot_coder = idea.coder(PLOT_FILE)
        prompt = render("coder_plot", runs=f"run_0: baseline\n{runs}")
        for attempt in range(1, idea.config.max_iters + 1):
            plot_coder.ask(prompt, stage="plot")
            result = run_plot(idea.manifest, idea.python, folder.path, PLOT_TIMEOUT_S, attempt)
            if result.ok:
                break
            folder.log(f"{PLOT_FILE} attempt {attempt} failed with exit code {result.returncode}")
            prompt = render("coder_plot_failed", returncode=result.returncode, stderr_tail=result.stderr_tail)
        else:
            folder.commit(f"{PLOT_FILE} failed")
            return
        folder.commit("Plots")
        idea.update(stage="describing plots")
        notes_coder = idea.coder(folder.notes.name)
        figures = ", ".join(plot.file for plot in idea.manifest.plots)
        notes_coder.ask(render("coder_plot_notes", figures=figures), stage="plot_notes")
        folder.commit("Figure descriptions in notes.txt")
        found = notes_contradictions(folder, idea.manifest)
        if found:
            notes_coder.ask(render("coder_notes_contradictions", contradictions="\n".join(found)), stage="notes_check")
            folder.commit("notes.txt corrected after the claim check")
            idea.update(notes_contradictions=notes_contradictions(folder, idea.manifest))
