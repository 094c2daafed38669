"""Tests of scientist/llm/, offline: replies come from a scripted litellm CustomLLM, never from an API."""

import json
import os
from pathlib import Path

import pytest

from scientist.llm.client import (
    LLMUnavailable,
    MissingApiKey,
    RetrySettings,
    complete,
    configure_offline_litellm,
    require_api_key,
    retry_rule_for,
)
from scientist.llm.ledger import Budget, BudgetExceeded, Ledger, LedgerError

configure_offline_litellm()  # before litellm is imported, as the tool does

import litellm  # noqa: E402
from litellm import CustomLLM  # noqa: E402

PROVIDER = "testllm"
MODEL = f"{PROVIDER}/m"
UNPRICED_MODEL = f"{PROVIDER}/unpriced"
INPUT_PRICE, OUTPUT_PRICE = 1e-6, 2e-6
NO_WAIT = RetrySettings(initial_wait_s=0, max_wait_s=0, jitter_s=0)
MESSAGES = [{"role": "user", "content": "Propose an SAE variant."}]

litellm.register_model({MODEL: {
    "max_tokens": 8192, "input_cost_per_token": INPUT_PRICE, "output_cost_per_token": OUTPUT_PRICE,
    "litellm_provider": PROVIDER, "mode": "chat",
}})


class ScriptedProvider(CustomLLM):
    """Plays its script in order: an exception is raised, a string is returned as the reply."""

    def __init__(self, script: list) -> None:
        super().__init__()
        self.script = list(script)
        self.calls = 0

    def completion(self, model, messages, *args, **kwargs):
        self.calls += 1
        step = self.script.pop(0)
        if isinstance(step, BaseException):
            raise step
        return litellm.completion(model="openai/x", messages=messages, mock_response=step)


@pytest.fixture
def scripted(monkeypatch):
    """Install a ScriptedProvider as the `testllm` provider for one test."""

    def install(*script) -> ScriptedProvider:
        provider = ScriptedProvider(list(script))
        monkeypatch.setattr(litellm, "custom_provider_map", [{"provider": PROVIDER, "custom_handler": provider}])
        return provider

    return install


@pytest.fixture
def ledger(tmp_path: Path) -> Ledger:
    return Ledger(tmp_path / "cost_ledger.json")


def ask(model: str, ledger: Ledger, budget: Budget | None = None, retry: RetrySettings = NO_WAIT) -> str:
    return complete(
        model, MESSAGES, stage="ideation", ledger=ledger, budget=budget or Budget(None), retry=retry
    )


def rate_limit() -> Exception:
    return litellm.RateLimitError("slow down", llm_provider=PROVIDER, model=MODEL)


# --- complete ---


def test_rate_limit_is_retried_and_the_call_recorded_once(scripted, ledger):
    provider = scripted(rate_limit(), "a sparse autoencoder idea")

    assert ask(MODEL, ledger) == "a sparse autoencoder idea"

    assert provider.calls == 2
    [entry] = ledger.entries
    assert (entry.stage, entry.model) == ("ideation", MODEL)
    assert entry.prompt_tokens > 0 and entry.completion_tokens > 0
    assert entry.cost_usd > 0
    assert entry.cost_usd == pytest.approx(
        entry.prompt_tokens * INPUT_PRICE + entry.completion_tokens * OUTPUT_PRICE
    )


@pytest.mark.parametrize("error", [
    litellm.Timeout("slow", model=MODEL, llm_provider=PROVIDER),
    litellm.APIConnectionError("unreachable", llm_provider=PROVIDER, model=MODEL),
    litellm.InternalServerError("500", llm_provider=PROVIDER, model=MODEL),
    litellm.ServiceUnavailableError("503", llm_provider=PROVIDER, model=MODEL),
    litellm.BadGatewayError("502", llm_provider=PROVIDER, model=MODEL),
], ids=type)
def test_transient_errors_are_retried(scripted, ledger, error):
    provider = scripted(error, "ok")

    assert ask(MODEL, ledger) == "ok"
    assert provider.calls == 2


@pytest.mark.parametrize("error", [
    litellm.AuthenticationError("bad key", llm_provider=PROVIDER, model=MODEL),
    litellm.BadRequestError("bad request", model=MODEL, llm_provider=PROVIDER),
    litellm.ContextWindowExceededError("too long", model=MODEL, llm_provider=PROVIDER),
], ids=type)
def test_auth_errors_and_bad_requests_are_not_retried(scripted, ledger, error):
    provider = scripted(error, "never returned")

    with pytest.raises(LLMUnavailable, match="without retrying") as failure:
        ask(MODEL, ledger)

    assert isinstance(failure.value.__cause__, type(error))
    assert provider.calls == 1
    assert ledger.entries == ()


def test_gives_up_after_the_last_attempt_with_the_provider_error(scripted, ledger):
    provider = scripted(*[rate_limit() for _ in range(3)], "too late")

    with pytest.raises(LLMUnavailable, match=r"rate limited the request \(HTTP 429\)\. Gave up after 3 attempts"):
        ask(MODEL, ledger, retry=RetrySettings(attempts=3, initial_wait_s=0, max_wait_s=0, jitter_s=0))

    assert provider.calls == 3
    assert ledger.entries == ()


def test_retry_rules_follow_the_exception_hierarchy():
    context_window = litellm.ContextWindowExceededError("too long", model=MODEL, llm_provider=PROVIDER)

    assert retry_rule_for(context_window).name == "BadRequestError"
    assert retry_rule_for(ValueError("not an API error")) is None


def test_a_model_without_a_price_is_recorded_at_zero_with_its_tokens(scripted, ledger):
    scripted("free reply")

    assert ask(UNPRICED_MODEL, ledger) == "free reply"

    [entry] = ledger.entries
    assert entry.cost_usd == 0.0
    assert entry.prompt_tokens > 0 and entry.completion_tokens > 0


# --- budget ---


def test_budget_stops_before_the_call(scripted, ledger):
    provider = scripted("never asked")
    ledger.record("ideation", MODEL, 100, 100, 0.50)
    budget = Budget(0.50, [ledger])

    with pytest.raises(BudgetExceeded, match="--budget-usd") as stop:
        ask(MODEL, ledger, budget)

    assert "0.5000" in str(stop.value)
    assert provider.calls == 0
    assert len(ledger.entries) == 1


def test_budget_counts_every_ledger_it_watches(tmp_path):
    first, second = Ledger(tmp_path / "a.json"), Ledger(tmp_path / "b.json")
    first.record("ideation", MODEL, 1, 1, 0.25)
    second.record("coding", MODEL, 1, 1, 0.50)
    budget = Budget(1.0, [first])
    budget.add(second)
    budget.add(second)

    assert budget.spent_usd == pytest.approx(0.75)
    assert budget.remaining_usd == pytest.approx(0.25)
    budget.check()

    second.record("coding", MODEL, 1, 1, 0.25)
    with pytest.raises(BudgetExceeded):
        budget.check()
    assert budget.remaining_usd == 0.0


def test_complete_charges_its_ledger_to_the_budget(scripted, ledger):
    scripted("first", "second")
    budget = Budget(1e-9)

    ask(MODEL, ledger, budget)

    with pytest.raises(BudgetExceeded):
        ask(MODEL, ledger, budget)


def test_unlimited_budget_never_stops(ledger):
    ledger.record("ideation", MODEL, 1, 1, 1e6)
    budget = Budget(None, [ledger])

    budget.check()
    assert budget.remaining_usd is None


# --- ledger ---


def test_ledger_resumes_from_disk(ledger):
    ledger.record("ideation", MODEL, 10, 20, 0.01)
    ledger.record("coding", MODEL, 30, 40, 0.02)
    ledger.record("coding", MODEL, 5, 5, 0.03)

    resumed = Ledger(ledger.path)

    assert resumed.entries == ledger.entries
    assert resumed.total_usd == pytest.approx(0.06)
    assert resumed.by_stage() == {
        "ideation": {"calls": 1, "prompt_tokens": 10, "completion_tokens": 20, "cost_usd": pytest.approx(0.01)},
        "coding": {"calls": 2, "prompt_tokens": 35, "completion_tokens": 45, "cost_usd": pytest.approx(0.05)},
    }
    assert resumed.entries[0].timestamp.endswith("+00:00")


def test_ledger_writes_leave_no_temporary_files(ledger, tmp_path):
    ledger.record("ideation", MODEL, 1, 1, 0.01)
    ledger.record("ideation", MODEL, 1, 1, 0.01)

    assert list(tmp_path.iterdir()) == [ledger.path]
    assert len(json.loads(ledger.path.read_text())["entries"]) == 2


def test_a_failed_write_keeps_the_old_ledger(ledger, tmp_path, monkeypatch):
    ledger.record("ideation", MODEL, 1, 1, 0.01)
    saved = ledger.path.read_text()

    def crash(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="disk full"):
        ledger.record("coding", MODEL, 1, 1, 0.02)

    assert ledger.path.read_text() == saved
    assert list(tmp_path.iterdir()) == [ledger.path]
    assert len(ledger.entries) == 1


@pytest.mark.parametrize("content", ['{"entries": [', "[1, 2]", '{"entries": [{"stage": "ideation"}]}'])
def test_a_corrupt_ledger_names_its_file(tmp_path, content):
    path = tmp_path / "cost_ledger.json"
    path.write_text(content)

    with pytest.raises(LedgerError, match=str(path)):
        Ledger(path)


# --- replay on resume ---


def test_a_call_already_made_is_replayed_from_the_ledger_and_not_paid_again(scripted, tmp_path):
    path = tmp_path / "cost_ledger.json"
    provider = scripted("first answer", "second answer", "a new answer")
    first_launch = Ledger(path)
    assert ask(MODEL, first_launch) == "first answer"
    assert ask(MODEL, first_launch) == "second answer"  # the same question twice (independent reviews do this)

    resumed = Ledger(path)
    assert [ask(MODEL, resumed), ask(MODEL, resumed)] == ["first answer", "second answer"]
    assert provider.calls == 2
    assert len(resumed.entries) == 2 and resumed.replies_to_replay == 0

    assert ask(MODEL, resumed) == "a new answer"  # every recorded reply is used up: the model is asked
    assert provider.calls == 3
    assert [e.reply for e in Ledger(path).entries] == ["first answer", "second answer", "a new answer"]


def test_replay_ignores_the_system_prompt_but_not_the_question(scripted, tmp_path):
    path = tmp_path / "cost_ledger.json"
    provider = scripted("recorded", "asked anew")
    complete(MODEL, [{"role": "system", "content": "Current date: 2026-11-20"}, *MESSAGES], stage="coding",
             ledger=Ledger(path), budget=Budget(None), retry=NO_WAIT)

    resumed = Ledger(path)
    next_day = [{"role": "system", "content": "Current date: 2026-11-21"}, *MESSAGES]
    assert complete(MODEL, next_day, stage="coding", ledger=resumed, budget=Budget(None)) == "recorded"
    other = [{"role": "user", "content": "Propose another SAE variant."}]
    assert complete(MODEL, other, stage="coding", ledger=resumed, budget=Budget(None), retry=NO_WAIT) == "asked anew"
    assert provider.calls == 2


def test_a_replayed_call_needs_no_budget(scripted, tmp_path):
    path = tmp_path / "cost_ledger.json"
    scripted("paid once")
    ask(MODEL, Ledger(path))
    resumed = Ledger(path)

    assert ask(MODEL, resumed, budget=Budget(0.0, [resumed])) == "paid once"
    with pytest.raises(BudgetExceeded):
        ask(MODEL, resumed, budget=Budget(0.0, [resumed]))


# --- API keys and offline setup ---


def test_missing_api_key_names_the_variable(monkeypatch):
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)

    with pytest.raises(MissingApiKey, match="ANTHROPIC_API_KEY") as missing:
        require_api_key("anthropic/claude-sonnet-4-5")

    assert "--model demo" in str(missing.value)


def test_a_set_api_key_passes(monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-test")

    require_api_key("anthropic/claude-sonnet-4-5")


@pytest.mark.parametrize("model", ["scripted/demo", "demo", "ollama/llama3"])
def test_keyless_models_pass(monkeypatch, model):
    monkeypatch.delenv("OLLAMA_API_BASE", raising=False)

    require_api_key(model)


def test_configure_offline_litellm_uses_the_bundled_cost_map(monkeypatch):
    monkeypatch.delenv("LITELLM_LOCAL_MODEL_COST_MAP", raising=False)

    configure_offline_litellm()

    assert os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] == "True"


def test_a_budget_counts_the_ledgers_other_workers_write(tmp_path):
    mine, theirs = Ledger(tmp_path / "mine.json"), tmp_path / "theirs.json"
    budget = Budget(1.0, [mine])
    budget.watch([theirs, tmp_path / "not_written_yet.json"])
    mine.record("coding", MODEL, 1, 1, 0.40)
    budget.check()

    Ledger(theirs).record("coding", MODEL, 1, 1, 0.60)  # another process spends; read at the next check

    assert budget.spent_usd == pytest.approx(1.0)
    with pytest.raises(BudgetExceeded):
        budget.check()
