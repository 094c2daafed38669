"""Reviewing a paper: several independent LLM reviews on a NeurIPS-style form, then a meta-review of them.

The form is scientist/review_form.schema.json; prompts/review_system.txt tells the reviewer what each score means.
Each review is its own conversation over the paper's text (as `pdftotext -layout` extracts it) and, when the
reviewer's model sees images, its first pages as PNG images (`pdftoppm`), so that the figures, their captions and the
references to them are judged as a reader sees them (the form's figure fields). The JSON of the
reply is checked against the form, and a reply that breaks it gets one retry naming the problem; a review still
unusable after that is dropped and the reason kept. An area-chair call then writes the meta-review, on the same
form, from the reviews that are left. The result goes to the idea's review.json.
"""

from __future__ import annotations

import functools
import json
import logging
import shutil
import tempfile
from pathlib import Path
from typing import Any

import jsonschema

from scientist.ideas.idea_files import extract_json
from scientist.llm.client import complete
from scientist.llm.ledger import Budget, Ledger
from scientist.llm.prompts import render
from scientist.llm.vision import user_message_with_images
from scientist.paper.tex_tools import run_tool
from scientist.store.files import atomic_write_text

logger = logging.getLogger(__name__)

SCHEMA_PATH = Path(__file__).resolve().parent / "review_form.schema.json"
REVIEW_FILE = "review.json"
# The research area the reviewers are told the papers come from, when the template names none (its manifest's
# template.field).
GENERAL_FIELD = "machine learning"
PDFTOTEXT_TIMEOUT_S = 120
PDFTOPPM_TIMEOUT_S = 120
# The pages a reviewer sees as images, and their resolution: 100 dpi keeps 9-point text readable at about 1,200 image
# tokens a page; ten pages hold a workshop paper's body and figures.
MAX_PAGES = 10
PAGE_DPI = 100
# What a review must hold when its reviewer was shown the pages (the form's other figure field is optional).
FIGURE_FIELDS = ("Figures_readable", "Figures_match_captions")
RETRIES = 1
# jsonschema quotes the faulty value in its message; a whole review quoted back would bury the point.
MAX_ERROR_CHARS = 300


class ReviewError(Exception):
    """The paper cannot be read as text, or no reviewer wrote a review that fits the form."""


@functools.cache
def _validator() -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(json.loads(SCHEMA_PATH.read_text(encoding="utf-8")))


def form_error(review: Any, saw_pages: bool = False) -> str | None:
    """What makes `review` break the form, as "<JSON path>: <rule>"; None when it fits. A reviewer shown the pages
    must fill in the FIGURE_FIELDS."""
    error = jsonschema.exceptions.best_match(_validator().iter_errors(review))
    if error is None:
        missing = [name for name in FIGURE_FIELDS if saw_pages and name not in review]
        return f"$: {missing[0]!r} is required when the pages are shown as images" if missing else None
    message = error.message if len(error.message) <= MAX_ERROR_CHARS else error.message[:MAX_ERROR_CHARS] + "..."
    return f"{error.json_path}: {message}"


def pdf_text(pdf: Path) -> str:
    """The text of `pdf` as `pdftotext -layout` (poppler-utils) extracts it, keeping the columns of tables."""
    pdf = Path(pdf)
    if shutil.which("pdftotext") is None:
        raise ReviewError("pdftotext is not installed; the reviewers read the paper through it. Install "
                          "poppler-utils (apt-get install poppler-utils, or `make setup`).")
    if not pdf.is_file():
        raise ReviewError(f"{pdf}: no such PDF file")
    # Sandboxed like the build: the PDF came from LLM-written TeX. It works in an empty folder of its own.
    with tempfile.TemporaryDirectory() as workdir:
        result = run_tool(["pdftotext", "-layout", str(pdf.resolve()), "-"], Path(workdir), PDFTOTEXT_TIMEOUT_S,
                          readable=[pdf.resolve()])
    if result.returncode is None:
        raise ReviewError(f"{pdf}: pdftotext did not finish within {PDFTOTEXT_TIMEOUT_S} s")
    if result.returncode != 0:
        reason = result.stderr.strip() or "no message"
        raise ReviewError(f"{pdf}: pdftotext cannot read it (exit code {result.returncode}): {reason}")
    text = result.stdout
    if not text.strip():
        raise ReviewError(f"{pdf}: the PDF holds no text that pdftotext can extract (are its pages images?)")
    return text


def pdf_pages(pdf: Path, max_pages: int = MAX_PAGES, dpi: int = PAGE_DPI) -> list[bytes]:
    """The first `max_pages` pages of `pdf` as PNG images, rendered at `dpi` by `pdftoppm` (poppler-utils) in the
    sandbox pdftotext runs in."""
    pdf = Path(pdf)
    if shutil.which("pdftoppm") is None:
        raise ReviewError("pdftoppm is not installed; the reviewers see the paper's pages through it. Install "
                          "poppler-utils (apt-get install poppler-utils, or `make setup`).")
    with tempfile.TemporaryDirectory() as workdir:
        prefix = Path(workdir) / "page"
        result = run_tool(["pdftoppm", "-png", "-r", str(dpi), "-l", str(max_pages), str(pdf.resolve()), str(prefix)],
                          Path(workdir), PDFTOPPM_TIMEOUT_S, readable=[pdf.resolve()])
        if result.returncode is None:
            raise ReviewError(f"{pdf}: pdftoppm did not finish within {PDFTOPPM_TIMEOUT_S} s")
        if result.returncode != 0:
            reason = result.stderr.strip() or "no message"
            raise ReviewError(f"{pdf}: pdftoppm cannot render it (exit code {result.returncode}): {reason}")
        # page-1.png ... or page-01.png ...: pdftoppm pads the number to the width of the page count.
        pages = sorted(Path(workdir).glob("page-*.png"), key=lambda path: int(path.stem.rsplit("-", 1)[1]))
        return [page.read_bytes() for page in pages]


def review_paper(pdf: Path, model: str, ledger: Ledger, budget: Budget, num_reviews: int = 3,
                 temperature: float = 0.75, field: str = GENERAL_FIELD, pages: bool = False) -> dict:
    """`num_reviews` independent reviews of the paper and a meta-review of them. With `pages` (`model` sees images),
    each reviewer also gets the paper's first MAX_PAGES pages as images and must judge its figures.

    Returns {"reviews", "meta_review", "dropped", "model", "num_reviews", "pages_shown"}: "reviews" holds the reviews
    that fit the form, "dropped" one {"which", "reason"} per review (or meta-review) still unusable after its retry,
    "meta_review" is None only when the meta-review was dropped, and "pages_shown" counts the page images each
    reviewer got (0 without `pages`, or when the pages could not be rendered: the reviewers then read the text
    only). Raises ReviewError when the PDF cannot be read as text or no review fits the form; LLM errors,
    BudgetExceeded included, propagate.
    """
    if num_reviews < 1:
        raise ValueError(f"num_reviews must be >= 1, got {num_reviews}")
    system = {"role": "system", "content": render("review_system", field=field)}
    text = pdf_text(pdf)
    images = _page_images(pdf) if pages else []
    if images:
        # pdftotext ends every page with a form feed.
        figures = render("review_figures_pages", shown=len(images), total=max(text.count("\f"), len(images)))
        paper = user_message_with_images(render("review_paper", paper_text=text, figures=figures.strip()), images)
    else:
        figures = render("review_figures_text").strip()
        paper = {"role": "user", "content": render("review_paper", paper_text=text, figures=figures)}
    reviews, dropped = [], []
    for number in range(1, num_reviews + 1):
        review, problem = _review_on_form(model, [system, paper], "review", ledger, budget, temperature,
                                          saw_pages=bool(images))
        if review is None:
            logger.warning("Review %d of %s dropped: %s", number, pdf, problem)
            dropped.append({"which": f"review {number}", "reason": problem})
        else:
            reviews.append(review)
    if not reviews:
        reasons = "; ".join(f"{d['which']}: {d['reason']}" for d in dropped)
        raise ReviewError(f"{pdf}: none of the {num_reviews} reviews fits the review form ({reasons})")

    meta_request = {"role": "user", "content": render("review_meta", num_reviews=len(reviews),
                                                      reviews=json.dumps(reviews, indent=2))}
    meta_review, problem = _review_on_form(model, [system, meta_request], "meta_review", ledger, budget, temperature)
    if meta_review is None:
        logger.warning("The meta-review of %s dropped: %s", pdf, problem)
        dropped.append({"which": "meta-review", "reason": problem})
    return {"reviews": reviews, "meta_review": meta_review, "dropped": dropped, "model": model,
            "num_reviews": num_reviews, "pages_shown": len(images)}


def _page_images(pdf: Path) -> list[bytes]:
    """The pages as images for the reviewers; none, with a warning, when they cannot be rendered."""
    try:
        return pdf_pages(pdf)
    except ReviewError as err:
        logger.warning("The reviewers read the text only: %s", err)
        return []


def _review_on_form(model: str, messages: list[dict], stage: str, ledger: Ledger, budget: Budget,
                    temperature: float, saw_pages: bool = False) -> tuple[dict | None, str | None]:
    """(the review, None) once a reply fits the form; (None, the last problem) when no attempt does."""
    conversation = list(messages)
    for _ in range(1 + RETRIES):
        # A copy, so that what was sent stays as it was sent while the conversation grows.
        reply = complete(model, list(conversation), stage=stage, ledger=ledger, budget=budget,
                         temperature=temperature)
        review, problem = _read_review(reply, saw_pages)
        if problem is None:
            return review, None
        conversation += [{"role": "assistant", "content": reply},
                         {"role": "user", "content": render("review_invalid", error=problem)}]
    return None, problem


def _read_review(reply: str, saw_pages: bool) -> tuple[dict | None, str | None]:
    try:
        review = extract_json(reply)
    except ValueError as err:
        return None, str(err)
    problem = form_error(review, saw_pages)
    return (None, problem) if problem else (review, None)


def write_review(idea_dir: Path, review: dict) -> Path:
    """Save what review_paper returned as <idea_dir>/review.json; a crash mid-write leaves the old file whole."""
    path = Path(idea_dir) / REVIEW_FILE
    atomic_write_text(path, json.dumps(review, indent=2) + "\n")
    return path
