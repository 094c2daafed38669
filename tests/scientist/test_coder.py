"""The aider coder's chat-history summaries: made, through the ledger, only before a message that would carry the
long history, never after a session's last reply (where nobody would read them)."""

from scientist.llm.coder import Coder
from scientist.llm.ledger import Budget, Ledger
from scientist.llm.scripted import DEMO_MODEL

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
