"""The sandbox a run of LLM-written code goes in: bubblewrap for isolation (no network, a read-only file system but for
the idea folder, a pid namespace), cgroups and rlimits for resources, and an environment without secrets. A policy
may show the command only some of the host's file system (SandboxPolicy.exposed): the TeX tools see the system and
the TeX installation, not the user's files.

Where bubblewrap cannot run (or SCIENTIST_SANDBOX=limits-only) the run keeps its limits and clean environment, and
its report says what it lacked. Linux only.

    python -m scientist.experiment.sandbox --dir DIR --timeout S [--memory-mb N] ... -- CMD...

prints the report as JSON on stdout (the command's own output goes to stderr) and exits with the command's code.
"""

import argparse
import contextlib
import dataclasses
import functools
import glob
import json
import os
import re
import resource
import select
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from scientist.experiment.cgroup import RunCgroup

MODE_VARIABLE = "SCIENTIST_SANDBOX"
LIMITS_ONLY = "limits-only"
TIMEOUT_EXIT_CODE = 124
DEFAULT_MEMORY_BYTES = 16 * 2**30
DEFAULT_MAX_PROCESSES = 512
DEFAULT_MAX_FILE_BYTES = 20 * 2**30
MB = 2**20

SECRET_WORD = re.compile(r"KEY|TOKEN|SECRET|PASSWORD", re.IGNORECASE)
PROVIDER_PREFIXES = ("OPENAI_", "ANTHROPIC_", "AZURE_", "AWS_", "GOOGLE_", "GEMINI_", "DEEPSEEK_", "MISTRAL_",
                     "COHERE_", "GROQ_", "TOGETHER", "OPENROUTER_", "LITELLM_", "HF_TOKEN", "HUGGING_FACE_HUB_TOKEN")
# Models and data sets are fetched by the orchestrator before a run; inside one there is no network to fetch them.
OFFLINE = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}

# What Python prints when the kernel refuses memory, a fork or a write past RLIMIT_FSIZE (it ignores SIGXFSZ).
STDERR_MARKERS = (
    ("memory", re.compile(r"(?<![\w.])MemoryError\b")),
    ("processes", re.compile(r"Resource temporarily unavailable")),
    ("file_size", re.compile(r"File too large")),
)
SIGNAL_LIMITS = {signal.SIGXFSZ: "file_size", signal.SIGXCPU: "cpu_time"}
STDERR_TAIL_BYTES = 4096


@dataclass(frozen=True)
class SandboxPolicy:
    workdir: Path
    """The idea folder: the command runs there and may write there."""
    writable: tuple[Path, ...] = ()
    """Other paths the command may write (an activation cache); a private /tmp is always given."""
    memory_bytes: int | None = DEFAULT_MEMORY_BYTES
    """Memory of all the run's processes together (cgroup), or the address space of each (RLIMIT_AS fallback)."""
    cpu_seconds: int | None = None
    """CPU time of each process (RLIMIT_CPU)."""
    max_processes: int | None = DEFAULT_MAX_PROCESSES
    """Processes and threads of the run together (pids cgroup), or of the user (RLIMIT_NPROC fallback)."""
    max_file_bytes: int | None = DEFAULT_MAX_FILE_BYTES
    """Largest file the command may write (RLIMIT_FSIZE)."""
    readable: tuple[Path, ...] = ()
    """Paths the command must still read, read-only: under /tmp (the private /tmp hides the host's), or outside
    `exposed` (its interpreter's environment, a tool's input file)."""
    exposed: tuple[Path, ...] | None = None
    """The only parts of the host's file system the command sees, read-only, besides the paths above (a missing one
    is left out, a symlink stays a symlink); None: the whole file system, read-only."""
    settings_prefix: str = ""
    """Variables with this prefix are the template's settings and pass even when their names look secret."""

    def __post_init__(self):
        object.__setattr__(self, "workdir", Path(self.workdir).resolve())
        object.__setattr__(self, "writable", tuple(Path(path).resolve() for path in self.writable))
        object.__setattr__(self, "readable", tuple(Path(path).absolute() for path in self.readable))
        if self.exposed is not None:
            object.__setattr__(self, "exposed", tuple(map(Path, self.exposed)))
            relative = [str(path) for path in self.exposed if not path.is_absolute()]
            if relative:
                raise ValueError(f"exposed paths must be absolute: {', '.join(relative)}")
        if not self.workdir.is_dir():
            raise ValueError(f"workdir {self.workdir} is not a directory")
        for kind, paths in (("writable", self.writable), ("readable", self.readable)):
            for path in paths:
                if not path.exists():
                    raise ValueError(f"{kind} path {path} does not exist")
        for name in ("memory_bytes", "cpu_seconds", "max_processes", "max_file_bytes"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise ValueError(f"{name} must be positive or None, not {value}")


@dataclass(frozen=True)
class SandboxReport:
    exit_code: int
    """The command's exit code; 128 + N when signal N killed it; 124 when it ran out of time."""
    timed_out: bool
    limits_hit: tuple[str, ...]
    """The limits it ran into: "timeout", "memory", "processes", "file_size", "cpu_time"."""
    isolation: str
    """Either "bubblewrap", or "limits-only" where the run had no file-system, network or pid isolation."""
    warning: str | None
    """What this run lacked (isolation, a cgroup) or left behind; None when nothing."""
    seconds: float


def clean_environment(environ: Mapping[str, str], settings_prefix: str = "") -> dict[str, str]:
    """`environ` without secrets and LLM-provider settings, with the Hugging Face libraries offline. The template's
    settings (variables starting with `settings_prefix`) pass: a token count is a size, not a secret."""
    def secret(name: str) -> bool:
        return bool(SECRET_WORD.search(name)) or name.upper().startswith(PROVIDER_PREFIXES)

    def setting(name: str) -> bool:
        return bool(settings_prefix) and name.startswith(settings_prefix)

    env = {name: value for name, value in environ.items() if setting(name) or not secret(name)}
    return {**env, **OFFLINE}


@functools.cache
def bubblewrap_available() -> bool:
    """bwrap is installed and runs a trivial command with the flags a run gets (it needs root or user namespaces)."""
    if shutil.which("bwrap") is None:
        return False
    with tempfile.TemporaryDirectory() as probe:
        try:
            result = subprocess.run(_bubblewrap_command(["true"], SandboxPolicy(Path(probe))), capture_output=True,
                                    timeout=30)
        except subprocess.TimeoutExpired:
            return False
    return result.returncode == 0


def _interpreter_environment(cmd: list[str]) -> list[Path]:
    """The environment folder of the command's executable (bin/python -> the venv), when it is named by path."""
    if not cmd or "/" not in cmd[0]:
        return []
    root = Path(cmd[0]).absolute().parent.parent
    return [root] if root.exists() and root != Path("/") else []


def _bubblewrap_command(cmd: list[str], policy: SandboxPolicy) -> list[str]:
    # Binds come after the private /tmp, so an idea folder or an environment under /tmp stays visible in it. The
    # command's own environment (the venv of its interpreter) is always among the readable ones.
    binds = []
    for path in [*policy.readable, *_interpreter_environment(cmd)]:
        real = path.resolve()
        binds += ["--ro-bind", str(real), str(real)]
        # A symlink inside a bound folder leads to the real path; one elsewhere needs its own mount.
        if path != real and not any(path.is_relative_to(bound) for bound in (policy.workdir, *policy.writable)):
            binds += ["--ro-bind", str(real), str(path)]
    binds += [arg for path in (policy.workdir, *policy.writable) for arg in ("--bind", str(path), str(path))]
    # --dev gives a minimal /dev; CUDA needs the NVIDIA devices too.
    gpus = [arg for device in sorted(glob.glob("/dev/nvidia*")) for arg in ("--dev-bind", device, device)]
    return ["bwrap", *_root(policy.exposed), "--dev", "/dev", *gpus, "--proc", "/proc", "--tmpfs", "/tmp", *binds,
            "--unshare-pid", "--unshare-net", "--die-with-parent", "--new-session", "--chdir", str(policy.workdir),
            "--", *cmd]


def _root(exposed: tuple[Path, ...] | None) -> list[str]:
    """The host's file system as the command sees it: all of it, or only the exposed paths, read-only."""
    if exposed is None:
        return ["--ro-bind", "/", "/"]
    # A link stays a link (/bin -> usr/bin on a merged /usr), so its target is not mounted twice; a path this machine
    # lacks (/lib32, a tool's settings file) is skipped by bwrap itself.
    return [arg for path in exposed
            for arg in (("--symlink", os.readlink(path), str(path)) if path.is_symlink()
                        else ("--ro-bind-try", str(path), str(path)))]


def _rlimits(policy: SandboxPolicy, cgroup: RunCgroup) -> list[tuple[int, int, int]]:
    """(resource, soft, hard) for a run. Memory and process count are rlimits only where their cgroup is missing:
    RLIMIT_AS counts address space, not memory (CUDA reserves far more than it uses), and RLIMIT_NPROC counts every
    process of the user, and none of root's."""
    limits = [(resource.RLIMIT_CORE, 0, 0)]  # no core dumps of killed runs in the idea folder
    if policy.cpu_seconds:  # SIGXCPU first, SIGKILL a second later if the command survives it
        limits.append((resource.RLIMIT_CPU, policy.cpu_seconds, policy.cpu_seconds + 1))
    if policy.max_file_bytes:
        limits.append((resource.RLIMIT_FSIZE, policy.max_file_bytes, policy.max_file_bytes))
    if policy.memory_bytes and "memory" not in cgroup.controllers:
        limits.append((resource.RLIMIT_AS, policy.memory_bytes, policy.memory_bytes))
    if policy.max_processes and "pids" not in cgroup.controllers:
        limits.append((resource.RLIMIT_NPROC, policy.max_processes, policy.max_processes))
    return [(kind, *_within_hard_limit(kind, soft, hard)) for kind, soft, hard in limits]


def _within_hard_limit(kind: int, soft: int, hard: int) -> tuple[int, int]:
    # Only root may raise a hard limit; everyone may lower one.
    current = resource.getrlimit(kind)[1]
    return (soft, hard) if current == resource.RLIM_INFINITY else (min(soft, current), min(hard, current))


def _enter(procs_files: list[str], rlimits: list[tuple[int, int, int]]) -> Callable[[], None]:
    def enter() -> None:
        # Runs in the child between fork and exec: the limits hold before the command can fork.
        for path in procs_files:
            with open(path, "w") as procs:
                procs.write(str(os.getpid()))
        for kind, soft, hard in rlimits:
            resource.setrlimit(kind, (soft, hard))
    return enter


def _isolation() -> tuple[str, str | None]:
    mode = os.environ.get(MODE_VARIABLE, "")
    if mode not in ("", LIMITS_ONLY):
        raise ValueError(f"{MODE_VARIABLE}={mode!r}: the only mode is {LIMITS_ONLY!r} (unset: bubblewrap if it runs)")
    if mode == LIMITS_ONLY:
        reason = f"{MODE_VARIABLE}={LIMITS_ONLY}"
    elif not bubblewrap_available():
        reason = "bubblewrap (bwrap) is not installed or cannot run here"
    else:
        return "bubblewrap", None
    return LIMITS_ONLY, (f"{reason}: the run had resource limits and a clean environment only; it could read and "
                         "write the whole file system, use the network and signal other processes")


def _missing_cgroups(policy: SandboxPolicy, cgroup: RunCgroup, isolation: str) -> list[str]:
    notes = []
    if policy.memory_bytes and "memory" not in cgroup.controllers:
        notes.append("no memory cgroup: memory was capped by RLIMIT_AS (address space, not memory used)")
    if "pids" not in cgroup.controllers and (policy.max_processes or isolation == LIMITS_ONLY):
        notes.append("no pids cgroup: the process count was capped by RLIMIT_NPROC (which root ignores)"
                     + (", and processes that left the process group may outlive the run"
                        if isolation == LIMITS_ONLY else ""))
    return notes


def _wait(pid: int, timeout_s: float, poll_s: float, on_poll: Callable[[], None] | None) -> bool:
    """Wait until the process exits, leaving it unreaped so its process group id stays taken; True on timeout."""
    deadline = time.monotonic() + timeout_s
    pidfd = os.pidfd_open(pid)
    try:
        poller = select.poll()
        poller.register(pidfd, select.POLLIN)
        while (left := deadline - time.monotonic()) > 0:
            if poller.poll(min(poll_s, left) * 1000):
                return False
            if on_poll:
                on_poll()
        return True
    finally:
        os.close(pidfd)


def _tail(stream: IO | int | None) -> str:
    """The end of what the command wrote to `stream`, where that is a regular file ('' otherwise)."""
    if stream is None or isinstance(stream, int) and stream < 0:
        return ""
    fd = stream if isinstance(stream, int) else stream.fileno()
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        return ""
    # Opened anew, for reading: the caller's stream is usually opened write-only.
    with open(f"/proc/self/fd/{fd}", "rb") as file:
        file.seek(max(0, info.st_size - STDERR_TAIL_BYTES))
        return file.read().decode(errors="replace")


def _limits_hit(exit_code: int, timed_out: bool, cgroup: RunCgroup, stderr_tail: str) -> tuple[str, ...]:
    hit = ["timeout"] if timed_out else []
    hit += cgroup.limits_hit()
    if not timed_out and exit_code > 128 and exit_code - 128 in SIGNAL_LIMITS:
        hit.append(SIGNAL_LIMITS[exit_code - 128])
    if exit_code != 0:
        hit += [name for name, marker in STDERR_MARKERS if marker.search(stderr_tail)]
    return tuple(dict.fromkeys(hit))


def run_sandboxed(cmd: list[str], policy: SandboxPolicy, timeout_s: float, stdout: IO | int | None,
                  stderr: IO | int | None, env: Mapping[str, str], poll_s: float = 30.0,
                  on_poll: Callable[[], None] | None = None) -> SandboxReport:
    """Run cmd in policy.workdir, sandboxed, with clean_environment(env) and its output in stdout and stderr (files,
    not pipes: nobody reads a pipe while the run goes on). on_poll is called every poll_s seconds while it runs.
    When it returns, nothing the command started is still running."""
    isolation, warning = _isolation()
    notes = [warning] if warning else []
    full_cmd = _bubblewrap_command(cmd, policy) if isolation == "bubblewrap" else list(cmd)
    started = time.monotonic()
    cgroup = RunCgroup({"pids": policy.max_processes, "memory": policy.memory_bytes})
    try:
        notes += _missing_cgroups(policy, cgroup, isolation)
        process = subprocess.Popen(full_cmd, cwd=policy.workdir, stdout=stdout, stderr=stderr,
                                   env=clean_environment(env, policy.settings_prefix), start_new_session=True,
                                   preexec_fn=_enter(cgroup.procs_files(), _rlimits(policy, cgroup)))
        try:
            timed_out = _wait(process.pid, timeout_s, poll_s, on_poll)
        finally:
            # The whole group; with bubblewrap, its pid namespace dies with it.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            returncode = process.wait()
        exit_code = TIMEOUT_EXIT_CODE if timed_out else (128 - returncode if returncode < 0 else returncode)
        limits_hit = _limits_hit(exit_code, timed_out, cgroup, _tail(stderr))
    finally:
        survivors = cgroup.close()
    if survivors:
        notes.append(f"processes {survivors} outlived the run (its cgroup {cgroup.name} is kept)")
    return SandboxReport(exit_code, timed_out, limits_hit, isolation, "; ".join(notes) or None,
                         time.monotonic() - started)


def _positive_number(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text} is not a positive number")
    return value


def _limit(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text} is negative (0 means no limit)")
    return value


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m scientist.experiment.sandbox", usage="%(prog)s --dir DIR --timeout S [options] -- CMD...",
        description="Run CMD in DIR in the run sandbox. Prints a JSON report on stdout (CMD's output goes to "
                    "stderr) and exits with CMD's exit code (124 on timeout). A limit of 0 means none.")
    parser.add_argument("--dir", type=Path, required=True, help="the folder CMD runs in and may write")
    parser.add_argument("--timeout", type=_positive_number, required=True, metavar="S",
                        help="seconds before CMD is killed")
    parser.add_argument("--memory-mb", type=_limit, default=DEFAULT_MEMORY_BYTES // MB, metavar="N",
                        help="memory of all its processes together (default %(default)s)")
    parser.add_argument("--cpu-seconds", type=_limit, default=0, metavar="N", help="CPU seconds of each process")
    parser.add_argument("--max-processes", type=_limit, default=DEFAULT_MAX_PROCESSES, metavar="N",
                        help="processes and threads together (default %(default)s)")
    parser.add_argument("--max-file-mb", type=_limit, default=DEFAULT_MAX_FILE_BYTES // MB, metavar="N",
                        help="largest file it may write (default %(default)s)")
    parser.add_argument("--writable", type=Path, nargs="+", action="extend", default=[], metavar="PATH",
                        help="more paths CMD may write")
    parser.add_argument("--expose", type=Path, nargs="+", action="extend", metavar="PATH",
                        help="show CMD only these paths of the host, read-only, instead of the whole file system")
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = _parser()
    split = argv.index("--") if "--" in argv else len(argv)
    args = parser.parse_args(argv[:split])
    cmd = argv[split + 1:]
    if not cmd:
        parser.error("give the command after --")
    try:
        policy = SandboxPolicy(args.dir, tuple(args.writable), args.memory_mb * MB or None, args.cpu_seconds or None,
                               args.max_processes or None, args.max_file_mb * MB or None,
                               exposed=tuple(args.expose) if args.expose else None)
    except ValueError as error:
        parser.error(str(error))
    sys.stderr.flush()
    report = run_sandboxed(cmd, policy, args.timeout, sys.stderr, sys.stderr, os.environ)
    sys.stdout.write(json.dumps(dataclasses.asdict(report)) + "\n")
    return report.exit_code


if __name__ == "__main__":
    sys.exit(main())
