"""The LLM coder: aider as a library, in diff (SEARCH/REPLACE) format, with its spend recorded in the ledger.

aider is set up to make no network call of its own: litellm reads its local cost map, and aider's model-info
cache is seeded from it (otherwise aider tries to download it on first use).
"""

import json
import os
from pathlib import Path

import litellm

from .llm import Budget, Ledger, aider_usage_snapshot, record_aider_usage
from .runner import USER_HOME_VARIABLE


def prepare_aider_home(home: Path):
    """aider writes ~/.aider/; give it a folder of its own with a fresh model-info cache.

    The user's own HOME is kept in USER_HOME_VARIABLE, so that runs still find their caches under it.
    """
    home.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault(USER_HOME_VARIABLE, os.environ.get("HOME", ""))
    os.environ["HOME"] = str(home)
    cache = home / ".aider" / "caches" / "model_prices_and_context_window.json"
    if not cache.exists():
        cache.parent.mkdir(parents=True, exist_ok=True)
        cache.write_text(json.dumps(litellm.model_cost))


class Coder:
    """One aider session over some files of an idea folder."""

    def __init__(self, folder: Path, fnames: list[str], model: str, ledger: Ledger, budget: Budget):
        from aider.coders import Coder as AiderCoder
        from aider.io import InputOutput
        from aider.models import Model

        self.model, self.ledger, self.budget = model, ledger, budget
        (folder / "logs").mkdir(exist_ok=True)
        # yes=False: aider's questions (edit a file outside the chat? create a file?) are answered no, so the
        # coder can change only the files it was given.
        io = InputOutput(yes=False, pretty=False, fancy_input=False, input_history_file=None,
                         chat_history_file=str(folder / "logs" / "aider_chat.md"))
        self.aider = AiderCoder.create(
            main_model=Model(model), fnames=[str(folder / name) for name in fnames], io=io,
            edit_format="diff", use_git=False, stream=False, auto_lint=False, auto_test=False,
            suggest_shell_commands=False, detect_urls=False, map_tokens=0,
        )

    def ask(self, prompt: str, stage: str) -> str:
        """Send one message; aider applies any SEARCH/REPLACE blocks in the reply to the files."""
        self.budget.check()
        before = aider_usage_snapshot(self.aider)
        try:
            reply = self.aider.run(with_message=prompt)
        finally:
            record_aider_usage(self.aider, self.ledger, stage, self.model, before)
        return reply or ""
