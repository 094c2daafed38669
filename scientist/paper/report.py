"""A static HTML page over the ideas of one experiment: status, key metrics against the baseline, plots, files.

    python -m scientist.paper.report results/<experiment>      writes results/<experiment>/index.html

An idea folder is a subfolder with a state.json. The page has no scripts and loads nothing from outside, and
every link and image is relative, so it works opened from disk (file://) and in a copy of the results folder.
Anything an idea has not produced yet shows as "not yet". Verdicts come from scientist.experiment.metrics, never
from prose.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from datetime import datetime
from html import escape
from pathlib import Path
from urllib.parse import quote

from scientist.experiment.manifest import Manifest, ManifestError, Metric, manifest_of
from scientist.experiment.metrics import MetricChange, compare, format_number
from scientist.experiment.noise import read_frontier
from scientist.llm.ledger import Ledger, LedgerError
from scientist.paper.review import REVIEW_FILE
from scientist.search.tree import TreeError
from scientist.store.files import atomic_write_text
from scientist.store.folder import (
    LEDGER_FILE,
    NOTES_FILE,
    STATE_FILE,
    ResultsError,
    final_info_path,
    is_idea_folder,
    read_results,
    run_numbers,
)
from scientist.store.state import IdeaState

logger = logging.getLogger(__name__)

INDEX_FILE = "index.html"
PAPER_FILE = "paper.pdf"
# metrics.py writes "-" for a number that describes the run rather than scores it.
VERDICT_WORDS = {"better": "better", "worse": "worse", "within noise": "within noise", "n/a": "n/a", "-": "info"}
VERDICT_CLASSES = {"better": "verdict-better", "worse": "verdict-worse", "within noise": "verdict-noise",
                   "n/a": "verdict-na", "-": "verdict-info"}
NOT_YET = '<span class="not-yet">not yet</span>'

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 70em; padding: 0 1em; color: #222; }
section.idea { border: 1px solid #ccc; border-radius: 6px; padding: 0.5em 1.2em 1em; margin: 1.5em 0; }
h2 { margin-bottom: 0.2em; }
.state { color: #555; margin-top: 0; }
table.metrics { border-collapse: collapse; margin: 0.8em 0; }
table.metrics th, table.metrics td { border-bottom: 1px solid #ddd; padding: 0.25em 0.8em; text-align: left; }
table.metrics td.number { text-align: right; font-variant-numeric: tabular-nums; }
.verdict-better { color: #126b2f; font-weight: bold; }
.verdict-worse { color: #b3261e; font-weight: bold; }
.verdict-noise, .verdict-na, .verdict-info { color: #777; }
.not-yet { color: #999; font-style: italic; }
.paper-flags li { color: #b3261e; }
.plots { display: flex; flex-wrap: wrap; gap: 0.8em; }
.plots figure { margin: 0; }
.plots img { width: 220px; border: 1px solid #ddd; }
.plots figcaption { font-size: 0.8em; color: #555; }
"""


class ReportError(Exception):
    """The folder given is not an experiment's results folder."""


def write_report(experiment_results: Path) -> Path:
    """Write <experiment_results>/index.html over every idea folder in it; returns the page's path.

    A folder without ideas yet gets a page that says so: the launcher rewrites the page after each idea, even one
    that failed before its first state.json, and must not fail there.
    """
    experiment_results = Path(experiment_results)
    if not experiment_results.is_dir():
        raise ReportError(f"{experiment_results}: no such folder; give an experiment's results folder, "
                          "e.g. results/<experiment>")
    ideas = idea_folders(experiment_results)
    title = f"Results: {experiment_results.resolve().name}"
    generated = datetime.now().astimezone().isoformat(timespec="seconds")
    page = "\n".join([
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{escape(title)}</title>",
        f"<style>{STYLE}</style>",
        "</head><body>",
        f"<h1>{escape(title)}</h1>",
        f"<p>{len(ideas)} idea(s); page written {escape(generated)}. Metrics are those of each idea's last "
        "successful run against the baseline run_0.</p>",
        *(_idea_section(idea) for idea in ideas),
        "</body></html>",
        "",
    ])
    path = experiment_results / INDEX_FILE
    atomic_write_text(path, page)
    return path


def idea_folders(experiment_results: Path) -> list[Path]:
    """The subfolders with a state.json, oldest first (their names start with a timestamp)."""
    return sorted(path for path in Path(experiment_results).iterdir() if is_idea_folder(path))


def _idea_section(folder: Path) -> str:
    data = _read_json(folder / STATE_FILE)
    try:
        state = IdeaState.from_json(data) if data else IdeaState(idea=None)
    except (TypeError, ValueError) as err:
        logger.warning("%s is unreadable (%s); shown as not yet", folder / STATE_FILE, err)
        state = IdeaState(idea=None)
    try:
        manifest = manifest_of(folder)
    except ManifestError as err:
        logger.warning("%s", err)
        manifest = None
    return "\n".join([
        f'<section class="idea" id="{escape(folder.name)}">',
        f"<h2>{escape(folder.name)}</h2>",
        f'<p class="state">idea <b>{_text(state.idea)}</b>, status <b class="status">'
        f'{_text(state.status if data else None)}</b>, stage <b class="stage">{_text(state.stage if data else None)}'
        '</b></p>',
        _paper_flags(state),
        _metrics_table(folder, state, manifest),
        _file_list(folder, manifest),
        _plots(folder),
        "</section>",
    ])


def _paper_flags(state: IdeaState) -> str:
    """What the write-up stage could not make right: claims its data contradict, sections it had to revert."""
    paper = state.paper
    if paper is None:
        return ""
    lines = [f'<li class="contradiction">the paper contradicts its data: {escape(c)}</li>'
             for c in paper.contradictions]
    lines += [f'<li class="reverted">section {escape(s)} was reverted: it never compiled</li>'
              for s in paper.reverted_sections]
    if paper.error:
        lines.append(f'<li class="paper-error">no paper: {escape(paper.error)}</li>')
    return f'<ul class="paper-flags">{"".join(lines)}</ul>' if lines else ""


def last_successful_run(folder: Path, state: IdeaState) -> int | None:
    """The highest run that state.json records as succeeded and whose final_info.json is on disk."""
    return next((n for n in sorted(state.runs, reverse=True) if final_info_path(folder, n).is_file()), None)


def _metrics_table(folder: Path, state: IdeaState, manifest: Manifest | None) -> str:
    run = last_successful_run(folder, state)
    run_info = _read_results(folder, run) if run is not None else None
    if run_info is None or manifest is None:
        return f'<p class="metrics">Metrics: {NOT_YET}</p>'
    # A missing baseline leaves every verdict "n/a" rather than hiding the run's numbers.
    baseline = _read_results(folder, 0) or {}
    frontier = read_frontier(folder, manifest.baseline_plan.frontier_x)
    changes = {change.key: change for change in compare(baseline, run_info, manifest.metrics, frontier)}
    # Key metrics that neither run reports (an eval this template runs only on some presets) are left out.
    rows = [_metric_row(metric, change) for metric in manifest.metrics.key_metrics
            if (change := changes.get(metric.key)) and (change.baseline is not None or change.value is not None)]
    return "\n".join([
        '<table class="metrics">',
        f'<tr><th>metric</th><th>baseline (run_0)</th><th>run_{run}</th><th>verdict</th></tr>',
        *rows,
        "</table>",
    ])


def _metric_row(metric: Metric, change: MetricChange | None) -> str:
    baseline, value, verdict = (change.baseline, change.value, change.verdict) if change else (None, None, "n/a")
    return (f'<tr class="metric" data-metric="{escape(metric.name)}"><th>{escape(metric.name)}</th>'
            f'<td class="number baseline">{format_number(baseline)}</td>'
            f'<td class="number value">{format_number(value)}</td>'
            f'<td class="verdict {VERDICT_CLASSES[verdict]}">{VERDICT_WORDS[verdict]}</td></tr>')


def _file_list(folder: Path, manifest: Manifest | None) -> str:
    items = [
        ("Paper", _link(folder, PAPER_FILE)),
        ("Notes", _link(folder, NOTES_FILE)),
        ("Review", _review_summary(folder)),
        *((stage.name, _stage_outputs(folder, stage.output)) for stage in (manifest.stages if manifest else ())
          if stage.output),
        ("Cost", _cost(folder)),
        *_search_tree(folder),
    ]
    return '<ul class="files">' + "".join(f"<li>{escape(label)}: {html}</li>" for label, html in items) + "</ul>"


def _stage_outputs(folder: Path, output: str) -> str:
    """A link to what a template stage wrote for each run (run_i/<output>), baseline first."""
    runs = [n for n in run_numbers(folder) if (folder / f"run_{n}" / output).is_file()]
    links = [f'<a href="{_href(folder, f"run_{n}/{output}")}">run_{n}</a>' for n in runs]
    return ", ".join(links) or NOT_YET


def _search_tree(folder: Path) -> list[tuple[str, str]]:
    """The link to tree.html for an idea searched as a tree, the page written first so that the link never
    dangles; nothing for a linear idea."""
    from scientist.search.tree_html import write_tree_page  # here, not above: tree_html borrows this module's STYLE

    try:
        page = write_tree_page(folder)
    except TreeError as err:
        logger.warning("%s; no search tree page", err)
        return []
    return [("Search", f'<a href="{_href(folder, page.name)}">search tree</a>')] if page else []


def _review_summary(folder: Path) -> str:
    link = _link(folder, REVIEW_FILE)
    review = _read_json(folder / REVIEW_FILE)
    meta = review.get("meta_review") if review else None
    if not isinstance(meta, dict) or "Overall" not in meta or "Decision" not in meta:
        return link
    return (f'{link}, meta-review: Overall <b class="overall">{_text(meta["Overall"])}</b>/10, '
            f'<b class="decision">{_text(meta["Decision"])}</b>{_review_checks(review.get("reviews"))}')


# The form's yes/no checks, as the results page names them; the figure checks come from reviewers shown the pages.
REVIEW_CHECKS = (("Figures_readable", "figures readable"), ("Figures_match_captions", "figures match captions"),
                 ("References_correct", "references correct"))


def _review_checks(reviews) -> str:
    """"; figures readable: 3 of 3 reviewers, ..." for each check some review answered; "" when none did."""
    reviews = [review for review in reviews or [] if isinstance(review, dict)]
    counts = []
    for field, name in REVIEW_CHECKS:
        answers = [review[field] for review in reviews if isinstance(review.get(field), bool)]
        if answers:
            counts.append(f"{name}: {sum(answers)} of {len(answers)} reviewer(s)")
    return "; " + ", ".join(counts) if counts else ""


def _cost(folder: Path) -> str:
    path = folder / LEDGER_FILE
    if not path.is_file():
        return NOT_YET
    try:
        total = f"${Ledger(path).total_usd:.4f}"
    except LedgerError as err:
        logger.warning("%s", err)
        total = "unreadable ledger"
    return f'<span class="cost">{escape(total)}</span> ({_link(folder, LEDGER_FILE)})'


def _plots(folder: Path) -> str:
    figures = [f'<figure><a href="{_href(folder, png.name)}"><img src="{_href(folder, png.name)}" '
               f'alt="{escape(png.name)}"></a><figcaption>{escape(png.name)}</figcaption></figure>'
               for png in sorted(folder.glob("*.png"))]
    if not figures:
        return f"<p>Plots: {NOT_YET}</p>"
    return '<div class="plots">' + "".join(figures) + "</div>"


def _link(folder: Path, name: str) -> str:
    if not (folder / name).is_file():
        return NOT_YET
    return f'<a href="{_href(folder, name)}">{escape(name)}</a>'


def _href(folder: Path, name: str) -> str:
    """A link relative to index.html, which sits beside the idea folders."""
    return escape(f"{quote(folder.name)}/{quote(name)}")


def _text(value: object) -> str:
    return NOT_YET if value is None else escape(str(value))


def _read_results(folder: Path, run: int) -> dict | None:
    """The run's results (final_info.json with the groups scored after the runs); None when it has none, and also
    (with a warning) when they cannot be read."""
    if not final_info_path(folder, run).is_file():
        return None
    try:
        return read_results(folder, run)
    except ResultsError as err:
        logger.warning("%s; shown as not yet", err)
        return None


def _read_json(path: Path) -> dict | None:
    """The file's JSON object; None when it is missing, and also (with a warning) when it cannot be read."""
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as err:
        logger.warning("%s is unreadable (%s); shown as not yet", path, err)
        return None
    return data if isinstance(data, dict) else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scientist.paper.report",
                                     description="Write index.html over the ideas of one experiment's results.")
    parser.add_argument("experiment_results", type=Path, help="the experiment's results folder, "
                        "results/<experiment>")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
    try:
        # Given by hand, a folder without ideas is most likely the wrong folder (results/ rather than its child).
        if args.experiment_results.is_dir() and not idea_folders(args.experiment_results):
            raise ReportError(f"{args.experiment_results}: holds no idea folders (subfolders with a {STATE_FILE}); "
                              "give an experiment's results folder, e.g. results/<experiment>")
        path = write_report(args.experiment_results)
    except ReportError as err:
        print(f"python -m scientist.paper.report: {err}", file=sys.stderr)
        return 2
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
