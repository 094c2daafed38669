"""The novelty check of a generated idea: the LLM searches the literature for a few rounds, then decides.

Each round the model either asks for a search (a JSON object with a "Query") or gives its decision
("DECISION: novel" / "DECISION: not novel" and a "REASON:" line); prompts/novelty_system.txt states the format.
A decision counts only after at least one search, and a literature service that cannot be reached leaves the idea
"unchecked", never "novel".
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime

from scientist.ideas.literature import LiteratureClient, LiteratureError, Paper
from scientist.llm.client import complete
from scientist.llm.ledger import Budget, Ledger
from scientist.llm.prompts import render

logger = logging.getLogger(__name__)

RESULTS_PER_QUERY = 10
ABSTRACT_CHARS = 500
UNKNOWN = "unknown"
NOT_GIVEN = "not given"

# "DECISION: not novel" on a line of its own; markdown emphasis around it is removed before matching.
DECISION_LINE = re.compile(r"^[ \t>#-]*DECISION\s*:\s*(not[\s_-]*novel|novel)\b[^\n]*$", re.IGNORECASE | re.MULTILINE)
REASON_TEXT = re.compile(r"^[ \t>#-]*REASON\s*:\s*(.*)", re.IGNORECASE | re.MULTILINE | re.DOTALL)


@dataclass
class NoveltyResult:
    """What the check found, as saved with the idea."""

    status: str
    """One of novel, not_novel, undecided (no decision within the round limit), unchecked (service unreachable)."""
    novel: bool | None
    """True or False only for a decision; None when undecided or unchecked."""
    engine: str
    rounds: int
    """LLM replies used."""
    queries: list[str] = field(default_factory=list)
    """The queries searched, in order."""
    papers_seen: list[dict] = field(default_factory=list)
    """Every paper shown to the model, once each, as Paper.to_json()."""
    reason: str = ""
    """The model's reason for its decision, or what kept it from deciding."""
    checked_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))

    def to_json(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Reply:
    """What one reply of the model asks for; both fields are None when it could not be read."""

    novel: bool | None
    reason: str
    query: str | None


def parse_reply(text: str) -> Reply:
    """Read a decision and/or a query from a reply (the last one of each, as the format puts them at the end)."""
    plain = text.replace("*", "")
    decisions = DECISION_LINE.findall(plain)
    novel = None if not decisions else decisions[-1].lower() == "novel"
    reason_match = REASON_TEXT.search(plain)
    reason = reason_match.group(1).strip() if reason_match else DECISION_LINE.sub("", plain).strip()
    return Reply(novel=novel, reason=reason, query=query_from(text))


def query_from(text: str) -> str | None:
    """The "Query" of the last JSON object in `text` that has one; code fences and text around it do not matter."""
    query = None
    for candidate in json_objects(text):
        found = candidate.get("Query", candidate.get("query"))
        if isinstance(found, str) and found.strip():
            query = found.strip()
    return query


def json_objects(text: str) -> list[dict]:
    """Every JSON object in a reply, in order (an object inside another comes after it)."""
    decoder = json.JSONDecoder()
    objects = []
    for start in (match.start() for match in re.finditer(r"\{", text)):
        try:
            candidate, _ = decoder.raw_decode(text, start)
        except ValueError:
            continue
        if isinstance(candidate, dict):
            objects.append(candidate)
    return objects


def check_novelty(
    idea: dict, client: LiteratureClient, model: str, ledger: Ledger, budget: Budget, max_rounds: int = 10,
    field: str = "machine learning",
) -> NoveltyResult:
    """Let `model` search with `client` for up to `max_rounds` replies and decide whether `idea` is novel.

    LLM errors, BudgetExceeded included, propagate; a LiteratureError ends the check as "unchecked".
    """
    if max_rounds < 1:
        raise ValueError(f"max_rounds must be >= 1, got {max_rounds}")
    result = NoveltyResult(status="undecided", novel=None, engine=client.name, rounds=0)
    seen_keys: set[str] = set()
    messages = [
        {"role": "system", "content": render("novelty_system", max_rounds=max_rounds, field=field)},
        {"role": "user", "content": render(
            "novelty_idea", round_number=1, max_rounds=max_rounds, title=idea["Title"],
            experiment=idea["Experiment"], technical_details=idea.get("Technical_Details") or NOT_GIVEN,
        )},
    ]
    for round_number in range(1, max_rounds + 1):
        # A copy, so that what was sent stays as it was sent while the conversation grows.
        text = complete(model, list(messages), stage="novelty", ledger=ledger, budget=budget)
        result.rounds = round_number
        messages.append({"role": "assistant", "content": text})
        reply = parse_reply(text)
        if reply.novel is not None and result.queries:
            result.status = "novel" if reply.novel else "not_novel"
            result.novel, result.reason = reply.novel, reply.reason
            return result
        if round_number == max_rounds:
            break  # a search now could not be shown to the model any more
        next_round = {"round_number": round_number + 1, "max_rounds": max_rounds}
        if reply.query:
            logger.info("Novelty round %d: searching %s for %r.", round_number, client.name, reply.query)
            try:
                papers = client.search(reply.query, limit=RESULTS_PER_QUERY)
            except LiteratureError as err:
                logger.warning("Novelty check left unchecked: %s", err)
                result.status, result.reason = "unchecked", str(err)
                return result
            result.queries.append(reply.query)
            _record_seen(papers, result.papers_seen, seen_keys)
            prompt = render("novelty_results", query=reply.query, papers=papers_text(papers), **next_round)
        elif reply.novel is not None:
            prompt = render("novelty_search_first", **next_round)
        else:
            prompt = render("novelty_unreadable", **next_round)
        messages.append({"role": "user", "content": prompt})
    result.reason = f"no decision within {max_rounds} rounds"
    return result


def _record_seen(papers: list[Paper], papers_seen: list[dict], seen_keys: set[str]) -> None:
    for paper in papers:
        key = paper.url or f"{paper.title.casefold()}|{paper.year}"
        if key not in seen_keys:
            seen_keys.add(key)
            papers_seen.append(paper.to_json())


def papers_text(papers: list[Paper]) -> str:
    """Search results numbered from 1 for a prompt, every text from the service as a quoted JSON string."""
    if not papers:
        return render("novelty_no_results").strip()
    return "\n".join(
        render(
            "novelty_paper", index=index, title=_quoted(paper.title), year=_number(paper.year),
            venue=_quoted(paper.venue), citations=_number(paper.citations), abstract=_quoted(_trimmed(paper.abstract)),
        )
        for index, paper in enumerate(papers, start=1)
    )


def _quoted(text: str) -> str:
    """The service's text as a JSON string, which nothing inside it can close: the prompt says it is quoted data."""
    return json.dumps(text, ensure_ascii=False) if text else UNKNOWN


def _number(value) -> int | str:
    # The services' JSON is trusted for nothing: a year or a count that is not a number is not shown.
    return value if isinstance(value, int) and not isinstance(value, bool) else UNKNOWN


def _trimmed(text: str, limit: int = ABSTRACT_CHARS) -> str:
    """`text` on one line, cut at a word boundary to at most `limit` characters (plus an ellipsis)."""
    flat = " ".join(text.split())
    if len(flat) <= limit:
        return flat
    return flat[:limit].rsplit(" ", 1)[0] + " ..."
