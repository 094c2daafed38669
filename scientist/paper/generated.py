"""The parts of the paper that code writes, never the coder: the results table (from the runs' results, so that
no number in it can be misquoted, with metrics.compare's verdicts as its marks, so that no change within the seed
noise looks like an effect), the figures (the plots the manifest lists), the appendix (what the template's stages
wrote for the paper) and references.bib (from the literature search's records only, so that no reference can be
invented)."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from scientist.experiment.manifest import Manifest, Metric, MetricRegistry
from scientist.experiment.metrics import Frontier, MetricChange, compare, frontier_rule_text, noise_rule_text
from scientist.experiment.noise import group_part, mean_of, number, ok_groups
from scientist.experiment.seeds import seed_count
from scientist.ideas.literature import ENGINES
from scientist.paper.latex import BIB_FILE, FIGURES_FILE, GENERATED_HEADER, TABLE_FILE, ascii_words, escape_latex
from scientist.store.files import atomic_write_text
from scientist.store.folder import FinishedRun

FIGURES_DIR = "figures"
# --- the results table ---

SIGNIFICANT_DIGITS = 4
SPREAD_DIGITS = 2  # a seed spread is shown to two significant digits: it says how far the mean's digits hold
DESCRIPTION_WIDTH = "4.2cm"
WIDE_TABLE_COLUMNS = 7  # more metric columns than this are scaled to the text width (graphicx's \resizebox)
WIDE_TABLE_COLUMNS_WITH_SPREAD = 4  # as many "mean ± spread" columns fill the text width
BASELINE_DESCRIPTION = "Baseline"
REFERENCE_DESCRIPTION = "Reference (see caption)"
MISSING_DESCRIPTION = "no description given"
MISSING_VALUE = "--"
DIRECTION_MARKS = {"higher": r"\,$\uparrow$", "lower": r"\,$\downarrow$"}
# A run's value whose change from the baseline exceeds the noise (metrics.compare's verdict); within noise: none.
VERDICT_MARKS = {"better": r"\textsuperscript{\textdagger}", "worse": r"\textsuperscript{\textdaggerdbl}"}

# --- figures: the plots the manifest lists, in its order ---

FIGURE_WIDTH = r"0.85\linewidth"
GRAPHICS_EXTENSIONS = (".pdf", ".png", ".jpg", ".jpeg")  # what pdflatex's graphicx tries for a name without one

# --- the bibliography ---

BIB_MAX_AUTHORS = 10  # more become "and others" (et al.)
KEY_SKIPPED_WORDS = frozenset({"a", "an", "the", "on", "of", "in", "for", "and", "to", "with", "from", "by"})
URL_PATTERN = re.compile(r"https?://[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=%]+")
YEAR_PATTERN = re.compile(r"[0-9]{1,4}")
SOURCE_NOTE = "Found with {engine}"  # a record's source: the literature engine whose search returned it


# --- the results table ---

def _group_number(info: dict, group: str, field: str, name: str) -> float | None:
    """A finite number from the group's `field` ("means", or "stds" of a run summarised over seeds) when the group
    ran; None otherwise (the harness writes NaN as null, and a spread of fewer than two seeds is null)."""
    return number(group_part(ok_groups(info).get(group), field).get(name))


def _shown_exactly(value: float, digits: int) -> bool:
    return value.is_integer() and abs(value) < 10 ** digits


def format_table_number(value: float, digits: int = SIGNIFICANT_DIGITS) -> str:
    """Whole numbers below 10^digits exactly, others to `digits` significant digits with trailing zeros kept;
    in text mode, so that \\textbf can bold it: 32, 0.9370, \\textminus 0.01000,
    1.825\\texttimes 10\\textsuperscript{5}."""
    if _shown_exactly(value, digits):
        return str(int(value)).replace("-", r"\textminus ")
    mantissa, _, exponent = f"{value:#.{digits}g}".partition("e")
    text = mantissa.replace("-", r"\textminus ")
    if exponent:
        power = int(exponent)
        text += r"\texttimes 10\textsuperscript{" + (r"\textminus " if power < 0 else "") + f"{abs(power)}}}"
    return text


def _cell(mean: float | None, spread: float | None, verdict: str | None) -> str:
    """The mean (bold when better than the baseline beyond the noise), ± the seeds' spread when the run has one,
    and the verdict's mark."""
    if mean is None:
        return MISSING_VALUE
    text = format_table_number(mean)
    if verdict == "better":
        text = rf"\textbf{{{text}}}"
    if spread is not None:
        text += rf" $\pm$ {format_table_number(spread, SPREAD_DIGITS)}"
    return text + VERDICT_MARKS.get(verdict, "")


def _column_heading(metric: Metric, heading: str) -> str:
    if metric.direction == "target":
        return heading + rf"\,$\rightarrow {metric.target:g}$"
    return heading + DIRECTION_MARKS.get(metric.direction, "")


def _verdicts(runs: list[FinishedRun], registry: MetricRegistry,
              frontier: Frontier | None) -> list[dict[str, MetricChange]]:
    """Each run's changes against the baseline (run 0, the first of runs) by metric key; none for the baseline."""
    baseline = runs[0].info if runs and runs[0].number == 0 else None
    return [{change.key: change for change in compare(baseline, run.info, registry, frontier)}
            if baseline is not None and run.number != 0 else {} for run in runs]


def _reference_row(runs: list[FinishedRun], metrics: list[Metric]) -> list[str]:
    """The row of reference values (Metric.reference, read from the baseline's results: on a ground-truth preset, the
    true features' scores), under the runs; empty when no column has one."""
    if not runs or runs[0].number != 0:
        return []
    values = [mean_of(runs[0].info, metric.reference) if metric.reference else None for metric in metrics]
    if all(value is None for value in values):
        return []
    return ["", REFERENCE_DESCRIPTION, *(_cell(value, None, None) for value in values)]


def _reference_sentence(registry: MetricRegistry, metrics: list[Metric]) -> str:
    """What the reference row is, each description once with the columns it serves."""
    columns: dict[str, list[str]] = {}
    for metric in metrics:
        if metric.reference:
            text = registry.lookup(*metric.reference.split(".", 1)).description
            columns.setdefault(text, []).append(metric.display or metric.name)
    return "".join(f"Reference row, {', '.join(escape_latex(c) for c in named)}: {escape_latex(text)}. "
                   for text, named in columns.items())


def _seeds_sentence(runs: list[FinishedRun]) -> str:
    seeded = [(run.number, seed_count(run.info)) for run in runs if seed_count(run.info) > 1]
    if not seeded:
        return ""
    counts = "; ".join(f"{'baseline' if number == 0 else f'run {number}'}: {count} seeds" for number, count in seeded)
    return rf"A value with $\pm$ is the mean and sample standard deviation over the run's seeds ({counts}). "


def _caption(runs: list[FinishedRun], columns: list[tuple], registry: MetricRegistry,
             frontier: Frontier | None) -> str:
    """What the numbers are, what bold and the marks mean and the rules behind them, all from the result files."""
    caption = (f"Key metrics for the baseline (run 0) and each successful run, to {SIGNIFICANT_DIGITS} significant "
               r"digits as each run's results record them ($\uparrow$: higher is better, $\downarrow$: lower is "
               "better). " + _seeds_sentence(runs))
    if runs and runs[0].number == 0:
        baseline = runs[0].info
        caption += (r"Bold with \textdagger: better than the baseline by more than the noise threshold; "
                    r"\textdaggerdbl: worse by more than it; a run's value without a mark is within the noise of the "
                    "baseline (or not scored). " + escape_latex(noise_rule_text(baseline)) + " ")
        if rule := frontier_rule_text(frontier, baseline, registry):
            caption += escape_latex(rule) + " "
        if _reference_row(runs, [metric for metric, *_ in columns]):
            caption += _reference_sentence(registry, [metric for metric, *_ in columns])
    return caption + "; ".join(f"{heading}: {meaning}" for _, heading, meaning, *_ in columns) + "."


def write_results_table(runs: list[FinishedRun], registry: MetricRegistry, latex_dir: Path,
                        frontier: Frontier | None = None) -> Path:
    """results_table_generated.tex: one row per run (the baseline first), one column per key metric of the
    registry; metrics that no run reports are left out. A run's values are marked by their verdict against the
    baseline (metrics.compare: beyond the seed noise, and for a frontier metric against the baseline's frontier)."""
    latex_dir = Path(latex_dir)
    verdicts = _verdicts(runs, registry, frontier)
    columns = []  # (metric, heading, meaning, each run's (mean, spread), each run's change or None)
    for metric in registry.key_metrics:
        numbers = [(_group_number(run.info, metric.group, "means", metric.name),
                    _group_number(run.info, metric.group, "stds", metric.name)) for run in runs]
        if any(mean is not None for mean, _ in numbers):
            changes = [found.get(metric.key) for found in verdicts]
            columns.append((metric, escape_latex(metric.display or metric.name), escape_latex(metric.description),
                            numbers, changes))
    header = ["Run", "Description", *(_column_heading(metric, heading) for metric, heading, *_ in columns)]
    rows = []
    for i, run in enumerate(runs):
        description = BASELINE_DESCRIPTION if run.number == 0 else run.description or MISSING_DESCRIPTION
        rows.append([str(run.number), escape_latex(description),
                     *(_cell(*numbers[i], changes[i].verdict if changes[i] else None)
                       for _, _, _, numbers, changes in columns)])
    reference = _reference_row(runs, [metric for metric, *_ in columns])
    if reference:
        rows.append(reference)
    spread_shown = any(spread is not None for *_, numbers, _ in columns for _, spread in numbers)
    tabular = [
        rf"  \begin{{tabular}}{{r>{{\raggedright\arraybackslash}}p{{{DESCRIPTION_WIDTH}}}{'r' * len(columns)}}}",
        r"    \toprule",
        "    " + " & ".join(header) + r" \\",
        r"    \midrule",
        *("    " + " & ".join(cells) + r" \\" for cells in rows),
        r"    \bottomrule",
        r"  \end{tabular}",
    ]
    if len(columns) > (WIDE_TABLE_COLUMNS_WITH_SPREAD if spread_shown else WIDE_TABLE_COLUMNS):
        tabular = [r"  \resizebox{\linewidth}{!}{%", *tabular, "  }"]
    lines = [
        GENERATED_HEADER.format(source="run_*/final_info.json, the seeds' summaries and state.json").rstrip(),
        r"\begin{table}[tbp]",
        r"  \centering",
        r"  \small",
        f"  \\caption{{{_caption(runs, columns, registry, frontier)}}}",
        r"  \label{tab:results}",
        *tabular,
        r"\end{table}",
    ]
    path = latex_dir / TABLE_FILE
    atomic_write_text(path, "\n".join(lines) + "\n")
    return path


# --- figures ---

def write_figures(idea_dir: Path, manifest: Manifest, latex_dir: Path) -> list[str]:
    """figures_generated.tex: a figure for each plot of the manifest that the idea folder has, copied into
    latex/figures/. Returns the figures' labels, for the text to cite."""
    idea_dir, latex_dir = Path(idea_dir), Path(latex_dir)
    blocks, labels = [], []
    for spec in manifest.plots:
        plot, stem, caption = idea_dir / spec.file, spec.stem, spec.caption
        if not plot.exists():
            continue
        labels.append(f"fig:{stem}")
        (latex_dir / FIGURES_DIR).mkdir(parents=True, exist_ok=True)
        shutil.copyfile(plot, latex_dir / FIGURES_DIR / plot.name)
        blocks.append("\n".join([
            r"\begin{figure}[tbp]",
            r"  \centering",
            rf"  \includegraphics[width={FIGURE_WIDTH}]{{{FIGURES_DIR}/{plot.name}}}",
            f"  \\caption{{{caption}}}",
            f"  \\label{{fig:{stem}}}",
            r"\end{figure}",
        ]))
    body = "\n\n".join(blocks) if blocks else "% The idea folder has no plots."
    atomic_write_text(latex_dir / FIGURES_FILE, GENERATED_HEADER.format(source="the idea's plots") + body + "\n")
    return labels


# --- the appendix: what the template's stages wrote for the paper ---

APPENDIX_FILE = "appendix_generated.tex"
LABEL = re.compile(r"\\label\{([^{}]+)\}")


def write_appendix(finished: list[FinishedRun], manifest: Manifest, idea_dir: Path, latex_dir: Path) -> list[str]:
    """appendix_generated.tex: for each template stage that writes LaTeX (its manifest's `appendix`), a section
    with what it wrote for each run, baseline first. The stage's code is the template's, not the LLM's. Returns
    the labels in it, for the text to cite."""
    sections = []
    for stage in manifest.stages:
        if not stage.appendix:
            continue
        parts = [path.read_text(encoding="utf-8") for run in finished
                 if (path := Path(idea_dir) / f"run_{run.number}" / stage.appendix).is_file()]
        if parts:
            slug = re.sub(r"[^a-z0-9]+", "_", stage.name.lower()).strip("_")
            sections.append(f"\\section{{{escape_latex(stage.name)}}}\n\\label{{sec:{slug}}}\n\n" + "\n\n".join(parts))
    body = "\n\n".join(sections) if sections else "% No template stage wrote anything for the paper's appendix."
    atomic_write_text(Path(latex_dir) / APPENDIX_FILE,
                      GENERATED_HEADER.format(source="the template stages' appendix files") + body + "\n")
    return LABEL.findall("\n".join(sections))


# --- the bibliography ---

def _first_author_name(authors: list[str]) -> str:
    """The first author's last name in ASCII: 'Trenton Bricken' and 'Bricken, Trenton' both give 'bricken'."""
    if not authors:
        return "anon"
    author = authors[0]
    last = author.split(",")[0] if "," in author else (author.split() or [""])[-1]
    return "".join(ascii_words(last)) or "anon"


def _year(paper: dict) -> str:
    """The record's year when it is one: the services' JSON could put any text there, and the year goes into the cite
    key and references.bib unescaped."""
    year = str(paper.get("year") or "")
    return year if YEAR_PATTERN.fullmatch(year) else ""


def _cite_key(paper: dict) -> str:
    """Last name of the first author, year, first word of the title that is not a little word: bricken2023towards."""
    words = ascii_words(paper.get("title") or "")
    first_word = next((word for word in words if word not in KEY_SKIPPED_WORDS), words[0] if words else "untitled")
    return f"{_first_author_name(paper.get('authors') or [])}{_year(paper)}{first_word}"


def _unique_key(key: str, taken: dict) -> str:
    """key itself the first time; then keyb, keyc, ... so that a key handed out earlier never changes."""
    suffix = ord("b")
    candidate = key
    while candidate in taken:
        candidate, suffix = f"{key}{chr(suffix)}", suffix + 1
    return candidate


def _bib_entry(key: str, paper: dict) -> str:
    authors = [escape_latex(author) for author in paper.get("authors") or [] if author.strip()]
    if len(authors) > BIB_MAX_AUTHORS:
        authors = authors[:BIB_MAX_AUTHORS] + ["others"]
    venue = escape_latex(paper.get("venue") or "")
    url = (paper.get("url") or "").strip()
    fields = {
        "title": "{" + escape_latex(paper["title"]) + "}",  # double braces keep the title's capitals
        "author": " and ".join(authors),
        "year": _year(paper),
        "journal": venue,
        "url": url if URL_PATTERN.fullmatch(url) else "",
        "note": _source_note(paper.get("engine")),
    }
    body = "".join(f"  {name} = {{{value}}},\n" for name, value in fields.items() if value)
    return f"@{'article' if venue else 'misc'}{{{key},\n{body}}}\n"


def _source_note(engine) -> str:
    """Which engine found the record, by its display name ("" when the record does not say)."""
    if not isinstance(engine, str) or not engine.strip():
        return ""
    return escape_latex(SOURCE_NOTE.format(engine=ENGINES[engine].display_name if engine in ENGINES else engine))


def write_bibliography(papers: list[dict], latex_dir: Path) -> dict[str, str]:
    """references.bib from Paper.to_json() records, and nothing else; returns {cite key: title}. A record's
    "engine" (the literature engine that returned it) becomes the entry's note.

    A paper without a title is left out, and one whose title and year repeat an earlier one is written once.
    """
    titles: dict[str, str] = {}
    seen, entries = set(), []
    for paper in papers:
        title = " ".join(str(paper.get("title") or "").split())
        identity = (tuple(ascii_words(title)), paper.get("year"))
        if not title or identity in seen:
            continue
        seen.add(identity)
        key = _unique_key(_cite_key(paper), titles)
        titles[key] = title
        entries.append(_bib_entry(key, {**paper, "title": title}))
    atomic_write_text(Path(latex_dir) / BIB_FILE, "\n".join(entries))
    return titles
