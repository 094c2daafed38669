"""The check every build of the paper starts with: a source may read files only inside the latex folder, may not use
TeX's own file and shell access or change how TeX reads it, and may load only listed packages.

Section text is LLM-written, and the LLM reads titles and abstracts from the internet: one prompt injection could have
the paper \\input a user's ~/.bashrc, and the PDF's text goes to the reviewer model. A refusal goes back to the coder
as a LaTeX error does. The check cannot be complete (TeX is a programming language): the sandbox and TeX's own
restrictions (tex_tools.py) are what keep other files out; this check makes an attempt visible and its fix plain.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# Commands that read the file their argument names (LaTeX's, graphicx's, verbatim's, listings', fancyvrb's, minted's,
# pdfpages', import's, subfiles', standalone's, biblatex's); the name must be written out and stay in the folder.
FILE_COMMANDS = frozenset({
    "input", "@@input", "include", "includeonly", "InputIfFileExists", "IfFileExists", "includegraphics",
    "verbatiminput", "VerbatimInput", "BVerbatimInput", "LVerbatimInput", "lstinputlisting", "inputminted",
    "includepdf", "bibliography", "addbibresource", "import", "subimport", "subfile", "includestandalone"})
_FILE_READING = "TeX's own file reading"
_FILE_WRITING = "TeX's own file writing (and \\write18 runs programs)"
_READS_DIFFERENTLY = "it changes how TeX reads the text after it, so that no check can read it as TeX will"
_HIDDEN_NAME = "it builds a command from a name that no check can see"
_PDFTEX_FILES = "pdfTeX's own file access"
_RUNS_CODE = "it runs code outside TeX"
# Commands refused wherever they appear, with the reason the coder is told.
FORBIDDEN = {
    "openin": _FILE_READING, "read": _FILE_READING, "readline": _FILE_READING, "closein": _FILE_READING,
    "input@path": "it sets where \\input looks for files",
    "openout": _FILE_WRITING, "write": _FILE_WRITING, "immediate": _FILE_WRITING, "closeout": _FILE_WRITING,
    "catcode": _READS_DIFFERENTLY, "uccode": _READS_DIFFERENTLY, "lccode": _READS_DIFFERENTLY,
    "endlinechar": _READS_DIFFERENTLY, "scantokens": _READS_DIFFERENTLY,
    "csname": _HIDDEN_NAME,
    "pdffiledump": _PDFTEX_FILES, "pdfmdfivesum": _PDFTEX_FILES, "pdffilesize": _PDFTEX_FILES,
    "pdffilemoddate": _PDFTEX_FILES, "pdfximage": _PDFTEX_FILES, "pdfobj": _PDFTEX_FILES,
    "directlua": _RUNS_CODE, "luaexec": _RUNS_CODE, "ShellEscape": _RUNS_CODE, "shellescape": _RUNS_CODE,
}
# Packages a paper may load: text, math, tables, figures, references, fonts. Left out on purpose: those that read or
# write files or run programs (verbatim, listings, fancyvrb, minted, pdfpages, catchfile, shellesc, filecontents,
# datatool, csvsimple, pgfplotstable, import, subfiles, standalone, attachfile, embedfile, luacode, pythontex).
ALLOWED_PACKAGES = frozenset({
    "algorithm", "algorithm2e", "algorithmic", "algpseudocode", "amsfonts", "amsmath", "amssymb", "amsthm", "array",
    "babel", "bm", "booktabs", "caption", "cleveref", "color", "courier", "dcolumn", "enumitem", "float", "fontenc",
    "geometry", "graphicx", "helvet", "hyperref", "inputenc", "lmodern", "longtable", "makecell", "mathptmx",
    "mathtools", "microtype", "multirow", "natbib", "nicefrac", "placeins", "siunitx", "soul", "subcaption", "subfig",
    "tabularx", "textcomp", "threeparttable", "times", "ulem", "url", "wrapfig", "xcolor", "xspace"})
PACKAGE_COMMANDS = frozenset({"usepackage", "RequirePackage"})

_COMMENT = re.compile(r"(?<!\\)((?:\\\\)*)%.*")
# A control sequence, or a control symbol such as \\ or \%, so that "\\input" reads as a line break and a word.
_CONTROL = re.compile(r"\\(?:(?P<name>[A-Za-z@]+)|.)", re.DOTALL)
_ARGUMENT = re.compile(r"\*?(?:\s*\[[^\]]*\])*\s*\{(?P<value>[^{}]*)\}")
_FILE_NAME = re.compile(r"[\w .,:+/-]+")
# paper.tex's own \inputsection reads sections/#1: a macro's parameter after a folder of latex/.
_TEMPLATE_FILE_NAME = re.compile(r"(?:[\w .,:+/-]|#\d)+")
# In prose, a brace group that starts with an absolute or home path, or a `..` step: a macro (the coder's own, or
# paper.tex's \inputsection) could hand it to \input. Not checked in generated files, whose escaped corpus tokens may
# look like paths (\texttt{/usr}) but reach no macro of the coder's.
_PATH_OUT = re.compile(r"(?<!\\)\{\s*(?P<path>/[\w.~-][^{}\s]*|~[\w.-]*/[^{}\s]*)|(?<=[{/])(?P<up>\.\.)(?=[/}])")
_CARET_NOTATION = re.compile(r"\^\^")


@dataclass(frozen=True)
class Refusal:
    """Why a line of a source is refused, and what to write instead."""

    line: int
    message: str


def without_comments(text: str) -> str:
    """text with each line's TeX comment removed (an escaped \\% stays), line numbers kept."""
    return "\n".join(_COMMENT.sub(r"\1", line) for line in text.splitlines())


def _line_at(text: str, offset: int) -> int:
    return text.count("\n", 0, offset) + 1


def _leaves_folder(name: str) -> bool:
    """True for an absolute or home path, or one with a `..` or dot-file step: TeX would look outside latex/."""
    parts = name.strip().split("/")
    return name.strip().startswith(("/", "~")) or any(part.startswith(".") and part != "." for part in parts)


def _file_refusal(command: str, value: str | None, prose: bool) -> str | None:
    outside = [name.strip() for name in (value or "").split(",") if name.strip() and _leaves_folder(name)]
    if outside:
        return (f"\\{command}{{{value}}} reads a file outside the paper's latex folder ({', '.join(outside)}: an "
                "absolute path, a `..' or `~' step, or a dot file); the paper reads only its own files, by relative "
                "names such as figures/name.png")
    if value is None or not (_FILE_NAME if prose else _TEMPLATE_FILE_NAME).fullmatch(value.strip() or "-"):
        return (f"\\{command} must be followed by its file name in braces, written out (letters, digits, "
                "`_ - . / ,'), not a macro, a macro's parameter or a character code")
    return None


def _package_refusal(command: str, value: str | None) -> str | None:
    if value is None:
        return f"\\{command} must be followed by the package names in braces"
    unknown = [name.strip() for name in value.split(",") if name.strip() and name.strip() not in ALLOWED_PACKAGES]
    if unknown:
        return (f"package {', '.join(unknown)} is not among those the paper may load (ALLOWED_PACKAGES in "
                "scientist/paper/latex_guard.py: packages that read or write files or run programs are left out); "
                "use a listed one")
    return None


def _command_refusal(name: str, text: str, end: int, prose: bool) -> tuple[str, int] | None:
    """Why the command `name`, ending at `end` in text, is refused, and where the text it covers ends; None when
    it is not refused."""
    # TeX reads \input@path as \input and @path where @ is not a letter; both readings are checked.
    for candidate in dict.fromkeys((name, name.split("@")[0])):
        if candidate in FORBIDDEN:
            return f"\\{candidate} is not allowed in the paper: {FORBIDDEN[candidate]}; remove it", end
        if candidate in FILE_COMMANDS or candidate in PACKAGE_COMMANDS:
            argument = _ARGUMENT.match(text, end)
            value, covered = (argument["value"], argument.end()) if argument else (None, end)
            message = (_file_refusal(candidate, value, prose) if candidate in FILE_COMMANDS
                       else _package_refusal(candidate, value))
            return (message, covered) if message else None
    return None


def refusals(text: str, prose: bool) -> list[Refusal]:
    """What in one source file the paper may not do. prose: a section file, which the coder writes (stricter: no
    macro parameter in a file name, no path out of the folder in any brace group); otherwise a file code writes
    (a generated part, references.bib) or the template's paper.tex."""
    text = without_comments(text)
    found = [Refusal(_line_at(text, match.start()), "^^ character codes are not allowed in the paper (they can spell "
                                                    "any command out of sight of this check); write the character")
             for match in _CARET_NOTATION.finditer(text)]
    covered = []  # the spans of refused commands and their arguments: a path there is reported once, with them
    for match in _CONTROL.finditer(text):
        if match["name"] and (refused := _command_refusal(match["name"], text, match.end(), prose)):
            found.append(Refusal(_line_at(text, match.start()), refused[0]))
            covered.append(range(match.start(), refused[1]))
    for match in _PATH_OUT.finditer(text) if prose else ():
        if not any(match.start() in span for span in covered):
            found.append(Refusal(_line_at(text, match.start()),
                                 f"{{{match['path'] or '../'}...}} names a path outside the paper's latex folder; the "
                                 "paper reads only its own files, by relative names such as figures/name.png"))
    return sorted(dict.fromkeys(found), key=lambda refusal: refusal.line)
