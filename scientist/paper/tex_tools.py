"""The paper's tools (pdflatex, bibtex, chktex and the reviewers' pdftotext) in the run sandbox: their input is
LLM-written text, and Debian's TeX reads any file it is asked to (openin_any = a).

Each tool sees the system and the TeX installation read-only, the folder it works in writable and the files it is
given readable; nothing of the user's (home, other ideas, the orchestrator) is there to read. It has no network, an
environment of PATH, HOME and TeX's settings only (no key, and no TEXINPUTS of the user's that could lead TeX
elsewhere), a timeout, and memory, process and file-size limits. TeX is restricted in every build, sandboxed or not
(the limits-only fallback too): it opens no file by an absolute path, a path with `..` or a dot file (openin_any=p,
openout_any=p) and runs no program (shell_escape=f), whatever the machine's texmf.cnf says.
"""

from __future__ import annotations

import functools
import logging
import os
import shutil
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from scientist.experiment.sandbox import DEFAULT_MAX_PROCESSES, SandboxPolicy, run_sandboxed

logger = logging.getLogger(__name__)

# What the tools need of the host, read-only: programs and libraries (/bin, /lib, ... are links into /usr on a merged
# /usr), TeX's configuration and generated trees (texmf.cnf, formats, font maps), the links Debian's alternatives make
# (bibtex), chktex's settings, and fontconfig's for poppler.
SYSTEM_PATHS = tuple(Path(path) for path in (
    "/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc/alternatives", "/etc/ld.so.cache",
    "/etc/texmf", "/etc/chktexrc", "/etc/fonts", "/var/lib/texmf"))
TEX_RESTRICTIONS = {"openin_any": "p", "openout_any": "p", "shell_escape": "f"}
# TeX wraps log lines at 79 characters; unwrapped, a message and its file name stay on one line (latex.py parses it).
TEX_LOG_WIDTH = {"max_print_line": "10000", "error_line": "254", "half_error_line": "238"}
MEMORY_BYTES = 2 * 2**30  # pdflatex on a paper with figures peaks near 100 MB
MAX_FILE_BYTES = 512 * 2**20  # the largest PDF or log a paper could need, many times over
# A TeX Live installed outside /usr keeps its trees beside its programs: <root>/bin/<platform>/pdflatex.
TEX_LIVE_BIN_DEPTH = 2


@dataclass(frozen=True)
class ToolRun:
    """What a tool left: its exit code (None when it ran past its timeout and was killed) and its output."""

    returncode: int | None
    stdout: str
    stderr: str


def _installation(tool: str) -> Path | None:
    """The installation `tool` runs from, when it is outside SYSTEM_PATHS: a TeX Live in /opt or the home folder
    (<root>/bin/<platform>/pdflatex), or a prefix such as conda's (<prefix>/bin/pdftotext). Never the home folder
    itself or a folder above it: only the tool's own folder then."""
    found = shutil.which(tool)
    if found is None:
        raise FileNotFoundError(f"{tool} is not installed: the paper needs it (`make setup` installs the Debian "
                                "packages texlive-latex-base, texlive-latex-recommended, chktex and poppler-utils)")
    real = Path(found).resolve()
    if any(real.is_relative_to(path.resolve()) for path in SYSTEM_PATHS if path.exists()):
        return None
    root = real.parents[TEX_LIVE_BIN_DEPTH] if real.parent.parent.name == "bin" else real.parent.parent
    return real.parent if Path.home().is_relative_to(root) else root


@functools.cache
def _log_once(warning: str) -> None:
    # A paper takes dozens of tool runs, each with the same report of what the machine lacks: once is enough.
    logger.warning("sandbox (the paper's TeX tools): %s", warning)


def run_tool(command: Iterable[str], workdir: Path, timeout_s: float, readable: Iterable[Path] = ()) -> ToolRun:
    """Run a TeX or poppler tool in `workdir` (writable), sandboxed, reading `readable` too. Raises FileNotFoundError,
    naming the package, when the tool is not installed."""
    command = list(command)
    installation = _installation(command[0])
    policy = SandboxPolicy(workdir, memory_bytes=MEMORY_BYTES, max_processes=DEFAULT_MAX_PROCESSES,
                           max_file_bytes=MAX_FILE_BYTES, readable=tuple(readable),
                           exposed=SYSTEM_PATHS + ((installation,) if installation else ()))
    environment = {"PATH": os.environ.get("PATH", os.defpath), "HOME": str(policy.workdir), **TEX_LOG_WIDTH,
                   **TEX_RESTRICTIONS}
    # Files, not pipes: run_sandboxed reads nothing while the tool runs.
    with tempfile.TemporaryFile() as stdout, tempfile.TemporaryFile() as stderr:
        report = run_sandboxed(command, policy, timeout_s, stdout, stderr, environment)
        stdout.seek(0)
        stderr.seek(0)
        out, err = (stream.read().decode(errors="replace") for stream in (stdout, stderr))
    if report.warning:
        _log_once(report.warning)
    return ToolRun(None if report.timed_out else report.exit_code, out, err)
