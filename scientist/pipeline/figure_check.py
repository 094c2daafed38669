"""The plot stage's figure check: each figure plot.py made is shown, with its description from notes.txt, to a model
that sees images, which answers on a small JSON form (figure_feedback.schema.json) what is wrong with the figure
itself (unreadable text, overlapping labels, empty or duplicated panels) and where the description says what the
figure does not show. The plot stage hands the problems to the plot coder once (scientist/pipeline/plots.py).

Every call goes through `complete` with the idea's ledger and budget: costed, budgeted, journaled and replayed on
resume (the request digest covers the image's bytes, and plot.py draws the same bytes from the same runs).
"""

from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass
from pathlib import Path

import jsonschema

from scientist.experiment.manifest import Manifest
from scientist.ideas.idea_files import extract_json
from scientist.llm.client import complete
from scientist.llm.ledger import Budget, Ledger
from scientist.llm.prompts import render
from scientist.llm.vision import user_message_with_images

SCHEMA_PATH = Path(__file__).resolve().parent / "figure_feedback.schema.json"
STAGE = "figure_check"
# One call a figure: a plot.py that writes dozens of images gets the first ones checked, the rest named in the log.
MAX_FIGURES = 12
FIGURES_HEADING = re.compile(r"^(#+)[ \t]*Figures\b.*$", re.MULTILINE | re.IGNORECASE)
ITEM_START = re.compile(r"^\s*(?:[-*+]|\d+[.)])\s+")
NO_DESCRIPTION = "(notes.txt has no description of this figure)"


@dataclass(frozen=True)
class FigureFeedback:
    """What the vision model found wrong with one figure; `error` says why its reply could not be read."""

    figure: str
    problems: tuple[str, ...] = ()
    """Problems of the figure itself: unreadable text, overlapping labels, empty or duplicated panels."""
    description_problems: tuple[str, ...] = ()
    """Where the figure's description in notes.txt says what the figure does not show."""
    error: str | None = None

    @property
    def found_problems(self) -> bool:
        return bool(self.problems or self.description_problems)


def figures_to_check(folder: Path, manifest: Manifest) -> tuple[list[Path], list[Path]]:
    """(the PNGs to check, the PNGs left unchecked): the PNGs in the idea folder, the manifest's plots first in its
    order, then any other plot.py wrote, by name; at most MAX_FIGURES checked."""
    listed = [folder / plot.file for plot in manifest.plots if plot.file.lower().endswith(".png")]
    found = [path for path in listed if path.is_file()]
    found += sorted(path for path in folder.glob("*.png") if path not in listed)
    return found[:MAX_FIGURES], found[MAX_FIGURES:]


def figures_section(notes: str) -> str:
    """The notes under their last "## Figures" heading (what the plot-notes step writes), up to the next heading of
    the same or a higher level; all of the notes when there is no such heading."""
    headings = list(FIGURES_HEADING.finditer(notes))
    if not headings:
        return notes
    level = len(headings[-1].group(1))
    rest = notes[headings[-1].end():]
    end = re.search(rf"^#{{1,{level}}}[ \t]", rest, re.MULTILINE)
    return rest[:end.start()] if end else rest


def figure_descriptions(notes: str, figures: list[str]) -> dict[str, str]:
    """Each figure's description: the items of the Figures section (list items, or paragraphs) that name its file;
    "" for a figure no item names."""
    items = _items(figures_section(notes))
    return {name: "\n".join(item for item in items if re.search(rf"(?<![\w.-]){re.escape(name)}", item))
            for name in figures}


def _items(text: str) -> list[str]:
    """The list items and paragraphs of `text`, each with its continuation lines."""
    items: list[list[str]] = []
    for line in text.splitlines():
        if not line.strip():
            items.append([])
        elif ITEM_START.match(line) or not items:
            items.append([line])
        else:
            items[-1].append(line)
    return ["\n".join(lines).strip() for lines in items if lines]


def check_figure(png: Path, description: str, model: str, ledger: Ledger, budget: Budget) -> FigureFeedback:
    """Show one figure and its description to `model`; its answer on the form. LLM errors, BudgetExceeded included,
    propagate."""
    text = render("figure_check", figure=json.dumps(png.name),
                  description=json.dumps(description) if description else NO_DESCRIPTION)
    messages = [{"role": "system", "content": render("figure_check_system")},
                user_message_with_images(text, [png.read_bytes()])]
    return read_feedback(png.name, complete(model, messages, stage=STAGE, ledger=ledger, budget=budget))


def read_feedback(figure: str, reply: str) -> FigureFeedback:
    """The vision model's reply on the form; a reply off the form gives feedback with only `error` set."""
    try:
        answer = extract_json(reply)
    except ValueError as err:
        return FigureFeedback(figure, error=str(err))
    error = jsonschema.exceptions.best_match(_validator().iter_errors(answer))
    if error is not None:
        return FigureFeedback(figure, error=f"{error.json_path}: {error.message[:300]}")
    return FigureFeedback(figure, _points(answer["problems"]), _points(answer["description_problems"]))


def _points(items: list[str]) -> tuple[str, ...]:
    return tuple(" ".join(item.split()) for item in items if item.strip())


@functools.cache
def _validator() -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(json.loads(SCHEMA_PATH.read_text(encoding="utf-8")))


def feedback_text(feedback: list[FigureFeedback]) -> str:
    """The problems found, figure by figure, as the plot coder reads them."""
    blocks = []
    for item in feedback:
        lines = [f"- the figure: {problem}" for problem in item.problems]
        lines += [f"- its description in notes.txt: {problem}" for problem in item.description_problems]
        blocks.append("\n".join([item.figure, *lines]))
    return "\n\n".join(blocks)
