"""The paper against a hostile section, with the real pdflatex, bibtex and pdftotext: a secret file beside the idea
folder and an API key in the environment must reach neither the PDF nor what goes back to the LLM. The check before
the build refuses each attack; with the check turned off, the sandbox and TeX's restrictions still keep the secret out,
with bubblewrap and in the limits-only fallback; without either, the same attacks do reach it."""

import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from scientist.experiment.sandbox import LIMITS_ONLY, MODE_VARIABLE, bubblewrap_available
from scientist.paper import generated, latex, latex_guard, tex_tools
from tests.conftest import TEMPLATE_DIR
from tests.scientist.conftest import SAE_MANIFEST, SAE_METRICS

pytestmark = pytest.mark.usefixtures("latex_tools")

SECRET = "TOPSECRETCREDENTIAL"
FAKE_KEY = "sk-fake-0123456789abcdef"
SECRET_PDF_TEX = rf"\documentclass{{article}}\begin{{document}}{SECRET}\end{{document}}"
# Each attack reads {secret} (a text file) or {secret_pdf} beside the idea folder, or the environment.
ATTACKS = {
    "input": r"\input{{{secret}}}",
    "includegraphics": r"\includegraphics{{{secret_pdf}}}",
    # verbatim.sty is loaded from inside the section, which LaTeX otherwise allows only in the preamble.
    "verbatiminput": (r"\makeatletter\let\NeedsTeXFormat\@gobble\let\ProvidesPackage\@gobble\input{{verbatim.sty}}"
                      r"\makeatother\verbatiminput{{{secret}}}"),
    "write18": r"\immediate\write18{{cat {secret} > leak.tex}}\input{{leak}}",
    "environment": r"\input{{/proc/self/environ}}",
}
# The attacks that put the secret into the PDF when pdflatex runs as it did before the sandbox (Debian's defaults;
# its restricted \write18 does not run cat).
READS_WITHOUT_SANDBOX = ("input", "includegraphics", "verbatiminput")


@pytest.fixture
def place(monkeypatch):
    """A secret file and a secret PDF beside an idea folder, and an API key in the environment. Not under /tmp: the
    sandbox's private /tmp would hide a secret there whatever else it did."""
    base = Path(tempfile.mkdtemp(prefix="paper-sandbox-", dir="/var/tmp"))
    (base / "secret.txt").write_text(f"{SECRET}\n")
    (base / "secret.tex").write_text(SECRET_PDF_TEX)
    subprocess.run(["pdflatex", "-interaction=nonstopmode", "secret.tex"], cwd=base, capture_output=True, check=True,
                   timeout=120)
    monkeypatch.setenv("FAKE_API_KEY", FAKE_KEY)
    yield base
    shutil.rmtree(base)


@pytest.fixture
def latex_dir(place) -> Path:
    """The template in an idea folder beside the secrets, with its generated parts (no runs, no references)."""
    idea = place / "idea"
    latex_dir = latex.copy_template(TEMPLATE_DIR / "latex", idea)
    generated.write_results_table([], SAE_METRICS, latex_dir)
    generated.write_figures(idea, SAE_MANIFEST, latex_dir)
    generated.write_bibliography([], latex_dir)
    return latex_dir


def plant(latex_dir: Path, attack: str) -> int:
    """The attack appended to the results section; returns its line number there."""
    place = latex_dir.parent.parent
    path = latex_dir / "sections" / "results.tex"
    text = path.read_text()
    path.write_text(text + ATTACKS[attack].format(secret=place / "secret.txt", secret_pdf=place / "secret.pdf") + "\n")
    return len(text.splitlines()) + 1


def pdf_text(pdf: Path) -> str:
    return subprocess.run(["pdftotext", str(pdf), "-"], capture_output=True, text=True, check=True).stdout


def what_leaves(result: latex.CompileResult, latex_dir: Path) -> str:
    """Everything of a build that a reader or the LLM sees: the PDFs' text, the problems and the log's tail."""
    pdfs = [pdf for pdf in (latex_dir / "paper.pdf", latex_dir.parent / "paper.pdf") if pdf.exists()]
    return "\n".join([*map(pdf_text, pdfs), *map(str, result.problems), result.log_tail])


@pytest.mark.parametrize("attack", ATTACKS)
def test_the_check_refuses_each_attack_before_any_build(latex_dir, attack):
    line = plant(latex_dir, attack)
    result = latex.compile_pdf(latex_dir)
    assert not result.ok and result.pdf is None
    assert not (latex_dir / "paper.log").exists(), "pdflatex never ran"
    assert result.problems and all(p.file == "sections/results.tex" and p.line == line for p in result.problems)
    assert any("outside the paper's latex folder" in p.message or "is not allowed in the paper" in p.message
               for p in result.problems), result.problems


@pytest.mark.parametrize("mode", ["bubblewrap", "bubblewrap, TeX unrestricted", LIMITS_ONLY])
@pytest.mark.parametrize("attack", ATTACKS)
def test_with_the_check_off_the_sandbox_alone_keeps_the_secrets_out(latex_dir, attack, mode, monkeypatch):
    """Each layer on its own: bubblewrap's view of the file system without TeX's restrictions, and TeX's restrictions
    without bubblewrap (the limits-only fallback)."""
    monkeypatch.setattr(latex, "refusals", lambda text, prose: [])
    if mode == LIMITS_ONLY:
        monkeypatch.setenv(MODE_VARIABLE, LIMITS_ONLY)
    elif not bubblewrap_available():
        pytest.fail("bwrap cannot run here: the paper's sandbox is really missing (`make setup` installs it)")
    if mode == "bubblewrap, TeX unrestricted":
        monkeypatch.setattr(tex_tools, "TEX_RESTRICTIONS", {"openin_any": "a", "openout_any": "a"})
    plant(latex_dir, attack)
    result = latex.compile_pdf(latex_dir)
    leaving = what_leaves(result, latex_dir)
    assert SECRET not in leaving and FAKE_KEY not in leaving
    assert not (latex_dir / "leak.tex").exists() or SECRET not in (latex_dir / "leak.tex").read_text()


@pytest.mark.parametrize("attack", READS_WITHOUT_SANDBOX)
def test_without_sandbox_and_restrictions_the_same_attacks_reach_the_secret(latex_dir, attack):
    """The control: the tests above would see a leak."""
    plant(latex_dir, attack)
    subprocess.run(["pdflatex", "-interaction=nonstopmode", "-halt-on-error", latex.MAIN_FILE], cwd=latex_dir,
                   env={**os.environ, "openin_any": "a"}, capture_output=True, timeout=120)
    assert SECRET in pdf_text(latex_dir / "paper.pdf")


def test_a_literature_record_that_holds_latex_is_escaped_and_inert(latex_dir, place):
    hostile = {"title": rf"Sparse \textbf{{Bold}} \input{{{place / 'secret.txt'}}} $x^2$ }} @misc{{evil, title={{pwn",
               "year": "2024}, note = {\\input{/etc/passwd}", "venue": r"\write18{cat /etc/passwd}",
               "authors": [rf"Eve \input{{{place / 'secret.txt'}}}"], "abstract": "", "citations": None,
               "url": r"https://example.org/\input{x}"}
    (key,) = generated.write_bibliography([hostile], latex_dir)
    bib = (latex_dir / latex.BIB_FILE).read_text()
    assert key.isalnum() and key.endswith("sparse"), "no year in the key: the record's is not a number"
    assert re.findall(r"^\s*@", bib, re.MULTILINE) == ["@"] and "url" not in bib and "year" not in bib
    assert latex_guard.refusals(bib, prose=False) == []
    intro = latex_dir / "sections" / "introduction.tex"
    intro.write_text(intro.read_text() + f"Earlier work \\citep{{{key}}}.\n")
    result = latex.compile_pdf(latex_dir)
    assert result.ok and result.problems == [], result.problems
    text = " ".join(pdf_text(result.pdf).split())
    assert r"Sparse \textbf{Bold} \input{" in text and "$x^2$ } @misc{evil, title={pwn" in text
    assert r"\write18{cat /etc/passwd}" in text
    assert SECRET not in text and "root:" not in text


def test_a_tool_outside_usr_shows_its_installation_but_never_the_home_folder(monkeypatch):
    home = Path.home()
    cases = {"/usr/bin/pdflatex": None, "/opt/texlive/2024/bin/x86_64-linux/pdflatex": Path("/opt/texlive/2024"),
             f"{home}/texlive/2024/bin/x86_64-linux/pdflatex": home / "texlive" / "2024",
             f"{home}/miniconda3/bin/pdftotext": home / "miniconda3", f"{home}/bin/pdftotext": home / "bin"}
    for found, installation in cases.items():
        monkeypatch.setattr(tex_tools.shutil, "which", lambda tool, found=found: found)
        assert tex_tools._installation("pdflatex") == installation, found
    monkeypatch.setattr(tex_tools.shutil, "which", lambda tool: None)
    with pytest.raises(FileNotFoundError, match="pdflatex is not installed.*make setup"):
        tex_tools._installation("pdflatex")
