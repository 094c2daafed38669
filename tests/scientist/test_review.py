"""The review stage on a real PDF (compiled with pdflatex, read with pdftotext) and scripted reviewer replies that go
through litellm, the real JSON extraction, the review form's schema and the cost ledger."""

import json
import subprocess

import pytest

from scientist.llm.ledger import Budget, BudgetExceeded, Ledger
from scientist.llm.prompts import render
from scientist.paper.review import SCHEMA_PATH, ReviewError, form_error, pdf_text, review_paper, write_review
from tests.scientist.conftest import require_tools

MODEL = "scripted/demo"
PAPER_TEX = r"""\documentclass{article}
\begin{document}
\section{Results}
TopK sparse autoencoders recover more explained variance than ReLU autoencoders at equal sparsity.
\end{document}
"""


def review(overall: int = 6, decision: str = "Accept", **changes) -> dict:
    form = {
        "Summary": "The paper swaps the L1 penalty of an SAE for a TopK activation and compares the two.",
        "Strengths": ["A clean comparison against the ReLU baseline."],
        "Weaknesses": ["A single seed per configuration."],
        "Questions": ["How do the results change with the dictionary size?"],
        "Limitations": ["Only one layer of one small model."],
        "Originality": 2, "Quality": 3, "Clarity": 3, "Significance": 2,
        "Soundness": 3, "Presentation": 3, "Contribution": 2,
        "Overall": overall, "Confidence": 4, "Decision": decision,
    }
    return {**form, **changes}


def reply(form: dict) -> str:
    return f"The evidence is thin but clean.\n```json\n{json.dumps(form, indent=2)}\n```\n"


@pytest.fixture(scope="module")
def paper_pdf(tmp_path_factory):
    require_tools("pdflatex", "pdftotext")
    folder = tmp_path_factory.mktemp("paper")
    (folder / "paper.tex").write_text(PAPER_TEX)
    subprocess.run(["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "paper.tex"], cwd=folder,
                   capture_output=True, check=True, timeout=120)
    return folder / "paper.pdf"


@pytest.fixture
def llm(tmp_path):
    return {"model": MODEL, "ledger": Ledger(tmp_path / "cost_ledger.json"), "budget": Budget(None)}


def test_pdf_text_reads_the_words_of_a_real_pdf(paper_pdf):
    words = " ".join(pdf_text(paper_pdf).split())
    assert "Results" in words
    assert "TopK sparse autoencoders recover more explained variance" in words


def test_pdf_text_says_what_is_wrong(tmp_path, paper_pdf, monkeypatch):
    with pytest.raises(ReviewError, match="no such PDF file"):
        pdf_text(tmp_path / "missing.pdf")
    not_a_pdf = tmp_path / "notes.pdf"
    not_a_pdf.write_text("plain text, not a PDF")
    with pytest.raises(ReviewError, match="pdftotext cannot read it"):
        pdf_text(not_a_pdf)
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ReviewError, match="install poppler-utils"):
        pdf_text(paper_pdf)


def test_three_reviews_and_a_meta_review(scripted, paper_pdf, llm):
    handler = scripted([reply(review(5, "Reject")), reply(review(6)), reply(review(7)), reply(review(6))])
    result = review_paper(paper_pdf, **llm)
    assert [r["Overall"] for r in result["reviews"]] == [5, 6, 7]
    assert result["meta_review"] == review(6)
    assert result["dropped"] == []
    assert (result["model"], result["num_reviews"]) == (MODEL, 3)
    assert [entry.stage for entry in llm["ledger"].entries] == ["review"] * 3 + ["meta_review"]
    # Each reviewer gets the rubric and the paper's text, and no other reviewer's words.
    for prompt in handler.prompts[:3]:
        assert [m["role"] for m in prompt] == ["system", "user"]
        assert prompt[0]["content"] == render("review_system", field="machine learning")
        assert "TopK sparse autoencoders recover more explained variance" in prompt[1]["content"]
    meta_request = handler.prompts[3][1]["content"]
    assert "3 reviewers" in meta_request
    assert json.dumps(result["reviews"], indent=2) in meta_request


def test_an_invalid_review_is_fixed_by_its_retry(scripted, paper_pdf, llm):
    handler = scripted([reply(review()), reply(review(overall=11)), reply(review(8)), reply(review(7)),
                        reply(review(7))])
    result = review_paper(paper_pdf, **llm)
    assert [r["Overall"] for r in result["reviews"]] == [6, 8, 7]
    assert result["dropped"] == []
    retry = handler.prompts[2]
    assert retry[-2] == {"role": "assistant", "content": reply(review(overall=11))}
    assert retry[-1]["content"] == render("review_invalid", error="$.Overall: 11 is greater than the maximum of 10")
    assert [entry.stage for entry in llm["ledger"].entries] == ["review"] * 4 + ["meta_review"]


def test_a_review_still_invalid_after_its_retry_is_dropped(scripted, paper_pdf, llm):
    without_decision = {k: v for k, v in review().items() if k != "Decision"}
    handler = scripted(["I liked it.", reply(without_decision), reply(review()), reply(review(4, "Reject")),
                        reply(review(5, "Reject"))])
    result = review_paper(paper_pdf, **llm)
    assert len(result["reviews"]) == 2
    assert result["dropped"] == [{"which": "review 1", "reason": "$: 'Decision' is a required property"}]
    assert "no JSON object found" in handler.prompts[1][-1]["content"]
    assert "2 reviewers" in handler.prompts[-1][1]["content"]
    assert result["meta_review"]["Overall"] == 5


def test_an_invalid_meta_review_keeps_the_reviews(scripted, paper_pdf, llm):
    scripted([reply(review()), reply(review(decision="Maybe")), reply(review(decision="Maybe"))])
    result = review_paper(paper_pdf, num_reviews=1, **llm)
    assert result["reviews"] == [review()]
    assert result["meta_review"] is None
    assert result["dropped"][0]["which"] == "meta-review"
    assert "'Maybe' is not one of ['Accept', 'Reject']" in result["dropped"][0]["reason"]


def test_no_valid_review_raises(scripted, paper_pdf, llm):
    scripted(["no JSON here", reply(review(overall=0)), reply(["a list"]), reply({"Summary": "short"})])
    with pytest.raises(ReviewError, match="none of the 2 reviews fits the review form") as raised:
        review_paper(paper_pdf, num_reviews=2, **llm)
    assert "review 1: $.Overall: 0 is less than the minimum of 1" in str(raised.value)
    assert len(llm["ledger"].entries) == 4  # no meta-review was asked for


def test_the_budget_stops_the_reviews(scripted, paper_pdf, llm):
    handler = scripted([reply(review())])
    with pytest.raises(BudgetExceeded):
        review_paper(paper_pdf, MODEL, llm["ledger"], Budget(0.0))
    assert handler.prompts == []


def test_write_review_saves_review_json(tmp_path):
    result = {"reviews": [review()], "meta_review": review(), "dropped": [], "model": MODEL, "num_reviews": 1}
    path = write_review(tmp_path, result)
    assert path == tmp_path / "review.json"
    assert json.loads(path.read_text()) == result
    assert [p.name for p in tmp_path.iterdir()] == ["review.json"]  # no temporary file left behind


def test_the_rubric_names_every_field_of_the_form():
    schema = json.loads(SCHEMA_PATH.read_text())
    rubric = render("review_system", field="machine learning")
    assert [field for field in schema["properties"] if f'"{field}"' not in rubric] == []
    assert form_error(review()) is None
