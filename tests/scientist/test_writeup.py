"""The write-up stage with scripted section texts: real aider edits of the section files, real pdflatex, chktex
and claim checks, over an idea folder made from the template's tiny baseline."""

import copy
import json
import subprocess

import pytest

from scientist.experiment import metrics
from scientist.experiment.manifest import load_manifest
from scientist.llm.ledger import Budget, Ledger
from scientist.llm.scripted import DEMO_MODEL
from scientist.paper.latex import SECTIONS
from scientist.paper.writeup import FIX_ATTEMPTS, PaperWriter
from scientist.store.folder import IdeaFolder

pytestmark = pytest.mark.usefixtures("latex_tools")
FENCE = "```"
IDEA = {"Name": "topk_probe", "Title": "A TopK probe", "Experiment": "Swap the ReLU for TopK."}
NO_CHANGE = "The section is consistent with the notes; no change is needed."
LOOP_TIMEOUT_S = 8  # each TeX run's limit where a section loops: several times what a pass of this paper takes


@pytest.fixture
def idea(templates_dir, tmp_path):
    return make_idea(templates_dir, tmp_path)


def make_idea(templates_dir, tmp_path):
    """An idea folder with the tiny baseline and one run whose numbers differ from it, as the loop leaves it."""
    template = templates_dir / "sae_variants"
    folder = IdeaFolder.create(tmp_path / "results", "sae_variants", IDEA, template)
    baseline = json.loads((folder.path / "run_0" / "final_info.json").read_text())
    run = copy.deepcopy(baseline)
    run["core"]["means"].update(explained_variance=0.91234, mse=12.5, dead_fraction=0.25)
    (folder.path / "run_1").mkdir()
    (folder.path / "run_1" / "final_info.json").write_text(json.dumps(run))
    (folder.path / "state.json").write_text(json.dumps({"idea": "topk_probe", "runs": {
        "1": {"description": "TopK with k=32", "commit": "x", "seconds": 1.0}}}))
    folder.append_notes(metrics.results_block(1, "TopK with k=32", baseline, run, load_manifest(template).metrics))
    folder.commit("Run 1")
    return folder, template, run


def fill(folder: IdeaFolder, section: str, text: str) -> str:
    """A reply that replaces the section's placeholder comment (its % WRITE lines) with `text`."""
    lines = (folder.path / "latex" / "sections" / f"{section}.tex").read_text().splitlines(keepends=True)
    placeholder = "".join(line for line in lines if line.startswith("% WRITE") or line.startswith("% "))
    return (f"latex/sections/{section}.tex\n{FENCE}latex\n<<<<<<< SEARCH\n{placeholder}=======\n{text}\n"
            f">>>>>>> REPLACE\n{FENCE}\n")


def change(section: str, search: str, replace: str) -> str:
    return (f"latex/sections/{section}.tex\n{FENCE}latex\n<<<<<<< SEARCH\n{search}\n=======\n{replace}\n"
            f">>>>>>> REPLACE\n{FENCE}\n")


def writer(idea, sections, **options) -> PaperWriter:
    folder, template, _ = idea
    return PaperWriter(folder, load_manifest(template), DEMO_MODEL, Ledger(folder.path / "cost_ledger.json"),
                       Budget(None), papers=[], sections=sections, **options)


def pdf_text(pdf) -> str:
    return subprocess.run(["pdftotext", str(pdf), "-"], capture_output=True, text=True, check=True).stdout


def user_prompts(handler) -> list[str]:
    return [messages[-1]["content"] for messages in handler.prompts]


def test_every_section_is_written_refined_compiled_and_committed(idea, scripted):
    folder, _, run = idea
    replies = [change("title", r"\title{Title of the Paper}", r"\title{A TopK Probe of a Tiny Sparse Autoencoder}")]
    replies += [fill(folder, s, f"Text of the {s.replace('_', ' ')} section, written for this test.")
                for s in SECTIONS if s != "title"]
    handler = scripted(replies + [NO_CHANGE] * len(SECTIONS))
    result = writer(idea, SECTIONS).write()

    assert not handler.replies and result.reverted_sections == [] and result.contradictions == []
    assert result.pdf == folder.path / "paper.pdf"
    text = " ".join(pdf_text(result.pdf).split())
    assert "A TopK Probe of a Tiny Sparse Autoencoder" in text
    assert all(f"Text of the {s.replace('_', ' ')} section" in text for s in SECTIONS if s != "title")
    assert "0.9123" in text, "the results table, written by code, carries run 1's explained variance"
    prompts = user_prompts(handler)
    assert "Never type a result number" in prompts[0] and "## Run 1: TopK with k=32" in prompts[0]
    assert "never describe such a change as an improvement or a decline" in prompts[0]
    messages = [c.message for c in folder.repo.iter_commits()]
    assert "Paper: method written" in messages and "Paper compiled" in messages


def test_a_latex_error_goes_back_to_the_coder_with_the_log(idea, scripted):
    folder, _, _ = idea
    broken = r"We change one thing.\begin{itemize}\item the activation"
    handler = scripted([fill(folder, "method", broken),
                        change("method", broken, r"We change the activation."), NO_CHANGE])
    result = writer(idea, ("method",)).write()
    prompts = user_prompts(handler)
    assert "does not compile" in prompts[1] and "sections/method.tex" in prompts[1]
    assert result.reverted_sections == []
    assert "We change the activation." in pdf_text(result.pdf)


def test_a_section_that_never_compiles_is_reverted_and_a_pdf_is_still_made(idea, scripted):
    folder, _, _ = idea
    template_text = (folder.path / "latex" / "sections" / "method.tex").read_text()
    broken = r"\undefinedcommandxyz{}"
    handler = scripted([fill(folder, "method", broken)] + ["I cannot see the problem."] * FIX_ATTEMPTS
                       + [NO_CHANGE])
    result = writer(idea, ("method",)).write()
    assert not handler.replies
    assert result.reverted_sections == ["method"]
    assert (folder.path / "latex" / "sections" / "method.tex").read_text() == template_text
    assert result.pdf.exists() and "Method" in pdf_text(result.pdf)
    assert "reverted to its last compiling version" in (folder.path / "log.txt").read_text()


def test_claims_the_results_contradict_go_back_to_the_coder_and_what_remains_is_flagged(idea, scripted):
    folder, _, _ = idea
    false_claim = r"Run~1 reaches an explained variance of 0.99."
    handler = scripted([fill(folder, "results", false_claim), NO_CHANGE, "I stand by it."])
    result = writer(idea, ("results",)).write()
    assert not handler.replies
    assert "core.explained_variance" in user_prompts(handler)[2]
    assert len(result.contradictions) == 1 and "0.99" in result.contradictions[0]


def test_a_cite_key_that_does_not_exist_is_fed_back_and_removed(idea, scripted):
    folder, _, _ = idea
    cited = r"Earlier work \citep{madeup2024} did this."
    handler = scripted([fill(folder, "related_work", cited), NO_CHANGE,
                        change("related_work", cited, "Earlier work is not cited here.")])
    result = writer(idea, ("related_work",)).write()
    assert "madeup2024" in user_prompts(handler)[2]
    assert "madeup2024" not in (folder.path / "latex" / "sections" / "related_work.tex").read_text()
    assert "Earlier work is not cited here." in pdf_text(result.pdf)


def test_a_section_that_reads_a_file_outside_latex_goes_back_to_the_coder_and_is_reverted(idea, scripted, tmp_path,
                                                                                         monkeypatch):
    folder, _, _ = idea
    secret = tmp_path / "secret.txt"
    secret.write_text("TOPSECRETCREDENTIAL\n")
    monkeypatch.setenv("FAKE_API_KEY", "sk-fake-0123456789abcdef")
    handler = scripted([fill(folder, "results", f"\\input{{{secret}}}")] + ["I cannot see the problem."] * FIX_ATTEMPTS
                       + [NO_CHANGE])
    result = writer(idea, ("results",)).write()
    prompts = user_prompts(handler)
    assert "does not compile" in prompts[1] and "sections/results.tex:3: " in prompts[1]
    assert "reads a file outside the paper's latex folder" in prompts[1]
    assert result.reverted_sections == ["results"]
    assert "TOPSECRETCREDENTIAL" not in pdf_text(result.pdf)
    assert not any("sk-fake-0123456789abcdef" in str(messages) for messages in handler.prompts)


def test_a_tex_loop_is_stopped_and_the_idea_keeps_the_last_pdf_that_compiled(idea, scripted):
    folder, _, _ = idea
    template_text = (folder.path / "latex" / "sections" / "method.tex").read_text()
    handler = scripted([fill(folder, "method", r"\def\spin{\spin}\spin")] + ["I cannot see the problem."] * FIX_ATTEMPTS
                       + [NO_CHANGE])
    result = writer(idea, ("method",), build_timeout_s=LOOP_TIMEOUT_S).write()
    assert f"pdflatex ran past {LOOP_TIMEOUT_S} s and was stopped" in user_prompts(handler)[1]
    assert result.reverted_sections == ["method"]
    assert (folder.path / "latex" / "sections" / "method.tex").read_text() == template_text
    assert result.pdf == folder.path / "paper.pdf" and "Method" in pdf_text(result.pdf)
