"""The aider coder's chat-history summaries: made, through the ledger, only before a message that would carry the
long history, never after a session's last reply (where nobody would read them)."""

import os
import subprocess
import sys

from scientist.llm.coder import Coder
from scientist.llm.ledger import Budget, Ledger
from scientist.llm.scripted import DEMO_MODEL
from tests.conftest import REPO

# Far past aider's history limit for the scripted model (max_chat_history_tokens is at most 8192 tokens).
LONG_PROMPT = "Read these notes, then answer in one line.\n" + "notes line with a few words in it\n" * 4000


def edit(old: str, new: str) -> str:
    """A reply that edits notes.txt: aider moves an exchange into the history only after a reply that edited."""
    return f"Done.\n\nnotes.txt\n```\n<<<<<<< SEARCH\n{old}\n=======\n{new}\n>>>>>>> REPLACE\n```\n"


def test_a_session_whose_last_reply_leaves_a_long_history_pays_for_no_summary(tmp_path, scripted):
    llm = scripted([edit("notes", "first"), "A summary of the chat so far.", edit("first", "second")])
    (tmp_path / "notes.txt").write_text("notes\n")
    ledger = Ledger(tmp_path / "cost_ledger.json")
    coder = Coder(tmp_path, ["notes.txt"], DEMO_MODEL, ledger, Budget(None))

    coder.ask(LONG_PROMPT, stage="first")
    assert (tmp_path / "notes.txt").read_text() == "first\n"
    coder.aider.summarize_end()  # where aider's own thread would have finished its summary
    assert len(llm.prompts) == 1, "no summary after the session's last reply"

    coder.ask("One more question.", stage="second")
    assert (tmp_path / "notes.txt").read_text() == "second\n"
    assert len(llm.prompts) == 3, "the long history is summarised before the next message, then the message is sent"
    assert "summar" in " ".join(str(m.get("content", "")) for m in llm.prompts[1]).lower()
    assert "A summary of the chat so far." in str(llm.prompts[2])
    assert [entry.stage for entry in ledger.entries] == ["first", "second", "second"]


# One Coder over two files asks, in a fresh interpreter with the given hash seed, and prints the request digest.
ASK_OVER_TWO_FILES = """
import sys
from pathlib import Path
from scientist.llm.coder import Coder
from scientist.llm.ledger import Budget, Ledger
from scientist.llm.scripted import DEMO_MODEL, register_scripted

folder = Path(sys.argv[1])
register_scripted(["No change is needed."])
ledger = Ledger(folder / f"ledger-{sys.argv[2]}.json")
Coder(folder, ["plot.py", "notes.txt", "b.txt", "a.txt"], DEMO_MODEL, ledger, Budget(None)).ask("Check.", stage="x")
print(ledger.entries[0].request)
"""


def test_a_session_over_several_files_sends_the_same_request_in_every_process(tmp_path):
    """aider keeps the chat's files in a set, whose order of strings changes with the process's hash seed; a resumed
    idea must send the very request it recorded, or it pays for the reply again."""
    for name in ("plot.py", "notes.txt", "b.txt", "a.txt"):
        (tmp_path / name).write_text(f"{name}\n")
    digests = set()
    for seed in ("1", "2", "3", "4", "5", "6"):
        done = subprocess.run([sys.executable, "-c", ASK_OVER_TWO_FILES, str(tmp_path), seed], cwd=REPO,
                              env={**os.environ, "PYTHONHASHSEED": seed}, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-2000:]
        digests.add(done.stdout.strip().splitlines()[-1])
    assert len(digests) == 1
