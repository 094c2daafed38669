"""The cost ledger of one idea (every LLM call with its tokens, dollars and reply) and the budget of a launch.

The ledger is a journal (scientist/store/journal.py): a resumed idea replays from it the calls it already paid for.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from scientist.store.journal import Journal, JournalError

BUDGET_FLAG = "--budget-usd"


# --- The cost ledger of one idea -------------------------------------------------------------------------------


class LedgerError(Exception):
    """The ledger file cannot be read, so the spend it recorded is unknown."""


@dataclass(frozen=True)
class LedgerEntry:
    """One LLM call, what it cost, and (for replay on resume) the request's digest and the reply."""

    stage: str
    model: str
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float
    timestamp: str
    request: str = ""
    reply: str | None = None
    finish_reason: str | None = None

    @classmethod
    def from_json(cls, raw: dict) -> LedgerEntry:
        """Rebuild an entry from the ledger file; raises KeyError, TypeError or ValueError when it is malformed."""
        reply = raw.get("reply")
        return cls(
            stage=str(raw["stage"]),
            model=str(raw["model"]),
            prompt_tokens=int(raw["prompt_tokens"]),
            completion_tokens=int(raw["completion_tokens"]),
            cost_usd=float(raw["cost_usd"]),
            timestamp=str(raw["timestamp"]),
            request=str(raw.get("request", "")),
            reply=None if reply is None else str(reply),
            finish_reason=raw.get("finish_reason"),
        )


class Ledger:
    """The LLM calls of one idea (or of the idea stage) and their spend, kept at `path` (a journal, see
    scientist/store/journal.py): e.g. `<idea folder>/cost_ledger.json`.

    An existing file is loaded, so a resumed idea keeps counting the money it already spent, and gets the replies
    of the calls it already paid for back from `replay` instead of asking again.
    """

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        try:
            self._journal = Journal(self.path)
            self._entries = tuple(LedgerEntry.from_json(raw) for raw in self._journal.entries)
        except (JournalError, ValueError, KeyError, TypeError) as err:
            raise LedgerError(
                f"The cost ledger {path} is unreadable ({type(err).__name__}: {err}). Fix it, or move it aside to "
                "start a new one (the spend it recorded is then no longer counted against the budget)."
            ) from err

    @property
    def entries(self) -> tuple[LedgerEntry, ...]:
        return self._entries

    @property
    def total_usd(self) -> float:
        return sum(entry.cost_usd for entry in self._entries)

    @property
    def replies_to_replay(self) -> int:
        return self._journal.unreplayed

    def record(
        self, stage: str, model: str, prompt_tokens: int, completion_tokens: int, cost_usd: float,
        request: str = "", reply: str | None = None, finish_reason: str | None = None,
    ) -> LedgerEntry:
        """Append one entry and save the ledger; the entry is kept only once it is on disk."""
        entry = LedgerEntry(
            stage=stage,
            model=model,
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            cost_usd=cost_usd,
            timestamp=datetime.now(UTC).isoformat(timespec="seconds"),
            request=request,
            reply=reply,
            finish_reason=finish_reason,
        )
        self._journal.append(asdict(entry))
        self._entries = (*self._entries, entry)
        return entry

    def replay(self, request: str) -> LedgerEntry | None:
        """The recorded call with this request digest that this process has not replayed yet, if any."""
        raw = self._journal.replay("request", request) if request else None
        return None if raw is None else LedgerEntry.from_json(raw)

    def by_stage(self) -> dict[str, dict]:
        """Calls, tokens and cost per stage, in the order the stages first spent money."""
        totals: dict[str, dict] = {}
        for entry in self._entries:
            stage = totals.setdefault(
                entry.stage, {"calls": 0, "prompt_tokens": 0, "completion_tokens": 0, "cost_usd": 0.0}
            )
            stage["calls"] += 1
            stage["prompt_tokens"] += entry.prompt_tokens
            stage["completion_tokens"] += entry.completion_tokens
            stage["cost_usd"] += entry.cost_usd
        return totals


# --- The budget of a launch ------------------------------------------------------------------------------------


class BudgetExceeded(Exception):
    """The launch has spent its budget; no further LLM call may start."""


class Budget:
    """A spend limit in USD over the ledgers of one launch; `limit_usd=None` means unlimited."""

    def __init__(self, limit_usd: float | None, ledgers: Iterable[Ledger] = ()) -> None:
        if limit_usd is not None and limit_usd < 0:
            raise ValueError(f"{BUDGET_FLAG} must be >= 0, got {limit_usd}")
        self.limit_usd = limit_usd
        self._ledgers: list[Ledger] = []
        self._watched: list[Path] = []
        for ledger in ledgers:
            self.add(ledger)

    def add(self, ledger: Ledger) -> None:
        """Count `ledger` toward the limit; adding the same ledger twice counts it once."""
        if not any(watched is ledger for watched in self._ledgers):
            self._ledgers.append(ledger)

    def watch(self, paths: Iterable[Path]) -> None:
        """Also count the ledgers at `paths`, which other processes write (the launch's other ideas, run by other
        workers): they are read from disk at every check."""
        self._watched = [Path(path) for path in paths]

    @property
    def spent_usd(self) -> float:
        watched = sum(Ledger(path).total_usd for path in self._watched if path.exists())
        return sum(ledger.total_usd for ledger in self._ledgers) + watched

    @property
    def remaining_usd(self) -> float | None:
        """What may still be spent, never below 0; None when the budget is unlimited."""
        if self.limit_usd is None:
            return None
        return max(0.0, self.limit_usd - self.spent_usd)

    def check(self) -> None:
        """Raise BudgetExceeded when the spend has reached the limit."""
        if self.limit_usd is None:
            return
        spent = self.spent_usd
        if spent >= self.limit_usd:
            raise BudgetExceeded(
                f"Budget reached: spent ${spent:.4f} of the ${self.limit_usd:.4f} limit set by {BUDGET_FLAG}. "
                f"Raise {BUDGET_FLAG} to continue."
            )
