"""A scripted LLM for the offline demo and the tests: a litellm CustomLLM that replays written replies.

Only the LLM's words are scripted. The replies go through litellm and then through aider's real parsing and
edit code, so a SEARCH block that does not match fails exactly as it would with a real model. A reply may also be
a fault, {"fault": "rate_limit" | "server_error" | "timeout"}: the provider error a real API raises (HTTP 429, 500,
a timeout), for the tests of retries and of ideas failing cleanly.

A demo script (demo/script.json) holds the idea and the replies, and may script more: "autointerp"
(scientist/pipeline/autointerp.py), "citations" (scientist/paper/citations.py) and "sees_images": true, which registers
the scripted model in litellm's model information as one that takes images, so that the figure check and the
reviewers show it the figures and the pages as they would a real vision model (scientist/llm/vision.py).
"""

import json
from pathlib import Path

import litellm
from litellm import CustomLLM

PROVIDER = "scripted"
DEMO_MODEL = f"{PROVIDER}/demo"
SEES_IMAGES_FIELD = "sees_images"


class ScriptExhausted(RuntimeError):
    """The scripted model was asked for more replies than it was given."""


FAULTS = {
    "rate_limit": lambda: litellm.RateLimitError("scripted HTTP 429", llm_provider=PROVIDER, model=DEMO_MODEL),
    "server_error": lambda: litellm.InternalServerError("scripted HTTP 500", llm_provider=PROVIDER, model=DEMO_MODEL),
    "timeout": lambda: litellm.Timeout("scripted timeout", model=DEMO_MODEL, llm_provider=PROVIDER),
}


class ScriptedLLM(CustomLLM):
    def __init__(self, replies: list[str | dict]):
        super().__init__()
        self.replies = list(replies)
        self.prompts: list[list[dict]] = []

    def completion(self, model, messages, *args, **kwargs):
        self.prompts.append([dict(m) for m in messages])  # a copy: callers may keep appending to theirs
        if not self.replies:
            raise ScriptExhausted(f"the scripted model has no reply left for call {len(self.prompts)}")
        reply = self.replies.pop(0)
        if isinstance(reply, dict):
            raise FAULTS[reply["fault"]]()
        if not reply:  # litellm takes an empty mock_response for "no mock" and would call the real API
            return litellm.ModelResponse(model=model, choices=[litellm.Choices(
                index=0, finish_reason="stop", message=litellm.Message(role="assistant", content=""))])
        return litellm.completion(model="openai/scripted", messages=messages, mock_response=reply)


def register_scripted(replies: list[str | dict], sees_images: bool = False) -> ScriptedLLM:
    """Route the model string 'scripted/<anything>' to a ScriptedLLM holding these replies; with `sees_images`,
    litellm's model information says the demo model takes images."""
    handler = ScriptedLLM(replies)
    others = [p for p in (litellm.custom_provider_map or []) if p["provider"] != PROVIDER]
    litellm.custom_provider_map = [*others, {"provider": PROVIDER, "custom_handler": handler}]
    # litellm adds custom providers to its list on the first completion; register_model needs it now.
    litellm.utils.custom_llm_setup()
    litellm.register_model({DEMO_MODEL: {
        "max_tokens": 8192, "max_input_tokens": 131072, "max_output_tokens": 8192,
        "input_cost_per_token": 0.0, "output_cost_per_token": 0.0,
        "litellm_provider": PROVIDER, "mode": "chat", "supports_vision": sees_images,
    }})
    return handler


def load_demo_script(path: Path) -> dict:
    """A demo's idea and its replies (demo/script.json, unless --demo-script names another)."""
    return json.loads(path.read_text())
