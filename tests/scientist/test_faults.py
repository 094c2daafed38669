"""LLM faults, injected by the scripted provider: HTTP 429 and 500 and timeouts are retried with backoff; when the
retries run out, or the replies are unusable (empty, truncated, garbled, SEARCH blocks that never match), that idea
ends cleanly with the reason recorded, and the next idea goes on."""

import json

import pytest

import scientist.llm.client
from scientist.launch.cli import main
from scientist.llm.client import RetrySettings

FENCE = "```"
IDEAS = [{"Name": name, "Title": f"Idea {name}", "Experiment": "Change the SAE and measure it.",
          "Interestingness": 3, "Feasibility": 9, "Novelty": 2} for name in ("first_idea", "second_idea")]
ATTEMPTS = 3


@pytest.fixture(autouse=True)
def quick_retries(monkeypatch):
    """The real retry code, without the real waits."""
    monkeypatch.setattr(scientist.llm.client, "DEFAULT_RETRY",
                        RetrySettings(attempts=ATTEMPTS, initial_wait_s=0, max_wait_s=0, jitter_s=0))


def launch(templates_dir, tmp_path, *extra) -> int:
    ideas = tmp_path / "ideas.json"
    ideas.write_text(json.dumps(IDEAS))
    return main(["--model", "scripted/demo", "--ideas", str(ideas), "--templates-dir", str(templates_dir),
                 "--results-dir", str(tmp_path / "results"), "--no-writeup", *extra])


def state(tmp_path, name: str) -> dict:
    (folder,) = (tmp_path / "results" / "sae_variants").glob(f"*_{name}")
    return json.loads((folder / "state.json").read_text())


def test_transient_faults_are_retried_and_the_reply_is_paid_once(templates_dir, tmp_path, scripted):
    handler = scripted([{"fault": "rate_limit"}, {"fault": "server_error"}, "ALL_COMPLETED",
                        {"fault": "timeout"}, "ALL_COMPLETED"])

    assert launch(templates_dir, tmp_path) == 0

    assert len(handler.prompts) == 5 and not handler.replies
    for name in ("first_idea", "second_idea"):
        assert state(tmp_path, name)["stage"] == "done"
    ledgers = [json.loads(path.read_text())["entries"]
               for path in sorted((tmp_path / "results" / "sae_variants").glob("*/cost_ledger.json"))]
    assert [[entry["reply"] for entry in ledger] for ledger in ledgers] == [["ALL_COMPLETED"], ["ALL_COMPLETED"]]


@pytest.mark.parametrize("fault, reason", [
    ("rate_limit", "rate limited the request (HTTP 429)"),
    ("server_error", "servers failed (HTTP 5xx)"),
    ("timeout", "did not answer in time"),
])
def test_a_fault_that_outlasts_the_retries_fails_that_idea_and_the_next_goes_on(templates_dir, tmp_path, scripted,
                                                                                capsys, fault, reason):
    handler = scripted([{"fault": fault}] * ATTEMPTS + ["ALL_COMPLETED"])

    assert launch(templates_dir, tmp_path) == 1

    failed = state(tmp_path, "first_idea")
    assert failed["status"] == "failed"
    assert failed["error"].startswith("LLMUnavailable: scripted/demo: ")
    assert reason in failed["error"] and f"Gave up after {ATTEMPTS} attempts" in failed["error"]
    assert state(tmp_path, "second_idea")["stage"] == "done"
    assert not handler.replies
    assert "first_idea (LLMUnavailable" in capsys.readouterr().err


def edit(search: str, replace: str) -> str:
    return f"experiment.py\n{FENCE}python\n<<<<<<< SEARCH\n{search}=======\n{replace}>>>>>>> REPLACE\n{FENCE}\n"


def test_unusable_replies_end_the_idea_out_of_tries_and_the_next_goes_on(templates_dir, tmp_path, scripted):
    never_matches = "DESCRIPTION: edit code that is not there\n" + edit("def no_such_function():\n", "pass\n")
    handler = scripted([
        "",  # try 1: an empty reply
        # try 2: a reply cut off inside its edit block; aider sends its parse error back (a reflection), then a
        # garbled reply, then SEARCH blocks that never match, until aider's three reflections are used up
        f"DESCRIPTION: truncated\nexperiment.py\n{FENCE}python\n<<<<<<< SEARCH\ndef main(out_dir",
        "\x00\x1b[2J<<<<<<< ======= >>>>>>> ??? garbled",
        never_matches,
        never_matches,
        "ALL_COMPLETED",  # the second idea
    ])
    experiment_before = (templates_dir / "sae_variants" / "experiment.py").read_text()

    assert launch(templates_dir, tmp_path, "--max-iters", "2") == 0

    assert not handler.replies
    prompts = [messages[-1]["content"] for messages in handler.prompts]
    assert "SEARCH/REPLACE" in prompts[3] or "did not match" in prompts[3]
    ended = state(tmp_path, "first_idea")
    assert ended["status"] == "out_of_tries" and ended["stage"] == "done"
    assert ended["reason"] == ("2 failed tries in a row at run 1; the last: the edit changed nothing; not run")
    (folder,) = (tmp_path / "results" / "sae_variants").glob("*_first_idea")
    assert (folder / "experiment.py").read_text() == experiment_before
    assert not (folder / "run_1").exists()
    assert state(tmp_path, "second_idea")["stage"] == "done"
