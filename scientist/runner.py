"""Running code an LLM wrote: the flake8 fatal-error gate, and experiment.py / plot.py as subprocesses with the
template environment's python, under a timeout. The experiment process never sees an API key."""

import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

FATAL_LINT_CODES = "E9,F821,F823,F831,F406,F407,F701,F702,F704,F706"
STDERR_TAIL_CHARS = 1500
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


def scrubbed_environment() -> dict:
    """The caller's environment without API keys and tokens: experiments need none. SAE_* settings pass through
    (SAE_TRAINING_TOKENS is a size, not a secret)."""
    env = {k: v for k, v in os.environ.items() if k.startswith("SAE_") or not SECRET_NAME.search(k)}
    # aider runs with a HOME of its own; the experiment gets the user's, where its model and activation caches are.
    if env.get(USER_HOME_VARIABLE):
        env["HOME"] = env.pop(USER_HOME_VARIABLE)
    return env


def run_python(python: Path, args: list[str], cwd: Path, timeout_s: float, log_name: str) -> ProcessResult:
    logs = cwd / "logs"
    logs.mkdir(exist_ok=True)
    started = time.perf_counter()
    with open(logs / f"{log_name}.stdout", "w") as out, open(logs / f"{log_name}.stderr", "w+") as err:
        try:
            process = subprocess.run([str(python), *args], cwd=cwd, stdout=out, stderr=err,
                                     env=scrubbed_environment(), timeout=timeout_s)
            returncode, timed_out = process.returncode, False
        except subprocess.TimeoutExpired:
            returncode, timed_out = -9, True
        err.seek(0)
        stderr = err.read()
    return ProcessResult(returncode, stderr[-STDERR_TAIL_CHARS:], timed_out, time.perf_counter() - started)


def run_experiment(python: Path, folder: Path, run_number: int, timeout_s: float) -> ProcessResult:
    """`python experiment.py --out_dir=run_i`. A failed run leaves no run_i folder to be mistaken for a result."""
    result = run_python(python, ["experiment.py", f"--out_dir=run_{run_number}"], folder, timeout_s,
                        f"run_{run_number}")
    run_dir = folder / f"run_{run_number}"
    if not result.ok or not (run_dir / "final_info.json").exists():
        shutil.rmtree(run_dir, ignore_errors=True)
        if result.ok:
            return ProcessResult(1, "experiment.py exited 0 but wrote no final_info.json", False, result.seconds)
    return result


def run_plot(python: Path, folder: Path, timeout_s: float, attempt: int) -> ProcessResult:
    return run_python(python, ["plot.py"], folder, timeout_s, f"plot_{attempt}")
