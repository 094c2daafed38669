"""Every LLM call of the tool, and what it costs.

The model is named by a litellm model string ("anthropic/claude-...", "openai/gpt-4o", "deepseek/...",
"ollama/..."). Every call goes through `call_llm`: aider's (the LLM coder, scientist/llm/coder.py) and every other
stage's (through `complete`). It retries transient API failures, stops at the launch's budget, and writes each call
with its reply into the idea's cost ledger, from which a resumed idea replays the calls it already paid for.

This module imports litellm only inside its functions: litellm must not be imported before
`configure_offline_litellm()` has run, and importing this module must not break that order.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import tenacity

from scientist.llm.ledger import Budget, Ledger, LedgerEntry

if TYPE_CHECKING:
    from litellm import ModelResponse

logger = logging.getLogger(__name__)

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


class LLMUnavailable(Exception):
    """An LLM call failed for good: retries were used up, or the error is not worth retrying. It ends the idea
    (with this message as the reason) and never reaches aider's own retry loop, which would swallow it."""


def request_digest(model: str, messages: list[dict]) -> str:
    """What identifies a call for replay: the model and the messages without the system prompt (aider's system
    prompt carries today's date, and a resume the next day must still recognise the call)."""
    kept = [message for message in messages if message.get("role") != "system"]
    payload = json.dumps({"model": model, "messages": kept}, sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()


def call_llm(
    model: str,
    messages: list[dict],
    *,
    stage: str,
    ledger: Ledger,
    budget: Budget,
    retry: RetrySettings | None = None,
    **kwargs: Any,
) -> ModelResponse:
    """One LLM call. A call this idea already made (same model and messages) gets its recorded reply back from
    the ledger, free; any other is made, with retries, and recorded with its reply, tokens and cost.

    The budget is checked before the call (a call already under way is always paid for, so the budget can be
    overshot by at most one call). Transient failures are retried as RETRY_RULES says; when the retries are used
    up, or the error is not worth retrying, LLMUnavailable says why. Extra keyword arguments go to
    `litellm.completion` (temperature, api_base, ...).
    """
    request = request_digest(model, messages)
    recorded = ledger.replay(request)
    if recorded is not None:
        return _replayed_response(model, recorded)
    budget.add(ledger)
    budget.check()
    response = _completion_with_retries(model, messages, retry or DEFAULT_RETRY, kwargs)
    prompt_tokens, completion_tokens = _usage_tokens(response)
    ledger.record(stage, model, prompt_tokens, completion_tokens, _cost_usd(response, model), request=request,
                  reply=_message_text(response, model), finish_reason=response.choices[0].finish_reason)
    return response


def complete(model: str, messages: list[dict], *, stage: str, ledger: Ledger, budget: Budget,
             retry: RetrySettings | None = None, **kwargs: Any) -> str:
    """`call_llm`, returning the reply's text."""
    response = call_llm(model, messages, stage=stage, ledger=ledger, budget=budget, retry=retry, **kwargs)
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
    try:
        return retrying(litellm.completion, model=model, messages=messages, **kwargs)
    except Exception as err:
        rule = retry_rule_for(err)
        if rule is None:
            raise
        tries = f"after {settings.attempts} attempts" if rule.retry else "without retrying"
        raise LLMUnavailable(f"{model}: {rule.description} Gave up {tries}; last error: "
                             f"{type(err).__name__}: {str(err)[:300]}") from err


def _replayed_response(model: str, recorded: LedgerEntry) -> ModelResponse:
    """A recorded reply, shaped like the response it came from; zero tokens, since it was paid for already."""
    import litellm

    message = litellm.Message(role="assistant", content=recorded.reply)
    return litellm.ModelResponse(
        model=model,
        choices=[litellm.Choices(index=0, finish_reason=recorded.finish_reason or "stop", message=message)],
        usage=litellm.Usage(prompt_tokens=0, completion_tokens=0, total_tokens=0),
    )


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
