"""An offline launch makes no network call: a whole scripted launch (the run coder, the plot coder, the notes coder)
with every socket of the process refused, and every attempt recorded rather than merely failed."""

import json
import os
import socket
import traceback

from scientist.experiment.runner import USER_HOME_VARIABLE
from tests.scientist.test_loop import FENCE, MAIN_START, PLOT_LABELS, edit, idea_folder, launch

NETWORK_LIBRARIES = ("/socket.py", "/urllib3/", "/requests/", "/httpx/", "/httpcore/", "/aiohttp/")


def refuse_sockets(monkeypatch) -> list[str]:
    """Refuse every connection this process tries; return the list each attempt is recorded in."""
    attempts: list[str] = []

    def refuse(what):
        def refused(*args, **kwargs):
            # The innermost frames above the socket and HTTP libraries: the code that asked for the connection.
            frames = [f"{f.filename}:{f.lineno} {f.name}" for f in traceback.extract_stack()[:-1]
                      if not any(lib in f.filename for lib in NETWORK_LIBRARIES)][-6:]
            attempts.append(f"{what}{args[1:] if what.startswith('socket.') else args}\n    " + "\n    ".join(frames))
            raise ConnectionRefusedError(f"test_offline: {what} refused")
        return refused

    monkeypatch.setattr(socket.socket, "connect", refuse("socket.connect"))
    monkeypatch.setattr(socket.socket, "connect_ex", refuse("socket.connect_ex"))
    monkeypatch.setattr(socket, "create_connection", refuse("create_connection"))
    monkeypatch.setattr(socket, "getaddrinfo", refuse("getaddrinfo"))
    return attempts


def test_a_scripted_launch_tries_no_connection(templates_dir, tmp_path, scripted, monkeypatch):
    # The runs keep the user's HOME (their model caches are there). The HOME aider sees when the launch imports it is
    # an empty one, as on a machine where aider never ran, so that no model-info cache of the user's (a fresh one
    # would hide the download) decides whether aider tries to download its price list.
    monkeypatch.setenv(USER_HOME_VARIABLE, os.environ.get(USER_HOME_VARIABLE) or os.environ["HOME"])
    monkeypatch.setenv("HOME", str(tmp_path / "empty_home"))
    handler = scripted([
        "DESCRIPTION: the baseline again\n" + edit(MAIN_START, MAIN_START + "    # run 1 of the offline test\n"),
        "INTERPRETATION: the run repeats the baseline.\nALL_COMPLETED",
        edit(PLOT_LABELS, 'labels = {\n    "run_0": "Baseline",\n    "run_1": "Again",\n}\n', "plot.py"),
        f"notes.txt\n{FENCE}\n<<<<<<< SEARCH\n=======\n## Figures\nmetrics_comparison.png compares runs.\n"
        f">>>>>>> REPLACE\n{FENCE}\n",
    ])
    attempts = refuse_sockets(monkeypatch)

    code = launch(templates_dir, tmp_path, "--max-runs", "1")

    assert not attempts, f"{len(attempts)} connection(s) tried:\n" + "\n".join(attempts)
    assert code == 0
    # The launch got past three coders: the runs', plot.py's and notes.txt's each used their replies.
    assert not handler.replies
    folder = idea_folder(tmp_path)
    assert "## Figures" in (folder / "notes.txt").read_text()
    assert json.loads((folder / "state.json").read_text())["stage"] == "done"
