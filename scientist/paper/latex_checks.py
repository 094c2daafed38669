"""Checks of the paper's LaTeX sources beyond the build: chktex's warnings, and citations, figures, references,
labels and section titles that do not resolve or appear twice. Each finding names the file and line to fix."""

from __future__ import annotations

import re
from pathlib import Path

from scientist.paper.latex import BIB_FILE, MAIN_FILE, SECTIONS, SECTIONS_DIR, LatexProblem, read_source, source_files
from scientist.paper.latex_guard import without_comments
from scientist.paper.tex_tools import run_tool

GRAPHICS_EXTENSIONS = (".pdf", ".png", ".jpg", ".jpeg")  # what pdflatex's graphicx tries for a name without one
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
_CHKTEX_FORMAT = "%f:%l:%n:%k:%m\n"
_CHKTEX_LINE = re.compile(r"^(?P<file>[^:]+):(?P<line>\d+):(?P<number>\d+):(?P<kind>\w+):(?P<message>.*)$")

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


def chktex(latex_dir: Path) -> list[LatexProblem]:
    """chktex's warnings for each section file, without the ones in CHKTEX_NOISE."""
    latex_dir = Path(latex_dir)
    problems = []
    for name in SECTIONS:
        section = f"{SECTIONS_DIR}/{name}.tex"
        if not (latex_dir / section).exists():
            continue
        done = run_tool(["chktex", "-q", "-I0", "-f", _CHKTEX_FORMAT, section], latex_dir, CHKTEX_TIMEOUT_S)
        if done.returncode is None:
            problems.append(LatexProblem(section, None, f"chktex ran past {CHKTEX_TIMEOUT_S} s and was stopped"))
        for match in map(_CHKTEX_LINE.match, done.stdout.splitlines()):
            if match and int(match["number"]) not in CHKTEX_NOISE:
                problems.append(LatexProblem(match["file"], int(match["line"]),
                                             f"chktex {match['kind'].lower()} {match['number']}: {match['message']}"))
    return problems


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
    sources = {name: without_comments(read_source(latex_dir / name)) for name in source_files(latex_dir)}
    bib_keys = {m["key"] for m in _BIB_KEY.finditer(read_source(latex_dir / BIB_FILE))}
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
