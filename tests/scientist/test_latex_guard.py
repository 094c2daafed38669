"""The check before every build of the paper, on source text alone: what it refuses, what it lets through, and how
it says so."""

import pytest

from scientist.paper.latex_guard import refusals
from tests.conftest import REPO

SECRET = "/home/researcher/.aws/credentials"


@pytest.mark.parametrize(("text", "message"), [
    (rf"\input{{{SECRET}}}", "reads a file outside the paper's latex folder"),
    (r"\input{../../../.env}", "reads a file outside the paper's latex folder (../../../.env"),
    (r"\include{~/notes}", "reads a file outside"),
    (r"\includegraphics[width=\linewidth]{/etc/ssl/private/key.pdf}", "reads a file outside"),
    (rf"\verbatiminput{{{SECRET}}}", "reads a file outside"),
    (r"\lstinputlisting{.bashrc}", "reads a file outside"),
    (r"\InputIfFileExists{/etc/passwd}{}{}", "reads a file outside"),
    (r"\input /etc/passwd", "must be followed by its file name in braces"),
    (r"\@@input{/etc/passwd}", "reads a file outside"),
    (r"\let\x\input \x{x}", "must be followed by its file name in braces"),
    (r"\newcommand\x[1]{\input{#1}}", "not a macro, a macro's parameter"),
    (r"\def\p{/etc/passwd}\input{\p}", "must be followed by its file name in braces"),
    (r"\inputsection{../../secret}", "{../...} names a path outside"),
    (r"\mycommand{/etc/passwd}", "{/etc/passwd...} names a path outside"),
    (r"\openin5=secret \read5 to \x", "\\openin is not allowed in the paper"),
    (r"\immediate\write18{cat secret > leak.tex}", "\\write is not allowed in the paper"),
    (r"\catcode`\%=12", "\\catcode is not allowed"),
    (r"\csname input\endcsname{x}", "\\csname is not allowed"),
    (r"\inp^^75t{x}", "^^ character codes are not allowed"),
    (r"\scantokens{\input{x}}", "\\scantokens is not allowed"),
    (r"\def\input@path{{x/}}", "\\input@path is not allowed"),
    (r"\usepackage{amsmath,verbatim}", "package verbatim is not among those the paper may load"),
    (r"\RequirePackage{catchfile}", "package catchfile"),
])
def test_each_way_out_of_the_folder_is_refused_with_its_reason(text, message):
    found = refusals(f"Some prose.\n{text}\n", prose=True)
    assert found and all(refusal.line == 2 for refusal in found)
    assert any(message in refusal.message for refusal in found), found


def test_a_path_is_reported_once_with_the_command_that_reads_it():
    (refusal,) = refusals(rf"\input{{{SECRET}}}", prose=True)
    assert refusal.message.startswith(rf"\input{{{SECRET}}} reads a file outside the paper's latex folder")
    assert "figures/name.png" in refusal.message  # what to write instead


def test_ordinary_latex_passes():
    prose = "\n".join([
        r"\section{Results}\label{sec:results}",
        r"As Table~\ref{tab:results} shows, 50\% of the features\\input is a word after a line break.",
        r"% \input{/etc/passwd} in a comment is never read",
        r"The ratio $1/2$ over $\{1,..,n\}$ \citep{bricken2023towards}; see \url{https://example.org/a_b?c=1#d}.",
        r"\begin{figure}\includegraphics[width=0.5\linewidth]{figures/training_curves.png}\end{figure}",
        r"\input{results_table_generated.tex}\include{sections/extra}\input{./local}",
        r"\newcommand{\ours}{TopK-SAE}\textbf{\ours} \emph{works}.",
    ])
    assert refusals(prose, prose=True) == []


def test_the_templates_paper_tex_passes_and_generated_text_is_not_held_to_prose_rules():
    for template in ("sae_variants", "modular_arithmetic"):
        assert refusals((REPO / "templates" / template / "latex" / "paper.tex").read_text(), prose=False) == []
    dashboard_row = r"7 & random & 0.01 & the \textbf{/usr} path & \texttt{..}, \texttt{/html} \\"
    assert refusals(dashboard_row, prose=False) == []
    assert refusals(r"\input{sections/#1}", prose=False) == []
    assert refusals(r"\input{/etc/passwd}\write18{x}", prose=False) != []
