"""The LaTeX side of the write-up, with the real pdflatex, bibtex and chktex: the template builds, generated
numbers equal final_info.json, references come only from paper records, and problems name file and line."""

import json
import re
import struct
import subprocess
import zlib
from pathlib import Path

import pytest

from scientist.paper import generated, latex, latex_checks
from scientist.store.folder import IdeaFolder
from tests.conftest import TEMPLATE_DIR
from tests.scientist.conftest import SAE_MANIFEST, SAE_METRICS

needs_tex = pytest.mark.usefixtures("latex_tools")

SPECIAL_DESCRIPTION = "TopK (k=32) & 50% dead_features #2 costs $5 {x} ~^\\"
CORE_MEANS = {  # per run; None is JSON null, as the harness writes NaN
    0: {"explained_variance": 0.8974045845606266, "mse": 182461.041015625, "cossim": 0.9920740202069283,
        "l0": 70.68716430664062, "dead_fraction": 0.0, "ce_loss_score": 0.8020181044680205, "l2_ratio": 0.98},
    1: {"explained_variance": 0.937032, "mse": 111985.3, "cossim": 0.996391, "l0": 32, "dead_fraction": 0.120605,
        "ce_loss_score": None, "l2_ratio": 0.99},
    2: {"explained_variance": 0.952376, "mse": 84697.4, "cossim": 0.99639, "l0": 64, "dead_fraction": 0.0000305,
        "ce_loss_score": 0.939457, "l2_ratio": 1.0},
    3: {"explained_variance": 0.99, "mse": 1.0, "cossim": 0.999, "l0": 8, "dead_fraction": 0.0,
        "ce_loss_score": 0.99},  # a run that failed after writing final_info.json: not in state.json
}
# The verdict of each run's value against the baseline's (one seed, so the noise floor is 0.1% of its value): bold
# with a dagger where better, a double dagger where worse. L0 is not scored; run 1 has no CE loss score.
EXPECTED_VERDICTS = {"EV": {1: "better", 2: "better"}, "MSE": {1: "better", 2: "better"},
                     "CosSim": {1: "better", 2: "better"}, "L0": {}, "Dead": {1: "worse", 2: "worse"},
                     "CE": {2: "better"}}
PAPERS = [
    {"title": "Towards Monosemanticity: Decomposing Language Models With Dictionary Learning", "year": 2023,
     "venue": "Transformer Circuits Thread", "authors": ["Trenton Bricken", "Adly Templeton"], "abstract": "",
     "citations": 900, "url": "https://transformer-circuits.pub/2023/monosemantic-features/index.html"},
    {"title": "Towards Principled Evaluations of Sparse Autoencoders", "year": 2023, "venue": "",
     "authors": ["Bricken, Trenton"], "abstract": "", "citations": 10, "url": "https://arxiv.org/abs/2405.08366"},
    {"title": "towards  monosemanticity: decomposing language models with dictionary learning", "year": 2023,
     "venue": "", "authors": ["Someone Else"], "abstract": "", "citations": None, "url": ""},
    {"title": "The Geometry of Concepts", "year": None, "venue": "", "authors": [], "abstract": "",
     "citations": None, "url": "not a url {"},
    {"title": "Sparse Autoencoders & Features: 100% #1_best {x}", "year": 2024, "venue": "ICLR", "abstract": "",
     "authors": ["José Núñez"], "citations": 3, "url": "https://example.org/a_b?c=1#d"},
    {"title": "  ", "year": 2020, "venue": "", "authors": ["Nobody"], "abstract": "", "citations": None, "url": ""},
]


def write_png(path: Path, width: int = 8, height: int = 6) -> None:
    """A small valid RGB PNG, written without an imaging library."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    pixels = b"".join(b"\x00" + bytes((40, 110, 170)) * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(pixels))
                     + chunk(b"IEND", b""))


def final_info(core: dict) -> dict:
    return {
        "training": {"status": "ok", "means": {"training_steps": 438, "training_tokens": 897024, "dict_size": 2048,
                                               "final_loss": 19.18, "lr": 0.002, "seed": 0}},
        "core": {"status": "ok", "means": {**core, "heldout_tokens": 32768}},
        "sparse_probing": {"status": "skipped", "means": {}, "reason": "offline"},
    }


@pytest.fixture
def idea_dir(tmp_path) -> Path:
    """An idea folder after its runs: run_0..run_3 (run_3 failed), state.json, and two of the four plots."""
    idea = tmp_path / "idea"
    for number, core in CORE_MEANS.items():
        (idea / f"run_{number}").mkdir(parents=True)
        (idea / f"run_{number}" / "final_info.json").write_text(json.dumps(final_info(core)))
    state = {"idea": "topk", "status": "runs_done", "runs": {
        "1": {"description": SPECIAL_DESCRIPTION, "commit": "c1", "seconds": 1.0},
        "2": {"description": "TopK activation with k=64", "commit": "c2", "seconds": 1.0},
        "4": {"description": "a run whose folder is gone", "commit": "c4", "seconds": 1.0},
    }}
    (idea / "state.json").write_text(json.dumps(state))
    write_png(idea / "metrics_comparison.png")
    write_png(idea / "training_curves.png")
    return idea


@pytest.fixture
def latex_dir(idea_dir) -> Path:
    """The template copied into the idea folder, with the generated table and figures and no references."""
    latex_dir = latex.copy_template(TEMPLATE_DIR / "latex", idea_dir)
    generated.write_results_table(IdeaFolder(idea_dir).finished_runs(), SAE_METRICS, latex_dir)
    generated.write_figures(idea_dir, SAE_MANIFEST, latex_dir)
    generated.write_bibliography([], latex_dir)
    return latex_dir


def append(latex_dir: Path, section: str, text: str) -> int:
    """Append text to a section file; returns the line number of its first line."""
    path = latex_dir / "sections" / f"{section}.tex"
    old = path.read_text()
    path.write_text(old + text)
    return len(old.splitlines()) + 1


def pdf_text(pdf: Path) -> str:
    """The PDF's text with hyphenation at line ends undone and whitespace collapsed."""
    text = subprocess.run(["pdftotext", str(pdf), "-"], capture_output=True, text=True, check=True).stdout
    return " ".join(text.replace("-\n", "").split())


def table_cells(latex_dir: Path) -> tuple[list[str], list[list[str]]]:
    """The header and body rows of results_table_generated.tex, split at unescaped &."""
    tex = (latex_dir / latex.TABLE_FILE).read_text()
    header = tex.split(r"\toprule")[1].split(r"\midrule")[0]
    body = tex.split(r"\midrule")[1].split(r"\bottomrule")[0]

    def cells(line: str) -> list[str]:
        return [cell.strip() for cell in re.split(r"(?<!\\)&", line.strip().removesuffix(r"\\"))]
    return cells(header), [cells(line) for line in body.strip().splitlines()]


def parse_number(cell: str) -> tuple[float, bool, str | None]:
    """A table cell back to (number, bold, the verdict its mark stands for)."""
    verdict = next((v for v, mark in generated.VERDICT_MARKS.items() if cell.endswith(mark)), None)
    text = cell.removesuffix(generated.VERDICT_MARKS.get(verdict, ""))
    bold = text.startswith(r"\textbf{")
    text = text.removeprefix(r"\textbf{").removesuffix("}") if bold else text
    text = text.replace(r"\textminus ", "-").replace(r"\texttimes 10\textsuperscript{", "e").replace("}", "")
    return float(text), bold, verdict


# --- the template and the generated parts ---

@needs_tex
def test_untouched_template_compiles_with_generated_table_figures_and_empty_bibliography(idea_dir, latex_dir):
    assert (latex_dir / "references.bib").read_text() == ""
    result = latex.compile_pdf(latex_dir)
    assert result.ok, result.problems
    assert result.problems == []
    assert result.pdf == idea_dir / "paper.pdf" and result.pdf.exists()
    text = pdf_text(result.pdf)
    assert "SAE Scientist (automated)" in text
    assert "Table 1: Key metrics" in text and "TopK activation with k=64" in text and "50%" in text
    assert "Figure 1: Metrics per run" in text and "Figure 2: Training loss" in text
    assert "Figure 3" not in text and "References" not in text  # feature density has no plot; nothing is cited
    assert latex_checks.check_paper(latex_dir) == []
    assert latex_checks.chktex(latex_dir) == []


def test_copy_template_keeps_an_existing_copy(idea_dir, latex_dir):
    append(latex_dir, "method", "Written by the coder.\n")
    assert latex.copy_template(TEMPLATE_DIR / "latex", idea_dir) == latex_dir
    assert "Written by the coder." in (latex_dir / "sections" / "method.tex").read_text()
    assert [path.name for path in sorted((latex_dir / "sections").iterdir())] == sorted(
        f"{name}.tex" for name in latex.SECTIONS)


def test_table_numbers_equal_final_info_and_changes_beyond_the_noise_are_marked(latex_dir):
    header, rows = table_cells(latex_dir)
    headings = [re.sub(r"\\,\$.*\$$", "", cell) for cell in header[2:]]
    assert headings == ["EV", "MSE", "CosSim", "L0", "Dead", "CE"]  # no run reports kl_div_score
    assert header[2:4] == [r"EV\,$\uparrow$", r"MSE\,$\downarrow$"] and header[5] == "L0"
    assert [row[0] for row in rows] == ["0", "1", "2"]  # run_3 failed, run_4's folder is gone
    names = {metric.display: metric.name for metric in SAE_METRICS.key_metrics}
    for column, heading in enumerate(headings, start=2):
        verdicts = {}
        for row in rows:
            expected = CORE_MEANS[int(row[0])][names[heading]]
            if expected is None:
                assert row[column] == generated.MISSING_VALUE
                continue
            number, bold, verdict = parse_number(row[column])
            assert number == float(f"{expected:.4g}"), (heading, row[0])
            assert bold == (verdict == "better"), (heading, row[0])
            if verdict:
                verdicts[int(row[0])] = verdict
        assert verdicts == EXPECTED_VERDICTS[heading], heading


def test_table_escapes_descriptions_and_formats_numbers(latex_dir):
    _, rows = table_cells(latex_dir)
    assert [row[1] for row in rows] == [
        "Baseline",
        r"TopK (k=32) \& 50\% dead\_features \#2 costs \$5 \textbraceleft{}x\textbraceright{} "
        r"\textasciitilde{}\textasciicircum{}\textbackslash{}",
        "TopK activation with k=64",
    ]
    assert rows[0][3] == r"1.825\texttimes 10\textsuperscript{5}"
    worse, better = generated.VERDICT_MARKS["worse"], generated.VERDICT_MARKS["better"]
    assert rows[2][6] == r"3.050\texttimes 10\textsuperscript{\textminus 5}" + worse
    assert rows[1][2] == r"\textbf{0.9370}" + better and rows[1][5] == "32"  # trailing zeros kept; whole numbers exact
    assert generated.format_table_number(-0.0123456) == r"\textminus 0.01235"


def test_figures_are_copied_with_fixed_captions_and_missing_plots_left_out(latex_dir):
    tex = (latex_dir / latex.FIGURES_FILE).read_text()
    assert re.findall(r"\\label\{(fig:\w+)\}", tex) == ["fig:metrics_comparison", "fig:training_curves"]
    assert re.findall(r"\\includegraphics\[[^\]]*\]\{([^}]*)\}", tex) == [
        "figures/metrics_comparison.png", "figures/training_curves.png"]
    assert {plot.stem: plot.caption for plot in SAE_MANIFEST.plots}["training_curves"] in tex
    assert sorted(path.name for path in (latex_dir / "figures").iterdir()) == [
        "metrics_comparison.png", "training_curves.png"]


# --- the bibliography ---

def test_bibliography_keys_are_stable_deduplicated_and_escaped(tmp_path):
    titles = generated.write_bibliography(PAPERS, tmp_path)
    assert titles == {
        "bricken2023towards": PAPERS[0]["title"],
        "bricken2023towardsb": PAPERS[1]["title"],  # same name, year and first word
        "anongeometry": "The Geometry of Concepts",  # the repeated title and the blank one are left out
        "nunez2024sparse": PAPERS[4]["title"],
    }
    bib = (tmp_path / "references.bib").read_text()
    assert re.findall(r"^@(\w+)\{(\w+),", bib, flags=re.MULTILINE) == [
        ("article", "bricken2023towards"), ("misc", "bricken2023towardsb"), ("misc", "anongeometry"),
        ("article", "nunez2024sparse")]
    assert (r"title = {{Sparse Autoencoders \& Features: 100\% \#1\_best \textbraceleft{}x\textbraceright{}}}"
            in bib)
    assert "author = {José Núñez}" in bib and "journal = {ICLR}" in bib
    assert "not a url" not in bib and "url = {https://example.org/a_b?c=1#d}" in bib
    assert generated.write_bibliography(PAPERS, tmp_path) == titles  # the same records give the same keys


def test_escape_latex_keeps_text_pdflatex_can_set():
    assert latex.escape_latex("α ≤ β,  “naïve”\tﬁt\x07 😀") == r"$\alpha$ $\leq$ $\beta$, “naïve” fit "
    assert latex.escape_latex("50% of #1_a & b") == r"50\% of \#1\_a \& b"


@needs_tex
def test_cited_reference_compiles_and_its_title_is_in_the_pdf(latex_dir):
    keys = list(generated.write_bibliography(PAPERS, latex_dir))
    append(latex_dir, "introduction", f"Dictionary learning finds features \\citep{{{keys[0]}}}; "
                                      f"see also \\citet{{{keys[3]}}}.\n")
    result = latex.compile_pdf(latex_dir)
    assert result.ok and result.problems == [], result.problems
    text = pdf_text(result.pdf)
    assert "Towards Monosemanticity: Decomposing Language Models With Dictionary Learning" in text
    assert "Sparse Autoencoders & Features: 100% #1_best {x}" in text
    assert "Principled Evaluations" not in text  # written to references.bib, but not cited


# --- build problems ---

@needs_tex
@pytest.mark.parametrize(("section", "text", "error_line", "message"), [
    ("method", "We list:\n\\begin{itemize}\n\\item one\n", 2, "ends inside the itemize environment"),
    ("results", "A sentence.\nAn \\undefinedmacro here.\n", 2, "Undefined control sequence"),
    ("conclusion", "An \\emph{argument never closed.\n", None, "File ended while scanning use of \\emph"),
])
def test_error_names_the_section_file_and_line(idea_dir, latex_dir, section, text, error_line, message):
    """error_line counts from the first appended line; None where TeX cannot know it."""
    first_line = append(latex_dir, section, text)
    result = latex.compile_pdf(latex_dir)
    assert not result.ok and result.pdf is None and not (idea_dir / "paper.pdf").exists()
    expected_line = None if error_line is None else first_line + error_line - 1
    assert result.problems[0].file == f"sections/{section}.tex"
    assert result.problems[0].line == expected_line
    assert message in result.problems[0].message
    where = f"sections/{section}.tex" + (f":{expected_line}" if expected_line else "")
    assert str(result.problems[0]).startswith(where + ": ")


@needs_tex
def test_undefined_citation_and_reference_are_reported_with_file_and_line(latex_dir):
    line = append(latex_dir, "conclusion", "As shown in Figure~\\ref{fig:nowhere} \\citep{nobody2020}.\n")
    result = latex.compile_pdf(latex_dir)
    assert result.ok  # a PDF is built; the problems say what to fix
    assert sorted(map(str, result.problems)) == [
        f"sections/conclusion.tex:{line}: Citation `nobody2020' is undefined (no entry in references.bib)",
        f"sections/conclusion.tex:{line}: Reference `fig:nowhere' is undefined (no \\label{{fig:nowhere}})",
    ]


@needs_tex
def test_a_build_that_never_ends_is_stopped(latex_dir):
    append(latex_dir, "method", "\\def\\spin{\\spin}\\spin\n")
    result = latex.compile_pdf(latex_dir, timeout_s=2)
    assert not result.ok and "pdflatex ran past 2 s" in result.problems[0].message


# --- checks ---

def test_check_paper_finds_missing_cites_figures_labels_and_duplicates(latex_dir):
    generated.write_bibliography(PAPERS[:1], latex_dir)
    assert latex_checks.check_paper(latex_dir) == []
    intro = append(latex_dir, "introduction", "Known \\citep{bricken2023towards}, unknown "
                                              "\\citep[p.~2]{bricken2023towards, ghost2021}.\n"
                                              "% Commented out: \\cite{commented2020}\n")
    results = append(latex_dir, "results", "\\includegraphics{figures/absent.png}\n"
                                           "\\includegraphics{figures/training_curves}\n"
                                           "See Table~\\ref{tab:results} and Section~\\ref{sec:nowhere}.\n")
    end = append(latex_dir, "conclusion", "\\section{Method}\n\\label{sec:method}\n\\end{document}\n")
    figure_line = (latex_dir / latex.FIGURES_FILE).read_text().splitlines().index(
        r"  \includegraphics[width=0.85\linewidth]{figures/training_curves.png}") + 1
    assert sorted(map(str, latex_checks.check_paper(latex_dir))) == sorted([
        f"sections/introduction.tex:{intro}: \\cite key 'ghost2021' is not in references.bib",
        f"sections/results.tex:{results}: \\includegraphics file 'figures/absent.png' does not exist",
        f"sections/results.tex:{results + 1}: duplicate figure file 'figures/training_curves' "
        f"(first at figures_generated.tex:{figure_line})",
        f"sections/results.tex:{results + 2}: \\ref to 'sec:nowhere', which no \\label defines",
        f"sections/conclusion.tex:{end}: duplicate \\section title 'Method' (first at sections/method.tex:1)",
        f"sections/conclusion.tex:{end + 1}: duplicate \\label 'sec:method' (first at sections/method.tex:2)",
        f"sections/conclusion.tex:{end + 2}: \\end{{document}} belongs in paper.tex only",
    ])


@needs_tex
def test_chktex_reports_real_warnings_and_drops_style_noise(latex_dir):
    line = append(latex_dir, "method", 'We call this "dense", e.g. f(x) in Section~\\ref{sec:results}.\n')
    problems = latex_checks.chktex(latex_dir)
    assert problems and all(p.file == "sections/method.tex" and p.line == line for p in problems)
    assert {p.message for p in problems} == {"chktex warning 18: Use either `` or '' as an alternative to `\"'."}


def test_tools_missing_names_each_absent_tool(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    assert latex.tools_missing() == ["pdflatex", "bibtex", "chktex"]


def test_a_check_compile_that_passed_is_not_run_again_for_the_same_sources(idea_dir, latex_dir, monkeypatch):
    checks = latex.PassedChecks(idea_dir / "logs" / "latex_checks.json")
    assert checks.compile(latex_dir).ok

    monkeypatch.setenv("PATH", "/nonexistent")  # pdflatex cannot run now: only a remembered pass can succeed
    resumed = latex.PassedChecks(idea_dir / "logs" / "latex_checks.json")
    assert resumed.compile(latex_dir).ok
    append(latex_dir, "results", "Changed text.")
    with pytest.raises(FileNotFoundError):
        resumed.compile(latex_dir)


APPENDIX_FRAGMENT = r"""\begin{table}[tbp]
  \centering
  \begin{tabular}{rl}
    feature & top context \\
    7 & the cat \textbf{sat} on the mat \\
  \end{tabular}
  \caption{Features of run\_1, chosen by the template's code.}
  \label{fig:dashboard_run_1}
\end{table}
"""


def test_what_template_stages_wrote_for_the_paper_appears_in_its_appendix(idea_dir, latex_dir):
    """The SAE template's dashboard stage writes run_i/dashboard/appendix.tex (its manifest's stages.appendix)."""
    (idea_dir / "run_1" / "dashboard").mkdir()
    (idea_dir / "run_1" / "dashboard" / "appendix.tex").write_text(APPENDIX_FRAGMENT)
    (idea_dir / "run_3" / "dashboard").mkdir()  # a failed run: not in the paper even with a fragment
    (idea_dir / "run_3" / "dashboard" / "appendix.tex").write_text("FAILED RUN")

    labels = generated.write_appendix(IdeaFolder(idea_dir).finished_runs(), SAE_MANIFEST, idea_dir, latex_dir)

    assert labels == ["sec:feature_dashboards", "fig:dashboard_run_1"]
    appendix = (latex_dir / generated.APPENDIX_FILE).read_text()
    assert r"the cat \textbf{sat} on the mat" in appendix and "FAILED RUN" not in appendix
    result = latex.compile_pdf(latex_dir)
    assert result.ok, result.problems
    text = pdf_text(result.pdf)
    assert "Feature dashboards" in text and "the cat sat on the mat" in text


def test_without_stage_output_the_appendix_is_empty_and_the_paper_compiles(idea_dir, latex_dir):
    assert generated.write_appendix(IdeaFolder(idea_dir).finished_runs(), SAE_MANIFEST, idea_dir, latex_dir) == []
    result = latex.compile_pdf(latex_dir)
    assert result.ok and "Feature dashboards" not in pdf_text(result.pdf)
