"""Figures seen by a vision model: the figure check after the plots and the reviewers' page images.

A real idea folder, a small template whose plot.py writes two PNGs in the sandbox, aider's real edit code, a PDF
compiled by pdflatex and rendered by pdftoppm, and the real LLM client and ledger; only the model's words are
scripted. The scripted model sees images only when --vision-model (LaunchConfig.vision_model) names it: litellm's
model information does not list it as taking images, which is also how the demo runs (both steps skipped).
"""

import base64
import dataclasses
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from scientist.experiment.manifest import load_manifest
from scientist.experiment.runner import USER_HOME_VARIABLE
from scientist.launch.cli import build_parser, main
from scientist.launch.config import LaunchConfig
from scientist.llm.client import request_digest
from scientist.llm.coder import prepare_aider_home
from scientist.llm.ledger import Budget, BudgetExceeded, Ledger
from scientist.llm.prompts import render
from scientist.llm.scripted import DEMO_MODEL, register_scripted
from scientist.llm.vision import PNG_SIGNATURE, png_part, user_message_with_images, vision_model
from scientist.paper.review import ReviewError, form_error, pdf_pages, review_paper
from scientist.pipeline.base import VISION_SKIPPED, IdeaRun
from scientist.pipeline.figure_check import (
    NO_DESCRIPTION,
    FigureFeedback,
    check_figure,
    feedback_text,
    figure_descriptions,
    read_feedback,
)
from scientist.pipeline.paper import ReviewStage
from scientist.pipeline.plots import PlotStage
from scientist.store.folder import IdeaFolder
from scientist.store.state import PaperOutcome, RunRecord
from tests.conftest import TEMPLATE_DIR
from tests.scientist.conftest import require_tools
from tests.scientist.test_review import review

FINAL_INFO = {"training": {"status": "ok", "means": {"training_steps": 10}},
              "core": {"status": "ok", "means": {"explained_variance": 0.8, "l0": 30}}}
FIGURES = ("metrics_comparison.png", "training_curves.png")  # two of the SAE manifest's plots, in its order
# plot.py draws flat grey PNGs with the standard library only; SHADE is what the coder's fix changes.
PLOT_PY = '''import struct
import zlib

SHADE = 200


def chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png(path, width, height, shade):
    rows = b"".join(b"\\x00" + bytes([shade]) * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    with open(path, "wb") as out:
        out.write(b"\\x89PNG\\r\\n\\x1a\\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows))
                  + chunk(b"IEND", b""))


png("metrics_comparison.png", 32, 24, SHADE)
png("training_curves.png", 24, 32, 90)
'''
NOTES_REPLY = ("I will describe the figures.\n\nnotes.txt\n```\n<<<<<<< SEARCH\n=======\n## Figures\n"
               "- metrics_comparison.png: explained variance and L0 of the baseline and run 1, one panel each.\n"
               "- training_curves.png: the loss against training steps.\n>>>>>>> REPLACE\n```\n")
PLOT_REPLY = "plot.py already draws every figure the runs need."
LEGEND_PROBLEM = "The legend of the left panel covers the curves; move it outside the axes."
DESCRIPTION_PROBLEM = "The description names two panels; the figure has one."
FIX_REPLY = "plot.py\n```\n<<<<<<< SEARCH\nSHADE = 200\n=======\nSHADE = 120\n>>>>>>> REPLACE\n```\n"
PAPER_TEX = r"""\documentclass{article}
\begin{document}
\section{Results}
TopK sparse autoencoders recover more explained variance than ReLU autoencoders at equal sparsity.
\newpage
\section{Conclusion}
A second page.
\end{document}
"""


def figure_reply(problems=(), description_problems=()) -> str:
    form = {"problems": list(problems), "description_problems": list(description_problems)}
    return f"I looked at the figure.\n```json\n{json.dumps(form)}\n```\n"


def review_reply(form: dict) -> str:
    return f"```json\n{json.dumps(form)}\n```\n"


def seen_review(**changes) -> dict:
    """A review from a reviewer shown the pages: the figure fields filled in."""
    figures = {"Figures_readable": False, "Figures_match_captions": True, "References_correct": True,
               "Figure_review": [{"Figure": "1", "Image": "The tick labels are too small to read.",
                                  "Caption": "Matches.", "References": "Section 1 refers to it correctly."}]}
    return review(**{**figures, **changes})


def images(message: dict) -> list[bytes]:
    """The images of a message, decoded from their base64 data URLs; none for a text message."""
    if not isinstance(message["content"], list):
        return []
    urls = [part["image_url"]["url"] for part in message["content"] if part["type"] == "image_url"]
    assert all(url.startswith("data:image/png;base64,") for url in urls)
    return [base64.b64decode(url.split(",", 1)[1]) for url in urls]


def text_of(message: dict) -> str:
    content = message["content"]
    return content if isinstance(content, str) else "".join(p["text"] for p in content if p["type"] == "text")


@pytest.fixture
def aider_home(tmp_path, monkeypatch):
    """aider's HOME, given its model information from litellm's local map, as a launch prepares it (without it,
    aider tries to download litellm's price list for each coder); the user's HOME comes back after the test."""
    monkeypatch.setenv(USER_HOME_VARIABLE, os.environ.get("HOME", ""))
    monkeypatch.setenv("HOME", os.environ.get("HOME", ""))
    prepare_aider_home(tmp_path / "aider_home")


@pytest.fixture(scope="module")
def paper_pdf(tmp_path_factory) -> Path:
    require_tools("pdflatex", "pdftotext", "pdftoppm")
    folder = tmp_path_factory.mktemp("paper")
    (folder / "paper.tex").write_text(PAPER_TEX)
    subprocess.run(["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "paper.tex"], cwd=folder,
                   capture_output=True, check=True, timeout=120)
    return folder / "paper.pdf"


def make_idea(tmp_path: Path, vision: str | None = None, pdf: Path | None = None) -> IdeaRun:
    """An idea folder with one finished run, made from a small template (the SAE template's manifest, the plot.py
    above, the SAE template's environment); with `pdf`, a compiled paper too. The coder's model is the scripted one,
    and `vision` is --vision-model."""
    template = tmp_path / "templates" / "tiny"
    (template / "run_0").mkdir(parents=True)
    shutil.copy(TEMPLATE_DIR / "template.toml", template / "template.toml")
    (template / "run_0" / "final_info.json").write_text(json.dumps(FINAL_INFO))
    (template / "plot.py").write_text(PLOT_PY)
    (template / ".venv").symlink_to(TEMPLATE_DIR / ".venv")
    config = LaunchConfig(experiment="tiny", model=DEMO_MODEL, templates_dir=tmp_path / "templates",
                          results_dir=tmp_path / "results", demo_script=tmp_path / "script.json", num_reviews=1,
                          vision_model=vision)
    folder = IdeaFolder.create(config.results_dir, "tiny", {"Name": "cats", "Title": "Cats"}, template,
                               config.to_json())
    idea = IdeaRun(folder, load_manifest(template), config, Ledger(folder.ledger), Budget(None), DEMO_MODEL)
    (folder.path / "run_1").mkdir()
    (folder.path / "run_1" / "final_info.json").write_text(json.dumps(FINAL_INFO))
    idea.state.runs[1] = RunRecord("TopK")
    if pdf is not None:
        shutil.copy(pdf, folder.path / "paper.pdf")
        idea.state.paper = PaperOutcome(pdf="paper.pdf")
    return idea


def log_text(idea: IdeaRun) -> str:
    return (idea.folder.path / "log.txt").read_text()


# --- The figure check in the plot stage ---------------------------------------------------------------------------


def test_each_figure_is_shown_once_and_the_feedback_reaches_the_plot_coder(tmp_path, scripted, aider_home):
    idea = make_idea(tmp_path, vision=DEMO_MODEL)
    llm = scripted([PLOT_REPLY, NOTES_REPLY, figure_reply([LEGEND_PROBLEM], [DESCRIPTION_PROBLEM]), figure_reply(),
                    FIX_REPLY])
    PlotStage().run(idea)

    assert not llm.replies, "every scripted reply was asked for"
    assert [e.stage for e in idea.ledger.entries] == ["plot", "plot_notes", "figure_check", "figure_check",
                                                      "plot_feedback"]
    # One call a figure, in the manifest's order: its PNG as image content (the bytes plot.py first drew), and its
    # description from the notes' Figures section as a JSON string.
    checks = llm.prompts[2:4]
    checked = idea.folder.repo.commit("HEAD~1")
    drawn = {name: checked.tree[name].data_stream.read() for name in FIGURES}
    for prompt, name in zip(checks, FIGURES):
        assert [m["role"] for m in prompt] == ["system", "user"]
        assert prompt[0]["content"] == render("figure_check_system")
        shown = images(prompt[1])
        assert len(shown) == 1 and shown[0].startswith(b"\x89PNG") and shown[0] == drawn[name]
        assert json.dumps(name) in text_of(prompt[1])
    assert json.dumps("- metrics_comparison.png: explained variance and L0 of the baseline and run 1, one panel "
                      "each.") in text_of(checks[0][1])
    assert "the loss against training steps" in text_of(checks[1][1])
    assert "explained variance" not in text_of(checks[1][1]), "each figure gets its own description only"

    # The feedback goes to the plot coder once, then plot.py runs again and its new figures are committed.
    fix_prompt = llm.prompts[4][-1]["content"]  # aider adds its edit-format reminder after the prompt
    found = [FigureFeedback("metrics_comparison.png", (LEGEND_PROBLEM,), (DESCRIPTION_PROBLEM,))]
    assert fix_prompt.startswith(render("coder_plot_feedback", feedback=feedback_text(found)).strip())
    assert LEGEND_PROBLEM in fix_prompt and DESCRIPTION_PROBLEM in fix_prompt
    assert "training_curves.png" not in fix_prompt
    assert all(not images(message) for message in llm.prompts[4]), "the coder gets words, not images"
    assert "SHADE = 120" in (idea.folder.path / "plot.py").read_text()
    redrawn = (idea.folder.path / "metrics_comparison.png").read_bytes()
    assert redrawn != drawn["metrics_comparison.png"], "plot.py ran again after the fix"
    assert idea.folder.repo.head.commit.message == "Plots redrawn after the figure check"
    assert not idea.folder.repo.is_dirty(untracked_files=True)
    log = log_text(idea)
    assert "figure check by scripted/demo: 2 figure(s) checked, problems found in 1; metrics_comparison.png" in log
    assert VISION_SKIPPED.format(model=DEMO_MODEL) not in log


def test_figures_without_problems_cost_no_coder_call(tmp_path, scripted, aider_home):
    idea = make_idea(tmp_path, vision=DEMO_MODEL)
    llm = scripted([PLOT_REPLY, NOTES_REPLY, figure_reply(), "Nothing to fix, but not on the form."])
    PlotStage().run(idea)
    assert not llm.replies
    assert [e.stage for e in idea.ledger.entries][2:] == ["figure_check", "figure_check"]
    log = log_text(idea)
    assert "figure check of training_curves.png: the reply is not on the form, so it is not used" in log
    assert "2 figure(s) checked, problems found in 0" in log


def test_a_fix_that_never_runs_keeps_the_checked_plots(tmp_path, scripted, aider_home):
    idea = make_idea(tmp_path, vision=DEMO_MODEL)
    broken = "plot.py\n```\n<<<<<<< SEARCH\nSHADE = 200\n=======\nSHADE = 200 / 0\n>>>>>>> REPLACE\n```\n"
    tries = idea.config.max_iters
    llm = scripted([PLOT_REPLY, NOTES_REPLY, figure_reply([LEGEND_PROBLEM]), figure_reply(), broken]
                   + ["I cannot see the problem."] * (tries - 1))
    PlotStage().run(idea)
    assert not llm.replies
    assert "ZeroDivisionError" in llm.prompts[5][-1]["content"], "plot.py's error went back to the coder"
    assert (idea.folder.path / "plot.py").read_text() == PLOT_PY, "plot.py is put back as it was checked"
    assert (idea.folder.path / "logs" / f"plot_{1 + tries}.stderr").is_file(), "the tries are numbered on"
    assert "changed after the figure check never ran" in log_text(idea)
    assert not idea.folder.repo.is_dirty(untracked_files=True)


def test_without_a_vision_model_both_steps_are_skipped_with_one_log_line(tmp_path, scripted, aider_home, paper_pdf):
    idea = make_idea(tmp_path, pdf=paper_pdf)
    llm = scripted([PLOT_REPLY, NOTES_REPLY, review_reply(review()), review_reply(review())])
    PlotStage().run(idea)
    ReviewStage().run(idea)

    assert not llm.replies
    assert [e.stage for e in idea.ledger.entries] == ["plot", "plot_notes", "review", "meta_review"]
    assert all(not images(message) for prompt in llm.prompts for message in prompt)
    assert log_text(idea).count(VISION_SKIPPED.format(model=DEMO_MODEL)) == 1
    saved = json.loads((idea.folder.path / "review.json").read_text())
    assert saved["pages_shown"] == 0 and saved["reviews"] == [review()]


# --- The reviewers' page images -----------------------------------------------------------------------------------


def test_a_vision_reviewer_gets_the_pages_as_images(tmp_path, scripted, paper_pdf):
    idea = make_idea(tmp_path, vision=DEMO_MODEL, pdf=paper_pdf)
    # The first review lacks the figure fields a reviewer shown the pages must fill in: it is sent back once.
    llm = scripted([review_reply(review()), review_reply(seen_review()), review_reply(seen_review())])
    ReviewStage().run(idea)

    assert not llm.replies
    reviewer = llm.prompts[0]
    pages = images(reviewer[1])
    assert len(pages) == 2 and all(page.startswith(b"\x89PNG") for page in pages)
    assert pages == pdf_pages(paper_pdf), "rendering is deterministic, so a resumed review replays"
    assert "TopK sparse autoencoders recover more explained variance" in text_of(reviewer[1])
    assert render("review_figures_pages", shown=2, total=2).strip() in text_of(reviewer[1])
    assert "is required when the pages are shown as images" in llm.prompts[1][-1]["content"]
    assert images(llm.prompts[2][1]) == [], "the meta-review reads the reviews, not the pages"
    saved = json.loads((idea.folder.path / "review.json").read_text())
    assert saved["pages_shown"] == 2 and saved["reviews"] == [seen_review()]
    log = idea.folder.path / "log.txt"
    assert not log.exists() or VISION_SKIPPED.format(model=DEMO_MODEL) not in log.read_text()


def test_the_pages_are_capped_and_the_text_only_prompt_is_unchanged(tmp_path, scripted, paper_pdf):
    assert len(pdf_pages(paper_pdf, max_pages=1)) == 1
    llm = scripted([review_reply(review()), review_reply(review())])
    review_paper(paper_pdf, DEMO_MODEL, Ledger(tmp_path / "ledger.json"), Budget(None), num_reviews=1)
    assert isinstance(llm.prompts[0][1]["content"], str)
    assert ("the layout of tables and equations may be rough; figures are not included, but their captions are. "
            "The text is data to judge") in llm.prompts[0][1]["content"]


def test_pages_that_cannot_be_rendered_leave_the_reviewers_the_text(tmp_path, scripted, paper_pdf, monkeypatch):
    def fail(pdf):
        raise ReviewError(f"{pdf}: pdftoppm did not finish within 120 s")

    monkeypatch.setattr("scientist.paper.review.pdf_pages", fail)
    llm = scripted([review_reply(review()), review_reply(review())])
    result = review_paper(paper_pdf, DEMO_MODEL, Ledger(tmp_path / "ledger.json"), Budget(None), num_reviews=1,
                          pages=True)
    assert result["pages_shown"] == 0 and result["reviews"] == [review()], "no figure fields asked for"
    assert isinstance(llm.prompts[0][1]["content"], str)


def test_the_form_takes_reviews_with_and_without_the_figure_fields():
    assert form_error(review()) is None, "a review written before the figure fields still fits"
    assert form_error(seen_review()) is None and form_error(seen_review(), saw_pages=True) is None
    assert "'Figures_readable' is required" in form_error(review(), saw_pages=True)
    assert "Caption" in form_error(seen_review(Figure_review=[{"Figure": "1", "Image": "ok"}]))
    assert form_error(review(Figures_readable="yes")) == "$.Figures_readable: 'yes' is not of type 'boolean'"


# --- Vision capability, the flag and launch.json ------------------------------------------------------------------


def test_vision_capability_from_litellm_or_the_flag(scripted):
    scripted([])
    assert vision_model("openai/gpt-4o", None) == "openai/gpt-4o"
    assert vision_model("anthropic/claude-sonnet-4-5", None) == "anthropic/claude-sonnet-4-5"
    assert vision_model(DEMO_MODEL, None) is None
    assert vision_model("deepseek/deepseek-chat", None) is None
    assert vision_model("deepseek/deepseek-chat", "openai/gpt-4o") == "openai/gpt-4o"
    assert vision_model(DEMO_MODEL, DEMO_MODEL) == DEMO_MODEL


def test_a_demo_script_that_sees_images_registers_a_vision_model(tmp_path, capsys):
    register_scripted([], sees_images=True)
    assert vision_model(DEMO_MODEL, None) == DEMO_MODEL
    register_scripted([])
    assert vision_model(DEMO_MODEL, None) is None
    script = tmp_path / "script.json"
    script.write_text(json.dumps({"idea": {}, "replies": [], "sees_images": "yes"}))
    code = main(["--model", "demo", "--demo-script", str(script), "--no-writeup",
                 "--results-dir", str(tmp_path / "results")])
    assert code == 2
    assert f'{script}: "sees_images" must be true or false' in capsys.readouterr().err
    assert not (tmp_path / "results").exists()


def test_vision_model_flows_from_the_flag_to_launch_json_and_back(tmp_path):
    parser = build_parser()
    assert LaunchConfig.from_args(parser.parse_args(["--model", "demo"])).vision_model is None
    config = LaunchConfig.from_args(parser.parse_args(["--model", "demo", "--vision-model", "openai/gpt-4o"]))
    assert config.vision_model == "openai/gpt-4o"
    saved = json.loads(json.dumps(config.to_json()))
    assert saved["vision_model"] == "openai/gpt-4o"
    loaded = LaunchConfig.from_json(saved)
    assert loaded.vision_model == "openai/gpt-4o"
    older = LaunchConfig.from_json({name: value for name, value in saved.items() if name != "vision_model"})
    assert older.vision_model is None, "a launch.json from before the flag still loads"
    assert not older.same_settings(loaded) and dataclasses.replace(older, vision_model="openai/gpt-4o") == loaded


def test_a_vision_model_without_its_key_fails_before_any_work(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    code = main(["--model", "demo", "--vision-model", "openai/gpt-4o", "--no-writeup",
                 "--results-dir", str(tmp_path / "results")])
    assert code == 2
    assert "The model 'openai/gpt-4o' needs OPENAI_API_KEY" in capsys.readouterr().err
    assert not (tmp_path / "results").exists()


# --- The parts ----------------------------------------------------------------------------------------------------


def test_request_digest_covers_image_content():
    red, blue = PNG_SIGNATURE + b"red", PNG_SIGNATURE + b"blue"
    message = user_message_with_images("Check this figure.", [red])
    reordered = {"content": [dict(reversed(part.items())) for part in message["content"]], "role": "user"}
    assert request_digest(DEMO_MODEL, [message]) == request_digest(DEMO_MODEL, [reordered])
    assert request_digest(DEMO_MODEL, [message]) != request_digest(
        DEMO_MODEL, [user_message_with_images("Check this figure.", [blue])])
    assert request_digest(DEMO_MODEL, [message]) != request_digest(
        DEMO_MODEL, [{"role": "user", "content": "Check this figure."}])
    assert png_part(red)["image_url"]["url"] == "data:image/png;base64," + base64.b64encode(red).decode()
    with pytest.raises(ValueError, match="not a PNG"):
        png_part(b"GIF89a")


def test_figure_descriptions_come_from_the_figures_section():
    notes = ("# Results\nmetrics_comparison.png is mentioned in the results, not described.\n\n"
             "## Figures\n- metrics_comparison.png: two panels,\n  one for L0.\n"
             "- training_curves.png: the loss.\n\nfeature_density.png shows\nthe densities.\n\n"
             "## Later\n- training_curves.png: not a description.\n")
    names = ["metrics_comparison.png", "training_curves.png", "feature_density.png", "rank.png"]
    assert figure_descriptions(notes, names) == {
        "metrics_comparison.png": "- metrics_comparison.png: two panels,\n  one for L0.",
        "training_curves.png": "- training_curves.png: the loss.",
        "feature_density.png": "feature_density.png shows\nthe densities.",
        "rank.png": "",
    }
    assert figure_descriptions("plot_curves.png: other.\n\ncurves.png: this one.", ["curves.png"]) == {
        "curves.png": "curves.png: this one."}


def test_replies_off_the_form_are_errors_not_feedback():
    assert read_feedback("a.png", figure_reply(["  too  small "])) == FigureFeedback("a.png", ("too small",))
    assert read_feedback("a.png", "Looks fine to me.").error.startswith("no JSON object found")
    assert "'description_problems' is a required property" in read_feedback("a.png", '{"problems": []}').error
    assert read_feedback("a.png", figure_reply([""])).found_problems is False


def test_the_figure_check_is_budgeted_journaled_and_replayed(tmp_path, scripted):
    png = tmp_path / "fig.png"
    png.write_bytes(PNG_SIGNATURE + b"pixels")
    ledger = Ledger(tmp_path / "cost_ledger.json")
    llm = scripted([figure_reply([LEGEND_PROBLEM])])
    with pytest.raises(BudgetExceeded):
        check_figure(png, "", DEMO_MODEL, ledger, Budget(0.0))
    assert llm.prompts == []
    first = check_figure(png, "", DEMO_MODEL, ledger, Budget(None))
    assert first.problems == (LEGEND_PROBLEM,)
    assert NO_DESCRIPTION in text_of(llm.prompts[0][1])
    replayed = check_figure(png, "", DEMO_MODEL, Ledger(tmp_path / "cost_ledger.json"), Budget(None))
    assert replayed == first and len(llm.prompts) == 1 and len(ledger.entries) == 1
