"""The plot stage: the coder names the runs in plot.py, plot.py runs (with retries) in the sandbox, and the coder
describes each figure in notes.txt. A model that sees images then checks each figure against its description
(figure_check.py); what it finds goes to the plot coder once, and plot.py runs again through the same retries. The
claim checker reads the notes last."""

from scientist.experiment.runner import PLOT_FILE, run_plot
from scientist.llm.coder import Coder
from scientist.llm.prompts import render
from scientist.pipeline.base import PLOT_TIMEOUT_S, IdeaRun
from scientist.pipeline.figure_check import (
    check_figure,
    feedback_text,
    figure_descriptions,
    figures_to_check,
)
from scientist.pipeline.runs import notes_contradictions


class PlotStage:
    def applies(self, idea: IdeaRun) -> bool:
        return bool(idea.state.runs)

    def run(self, idea: IdeaRun) -> None:
        folder = idea.folder
        runs = "\n".join(f"run_{n}: {r.description}" for n, r in sorted(idea.state.runs.items()))
        idea.update(stage="plotting")
        plot_coder = idea.coder(PLOT_FILE)
        attempts = plot_until_it_runs(idea, plot_coder, render("coder_plot", runs=f"run_0: baseline\n{runs}"),
                                      stage="plot")
        if attempts is None:
            folder.commit(f"{PLOT_FILE} failed")
            return
        folder.commit("Plots")
        idea.update(stage="describing plots")
        notes_coder = idea.coder(folder.notes.name)
        figures = ", ".join(plot.file for plot in idea.manifest.plots)
        notes_coder.ask(render("coder_plot_notes", figures=figures), stage="plot_notes")
        folder.commit("Figure descriptions in notes.txt")
        check_figures(idea, attempts)
        found = notes_contradictions(folder, idea.manifest)
        if found:
            notes_coder.ask(render("coder_notes_contradictions", contradictions="\n".join(found)), stage="notes_check")
            folder.commit("notes.txt corrected after the claim check")
            idea.update(notes_contradictions=notes_contradictions(folder, idea.manifest))


def plot_until_it_runs(idea: IdeaRun, coder: Coder, prompt: str, stage: str, attempts_before: int = 0) -> int | None:
    """Ask `coder` to edit plot.py, run it, and send its errors back, up to --max-iters tries. Returns the number of
    the try that ran (tries are numbered on from `attempts_before`, and so are their logs), None when none did."""
    for attempt in range(attempts_before + 1, attempts_before + idea.config.max_iters + 1):
        coder.ask(prompt, stage=stage)
        result = run_plot(idea.manifest, idea.python, idea.folder.path, PLOT_TIMEOUT_S, attempt)
        if result.ok:
            return attempt
        idea.folder.log(f"{PLOT_FILE} attempt {attempt} failed with exit code {result.returncode}")
        prompt = render("coder_plot_failed", returncode=result.returncode, stderr_tail=result.stderr_tail)
    return None


def check_figures(idea: IdeaRun, attempts: int) -> None:
    """Show each figure and its description to the vision model; its feedback goes to a coder over plot.py and
    notes.txt once, and plot.py runs again. When the redrawn plot.py never runs, plot.py, notes.txt and the figures
    are put back as they were."""
    model = idea.vision_model()
    if model is None:
        return
    folder = idea.folder
    idea.update(stage="checking figures")
    pngs, unchecked = figures_to_check(folder.path, idea.manifest)
    if unchecked:
        folder.log(f"figure check: {len(unchecked)} figure(s) beyond the first {len(pngs)} not checked: "
                   + ", ".join(path.name for path in unchecked))
    descriptions = figure_descriptions(folder.notes.read_text(encoding="utf-8"), [png.name for png in pngs])
    feedback = [check_figure(png, descriptions[png.name], model, idea.ledger, idea.budget) for png in pngs]
    for item in feedback:
        if item.error:
            folder.log(f"figure check of {item.figure}: the reply is not on the form, so it is not used ({item.error})")
    found = [item for item in feedback if item.found_problems]
    folder.log(f"figure check by {model}: {len(pngs)} figure(s) checked, problems found in {len(found)}"
               + "".join(f"; {item.figure}" for item in found))
    if not found:
        return
    checked = folder.commit("Figures checked")
    before = {path.name for path in folder.path.glob("*.png")}
    coder = idea.coder(PLOT_FILE, folder.notes.name)
    if plot_until_it_runs(idea, coder, render("coder_plot_feedback", feedback=feedback_text(found)),
                          stage="plot_feedback", attempts_before=attempts) is not None:
        folder.commit("Plots redrawn after the figure check")
        return
    folder.log(f"{PLOT_FILE} changed after the figure check never ran; it, notes.txt and the figures are kept as "
               "they were before")
    folder.repo.git.checkout(checked, "--", ".")
    for path in folder.path.glob("*.png"):
        if path.name not in before:
            path.unlink()
    folder.commit(f"{PLOT_FILE} after the figure check failed; the checked plots kept")

