"""The paper stage (paper.pdf, written by the coder section by section, every number written by code) and the
review stage (review.json, its reviewers shown the pages when a model sees images); what the paper still gets wrong
is kept in the idea's state."""

from scientist.paper.review import review_paper, write_review
from scientist.paper.writeup import PaperWriter, WriteupError
from scientist.pipeline.base import IdeaRun
from scientist.store.state import PaperOutcome


class PaperStage:
    def applies(self, idea: IdeaRun) -> bool:
        return idea.config.writeup and bool(idea.state.runs)

    def run(self, idea: IdeaRun) -> None:
        idea.update(stage="writing paper")
        papers = idea.idea.get("provenance", {}).get("novelty", {}).get("papers", [])
        try:
            paper = PaperWriter(idea.folder, idea.manifest, idea.model, idea.ledger, idea.budget, papers).write()
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
