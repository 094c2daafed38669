"""The feature dashboards' part of the paper: run_i/dashboard/appendix.tex, one LaTeX figure per run.

The research loop gathers each run's appendix.tex under an appendix section named after the stage ("Feature
dashboards" in template.toml), so the fragment is the figure alone: a table of the features chosen by code (the
first of each sampled group: most frequent, random alive, rarest alive) with their density, their top-activating
held-out context (its most active token in bold) and the tokens their decoder direction promotes, labelled
fig:dashboard_<run>. Corpus text and tokens are escaped here, so that any of them compiles with pdflatex and T1
fonts; the fragment needs no package beyond LaTeX's own.
"""

import unicodedata

ROWS_PER_GROUP = 2
PROMOTED_TOKENS = 3
SIGNIFICANT_DIGITS = 4

# Braces become text symbols rather than \{ and \}: BibTeX counts braces, escaped or not, and the research loop
# escapes the same way.
_SPECIALS = {
    "\\": r"\textbackslash{}", "{": r"\textbraceleft{}", "}": r"\textbraceright{}", "&": r"\&", "%": r"\%",
    "$": r"\$", "#": r"\#", "_": r"\_", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
}
# Characters pdflatex reads as they are with T1 fonts, and replacements for a few symbols; anything else becomes its
# unaccented ASCII form, a Greek letter's macro, or is dropped.
_SAFE = (frozenset(chr(code) for code in range(0xA1, 0x180)) - frozenset("ĦħĸĿŀŉŦŧſ\u00ad")
         | frozenset("–—‘’“”…•†‡‰‹›€™"))
_SYMBOLS = {"−": "-", "≈": r"$\approx$", "≤": r"$\leq$", "≥": r"$\geq$", "→": r"$\rightarrow$", "∼": r"$\sim$"}
_GREEK = frozenset(
    "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu nu xi pi rho sigma tau upsilon phi chi "
    "psi omega Gamma Delta Theta Lambda Xi Pi Sigma Upsilon Phi Psi Omega".split())


def escape_latex(text: str) -> str:
    """Plain text as LaTeX that pdflatex prints as the same text, on one line (runs of whitespace become one space,
    and none is kept at either end)."""
    return "".join(_SPECIALS.get(char) or _text_character(char) for char in " ".join(text.split()))


def _text_character(char: str) -> str:
    if not char.isprintable():  # control characters stop pdflatex
        return ""
    if char.isascii() or char in _SAFE:
        return char
    if char in _SYMBOLS:
        return _SYMBOLS[char]
    decomposed = unicodedata.normalize("NFKD", char)
    return decomposed.encode("ascii", "ignore").decode() or _greek_macro(decomposed[:1])


def _greek_macro(char: str) -> str:
    words = unicodedata.name(char, "").split()
    if words[:2] not in (["GREEK", "SMALL"], ["GREEK", "CAPITAL"]):
        return ""
    letter = words[-1].lower() if words[1] == "SMALL" else words[-1].capitalize()
    return f"$\\{letter}$" if letter in _GREEK else ""


def format_number(value: float) -> str:
    """Whole numbers below 10^4 exactly, others to four significant digits, in text mode: 32, 0.01230,
    4.100\\texttimes 10\\textsuperscript{\\textminus 5}."""
    if float(value).is_integer() and abs(value) < 10 ** SIGNIFICANT_DIGITS:
        return str(int(value)).replace("-", r"\textminus ")
    mantissa, _, exponent = f"{value:#.{SIGNIFICANT_DIGITS}g}".partition("e")
    text = mantissa.replace("-", r"\textminus ")
    if exponent:
        power = int(exponent)
        text += r"\texttimes 10\textsuperscript{" + (r"\textminus " if power < 0 else "") + f"{abs(power)}}}"
    return text


def dashboard_label(run: str) -> str:
    return f"fig:dashboard_{run}"


def context_cell(before: str, token: str, after: str) -> str:
    """The context with its most active token in bold. escape_latex trims each part's ends, so the spaces around
    the token are put back here."""
    space_before = " " if before[-1:].isspace() or token[:1].isspace() else ""
    space_after = " " if after[:1].isspace() or token[-1:].isspace() else ""
    return rf"{escape_latex(before)}{space_before}\textbf{{{escape_latex(token)}}}{space_after}{escape_latex(after)}"


def appendix_tex(summary: dict, index_path: str = "dashboard/index.html") -> str:
    """The figure for one run, from its features.json contents (summary)."""
    run = summary["run"]
    rows = []
    for group in dict.fromkeys(f["group"] for f in summary["features"]):  # in the sampler's order
        for feature in [f for f in summary["features"] if f["group"] == group][:ROWS_PER_GROUP]:
            promoted = ", ".join(rf"\texttt{{{escape_latex(t['token']) or '?'}}}"
                                 for t in feature["promoted"][:PROMOTED_TOKENS])
            rows.append(rf"    {feature['id']} & {group} & {format_number(feature['density'])} & "
                        rf"{context_cell(*feature['top_context_parts'])} & {promoted} \\")
    caption = (f"Features of {escape_latex(run)}, chosen by code from its feature dashboards "
               f"({escape_latex(run)}/{escape_latex(index_path)} in the idea folder): density on held-out tokens, "
               "the top-activating held-out context with its most active token in bold, and the tokens the "
               "feature's decoder direction promotes through the unembedding.")
    return "\n".join([
        f"% Written by sae_harness/dashboard.py from {run}/dashboard/features.json.",
        r"\begin{figure}[tbp]", r"  \centering", r"  \small",
        r"  \begin{tabular}{@{}r l r p{0.48\linewidth} p{0.2\linewidth}@{}}",
        r"    feature & group & density & top context & promotes \\ \hline", *rows,
        r"  \end{tabular}", f"  \\caption{{{caption}}}", f"  \\label{{{dashboard_label(run)}}}", r"\end{figure}",
    ]) + "\n"
