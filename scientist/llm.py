"""Every LLM call of the tool, and what it costs.

The model is named by a litellm model string ("anthropic/claude-...", "openai/gpt-4o", "deepseek/...",
"ollama/..."). The LLM coder is aider, which calls litellm itself; its spend is read off the aider `Coder` with
`aider_usage_snapshot` / `record_aider_usage`. Every other stage calls `complete`, which retries transient API
failures, stops at the launch's budget and writes each call into the idea's cost ledger.

This module imports litellm only inside its functions: litellm must not be imported before
`configure_offline_litellm()` has run, and importing this module must not break that order.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

import tenacity

from .files import atomic_write_text

if TYPE_CHECKING:
    from litellm import ModelResponse

logger = logging.getLogger(__name__)

BUDGET_FLAG = "--budget-usd"
DEMO_HINT = "To try the tool offline without a key, run the scripted demo with --model demo."
KEYLESS_MODEL_PREFIXES = ("scripted/", "demo", "ollama/")


def configure_offline_litellm() -> None:
    """Make litellm use the cost map bundled with it instead of downloading the current one.

    On import, litellm fetches its model price list from GitHub. Offline (the tests, the demo, a cluster node
    without internet) that fetch waits for a timeout before falling back to the bundled copy, and it is a network
    call the tool never needs: the bundled prices are enough for the cost ledger. litellm reads the variable at
    import time, so call this before litellm or aider is imported anywhere.
    """
    if "litellm" in sys.modules and os.environ.get("LITELLM_LOCAL_MODEL_COST_MAP") != "True":
        logger.warning("litellm was imported before configure_offline_litellm(); it may have fetched its cost map.")
    os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"


# --- The cost ledger of one idea -------------------------------------------------------------------------------


class LedgerError(Exception):
    """The ledger file cannot be read, so the spend it recorded is unknown."""


@dataclass(frozen=True)
class LedgerEntry:
    """One LLM call (or one aider run) and what it cost."""

    stage: str
    model: str
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float
    timestamp: str

    @classmethod
    def from_json(cls, raw: object) -> LedgerEntry:
        """Rebuild an entry from the ledger file; raises KeyError, TypeError or ValueError when it is malformed."""
        if not isinstance(raw, dict):
            raise TypeError(f"an entry is a {type(raw).__name__}, not an object")
        return cls(
            stage=str(raw["stage"]),
            model=str(raw["model"]),
            prompt_tokens=int(raw["prompt_tokens"]),
            completion_tokens=int(raw["completion_tokens"]),
            cost_usd=float(raw["cost_usd"]),
            timestamp=str(raw["timestamp"]),
        )


class Ledger:
    """The spend of one idea, kept as JSON at `path` (e.g. `<idea folder>/cost_ledger.json`).

    An existing file is loaded, so a restarted run keeps counting the money it already spent. Each `record`
    rewrites the whole file atomically, so a crash mid-write never leaves a half-written ledger behind.
    """

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._entries: tuple[LedgerEntry, ...] = _read_entries(self.path) if self.path.exists() else ()

    @property
    def entries(self) -> tuple[LedgerEntry, ...]:
        return self._entries

    @property
    def total_usd(self) -> float:
        return sum(entry.cost_usd for entry in self._entries)

    def record(
        self, stage: str, model: str, prompt_tokens: int, completion_tokens: int, cost_usd: float
    ) -> LedgerEntry:
        """Append one entry and save the ledger; the entry is kept only once it is on disk."""
        entry = LedgerEntry(
            stage=stage,
            model=model,
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            cost_usd=cost_usd,
            timestamp=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        )
        entries = (*self._entries, entry)
        atomic_write_text(self.path, json.dumps({"entries": [asdict(e) for e in entries]}, indent=2) + "\n")
        self._entries = entries
        return entry

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


def _read_entries(path: Path) -> tuple[LedgerEntry, ...]:
    """Load a ledger file, turning every way it can be unreadable into a LedgerError that names it."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(data, dict) or not isinstance(data.get("entries"), list):
            raise ValueError('expected an object with an "entries" list')
        return tuple(LedgerEntry.from_json(raw) for raw in data["entries"])
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError) as err:
        raise LedgerError(
            f"The cost ledger {path} is unreadable ({type(err).__name__}: {err}). Fix it, or move it aside to "
            "start a new one (the spend it recorded is then no longer counted against the budget)."
        ) from err


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
        for ledger in ledgers:
            self.add(ledger)

    def add(self, ledger: Ledger) -> None:
        """Count `ledger` toward the limit; adding the same ledger twice counts it once."""
        if not any(watched is ledger for watched in self._ledgers):
            self._ledgers.append(ledger)

    @property
    def spent_usd(self) -> float:
        return sum(ledger.total_usd for ledger in self._ledgers)

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


# --- Retries ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RetryRule:
    """Whether a litellm exception (named as in the litellm module) is worth retrying, and what it means."""

    name: str
    retry: bool
    description: str


RETRY_RULES: tuple[RetryRule, ...] = (
    RetryRule("RateLimitError", True, "The provider rate limited the request (HTTP 429)."),
    RetryRule("Timeout", True, "The provider did not answer in time."),
    RetryRule("APIConnectionError", True, "The provider could not be reached."),
    RetryRule("InternalServerError", True, "The provider's servers failed (HTTP 5xx)."),
    RetryRule("ServiceUnavailableError", True, "The provider's servers are down or overloaded (HTTP 503)."),
    RetryRule("BadGatewayError", True, "The provider's gateway failed (HTTP 502)."),
    RetryRule("AuthenticationError", False, "The provider rejected the API key; check it."),
    RetryRule("NotFoundError", False, "The provider does not know this model; check the model name."),
    RetryRule("BadRequestError", False, "The provider refused the request as malformed or too long."),
)


def retry_rule_for(error: BaseException) -> RetryRule | None:
    """The rule of the closest litellm class `error` is an instance of; None for an exception not in the table.

    The class hierarchy is walked so that a subclass (say ContextWindowExceededError, a BadRequestError) gets
    its parent's rule. Names litellm does not define in the installed version are skipped.
    """
    import litellm

    rules = {getattr(litellm, rule.name): rule for rule in RETRY_RULES if hasattr(litellm, rule.name)}
    return next((rules[cls] for cls in type(error).__mro__ if cls in rules), None)


def _is_retryable(error: BaseException) -> bool:
    rule = retry_rule_for(error)
    return rule is not None and rule.retry


def _log_retry(state: tenacity.RetryCallState) -> None:
    """Called by tenacity before each wait, so the attempt has just failed with an error the table retries."""
    error = state.outcome.exception()
    logger.warning(
        "%s Retrying in %.1f s (attempt %d failed with %s).",
        retry_rule_for(error).description,
        state.upcoming_sleep,
        state.attempt_number,
        type(error).__name__,
    )


@dataclass(frozen=True)
class RetrySettings:
    """How long `complete` keeps trying: exponential backoff (initial_wait_s doubling, capped at max_wait_s)
    plus up to jitter_s of random jitter, so that parallel runs do not retry in lockstep."""

    attempts: int = 6
    initial_wait_s: float = 2.0
    max_wait_s: float = 60.0
    jitter_s: float = 1.0


DEFAULT_RETRY = RetrySettings()


# --- Calling the LLM -------------------------------------------------------------------------------------------


def complete(
    model: str,
    messages: list[dict],
    *,
    stage: str,
    ledger: Ledger,
    budget: Budget,
    retry: RetrySettings = DEFAULT_RETRY,
    **kwargs: Any,
) -> str:
    """Ask `model` for one reply and return its text, recording the call's tokens and cost in `ledger`.

    The budget is checked before the call (a call already under way is always paid for, so the budget can be
    overshot by at most one call). `ledger` is added to `budget`, so spend recorded here always counts toward it.
    Transient failures are retried as RETRY_RULES says; any other error is raised at once. Extra keyword
    arguments go to `litellm.completion` (temperature, api_base, ...).
    """
    budget.add(ledger)
    budget.check()
    response = _completion_with_retries(model, messages, retry, kwargs)
    prompt_tokens, completion_tokens = _usage_tokens(response)
    ledger.record(stage, model, prompt_tokens, completion_tokens, _cost_usd(response, model))
    return _message_text(response, model)


def _completion_with_retries(
    model: str, messages: list[dict], settings: RetrySettings, kwargs: dict[str, Any]
) -> ModelResponse:
    import litellm

    retrying = tenacity.Retrying(
        stop=tenacity.stop_after_attempt(settings.attempts),
        wait=tenacity.wait_exponential_jitter(
            multiplier=settings.initial_wait_s, max=settings.max_wait_s, jitter=settings.jitter_s
        ),
        retry=tenacity.retry_if_exception(_is_retryable),
        before_sleep=_log_retry,
        reraise=True,
    )
    return retrying(litellm.completion, model=model, messages=messages, **kwargs)


def _usage_tokens(response: ModelResponse) -> tuple[int, int]:
    usage = getattr(response, "usage", None)
    return int(getattr(usage, "prompt_tokens", 0) or 0), int(getattr(usage, "completion_tokens", 0) or 0)


def _cost_usd(response: ModelResponse, model: str) -> float:
    """The call's price from litellm's cost map; 0.0 for a model without a price (a local or custom model).

    The model string is passed explicitly because the response may name the model without its provider.
    """
    import litellm

    try:
        return float(litellm.completion_cost(completion_response=response, model=model))
    except Exception as err:  # litellm raises several exception types for a model it has no price for
        logger.warning("No price known for %s (%s); its tokens are recorded at $0.", model, type(err).__name__)
        return 0.0


def _message_text(response: ModelResponse, model: str) -> str:
    content = response.choices[0].message.content
    if content is None:
        logger.warning("%s returned a reply without text.", model)
        return ""
    return content


# --- aider's spend ---------------------------------------------------------------------------------------------


class AiderCoder(Protocol):
    """The running totals an aider `Coder` keeps (aider/coders/base_coder.py)."""

    total_cost: float
    total_tokens_sent: int
    total_tokens_received: int


class AiderUsage(NamedTuple):
    cost_usd: float
    tokens_sent: int
    tokens_received: int


def aider_usage_snapshot(coder: AiderCoder) -> AiderUsage:
    """aider's running totals now; take one before a coder run to record what the run spent."""
    return AiderUsage(coder.total_cost, coder.total_tokens_sent, coder.total_tokens_received)


def record_aider_usage(
    coder: AiderCoder, ledger: Ledger, stage: str, model: str, before: AiderUsage | tuple
) -> LedgerEntry | None:
    """Record what aider spent since `before` as one ledger entry; nothing is recorded when it made no call."""
    spent = AiderUsage(*(now - then for now, then in zip(aider_usage_snapshot(coder), before, strict=True)))
    if not any(spent):
        return None
    return ledger.record(stage, model, spent.tokens_sent, spent.tokens_received, spent.cost_usd)


# --- API keys --------------------------------------------------------------------------------------------------


class MissingApiKey(Exception):
    """The model's provider needs an API key that is not set in the environment."""


def require_api_key(model: str) -> None:
    """Fail before any work starts when `model` needs an API key that is not set.

    Checking up front means a forgotten key stops the launch in a second, not after the first experiment.
    The scripted demo and local ollama models need no key.
    """
    if model.startswith(KEYLESS_MODEL_PREFIXES):
        return
    import litellm

    environment = litellm.validate_environment(model=model)
    if environment["keys_in_environment"]:
        return
    missing = " and ".join(environment["missing_keys"]) or "its provider's API key"
    raise MissingApiKey(f"The model {model!r} needs {missing} set in the environment. {DEMO_HINT}")
