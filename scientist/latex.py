"""The LaTeX side of the write-up: the paper template, the parts that code writes, the build and its checks.

The coder writes prose into one file per section (SECTIONS). Everything else is written here, deterministically:
the results table from each run's final_info.json (so that no number in it can be misquoted), the figures from
the idea's plots, and references.bib from the literature search's Paper records only (so that no reference can
be invented). Build errors and check findings come back as LatexProblem records that name the file and line the
coder should fix.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import shutil
import subprocess
import unicodedata
from dataclasses import dataclass
from pathlib import Path

from .files import atomic_write_text
from .folder import FinishedRun
from .manifest import SCORED_DIRECTIONS, Manifest, Metric, MetricRegistry

SECTIONS = ("title", "abstract", "introduction", "background", "method", "experimental_setup", "results",
            "conclusion", "related_work")
MAIN_FILE = "paper.tex"
SECTIONS_DIR = "sections"
TABLE_FILE = "results_table_generated.tex"
FIGURES_FILE = "figures_generated.tex"
FIGURES_DIR = "figures"
BIB_FILE = "references.bib"
PDF_NAME = "paper.pdf"
REQUIRED_TOOLS = ("pdflatex", "bibtex", "chktex")
GENERATED_HEADER = "% Written by scientist/latex.py from {source}; edits here are overwritten.\n"

# --- the results table ---

SIGNIFICANT_DIGITS = 4
DESCRIPTION_WIDTH = "4.2cm"
BASELINE_DESCRIPTION = "Baseline"
MISSING_DESCRIPTION = "no description given"
MISSING_VALUE = "--"
DIRECTION_MARKS = {"higher": r"\,$\uparrow$", "lower": r"\,$\downarrow$"}

# --- figures: the plots the manifest lists, in its order ---

FIGURE_WIDTH = r"0.85\linewidth"
GRAPHICS_EXTENSIONS = (".pdf", ".png", ".jpg", ".jpeg")  # what pdflatex's graphicx tries for a name without one

# --- the bibliography ---

BIB_MAX_AUTHORS = 10  # more become "and others" (et al.)
KEY_SKIPPED_WORDS = frozenset({"a", "an", "the", "on", "of", "in", "for", "and", "to", "with", "from", "by"})
URL_PATTERN = re.compile(r"https?://[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=%]+")

# --- the build ---

PDFLATEX_COMMAND = ("pdflatex", "-interaction=nonstopmode", "-halt-on-error", "-file-line-error", MAIN_FILE)
BIBTEX_COMMAND = ("bibtex", Path(MAIN_FILE).stem)
# TeX wraps log lines at 79 characters; unwrapped, a message and its file name stay on one line.
TEX_ENVIRONMENT = {"max_print_line": "10000", "error_line": "254", "half_error_line": "238"}
# Removed before each build: a stale .aux or .bbl left by a broken build can break the next one.
BUILD_SUFFIXES = (".aux", ".bbl", ".blg", ".log", ".out", ".pdf")
LOG_TAIL_CHARS = 3000
LOG_FATAL_LINE = "==> Fatal error occurred"  # follows every fatal error; says nothing of its own
LOG_EMERGENCY_STOP = "Emergency stop."  # the same, unless it is the only error there is
CONTEXT_LOOKAHEAD = 12  # log lines after an error in which TeX shows its "l.12 ..." context
CHKTEX_TIMEOUT_S = 30

# chktex warnings dropped as style noise: each fires often on sound LaTeX, and fixing it costs the coder a round.
CHKTEX_NOISE = {
    1: "command terminated with space (fires on ordinary macros followed by text)",
    2: "non-breaking space before \\cite or \\ref (typographic nicety)",
    8: "wrong length of dash (fires on number ranges and compound words)",
    12: "interword spacing after abbreviations such as 'et al.'",
    13: "intersentence spacing after a capital letter such as 'SAE.'",
    24: "space before \\label",
    36: "space in front of a parenthesis (fires on f(x) and on citations)",
}

# Braces become text symbols rather than \{ and \}: BibTeX counts braces, escaped or not.
_LATEX_SPECIALS = {
    "\\": r"\textbackslash{}", "{": r"\textbraceleft{}", "}": r"\textbraceright{}", "&": r"\&", "%": r"\%",
    "$": r"\$", "#": r"\#", "_": r"\_", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
}
# Characters that pdflatex reads as they are with T1 fonts (found by compiling each one), and replacements for a
# few symbols that paper titles use; anything else becomes its unaccented ASCII form, a Greek macro, or is dropped.
_SAFE_CHARACTERS = (frozenset(chr(code) for code in range(0xA1, 0x180)) - frozenset("ĦħĸĿŀŉŦŧſ\u00ad")
                    | frozenset("–—‘’“”…•†‡‰‹›€™"))
_SYMBOLS = {"−": "-", "≈": r"$\approx$", "≤": r"$\leq$", "≥": r"$\geq$", "→": r"$\rightarrow$", "∼": r"$\sim$"}
_GREEK_MACROS = frozenset(
    "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu nu xi pi rho sigma tau upsilon phi chi "
    "psi omega Gamma Delta Theta Lambda Xi Pi Sigma Upsilon Phi Psi Omega".split())

# pdflatex -file-line-error writes errors as "./sections/method.tex:12: message".
_FILE_LINE_ERROR = re.compile(
    r"^(?:\./)?(?P<file>[^\s:()]+\.(?:tex|bbl|aux|sty|cls|def|cfg|clo|fd)):(?P<line>\d+): (?P<message>.*)$")
_PLAIN_ERROR = re.compile(r"^! (?P<message>.*)$")
_CONTEXT_LINE = re.compile(r"^l\.(?P<line>\d+) ?(?P<context>.*)$")
# The error \inputsection in paper.tex raises when a section file leaves an environment or a group open.
_SECTION_LEFT_OPEN = re.compile(r"(?P<file>sections/\w+\.tex) ends inside .*?(?:on input line (?P<line>\d+))?\.?$")
_INPUT_SECTION = re.compile(r"\\inputsection\{(?P<name>\w+)\}")
_UNDEFINED = re.compile(
    r"Warning: (?P<kind>Citation|Reference) `(?P<key>[^']*)' on page \S+ undefined on input line (?P<line>\d+)")
_BIBTEX_ERROR = re.compile(r"^(?P<message>.+?)---line (?P<line>\d+) of file (?P<file>\S+)$", re.MULTILINE)
_CHKTEX_FORMAT = "%f:%l:%n:%k:%m\n"
_CHKTEX_LINE = re.compile(r"^(?P<file>[^:]+):(?P<line>\d+):(?P<number>\d+):(?P<kind>\w+):(?P<message>.*)$")

_COMMENT = re.compile(r"(?<!\\)((?:\\\\)*)%.*")
_CITE = re.compile(r"\\(?:[cC]ite(?:p|t|alp|alt|author|year|yearpar|num)?|nocite)\*?(?:\s*\[[^\]]*\]){0,2}"
                   r"\s*\{(?P<args>[^}]*)\}")
_REF = re.compile(r"\\(?:ref|eqref|pageref|autoref|nameref|cref|Cref)\*?\s*\{(?P<args>[^}]*)\}")
_LABEL = re.compile(r"\\label\s*\{(?P<args>[^}]*)\}")
_GRAPHICS = re.compile(r"\\includegraphics\*?(?:\s*\[[^\]]*\])?\s*\{(?P<args>[^}]*)\}")
_SECTION = re.compile(r"\\section\*?\s*(?:\[[^\]]*\])?\s*\{(?P<args>(?:[^{}]|\{[^{}]*\})*)\}")
# Commands that belong to paper.tex alone; \\end{document} in a section silently cuts the paper short there.
_MAIN_FILE_ONLY = re.compile(r"\\(?:documentclass\b|begin\{document\}|end\{document\}|bibliography(?:style)?\b)")
_BIB_KEY = re.compile(r"^\s*@(?!comment|string|preamble)\w+\s*\{\s*(?P<key>[^,\s]+)\s*,",
                      re.MULTILINE | re.IGNORECASE)


@dataclass(frozen=True)
class LatexProblem:
    """Something to fix, in `file` (relative to the latex folder) at `line` when known."""

    file: str
    line: int | None
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line is not None else self.file
        return f"{where}: {self.message}"


@dataclass(frozen=True)
class CompileResult:
    """ok: a PDF was built with no LaTeX or BibTeX error; pdf is then its copy beside the latex folder.
    problems: the errors, or on success the warnings worth fixing (undefined citations and references)."""

    ok: bool
    pdf: Path | None
    problems: list[LatexProblem]
    log_tail: str


# --- text ---

def escape_latex(text: str) -> str:
    """Plain text as LaTeX that pdflatex and BibTeX read back as the same text, on one line."""
    return "".join(_LATEX_SPECIALS.get(char) or _text_character(char) for char in " ".join(text.split()))


def _text_character(char: str) -> str:
    if not char.isprintable():  # control characters stop pdflatex
        return ""
    if char.isascii() or char in _SAFE_CHARACTERS:
        return char
    if char in _SYMBOLS:
        return _SYMBOLS[char]
    decomposed = unicodedata.normalize("NFKD", char)
    plain = decomposed.encode("ascii", "ignore").decode()
    return plain or _greek_macro(decomposed[:1])


def _greek_macro(char: str) -> str:
    """$\\alpha$ for α and $\\Omega$ for Ω; '' for a character that is not a Greek letter with a macro."""
    words = unicodedata.name(char, "").split()
    if words[:2] != ["GREEK", "SMALL"] and words[:2] != ["GREEK", "CAPITAL"]:
        return ""
    letter = words[-1].lower() if words[1] == "SMALL" else words[-1].capitalize()
    return f"$\\{letter}$" if letter in _GREEK_MACROS else ""


def _ascii_words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9]+", unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode().lower())


# --- the template ---

def copy_template(template_latex: Path, idea_dir: Path) -> Path:
    """idea_dir/latex as a copy of the template; one that already exists is kept as it is."""
    latex_dir = Path(idea_dir) / "latex"
    if not latex_dir.exists():
        shutil.copytree(template_latex, latex_dir,
                        ignore=shutil.ignore_patterns(*(f"*{suffix}" for suffix in BUILD_SUFFIXES)))
    return latex_dir


def tools_missing() -> list[str]:
    return [tool for tool in REQUIRED_TOOLS if shutil.which(tool) is None]


# --- the results table ---

def _metric_value(info: dict, group: str, name: str) -> float | None:
    """The metric's mean when its group ran and the value is a finite number (the harness writes NaN as null)."""
    body = info.get(group)
    if not isinstance(body, dict) or body.get("status") != "ok":
        return None
    value = (body.get("means") or {}).get(name)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def _shown_exactly(value: float) -> bool:
    return value.is_integer() and abs(value) < 10 ** SIGNIFICANT_DIGITS


def _rounded(value: float) -> float:
    """The value as the table shows it."""
    return value if _shown_exactly(value) else float(f"{value:.{SIGNIFICANT_DIGITS}g}")


def format_table_number(value: float) -> str:
    """Whole numbers below 10^SIGNIFICANT_DIGITS exactly, others to SIGNIFICANT_DIGITS significant digits with
    trailing zeros kept; in text mode, so that \\textbf can bold it: 32, 0.9370, \\textminus 0.01000,
    1.825\\texttimes 10\\textsuperscript{5}."""
    if _shown_exactly(value):
        return str(int(value)).replace("-", r"\textminus ")
    mantissa, _, exponent = f"{value:#.{SIGNIFICANT_DIGITS}g}".partition("e")
    text = mantissa.replace("-", r"\textminus ")
    if exponent:
        power = int(exponent)
        text += r"\texttimes 10\textsuperscript{" + (r"\textminus " if power < 0 else "") + f"{abs(power)}}}"
    return text


def _goodness(metric: Metric, value: float) -> float:
    """Larger is better, for a metric with a scored direction."""
    if metric.direction == "higher":
        return value
    if metric.direction == "lower":
        return -value
    return -abs(value - metric.target)


def _best_cells(metric: Metric, values: list[float | None]) -> set[int]:
    """Indices of the best values as shown (rounded), so that numbers that look equal are bolded alike; none for a
    metric that is not scored or that fewer than two runs report."""
    shown = {i: _rounded(value) for i, value in enumerate(values) if value is not None}
    if metric.direction not in SCORED_DIRECTIONS or len(shown) < 2:
        return set()
    best = max(_goodness(metric, value) for value in shown.values())
    return {i for i, value in shown.items() if _goodness(metric, value) == best}


def _column_heading(metric: Metric, heading: str) -> str:
    if metric.direction == "target":
        return heading + rf"\,$\rightarrow {metric.target:g}$"
    return heading + DIRECTION_MARKS.get(metric.direction, "")


def write_results_table(runs: list[FinishedRun], registry: MetricRegistry, latex_dir: Path) -> Path:
    """results_table_generated.tex: one row per run (the baseline first), one column per key metric of the
    registry; metrics that no run reports are left out."""
    latex_dir = Path(latex_dir)
    columns = []  # (metric, heading, meaning, values per run, indices of the best values)
    for metric in registry.key_metrics:
        values = [_metric_value(run.info, metric.group, metric.name) for run in runs]
        if any(value is not None for value in values):
            heading = escape_latex(metric.display or metric.name)
            columns.append((metric, heading, escape_latex(metric.description), values, _best_cells(metric, values)))
    header = ["Run", "Description", *(_column_heading(metric, heading) for metric, heading, *_ in columns)]
    rows = []
    for i, run in enumerate(runs):
        description = BASELINE_DESCRIPTION if run.number == 0 else run.description or MISSING_DESCRIPTION
        cells = [str(run.number), escape_latex(description)]
        for _, _, _, values, best in columns:
            number = MISSING_VALUE if values[i] is None else format_table_number(values[i])
            cells.append(rf"\textbf{{{number}}}" if i in best else number)
        rows.append(cells)
    legend = "; ".join(f"{heading}: {meaning}" for _, heading, meaning, *_ in columns)
    caption = (
        f"Key metrics on held-out tokens for the baseline (run 0) and each successful run, to {SIGNIFICANT_DIGITS} "
        r"significant digits as each run's final\_info.json records them. Bold marks the best value of each scored "
        r"metric ($\uparrow$: higher is better, $\downarrow$: lower is better). " + legend + ".")
    lines = [
        GENERATED_HEADER.format(source="run_*/final_info.json and state.json").rstrip(),
        r"\begin{table}[tbp]",
        r"  \centering",
        r"  \small",
        f"  \\caption{{{caption}}}",
        r"  \label{tab:results}",
        rf"  \begin{{tabular}}{{r>{{\raggedright\arraybackslash}}p{{{DESCRIPTION_WIDTH}}}{'r' * len(columns)}}}",
        r"    \toprule",
        "    " + " & ".join(header) + r" \\",
        r"    \midrule",
        *("    " + " & ".join(cells) + r" \\" for cells in rows),
        r"    \bottomrule",
        r"  \end{tabular}",
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
    return "".join(_ascii_words(last)) or "anon"


def _cite_key(paper: dict) -> str:
    """Last name of the first author, year, first word of the title that is not a little word: bricken2023towards."""
    words = _ascii_words(paper.get("title") or "")
    first_word = next((word for word in words if word not in KEY_SKIPPED_WORDS), words[0] if words else "untitled")
    year = str(paper["year"]) if paper.get("year") else ""
    return f"{_first_author_name(paper.get('authors') or [])}{year}{first_word}"


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
        "year": str(paper.get("year") or ""),
        "journal": venue,
        "url": url if URL_PATTERN.fullmatch(url) else "",
    }
    body = "".join(f"  {name} = {{{value}}},\n" for name, value in fields.items() if value)
    return f"@{'article' if venue else 'misc'}{{{key},\n{body}}}\n"


def write_bibliography(papers: list[dict], latex_dir: Path) -> dict[str, str]:
    """references.bib from Paper.to_json() records, and nothing else; returns {cite key: title}.

    A paper without a title is left out, and one whose title and year repeat an earlier one is written once.
    """
    titles: dict[str, str] = {}
    seen, entries = set(), []
    for paper in papers:
        title = " ".join(str(paper.get("title") or "").split())
        identity = (tuple(_ascii_words(title)), paper.get("year"))
        if not title or identity in seen:
            continue
        seen.add(identity)
        key = _unique_key(_cite_key(paper), titles)
        titles[key] = title
        entries.append(_bib_entry(key, {**paper, "title": title}))
    atomic_write_text(Path(latex_dir) / BIB_FILE, "\n".join(entries))
    return titles


# --- the build ---

def _run_tool(command: tuple[str, ...], latex_dir: Path, timeout_s: float) -> subprocess.CompletedProcess | None:
    """The finished process, or None when it ran past timeout_s (it is killed)."""
    try:
        return subprocess.run(command, cwd=latex_dir, env={**os.environ, **TEX_ENVIRONMENT}, stdin=subprocess.DEVNULL,
                              capture_output=True, text=True, errors="replace", timeout=timeout_s)
    except subprocess.TimeoutExpired:
        return None


def _build_file(latex_dir: Path, suffix: str) -> Path:
    """What pdflatex and bibtex write beside paper.tex: paper.log, paper.aux, paper.pdf, ..."""
    return latex_dir / Path(MAIN_FILE).with_suffix(suffix)


def _read(path: Path) -> str:
    return path.read_text(encoding="utf-8", errors="replace") if path.exists() else ""


def _failed(problems: list[LatexProblem], output: str) -> CompileResult:
    return CompileResult(False, None, problems, output[-LOG_TAIL_CHARS:])


def _file_at_line(latex_dir: Path, line: int, needle: str) -> str:
    """The first of the paper's source files whose line `line` contains needle (TeX's warnings name the line
    but not the file); the main file when none does."""
    for name in _source_files(latex_dir):
        lines = _read(latex_dir / name).splitlines()
        if line <= len(lines) and needle in lines[line - 1]:
            return name
    return MAIN_FILE


def _log_errors(log: str) -> list[LatexProblem]:
    """The errors in a pdflatex log, in the order TeX met them."""
    lines = log.splitlines()
    problems = [problem for i, text in enumerate(lines)
                if (problem := _log_error(text, lines[i + 1:i + CONTEXT_LOOKAHEAD]))]
    specific = [problem for problem in problems if problem.message != LOG_EMERGENCY_STOP]
    return specific or problems


def _log_error(text: str, following: list[str]) -> LatexProblem | None:
    """The error a log line starts, with the context line TeX shows after it; None for any other line."""
    located = _FILE_LINE_ERROR.match(text)
    plain = None if located else _PLAIN_ERROR.match(text)
    if not (located or plain):
        return None
    context = next(filter(None, map(_CONTEXT_LINE.match, following)), None)
    if located:
        file, line, message = located["file"], int(located["line"]), located["message"].strip()
    else:  # TeX did not say which file; its context line still gives the line
        file, line, message = MAIN_FILE, int(context["line"]) if context else None, plain["message"].strip()
    if message.startswith(LOG_FATAL_LINE):
        return None
    left_open = _SECTION_LEFT_OPEN.search(message)
    in_section = _INPUT_SECTION.search(context["context"]) if context and file == MAIN_FILE else None
    if left_open:
        file, line = left_open["file"], int(left_open["line"]) if left_open["line"] else None
    elif in_section:  # the error struck as the section file ended, e.g. inside an unclosed argument
        file, line = f"{SECTIONS_DIR}/{in_section['name']}.tex", None
    elif context and context["context"].strip():
        message += f" (at: {context['context'].strip()})"
    return LatexProblem(file, line, message)


def _log_warnings(log: str, latex_dir: Path) -> list[LatexProblem]:
    """Undefined citations and references, located in the source file that holds them."""
    problems = []
    for match in _UNDEFINED.finditer(log):
        line, key = int(match["line"]), match["key"]
        missing = f"no entry in {BIB_FILE}" if match["kind"] == "Citation" else f"no \\label{{{key}}}"
        problem = LatexProblem(_file_at_line(latex_dir, line, key), line, f"{match['kind']} `{key}' is undefined "
                               f"({missing})")
        if problem not in problems:
            problems.append(problem)
    return problems


def _pdflatex(latex_dir: Path, timeout_s: float) -> CompileResult | None:
    """One pdflatex pass; None when it succeeded."""
    done = _run_tool(PDFLATEX_COMMAND, latex_dir, timeout_s)
    log = _read(_build_file(latex_dir, ".log"))
    if done is None:
        return _failed([LatexProblem(MAIN_FILE, None, f"pdflatex ran past {timeout_s:g} s and was stopped "
                                                      "(a macro that calls itself?)")], log)
    if done.returncode != 0 or not _build_file(latex_dir, ".pdf").exists():
        problems = _log_errors(log) or [LatexProblem(MAIN_FILE, None,
                                                     f"pdflatex exited with code {done.returncode} and no PDF")]
        return _failed(problems, log or done.stdout)
    return None


def _bibliography(latex_dir: Path, timeout_s: float) -> CompileResult | None:
    """BibTeX for the citations in the .aux, when there are any; None when that went well."""
    aux = _read(_build_file(latex_dir, ".aux"))
    if r"\bibdata{" not in aux:
        return _failed([LatexProblem(MAIN_FILE, None, "the paper ended before \\bibliography: does a section file "
                                                      "hold \\end{document}?")], aux)
    if r"\citation{" not in aux:
        return None
    done = _run_tool(BIBTEX_COMMAND, latex_dir, timeout_s)
    if done is None:
        return _failed([LatexProblem(BIB_FILE, None, f"bibtex ran past {timeout_s:g} s and was stopped")], "")
    problems = [LatexProblem(m["file"], int(m["line"]), m["message"].strip())
                for m in _BIBTEX_ERROR.finditer(done.stdout)]
    if done.returncode >= 2 and not problems:  # bibtex exits 1 for warnings, 2 for errors
        problems = [LatexProblem(BIB_FILE, None, f"bibtex failed: {done.stdout.strip()[-500:]}")]
    if problems:
        return _failed(problems, done.stdout)
    bbl = _build_file(latex_dir, ".bbl")
    if r"\bibitem" not in _read(bbl):
        bbl.unlink(missing_ok=True)  # none of the cited keys exists: an empty bibliography would stop LaTeX
    return None


def compile_pdf(latex_dir: Path, timeout_s: float = 120, check_only: bool = False) -> CompileResult:
    """pdflatex, bibtex when anything is cited, pdflatex twice; every tool under timeout_s. On success the PDF is
    copied to the idea folder (latex_dir/../paper.pdf).

    check_only: one pdflatex pass, which finds every LaTeX error (what an edit needs to know), and no PDF copied;
    references are not resolved yet then, so no warnings are returned."""
    latex_dir = Path(latex_dir)
    for suffix in BUILD_SUFFIXES:
        _build_file(latex_dir, suffix).unlink(missing_ok=True)
    if check_only:
        failure = _pdflatex(latex_dir, timeout_s)
        return failure or CompileResult(True, None, [], "")
    failure = (_pdflatex(latex_dir, timeout_s) or _bibliography(latex_dir, timeout_s)
               or _pdflatex(latex_dir, timeout_s) or _pdflatex(latex_dir, timeout_s))
    if failure:
        return failure
    pdf = latex_dir.parent / PDF_NAME
    shutil.copyfile(_build_file(latex_dir, ".pdf"), pdf)
    log = _read(_build_file(latex_dir, ".log"))
    return CompileResult(True, pdf, _log_warnings(log, latex_dir), log[-LOG_TAIL_CHARS:])


class PassedChecks:
    """The sources of every check-only compile that passed, by digest, in a JSON file (the idea's
    logs/latex_checks.json): a resumed idea replaying its write-up does not compile again what compiled before."""

    def __init__(self, path: Path):
        self.path = path
        self.digests: set[str] = set(json.loads(path.read_text())) if path.exists() else set()

    def compile(self, latex_dir: Path) -> CompileResult:
        digest = sources_digest(latex_dir)
        if digest in self.digests:
            return CompileResult(True, None, [], "")
        result = compile_pdf(latex_dir, check_only=True)
        if result.ok:
            self.digests.add(digest)
            atomic_write_text(self.path, json.dumps(sorted(self.digests)))
        return result


def sources_digest(latex_dir: Path) -> str:
    """A digest of every file pdflatex may read from latex_dir: all of them but its own build outputs."""
    build = {_build_file(latex_dir, suffix) for suffix in BUILD_SUFFIXES}
    digest = hashlib.sha256()
    for path in sorted(p for p in latex_dir.rglob("*") if p.is_file() and p not in build):
        digest.update(str(path.relative_to(latex_dir)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


# --- checks ---

def chktex(latex_dir: Path) -> list[LatexProblem]:
    """chktex's warnings for each section file, without the ones in CHKTEX_NOISE."""
    latex_dir = Path(latex_dir)
    problems = []
    for name in SECTIONS:
        section = f"{SECTIONS_DIR}/{name}.tex"
        if not (latex_dir / section).exists():
            continue
        done = subprocess.run(["chktex", "-q", "-I0", "-f", _CHKTEX_FORMAT, section], cwd=latex_dir,
                              stdin=subprocess.DEVNULL, capture_output=True, text=True, errors="replace",
                              timeout=CHKTEX_TIMEOUT_S)
        for match in map(_CHKTEX_LINE.match, done.stdout.splitlines()):
            if match and int(match["number"]) not in CHKTEX_NOISE:
                problems.append(LatexProblem(match["file"], int(match["line"]),
                                             f"chktex {match['kind'].lower()} {match['number']}: {match['message']}"))
    return problems


def _source_files(latex_dir: Path) -> list[str]:
    """The files the paper is built from, relative to latex_dir; the generated ones before the sections, so that
    a duplicate label or figure is reported in the section, where the coder can fix it."""
    names = [MAIN_FILE, TABLE_FILE, FIGURES_FILE, *(f"{SECTIONS_DIR}/{name}.tex" for name in SECTIONS)]
    return [name for name in names if (latex_dir / name).exists()]


def _line_at(text: str, offset: int) -> int:
    return text.count("\n", 0, offset) + 1


def _uses(sources: dict[str, str], pattern: re.Pattern, split: bool = True) -> list[tuple[str, int, str]]:
    """(file, line, argument) for each use of a command in the sources; arguments split at commas when split."""
    found = []
    for file, text in sources.items():
        for match in pattern.finditer(text):
            line = _line_at(text, match.start())
            arguments = match["args"].split(",") if split else [match["args"]]
            found += [(file, line, " ".join(argument.split())) for argument in arguments if argument.strip()]
    return found


def _duplicates(uses: list[tuple[str, int, str]], what: str, normalise=str) -> list[LatexProblem]:
    """Each use of a value that an earlier use already had, naming where that first one is."""
    first_seen: dict[str, tuple[str, int]] = {}
    problems = []
    for file, line, value in uses:
        key = normalise(value)
        if key in first_seen:
            first_file, first_line = first_seen[key]
            problems.append(LatexProblem(file, line, f"duplicate {what} '{value}' "
                                                     f"(first at {first_file}:{first_line})"))
        else:
            first_seen[key] = (file, line)
    return problems


def _graphics_file(latex_dir: Path, name: str) -> Path | None:
    """The file \\includegraphics{name} reads, or None when there is none."""
    candidates = [name] if Path(name).suffix else [name + extension for extension in GRAPHICS_EXTENSIONS]
    return next((latex_dir / c for c in candidates if (latex_dir / c).is_file()), None)


def check_paper(latex_dir: Path) -> list[LatexProblem]:
    """Citations without a references.bib entry, figures without a file, references without a label, and
    duplicate section titles, labels and figure files."""
    latex_dir = Path(latex_dir)
    sources = {name: "\n".join(_COMMENT.sub(r"\1", line) for line in _read(latex_dir / name).splitlines())
               for name in _source_files(latex_dir)}
    bib_keys = {m["key"] for m in _BIB_KEY.finditer(_read(latex_dir / BIB_FILE))}
    labels = _uses(sources, _LABEL, split=False)
    label_names = {name for _, _, name in labels}
    graphics = _uses(sources, _GRAPHICS, split=False)
    problems = [LatexProblem(file, line, f"\\cite key '{key}' is not in {BIB_FILE}")
                for file, line, key in _uses(sources, _CITE) if key != "*" and key not in bib_keys]
    problems += [LatexProblem(file, line, f"\\includegraphics file '{name}' does not exist")
                 for file, line, name in graphics if _graphics_file(latex_dir, name) is None]
    problems += [LatexProblem(file, line, f"\\ref to '{name}', which no \\label defines")
                 for file, line, name in _uses(sources, _REF) if name not in label_names]
    problems += [LatexProblem(file, _line_at(text, match.start()), f"{match[0]} belongs in {MAIN_FILE} only")
                 for file, text in sources.items() if file.startswith(SECTIONS_DIR)
                 for match in _MAIN_FILE_ONLY.finditer(text)]
    problems += _duplicates(_uses(sources, _SECTION, split=False), "\\section title", str.lower)
    problems += _duplicates(labels, "\\label")
    problems += _duplicates(graphics, "figure file",
                            lambda name: str(_graphics_file(latex_dir, name) or Path(name)))
    return problems
