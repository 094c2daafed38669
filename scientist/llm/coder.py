"""The LLM coder: aider as a library, in diff (SEARCH/REPLACE) format. Each completion aider asks for goes through
scientist.llm.client.call_llm, so it is retried, budgeted, recorded in the ledger with its reply, and replayed from
there when a resumed idea asks it again; aider's own parsing and edit code then apply the reply as usual.

aider is set up to make no network call of its own: litellm reads its local cost map, and aider's model-info
manager is given that map (otherwise aider tries to download it for every model it makes).
"""

import hashlib
import os
from pathlib import Path

import litellm
from aider.models import Model, model_info_manager, request_timeout

from scientist.experiment.runner import USER_HOME_VARIABLE
from scientist.llm.client import LLMUnavailable, call_llm
from scientist.llm.ledger import Budget, BudgetExceeded, Ledger


def prepare_aider_home(home: Path):
    """aider writes ~/.aider/; give it a folder of its own, and its model information from litellm's local map.

    The user's own HOME is kept in USER_HOME_VARIABLE, so that runs still find their caches under it.
    """
    home.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault(USER_HOME_VARIABLE, os.environ.get("HOME", ""))
    os.environ["HOME"] = str(home)
    # Works around aider's ModelInfoManager (aider/models.py): its one instance, made when aider.models is imported,
    # fixes its cache path from the HOME of that moment (so a cache seeded under this HOME is never read), and every
    # Model() whose name is not in its local metadata downloads litellm's price list when that cache is missing,
    # stale (24 h) or "{}" -- again and again, since a failed download leaves nothing loaded. Hand it the map litellm
    # already holds (the local one: configure_offline_litellm), marked as loaded, so that it reads no cache file.
    model_info_manager.content = litellm.model_cost
    model_info_manager._cache_loaded = True


class LedgeredModel(Model):
    """aider's model, with its completions made by call_llm under the stage the Coder is working on."""

    def __init__(self, name: str, ledger: Ledger, budget: Budget):
        super().__init__(name)
        self.ledger, self.budget, self.stage = ledger, budget, "coder"
        self.failure: Exception | None = None

    def send_completion(self, messages, functions, stream, temperature=None):
        # The settings aider's own send_completion passes (the coder uses neither functions nor streaming).
        kwargs = {"timeout": request_timeout}
        if self.use_temperature is not False:
            default = 0 if isinstance(self.use_temperature, bool) else float(self.use_temperature)
            kwargs["temperature"] = default if temperature is None else temperature
        kwargs.update(self.extra_params or {})
        if self.is_ollama() and "num_ctx" not in kwargs:
            kwargs["num_ctx"] = int(self.token_count(messages) * 1.25) + 8192
        try:
            response = call_llm(self.name, messages, stage=self.stage, ledger=self.ledger, budget=self.budget,
                                **kwargs)
        except (LLMUnavailable, BudgetExceeded) as err:
            self.failure = err  # aider catches every exception of a send; Coder.ask raises this one again
            raise
        return hashlib.sha1(self.name.encode()), response


class SortedFileSet(set):
    """A set of file paths that iterates in sorted order."""

    def __iter__(self):
        return iter(sorted(set.__iter__(self)))


class Coder:
    """One aider session over some files of an idea folder."""

    def __init__(self, folder: Path, fnames: list[str], model: str, ledger: Ledger, budget: Budget):
        from aider.coders import Coder as AiderCoder
        from aider.io import InputOutput

        self.llm = LedgeredModel(model, ledger, budget)
        (folder / "logs").mkdir(exist_ok=True)
        # yes=False: aider's questions (edit a file outside the chat? create a file?) are answered no, so the
        # coder can change only the files it was given.
        io = InputOutput(yes=False, pretty=False, fancy_input=False, input_history_file=None,
                         chat_history_file=str(folder / "logs" / "aider_chat.md"))
        self.aider = AiderCoder.create(
            main_model=self.llm, fnames=[str(folder / name) for name in fnames], io=io,
            edit_format="diff", use_git=False, stream=False, auto_lint=False, auto_test=False,
            suggest_shell_commands=False, detect_urls=False, map_tokens=0,
        )
        # aider keeps the chat's files in a set and sends their contents in its iteration order, which for strings
        # changes with each process's hash seed: a resumed session with two files could send them in the other
        # order, miss its recorded reply and pay again. Sorted iteration keeps the request the same.
        self.aider.abs_fnames = SortedFileSet(self.aider.abs_fnames)
        # Chat-history summaries go through the same ledger (aider would otherwise ask its weak model directly,
        # unrecorded).
        self.aider.summarizer.models = [self.llm]
        # Works around aider's eager summaries (base_coder.move_back_cur_messages): after each reply that leaves the
        # history over its limit, aider starts summarising it in a thread, which is paid for even when the session
        # asks nothing more (each write-up section is a session of its own) and which races the next session's call.
        # Here a summary is made, in this thread, only before a message that the history would be sent with.
        self._summarize = self.aider.summarize_start
        self.aider.summarize_start = lambda: None

    def ask(self, prompt: str, stage: str) -> str:
        """Send one message; aider applies any SEARCH/REPLACE blocks in the reply to the files."""
        self.llm.stage, self.llm.failure = stage, None
        self._summarize()
        self.aider.summarize_end()
        reply = self.aider.run(with_message=prompt)
        if self.llm.failure is not None:
            raise self.llm.failure
        return reply or ""
