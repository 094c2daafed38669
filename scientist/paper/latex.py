"""The LaTeX side of the write-up: the paper template, the parts that code writes, the build and its checks.

The coder writes prose into one file per section (SECTIONS). Everything else is written here, deterministically:
the results table from each run's final_info.json (so that no number in it can be misquoted), the figures from
the idea's plots, and references.bib from the literature search's Paper records only (so that no reference can
be invented). Build errors and check findings come back as LatexProblem records that name the file and line the
coder should fix. Every build starts with latex_guard's check of the sources and runs its tools sandboxed
(tex_tools): section text is LLM-written and must not lead TeX to files outside the latex folder.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import unicodedata
from dataclasses import dataclass
from pathlib import Path

from scientist.paper.latex_guard import refusals
from scientist.paper.tex_tools import run_tool
from scientist.store.files import atomic_write_text

SECTIONS = ("title", "abstract", "introduction", "background", "method", "experimental_setup", "results",
            "conclusion", "related_work")
MAIN_FILE = "paper.tex"
TABLE_FILE = "results_table_generated.tex"
FIGURES_FILE = "figures_generated.tex"
BIB_FILE = "references.bib"
SECTIONS_DIR = "sections"
PDF_NAME = "paper.pdf"
REQUIRED_TOOLS = ("pdflatex", "bibtex", "chktex")
GENERATED_HEADER = "% Written by scientist/paper/ from {source}; edits here are overwritten.\n"

# --- the build ---

PDFLATEX_COMMAND = ("pdflatex", "-interaction=nonstopmode", "-halt-on-error", "-file-line-error", MAIN_FILE)
BIBTEX_COMMAND = ("bibtex", Path(MAIN_FILE).stem)
BUILD_TIMEOUT_S = 120.0  # each tool run of a build
# What latex_guard checks before a build: every file TeX or BibTeX reads from the latex folder, whoever wrote it.
GUARDED_SUFFIXES = (".tex", ".bib")
# Removed before each build: a stale .aux or .bbl left by a broken build can break the next one.
BUILD_SUFFIXES = (".aux", ".bbl", ".blg", ".log", ".out", ".pdf")
LOG_TAIL_CHARS = 3000
LOG_FATAL_LINE = "==> Fatal error occurred"  # follows every fatal error; says nothing of its own
LOG_EMERGENCY_STOP = "Emergency stop."  # the same, unless it is the only error there is
CONTEXT_LOOKAHEAD = 12  # log lines after an error in which TeX shows its "l.12 ..." context

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


def ascii_words(text: str) -> list[str]:
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


# --- the build ---

def _build_file(latex_dir: Path, suffix: str) -> Path:
    """What pdflatex and bibtex write beside paper.tex: paper.log, paper.aux, paper.pdf, ..."""
    return latex_dir / Path(MAIN_FILE).with_suffix(suffix)


def read_source(path: Path) -> str:
    return path.read_text(encoding="utf-8", errors="replace") if path.exists() else ""


def _failed(problems: list[LatexProblem], output: str) -> CompileResult:
    return CompileResult(False, None, problems, output[-LOG_TAIL_CHARS:])


def _file_at_line(latex_dir: Path, line: int, needle: str) -> str:
    """The first of the paper's source files whose line `line` contains needle (TeX's warnings name the line
    but not the file); the main file when none does."""
    for name in source_files(latex_dir):
        lines = read_source(latex_dir / name).splitlines()
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


def _refused(latex_dir: Path) -> list[LatexProblem]:
    """latex_guard's refusals, in every file of latex_dir that TeX or BibTeX reads."""
    problems = []
    for path in sorted(latex_dir.rglob("*")):
        if path.suffix in GUARDED_SUFFIXES and path.is_file():
            name = path.relative_to(latex_dir).as_posix()
            problems += [LatexProblem(name, refusal.line, refusal.message)
                         for refusal in refusals(read_source(path), prose=name.startswith(f"{SECTIONS_DIR}/"))]
    return problems


def _pdflatex(latex_dir: Path, timeout_s: float) -> CompileResult | None:
    """One pdflatex pass; None when it succeeded."""
    done = run_tool(PDFLATEX_COMMAND, latex_dir, timeout_s)
    log = read_source(_build_file(latex_dir, ".log"))
    if done.returncode is None:
        return _failed([LatexProblem(MAIN_FILE, None, f"pdflatex ran past {timeout_s:g} s and was stopped "
                                                      "(a macro that calls itself?)")], log)
    if done.returncode != 0 or not _build_file(latex_dir, ".pdf").exists():
        problems = _log_errors(log) or [LatexProblem(MAIN_FILE, None,
                                                     f"pdflatex exited with code {done.returncode} and no PDF")]
        return _failed(problems, log or done.stdout)
    return None


def _bibliography(latex_dir: Path, timeout_s: float) -> CompileResult | None:
    """BibTeX for the citations in the .aux, when there are any; None when that went well."""
    aux = read_source(_build_file(latex_dir, ".aux"))
    if r"\bibdata{" not in aux:
        return _failed([LatexProblem(MAIN_FILE, None, "the paper ended before \\bibliography: does a section file "
                                                      "hold \\end{document}?")], aux)
    if r"\citation{" not in aux:
        return None
    done = run_tool(BIBTEX_COMMAND, latex_dir, timeout_s)
    if done.returncode is None:
        return _failed([LatexProblem(BIB_FILE, None, f"bibtex ran past {timeout_s:g} s and was stopped")], "")
    problems = [LatexProblem(m["file"], int(m["line"]), m["message"].strip())
                for m in _BIBTEX_ERROR.finditer(done.stdout)]
    if done.returncode >= 2 and not problems:  # bibtex exits 1 for warnings, 2 for errors
        problems = [LatexProblem(BIB_FILE, None, f"bibtex failed: {done.stdout.strip()[-500:]}")]
    if problems:
        return _failed(problems, done.stdout)
    bbl = _build_file(latex_dir, ".bbl")
    if r"\bibitem" not in read_source(bbl):
        bbl.unlink(missing_ok=True)  # none of the cited keys exists: an empty bibliography would stop LaTeX
    return None


def compile_pdf(latex_dir: Path, timeout_s: float = BUILD_TIMEOUT_S, check_only: bool = False) -> CompileResult:
    """latex_guard's check of the sources, then pdflatex, bibtex when anything is cited, pdflatex twice; every tool
    sandboxed and under timeout_s. On success the PDF is copied to the idea folder (latex_dir/../paper.pdf); on
    failure the copy there is the last one that compiled.

    check_only: the check and one pdflatex pass, which finds every LaTeX error (what an edit needs to know), and no
    PDF copied; references are not resolved yet then, so no warnings are returned."""
    latex_dir = Path(latex_dir)
    refused = _refused(latex_dir)
    if refused:
        return _failed(refused, "")
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
    log = read_source(_build_file(latex_dir, ".log"))
    return CompileResult(True, pdf, _log_warnings(log, latex_dir), log[-LOG_TAIL_CHARS:])


class PassedChecks:
    """The sources of every check-only compile that passed, by digest, in a JSON file (the idea's
    logs/latex_checks.json): a resumed idea replaying its write-up does not compile again what compiled before."""

    def __init__(self, path: Path, timeout_s: float = BUILD_TIMEOUT_S):
        self.path, self.timeout_s = path, timeout_s
        self.digests: set[str] = set(json.loads(path.read_text())) if path.exists() else set()

    def compile(self, latex_dir: Path) -> CompileResult:
        digest = sources_digest(latex_dir)
        if digest in self.digests:
            return CompileResult(True, None, [], "")
        result = compile_pdf(latex_dir, self.timeout_s, check_only=True)
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


def source_files(latex_dir: Path) -> list[str]:
    """The files the paper is built from, relative to latex_dir; the generated ones before the sections, so that
    a duplicate label or figure is reported in the section, where the coder can fix it."""
    names = [MAIN_FILE, TABLE_FILE, FIGURES_FILE, *(f"{SECTIONS_DIR}/{name}.tex" for name in SECTIONS)]
    return [name for name in names if (latex_dir / name).exists()]
