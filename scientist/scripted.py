"""A scripted LLM for the offline demo and the tests: a litellm CustomLLM that replays written replies.

Only the LLM's words are scripted. The replies go through litellm and then through aider's real parsing and
edit code, so a SEARCH block that does not match fails exactly as it would with a real model.
"""

import json
from pathlib import Path

import litellm
from litellm import CustomLLM

PROVIDER = "scripted"
DEMO_MODEL = f"{PROVIDER}/demo"
DEMO_SCRIPT = Path(__file__).resolve().parent.parent / "demo" / "script.json"


class ScriptExhausted(RuntimeError):
    """The scripted model was asked for more replies than it was given."""


class ScriptedLLM(CustomLLM):
    def __init__(self, replies: list[str]):
        super().__init__()
        self.replies = list(replies)
        self.prompts: list[list[dict]] = []

    def completion(self, model, messages, *args, **kwargs):
        self.prompts.append([dict(m) for m in messages])  # a copy: callers may keep appending to theirs
        if not self.replies:
            raise ScriptExhausted(f"the scripted model has no reply left for call {len(self.prompts)}")
        return litellm.completion(model="openai/scripted", messages=messages, mock_response=self.replies.pop(0))


def register_scripted(replies: list[str]) -> ScriptedLLM:
    """Route the model string 'scripted/<anything>' to a ScriptedLLM holding these replies."""
    handler = ScriptedLLM(replies)
    others = [p for p in (litellm.custom_provider_map or []) if p["provider"] != PROVIDER]
    litellm.custom_provider_map = [*others, {"provider": PROVIDER, "custom_handler": handler}]
    # litellm adds custom providers to its list on the first completion; register_model needs it now.
    litellm.utils.custom_llm_setup()
    litellm.register_model({DEMO_MODEL: {
        "max_tokens": 8192, "max_input_tokens": 131072, "max_output_tokens": 8192,
        "input_cost_per_token": 0.0, "output_cost_per_token": 0.0,
        "litellm_provider": PROVIDER, "mode": "chat",
    }})
    return handler


def load_demo_script() -> dict:
    """The demo's idea and its replies (demo/script.json)."""
    return json.loads(DEMO_SCRIPT.read_text())
