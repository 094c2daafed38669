"""What an idea has finished, kept on disk so that a resumed idea replays it instead of doing it again.

A journal is a JSON file `{"entries": [...]}`, rewritten atomically after every append, so a process killed at any
moment leaves either the old list or the new one. The idea's cost ledger is a journal of LLM calls (each with its
reply), and `run_attempts.json` a journal of experiment runs. `replay(field, key)` hands out, in order, the entries
whose `field` equals `key` and that this process has not replayed yet: an idea that asked the same question twice
gets its two answers back in the order it first got them.
"""

import json
import threading
from pathlib import Path

from scientist.store.files import atomic_write_text


class JournalError(Exception):
    """The journal file cannot be read; the message names it and says what to do."""


class Journal:
    def __init__(self, path: Path | str):
        self.path = Path(path)
        self._lock = threading.Lock()  # aider summarises chat history in a thread of its own
        self._entries: list[dict] = self._read() if self.path.exists() else []
        self._replayed: set[int] = set()

    @property
    def entries(self) -> list[dict]:
        return list(self._entries)

    def append(self, entry: dict) -> None:
        """Add one entry; it is kept only once the file holding it is on disk."""
        with self._lock:
            entries = [*self._entries, entry]
            atomic_write_text(self.path, json.dumps({"entries": entries}, indent=2) + "\n")
            self._entries = entries
            # What this process records itself is never handed back to it as a replay.
            self._replayed.add(len(entries) - 1)

    def replay(self, field: str, key: str) -> dict | None:
        """The first entry with entry[field] == key that this process has not replayed yet, or None."""
        with self._lock:
            for index, entry in enumerate(self._entries):
                if index not in self._replayed and entry.get(field) == key:
                    self._replayed.add(index)
                    return entry
        return None

    @property
    def unreplayed(self) -> int:
        """How many recorded entries this process has not replayed (yet)."""
        return len(self._entries) - len(self._replayed)

    def _read(self) -> list[dict]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError) as err:
            raise JournalError(f"{self.path}: unreadable ({type(err).__name__}: {err}); move it aside to start "
                               "again without what it recorded") from err
        if not isinstance(data, dict) or not isinstance(data.get("entries"), list) or not all(
                isinstance(entry, dict) for entry in data["entries"]):
            raise JournalError(f'{self.path}: expected an object with an "entries" list of objects; move it aside '
                               "to start again without what it recorded")
        return data["entries"]
