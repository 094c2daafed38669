"""Running code an LLM wrote: the flake8 fatal-error gate, and experiment.py / plot.py as subprocesses with the
template environment's python, under a timeout. The experiment process never sees an API key."""

import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from .progress import last_progress_line

FATAL_LINT_CODES = "E9,F821,F823,F831,F406,F407,F701,F702,F704,F706"
STDERR_TAIL_CHARS = 1500
HEARTBEAT_S = 30.0
USER_HOME_VARIABLE = "SCIENTIST_USER_HOME"
SECRET_NAME = re.compile(r"(API_KEY|_KEY|_TOKEN|SECRET|PASSWORD)$|^(AWS|AZURE|GOOGLE_APPLICATION)_", re.IGNORECASE)


@dataclass(frozen=True)
class ProcessResult:
    returncode: int
    stderr_tail: str
    timed_out: bool
    seconds: float

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not self.timed_out


def lint(path: Path) -> str:
    """flake8's fatal errors in one file ('' when clean): errors that would crash the run before it starts."""
    result = subprocess.run(
        [sys.executable, "-m", "flake8", f"--select={FATAL_LINT_CODES}", path.name],
        cwd=path.parent, capture_output=True, text=True,
    )
    return result.stdout.strip()


def scrubbed_environment(environ: Mapping[str, str] | None = None) -> dict:
    """The caller's environment (or `environ`) without API keys and tokens: experiments need none. SAE_* settings
    pass through (SAE_TRAINING_TOKENS is a size, not a secret)."""
    environ = os.environ if environ is None else environ
    env = {k: v for k, v in environ.items() if k.startswith("SAE_") or not SECRET_NAME.search(k)}
    # aider runs with a HOME of its own; the experiment gets the user's, where its model and activation caches are.
    if env.get(USER_HOME_VARIABLE):
        env["HOME"] = env.pop(USER_HOME_VARIABLE)
    return env


def run_python(python: Path, args: list[str], cwd: Path, timeout_s: float, log_name: str,
               on_heartbeat: Callable[[str], None] | None = None,
               environ: Mapping[str, str] | None = None) -> ProcessResult:
    """Run `python args...` in cwd (with `environ`, by default this process's, scrubbed of secrets), its output in
    cwd/logs/<log_name>.stdout|stderr. Every HEARTBEAT_S seconds on_heartbeat gets the latest progress line the
    process wrote to stderr."""
    logs = cwd / "logs"
    logs.mkdir(exist_ok=True)
    stderr_path = logs / f"{log_name}.stderr"
    started = time.perf_counter()
    with open(logs / f"{log_name}.stdout", "w") as out, open(stderr_path, "w") as err:
        process = subprocess.Popen([str(python), *args], cwd=cwd, stdout=out, stderr=err,
                                   env=scrubbed_environment(environ))
        try:
            returncode, timed_out = _wait(process, started, timeout_s, stderr_path, on_heartbeat)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
    stderr = stderr_path.read_text(errors="replace")
    return ProcessResult(returncode, stderr[-STDERR_TAIL_CHARS:], timed_out, time.perf_counter() - started)


def _wait(process: subprocess.Popen, started: float, timeout_s: float, stderr_path: Path,
          on_heartbeat: Callable[[str], None] | None) -> tuple[int, bool]:
    while True:
        left = timeout_s - (time.perf_counter() - started)
        if left <= 0:
            return -9, True
        try:
            return process.wait(timeout=min(HEARTBEAT_S, left)), False
        except subprocess.TimeoutExpired:
            if on_heartbeat and time.perf_counter() - started < timeout_s:
                on_heartbeat(last_progress_line(_tail(stderr_path)))


def _tail(path: Path, size: int = 4096) -> str:
    with open(path, "rb") as file:
        file.seek(max(0, path.stat().st_size - size))
        return file.read().decode(errors="replace")


def run_experiment(python: Path, folder: Path, run_number: int, timeout_s: float,
                   on_heartbeat: Callable[[str], None] | None = None) -> ProcessResult:
    """`python experiment.py --out_dir=run_i`. A failed run leaves no run_i folder to be mistaken for a result."""
    result = run_python(python, ["experiment.py", f"--out_dir=run_{run_number}"], folder, timeout_s,
                        f"run_{run_number}", on_heartbeat)
    run_dir = folder / f"run_{run_number}"
    if not result.ok or not (run_dir / "final_info.json").exists():
        shutil.rmtree(run_dir, ignore_errors=True)
        if result.ok:
            return ProcessResult(1, "experiment.py exited 0 but wrote no final_info.json", False, result.seconds)
    return result


def run_plot(python: Path, folder: Path, timeout_s: float, attempt: int) -> ProcessResult:
    return run_python(python, ["plot.py"], folder, timeout_s, f"plot_{attempt}")
