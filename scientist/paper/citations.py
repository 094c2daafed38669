"""Citation rounds: before the paper is written, the LLM searches the literature for what it should cite.

Each round the model is shown the idea, the papers chosen so far and the searches made so far, and replies with one
query ({"Query": ...}) or says it is done ({"Done": true}). The query goes to the launch's engine (--engine), and to
the other engine when that one fails (LiteratureError: unreachable, or rate limited past its retries). The model is
then shown what was found, as quoted data, and picks the papers to cite by number, each with one line saying what
for ({"Cite": [{"index": 1, "for": ...}]}). Each chosen record keeps its query and the engine that answered it;
references.bib is written from these records (generated.write_bibliography), so nothing else can be cited. When no
engine answers, the rounds end there and the paper keeps what was chosen before: with nothing, it has no
references, as a paper without citation rounds.

Resume: every LLM call goes through `complete`, so the idea's ledger replays its reply by request digest; every
answer is in the literature cache (results/.literature_cache, outside the idea folder), and every engine's cache is
read before any engine is asked, so an answer the second engine gave is found again although the first engine would
be asked first. A resumed write-up thus redoes the rounds identically, without paying or searching again.

The demo: a scripted model answers only what its script holds. A demo script scripts the rounds with a "citations"
field, {"citations": {"papers": [records with "title" and optionally "year", "venue", "authors", "abstract", "url"]}}:
a scripted engine answers every query with those papers, and the script's replies must hold the rounds' replies
(each round's query, then its choice, and a last {"Done": true} unless the rounds run out) before the sections'.
Without the field the rounds are skipped (scientist/pipeline/paper.py), as autointerp is without its field.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Protocol

from scientist.ideas.literature import LiteratureError, Paper
from scientist.ideas.novelty import NOT_GIVEN, RESULTS_PER_QUERY, UNKNOWN, json_objects, papers_text, query_from
from scientist.llm.client import complete
from scientist.llm.ledger import Budget, Ledger
from scientist.llm.prompts import render
from scientist.paper.latex import ascii_words

STAGE = "citations"
CITATIONS_FILE = "citations.json"
"""latex/citations.json: the rounds' queries, which engine answered each, and the papers chosen."""
DEMO_SCRIPT_FIELD = "citations"
DEMO_ENGINE = "demo script"
NONE_YET = "none yet"


class CitationError(Exception):
    """A demo script whose "citations" field cannot be used; the message names the file, the field and the fix."""


class SearchEngine(Protocol):
    """What the rounds need of a literature client (scientist.ideas.literature.LiteratureClient has it)."""

    name: str
    display_name: str

    def cached(self, query: str, limit: int = RESULTS_PER_QUERY) -> list[Paper] | None: ...

    def search(self, query: str, limit: int = RESULTS_PER_QUERY) -> list[Paper]: ...


@dataclass(frozen=True)
class ScriptedEngine:
    """The demo's engine: every query finds the papers its script lists; nothing is asked over the network."""

    papers: tuple[Paper, ...]
    name: str = DEMO_ENGINE
    display_name: str = "the demo script"

    def cached(self, query: str, limit: int = RESULTS_PER_QUERY) -> list[Paper] | None:
        return list(self.papers[:limit])

    def search(self, query: str, limit: int = RESULTS_PER_QUERY) -> list[Paper]:
        return list(self.papers[:limit])


def demo_engine(scripted, script: Path) -> ScriptedEngine:
    """The engine a demo script's "citations" field describes, checked field by field."""
    papers = scripted.get("papers") if isinstance(scripted, dict) else None
    if not isinstance(papers, list) or not all(isinstance(p, dict) and isinstance(p.get("title"), str) for p in papers):
        raise CitationError(f'{script}: "{DEMO_SCRIPT_FIELD}" must be {{"papers": [...]}}, each paper an object with '
                            'a "title" string (and optionally "year", "venue", "authors", "abstract", "url")')
    return ScriptedEngine(tuple(Paper(title=p["title"], year=p.get("year"), venue=p.get("venue") or "",
                                      authors=tuple(p.get("authors") or ()), abstract=p.get("abstract") or "",
                                      citations=p.get("citations"), url=p.get("url") or "") for p in papers))


@dataclass(frozen=True)
class CitationRounds:
    """What the write-up's citation rounds use: the engines, the launch's first, and at most `rounds` rounds."""

    engines: tuple[SearchEngine, ...]
    rounds: int = 3


@dataclass(frozen=True)
class Citation:
    paper: dict
    """Paper.to_json() of the chosen record, as the engine returned it."""
    engine: str
    """The name of the engine that answered (a key of literature.ENGINES, or DEMO_ENGINE)."""
    query: str
    reason: str
    """What the paper cites it for, in the model's words."""

    def record(self) -> dict:
        """The record write_bibliography reads: the paper, the engine that found it, and what it is cited for."""
        return {**self.paper, "engine": self.engine, "query": self.query, "cited_for": self.reason}


@dataclass
class Search:
    round: int
    query: str
    engine: str | None = None
    """The engine that answered; None when none did."""
    found: int = 0
    chosen: int = 0
    failures: list[str] = field(default_factory=list)
    """What each engine that failed said, in the order they were asked."""


@dataclass
class CitationRecord:
    """What the rounds did, as latex/citations.json keeps it."""

    rounds: int = 0
    searches: list[Search] = field(default_factory=list)
    citations: list[Citation] = field(default_factory=list)
    ended: str = ""
    """Why the rounds ended: the model was done, the round limit, or no engine answered (with their errors)."""
    unreachable: bool = False
    """No engine answered a query."""

    @property
    def engines(self) -> list[str]:
        """The engines that answered, in the order they first did."""
        return list(dict.fromkeys(search.engine for search in self.searches if search.engine))

    def records(self) -> list[dict]:
        return [citation.record() for citation in self.citations]

    def to_json(self) -> dict:
        return asdict(self)


def find(engines: tuple[SearchEngine, ...], query: str) -> tuple[SearchEngine | None, list[Paper], list[str]]:
    """(the engine that answered, its papers, the errors of those that failed before it); (None, [], errors) when
    none answered. A cached answer of any engine comes first, so a resume asks no service again."""
    for engine in engines:
        cached = engine.cached(query, RESULTS_PER_QUERY)
        if cached is not None:
            return engine, cached, []
    failures = []
    for engine in engines:
        try:
            return engine, engine.search(query, RESULTS_PER_QUERY), failures
        except LiteratureError as err:
            failures.append(str(err))
    return None, [], failures


def gather_citations(idea: dict, rounds: CitationRounds, model: str, ledger: Ledger, budget: Budget,
                     field: str = "machine learning", log: Callable[[str], None] = lambda line: None
                     ) -> CitationRecord:
    """Up to rounds.rounds rounds of query, search and choice; `log` gets a line per round. LLM errors (BudgetExceeded
    included) propagate; an engine's failure never does."""
    record = CitationRecord()
    system = {"role": "system", "content": render("citation_system", max_rounds=rounds.rounds, field=field)}
    for number in range(1, rounds.rounds + 1):
        record.rounds = number
        asked = [system, {"role": "user", "content": render(
            "citation_round", round_number=number, max_rounds=rounds.rounds, title=idea["Title"],
            experiment=idea["Experiment"], technical_details=idea.get("Technical_Details") or NOT_GIVEN,
            chosen=_chosen_text(record.citations), searched=_searched_text(record.searches))}]
        reply = complete(model, asked, stage=STAGE, ledger=ledger, budget=budget)
        query = query_from(reply)
        if query is None:
            if any(found.get("Done") is True for found in json_objects(reply)):
                record.ended = f"the model said it was done in round {number}"
                return record
            log(f"citations round {number}: the reply held neither a query nor done; the round is used up")
            continue
        search = Search(number, query)
        record.searches.append(search)
        engine, papers, search.failures = find(rounds.engines, query)
        if engine is None:
            record.unreachable = True
            record.ended = "no literature search was reachable: " + "; ".join(search.failures)
            kept = (f"the paper keeps the {len(record.citations)} paper(s) chosen before" if record.citations
                    else "no paper is cited from these rounds")
            log(f"citations round {number}: no literature search was reachable for {query!r} "
                f"({'; '.join(search.failures)}); {kept}")
            return record
        search.engine, search.found = engine.name, len(papers)
        if papers:
            shown = [*asked, {"role": "assistant", "content": reply}, {"role": "user", "content": render(
                "citation_results", engine=engine.display_name, query=query, papers=papers_text(papers))}]
            choice = complete(model, shown, stage=STAGE, ledger=ledger, budget=budget)
            chosen = _new_picks(choice, papers, record.citations)
            record.citations += [Citation(paper.to_json(), engine.name, query, reason) for paper, reason in chosen]
            search.chosen = len(chosen)
        fell_back = f" after {'; '.join(search.failures)}" if search.failures else ""
        log(f"citations round {number}: {engine.display_name} answered {query!r}{fell_back}: {len(papers)} "
            f"paper(s) found, {search.chosen} chosen")
    record.ended = f"the round limit ({rounds.rounds}) was reached"
    return record


def identity(paper: dict) -> tuple:
    """What makes two records the same paper (as write_bibliography sees it): the title's words and the year."""
    return tuple(ascii_words(str(paper.get("title") or ""))), paper.get("year")


def _new_picks(reply: str, papers: list[Paper], chosen: list[Citation]) -> list[tuple[Paper, str]]:
    """The papers the reply's last {"Cite": [...]} picks, by 1-based index, with their reasons; an index out of
    range, a repeat or a paper chosen before is left out, and an unreadable reply picks nothing."""
    picks = next((found["Cite"] for found in reversed(json_objects(reply)) if isinstance(found.get("Cite"), list)), [])
    taken = {identity(citation.paper) for citation in chosen}
    new = []
    for pick in picks:
        index = pick.get("index") if isinstance(pick, dict) else None
        if isinstance(index, bool) or not isinstance(index, int) or not 1 <= index <= len(papers):
            continue
        paper, reason = papers[index - 1], pick.get("for")
        if identity(paper.to_json()) not in taken and paper.title.strip():
            taken.add(identity(paper.to_json()))
            new.append((paper, " ".join(reason.split()) if isinstance(reason, str) else ""))
    return new


def _chosen_text(citations: list[Citation]) -> str:
    return "\n".join(render("citation_chosen", number=number, title=_quoted(c.paper["title"]),
                            year=_year(c.paper.get("year")), reason=_quoted(c.reason)).strip()
                     for number, c in enumerate(citations, start=1)) or NONE_YET


def _searched_text(searches: list[Search]) -> str:
    return "\n".join(render("citation_searched", query=_quoted(s.query), found=s.found, chosen=s.chosen).strip()
                     for s in searches) or NONE_YET


def _year(year) -> int | str:
    return year if isinstance(year, int) and not isinstance(year, bool) else UNKNOWN


def _quoted(text: str) -> str:
    """Text that came from a service (or from the model reading it), as a JSON string nothing inside can close."""
    return json.dumps(text, ensure_ascii=False)
