"""Running code an LLM wrote: the flake8 fatal-error gate, and experiment.py / plot.py with the template
environment's python, in the sandbox, under a timeout. The experiment process never sees an API key."""

import json
import logging
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

import jsonschema

from scientist.experiment.manifest import Manifest
from scientist.experiment.sandbox import SandboxPolicy, clean_environment, run_sandboxed
from scientist.launch.progress import last_progress_line
from scientist.store.folder import FINAL_INFO_FILE, ResultsError, final_info_path, read_result_file, run_dir
from scientist.store.journal import Journal

log = logging.getLogger(__name__)

FATAL_LINT_CODES = "E9,F821,F823,F831,F406,F407,F701,F702,F704,F706"
STDERR_TAIL_CHARS = 1500
HEARTBEAT_S = 30.0
USER_HOME_VARIABLE = "SCIENTIST_USER_HOME"
# AI-Scientist's file contract: every template runs `python experiment.py --out_dir=run_i` and `python plot.py`.
EXPERIMENT_FILE = "experiment.py"
PLOT_FILE = "plot.py"


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


def scrubbed_environment(manifest: Manifest, environ: Mapping[str, str] | None = None) -> dict:
    """The caller's environment (or `environ`) as a run gets it: without secrets or provider variables
    (sandbox.clean_environment) but with the template's settings, with the user's HOME, and with matplotlib's
    cache in the run's private /tmp."""
    env = clean_environment(os.environ if environ is None else environ, manifest.settings_prefix)
    # aider runs with a HOME of its own; the experiment gets the user's, where its model and activation caches are.
    if env.get(USER_HOME_VARIABLE):
        env["HOME"] = env.pop(USER_HOME_VARIABLE)
    env.setdefault("MPLCONFIGDIR", "/tmp/matplotlib")
    return env


def writable_caches(manifest: Manifest, env: Mapping[str, str]) -> tuple[Path, ...]:
    """The folders a run may write besides its own: the template's cache (its manifest's run.cache, under
    ~/.cache unless run.cache_variable moves it), created here so that the sandbox can bind it."""
    if not manifest.cache:
        return ()
    base = env.get("XDG_CACHE_HOME") or str(Path(env.get("HOME", "~")).expanduser() / ".cache")
    cache = Path((manifest.cache_variable and env.get(manifest.cache_variable)) or Path(base) / manifest.cache)
    cache.mkdir(parents=True, exist_ok=True)
    return (cache,)


def run_python(manifest: Manifest, python: Path, args: list[str], cwd: Path, timeout_s: float, log_name: str,
               on_heartbeat: Callable[[str], None] | None = None,
               environ: Mapping[str, str] | None = None) -> ProcessResult:
    """Run `python args...` in cwd, in the sandbox (experiment/sandbox.py: only cwd and the caches writable, no
    network, no secrets, resource limits), its output in cwd/logs/<log_name>.stdout|stderr. Every HEARTBEAT_S
    seconds on_heartbeat gets the latest progress line the process wrote to stderr. A limit the run hit is added to
    the end of its stderr tail, so that the coder reads it."""
    logs = cwd / "logs"
    logs.mkdir(exist_ok=True)
    stderr_path = logs / f"{log_name}.stderr"
    env = scrubbed_environment(manifest, environ)
    policy = SandboxPolicy(workdir=cwd, writable=writable_caches(manifest, env),
                           settings_prefix=manifest.settings_prefix)
    poll = (lambda: on_heartbeat(last_progress_line(_tail(stderr_path)))) if on_heartbeat else None
    with open(logs / f"{log_name}.stdout", "w") as out, open(stderr_path, "w") as err:
        report = run_sandboxed([str(python), *args], policy, timeout_s, out, err, env, poll_s=HEARTBEAT_S,
                               on_poll=poll)
    if report.warning:
        log.warning("sandbox (%s): %s", log_name, report.warning)
    stderr = stderr_path.read_text(errors="replace")
    if report.limits_hit:
        stderr += f"\nThe sandbox stopped the run: limit hit: {', '.join(report.limits_hit)}\n"
    return ProcessResult(report.exit_code, stderr[-STDERR_TAIL_CHARS:], report.timed_out, report.seconds)


def _tail(path: Path, size: int = 4096) -> str:
    with open(path, "rb") as file:
        file.seek(max(0, path.stat().st_size - size))
        return file.read().decode(errors="replace")


def run_experiment(manifest: Manifest, python: Path, folder: Path, run_number: int, timeout_s: float,
                   on_heartbeat: Callable[[str], None] | None = None,
                   environ: Mapping[str, str] | None = None, out_dir: str = "") -> ProcessResult:
    """`python experiment.py --out_dir=run_i` (or --out_dir=out_dir, a folder inside run_i such as a run's extra
    seed). A failed run leaves no folder to be mistaken for a result."""
    out_dir = out_dir or run_dir(folder, run_number).name
    log_name = out_dir.replace("/", "_")
    result = run_python(manifest, python, [EXPERIMENT_FILE, f"--out_dir={out_dir}"], folder, timeout_s, log_name,
                        on_heartbeat, environ)
    schema = folder / manifest.final_info_schema
    problem = final_info_problem(folder / out_dir / FINAL_INFO_FILE, schema) if result.ok else None
    if not result.ok or problem:
        shutil.rmtree(folder / out_dir, ignore_errors=True)
        if problem:
            return ProcessResult(1, f"experiment.py exited 0, but {problem}", False, result.seconds)
    return result


class RunAttempts:
    """The experiment runs an idea finished, failed ones included (run_attempts.json, a journal): a resumed idea
    gets the result of a run it already finished back, with its run folder, instead of running it again."""

    FILE = "run_attempts.json"

    def __init__(self, folder: Path, manifest: Manifest):
        self.folder, self.manifest = folder, manifest
        self.journal = Journal(folder / self.FILE)

    def finished_runs(self) -> set[int]:
        """The run numbers with a successful run on record (their run_i folders are results)."""
        return {entry["run"] for entry in self.journal.entries if entry["result"]["returncode"] == 0
                and not entry["result"]["timed_out"]}

    def run(self, python: Path, run_number: int, code_digest: str, timeout_s: float,
            on_heartbeat: Callable[[str], None] | None = None) -> tuple[ProcessResult, bool]:
        """run_experiment, unless this run of this code is on record; returns (result, whether it was replayed)."""
        recorded = self.recorded(run_number, code_digest)
        if recorded is not None:
            return recorded, True
        result = run_experiment(self.manifest, python, self.folder, run_number, timeout_s, on_heartbeat)
        self.record(run_number, code_digest, result)
        return result, False

    def recorded(self, run_number: int, code_digest: str) -> ProcessResult | None:
        """The journaled result of this run of this code: a failure, or a success whose run folder is still here."""
        entry = self.journal.replay("key", f"run_{run_number}:{code_digest}")
        if entry is None:
            return None
        result = ProcessResult(**entry["result"])
        return result if not result.ok or final_info_path(self.folder, run_number).exists() else None

    def record(self, run_number: int, code_digest: str, result: ProcessResult) -> None:
        """Journal a finished run (its run folder already in place when it succeeded)."""
        self.journal.append({"key": f"run_{run_number}:{code_digest}", "run": run_number, "code": code_digest,
                             "result": asdict(result)})


def final_info_problem(path: Path, schema_path: Path) -> str | None:
    """Why a run's final_info.json (at path) cannot be read as results (None when it can): missing, not JSON, NaN
    or infinity, or breaking the template's schema (a group without status or means, a number that is not one)."""
    if not path.exists():
        return f"it wrote no {FINAL_INFO_FILE}"
    try:
        info = read_result_file(path)
    except ResultsError as err:
        return f"its {FINAL_INFO_FILE} is {str(err).removeprefix(f'{path}: ')}"
    if schema_path.exists():
        error = jsonschema.exceptions.best_match(jsonschema.Draft202012Validator(
            json.loads(schema_path.read_text())).iter_errors(info))
        if error:
            where = "/".join(str(part) for part in error.absolute_path) or "(top level)"
            return f"its {FINAL_INFO_FILE} breaks {schema_path.name} at {where}: {error.message[:300]}"
    return None


def run_plot(manifest: Manifest, python: Path, folder: Path, timeout_s: float, attempt: int) -> ProcessResult:
    return run_python(manifest, python, [PLOT_FILE], folder, timeout_s, f"plot_{attempt}")
