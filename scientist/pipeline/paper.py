"""The paper stage (paper.pdf, written by the coder section by section after the citation rounds, every number
written by code) and the review stage (review.json, its reviewers shown the pages when a model sees images); what the
paper still gets wrong is kept in the idea's state."""

import os

from scientist.ideas.literature import CACHE_DIR, URL_VARIABLE, make_clients
from scientist.paper.citations import DEMO_SCRIPT_FIELD, CitationRounds, demo_engine
from scientist.paper.review import review_paper, write_review
from scientist.paper.writeup import PaperWriter, WriteupError
from scientist.pipeline.base import IdeaRun
from scientist.store.state import PaperOutcome


def citation_rounds(idea: IdeaRun) -> tuple[CitationRounds | None, str]:
    """(the write-up's citation rounds, "") or (None, why there are none). The engines are the launch's --engine
    first, then the other, sharing the novelty check's cache. A scripted model answers only what its script holds:
    the demo's script scripts the rounds with its "citations" field (scientist/paper/citations.py), and any other
    scripted model (a test's) has no replies for them."""
    from scientist.llm.scripted import PROVIDER, load_demo_script

    rounds = idea.config.num_cite_rounds
    if rounds == 0:
        return None, "--num-cite-rounds 0"
    if not idea.model.startswith(f"{PROVIDER}/"):
        engines = make_clients(idea.config.engine, idea.config.results_dir / CACHE_DIR,
                               base_url=os.environ.get(URL_VARIABLE) or None)
        return CitationRounds(tuple(engines), rounds), ""
    scripted = load_demo_script(idea.config.demo_script).get(DEMO_SCRIPT_FIELD) if idea.config.demo else None
    if scripted is None:
        return None, (f"the scripted model has no citation replies (a demo script scripts them with "
                      f'"{DEMO_SCRIPT_FIELD}": {{"papers": [...]}})')
    return CitationRounds((demo_engine(scripted, idea.config.demo_script),), rounds), ""


def novelty_papers(idea: dict) -> list[dict]:
    """The papers the idea's novelty check saw, each with the engine that found them."""
    novelty = idea.get("provenance", {}).get("novelty", {})
    return [{**paper, "engine": novelty.get("engine", "")} for paper in novelty.get("papers", [])]


class PaperStage:
    def applies(self, idea: IdeaRun) -> bool:
        return idea.config.writeup and bool(idea.state.runs)

    def run(self, idea: IdeaRun) -> None:
        idea.update(stage="writing paper")
        citations, skipped = citation_rounds(idea)
        if skipped:
            idea.folder.log(f"citation rounds skipped: {skipped}")
        try:
            paper = PaperWriter(idea.folder, idea.manifest, idea.model, idea.ledger, idea.budget,
                                novelty_papers(idea.idea), citations=citations).write()
        except WriteupError as err:
            idea.folder.log(f"writeup failed: {err}")
            idea.update(paper=PaperOutcome(error=str(err)))
            return
        idea.update(paper=PaperOutcome(pdf=paper.pdf.name, reverted_sections=paper.reverted_sections,
                                       contradictions=paper.contradictions))


class ReviewStage:
    def applies(self, idea: IdeaRun) -> bool:
        return idea.config.writeup and idea.state.paper is not None and bool(idea.state.paper.pdf)

    def run(self, idea: IdeaRun) -> None:
        idea.update(stage="reviewing paper")
        pdf = idea.folder.path / idea.state.paper.pdf
        # A model that sees images reviews the paper with its pages; without one, the coder's model reads the text.
        vision = idea.vision_model()
        write_review(idea.folder.path, review_paper(pdf, vision or idea.model, idea.ledger, idea.budget,
                                                    num_reviews=idea.config.num_reviews, field=idea.manifest.field,
                                                    pages=vision is not None))
        idea.folder.commit("Paper reviews")
