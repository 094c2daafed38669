"""The run sandbox against hostile experiments: each is a small script run with this interpreter under small limits
and short timeouts, and each must be contained and reported while the test process goes on."""

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import textwrap
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

from scientist.experiment.sandbox import (
    SandboxPolicy,
    SandboxReport,
    bubblewrap_available,
    clean_environment,
    main,
    run_sandboxed,
)
from tests.conftest import REPO
from tests.scientist.conftest import require_tools

needs_bubblewrap = pytest.mark.usefixtures("bubblewrap")


@pytest.fixture
def bubblewrap():
    """The isolation tests fail, rather than skip, where bubblewrap cannot run: isolation is then really missing."""
    require_tools("bwrap")
    if not bubblewrap_available():
        pytest.fail("bwrap is installed but cannot run here (it needs root or user namespaces)")


SMALL_LIMITS = {"memory_bytes": 512 * 2**20, "max_processes": 64, "max_file_bytes": 64 * 2**20}


@dataclass(frozen=True)
class Outcome:
    report: SandboxReport
    stdout: str
    stderr: str


@pytest.fixture
def place():
    """A folder with the idea folder in it. Not under /tmp: a sandboxed run gets a private /tmp, so paths there
    beside the idea folder would not even be visible to the hostile script."""
    base = Path(tempfile.mkdtemp(prefix="sandbox-test-", dir="/var/tmp"))
    (base / "idea").mkdir()
    yield base
    shutil.rmtree(base)


def run(place: Path, script: str, *args: str, timeout_s: float = 20.0, env=None, **limits) -> Outcome:
    """Run `script` as idea/hostile.py with `args`, its output in files beside the idea folder."""
    workdir = place / "idea"
    (workdir / "hostile.py").write_text(textwrap.dedent(script))
    policy = SandboxPolicy(workdir, **{**SMALL_LIMITS, **limits})
    with open(place / "stdout.log", "w") as stdout, open(place / "stderr.log", "w") as stderr:
        report = run_sandboxed([sys.executable, "hostile.py", *args], policy, timeout_s, stdout, stderr,
                               os.environ if env is None else env)
    return Outcome(report, (place / "stdout.log").read_text(), (place / "stderr.log").read_text())


def processes_with(marker: str) -> list[int]:
    """Pids of the host's processes with `marker` in their command line."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if marker.encode() in cmdline.read_bytes():
                found.append(int(cmdline.parent.name))
        except OSError:  # it exited while we looked
            continue
    return found


def test_clean_environment_drops_secrets_and_provider_settings_and_goes_offline():
    environ = {"ANTHROPIC_API_KEY": "a", "MY_SERVICE_TOKEN": "b", "db_password": "c", "OPENAI_BASE_URL": "d",
               "AWS_REGION": "e", "TOGETHERAI_MODEL": "f", "LITELLM_LOG": "g", "HF_TOKEN": "h",
               "SAE_TRAINING_TOKENS": "8192", "PATH": "/usr/bin", "HOME": "/home/researcher"}
    env = clean_environment(environ, settings_prefix="SAE_")
    assert env == {"SAE_TRAINING_TOKENS": "8192", "PATH": "/usr/bin", "HOME": "/home/researcher",
                   "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    assert environ["ANTHROPIC_API_KEY"] == "a"


def test_reading_api_keys_finds_none_but_settings_pass(place):
    env = {**os.environ, "ANTHROPIC_API_KEY": "sk-ant-secret", "MY_SERVICE_TOKEN": "token", "SAE_X": "1"}
    outcome = run(place, """
        import json, os
        print(json.dumps({name: os.environ.get(name) for name in ("ANTHROPIC_API_KEY", "MY_SERVICE_TOKEN", "SAE_X")}))
        """, env=env)
    assert outcome.report.exit_code == 0, outcome.stderr
    assert json.loads(outcome.stdout) == {"ANTHROPIC_API_KEY": None, "MY_SERVICE_TOKEN": None, "SAE_X": "1"}


@needs_bubblewrap
def test_network_connection_fails_and_reaches_no_listener(place):
    with socket.create_server(("127.0.0.1", 0)) as listener:
        outcome = run(place, """
            import socket, sys
            try:
                socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=2)
            except OSError as error:
                print(error)
                sys.exit(3)
            """, str(listener.getsockname()[1]))
        listener.setblocking(False)
        with pytest.raises(BlockingIOError):
            listener.accept()
    assert outcome.report.exit_code == 3, outcome.stderr
    assert outcome.report.isolation == "bubblewrap"


WRITE_SCRIPT = """
    import sys
    for path in sys.argv[2:]:  # where it may write: its folder, /tmp and the extra writable path
        with open(path, "w") as file:
            file.write("fine")
    try:
        with open(sys.argv[1], "a") as file:
            file.write("pwned")
    except OSError as error:
        print(error)
        sys.exit(3)
    """


@needs_bubblewrap
def test_writing_outside_its_folder_fails(place):
    (place / "cache").mkdir()
    outcome = run(place, WRITE_SCRIPT, str(place / "outside.txt"), "inside.txt", "/tmp/scratch.txt",
                  str(place / "cache" / "activations.bin"), writable=(place / "cache",))
    assert outcome.report.exit_code == 3, outcome.stderr
    assert "Read-only file system" in outcome.stdout
    assert not (place / "outside.txt").exists()
    assert (place / "idea" / "inside.txt").read_text() == "fine"
    assert (place / "cache" / "activations.bin").read_text() == "fine"


@needs_bubblewrap
def test_a_readable_path_under_tmp_stays_visible_but_read_only(place):
    """The private /tmp hides the host's; an interpreter environment kept there must still be found."""
    environment = Path(tempfile.mkdtemp(prefix="sandbox-env-", dir="/tmp"))
    try:
        (environment / "marker.txt").write_text("here")
        script = """
            import sys
            from pathlib import Path
            print(Path(sys.argv[1]).read_text())
            try:
                Path(sys.argv[1]).write_text("changed")
            except OSError as err:
                print(err.strerror)
        """
        outcome = run(place, script, str(environment / "marker.txt"), readable=(environment,))
        assert outcome.report.exit_code == 0, outcome.stderr
        assert outcome.stdout.splitlines()[:2] == ["here", "Read-only file system"]
        assert (environment / "marker.txt").read_text() == "here"
    finally:
        shutil.rmtree(environment)


@needs_bubblewrap
def test_an_exposed_policy_shows_only_those_paths_and_the_given_files(place):
    """What the paper's TeX tools get: the system, not the user's files beside the idea folder."""
    (place / "secret.txt").write_text("TOPSECRET\n")
    (place / "figure.txt").write_text("FIGURE\n")
    policy = SandboxPolicy(place / "idea", exposed=(Path("/usr"), Path("/bin"), Path("/lib"), Path("/lib64"),
                                                    Path("/no/such/path")), readable=(place / "figure.txt",))
    script = (f"cat {place}/figure.txt; cat {place}/secret.txt; ls {place}; ls /; "
              "test -L /bin && echo link || echo folder")
    with open(place / "stdout.log", "w") as stdout, open(place / "stderr.log", "w") as stderr:
        report = run_sandboxed(["sh", "-c", script], policy, 20, stdout, stderr, os.environ)
    out, err = (place / "stdout.log").read_text().split(), (place / "stderr.log").read_text()
    assert report.exit_code == 0 and report.isolation == "bubblewrap", err
    assert out[0] == "FIGURE" and "TOPSECRET" not in out and "No such file" in err
    assert sorted(out[1:3]) == ["figure.txt", "idea"], "beside the idea folder: only what the policy gives"
    assert set(out[3:-1]) <= {"bin", "dev", "lib", "lib64", "proc", "tmp", "usr", "var"} and "etc" not in out
    assert out[-1] == ("link" if Path("/bin").is_symlink() else "folder"), "a link stays a link"


def test_exposed_paths_must_be_absolute(place):
    with pytest.raises(ValueError, match="exposed paths must be absolute: usr"):
        SandboxPolicy(place / "idea", exposed=(Path("usr"),))


@needs_bubblewrap
def test_editing_the_orchestrator_fails(place):
    orchestrator = place / "orchestrator" / "runner.py"
    orchestrator.parent.mkdir()
    shutil.copy(REPO / "scientist" / "experiment" / "runner.py", orchestrator)
    before = orchestrator.read_bytes()
    outcome = run(place, WRITE_SCRIPT, str(orchestrator))
    assert outcome.report.exit_code == 3, outcome.stderr
    assert orchestrator.read_bytes() == before


def test_fork_bomb_is_bounded(place):
    marker = f"fork-bomb-{uuid.uuid4().hex}"
    outcome = run(place, """
        import os, time
        for _ in range(500):  # far beyond the limit, and bounded should the limit not hold
            if os.fork() == 0:
                time.sleep(20)
                os._exit(0)
        """, marker, max_processes=32)
    assert "processes" in outcome.report.limits_hit
    assert outcome.report.exit_code == 1 and "BlockingIOError" in outcome.stderr
    assert not outcome.report.timed_out
    assert processes_with(marker) == []


def test_allocating_100_gb_is_stopped_at_the_memory_limit(place):
    outcome = run(place, """
        blocks = [b"x" * 2**26 for _ in range(1600)]  # 100 GB in 64 MB blocks, each written so it is really used
        """, memory_bytes=512 * 2**20)
    assert "memory" in outcome.report.limits_hit
    assert outcome.report.exit_code != 0 and not outcome.report.timed_out


def test_endless_loop_is_killed_at_the_timeout(place):
    outcome = run(place, """
        import time
        deadline = time.time() + 30
        while time.time() < deadline:
            pass
        """, timeout_s=2)
    assert outcome.report.timed_out and outcome.report.exit_code == 124
    assert "timeout" in outcome.report.limits_hit
    assert outcome.report.seconds < 4


def test_cpu_time_limit_stops_a_busy_process(place):
    outcome = run(place, """
        import time
        deadline = time.time() + 30
        while time.time() < deadline:
            pass
        """, cpu_seconds=1)
    assert outcome.report.limits_hit == ("cpu_time",)
    assert outcome.report.exit_code == 128 + 24  # SIGXCPU


@needs_bubblewrap
def test_daemon_does_not_outlive_its_run(place):
    marker = f"daemon-{uuid.uuid4().hex}"
    outcome = run(place, """
        import os, sys, time
        marker, pid_file = sys.argv[1], "daemon.pid"
        if os.fork() == 0:
            os.setsid()
            if os.fork() == 0:
                os.execv(sys.executable, [sys.executable, "-c", "import os, time; "
                         f"open({pid_file!r}, 'w').write(str(os.getpid())); time.sleep(60)", marker])
            os._exit(0)
        for _ in range(100):  # until the daemon runs, 5 s at most
            if os.path.exists(pid_file):
                break
            time.sleep(0.05)
        """, marker)
    assert outcome.report.exit_code == 0, outcome.stderr
    assert (place / "idea" / "daemon.pid").exists()
    assert processes_with(marker) == []
    assert outcome.report.seconds < 10


@needs_bubblewrap
def test_killing_its_parent_and_the_orchestrator_fails(place):
    outcome = run(place, """
        import os, signal, sys
        os.kill(os.getppid(), signal.SIGKILL)
        try:
            os.kill(int(sys.argv[1]), signal.SIGKILL)
        except ProcessLookupError:
            sys.exit(3)
        """, str(os.getpid()))
    assert outcome.report.exit_code == 3, outcome.stderr


def test_filling_the_disk_stops_at_the_file_size_limit(place):
    outcome = run(place, """
        with open("big.bin", "wb") as file:
            for _ in range(50):
                file.write(b"x" * 2**20)
        """, max_file_bytes=5 * 2**20)
    assert "file_size" in outcome.report.limits_hit
    assert "File too large" in outcome.stderr
    assert (place / "idea" / "big.bin").stat().st_size <= 5 * 2**20


def test_limits_only_fallback_scrubs_limits_and_warns(place, monkeypatch):
    monkeypatch.setenv("SCIENTIST_SANDBOX", "limits-only")
    env = {**os.environ, "ANTHROPIC_API_KEY": "sk-ant-secret", "SAE_X": "1"}
    outcome = run(place, """
        import json, os, resource
        print(json.dumps({"key": os.environ.get("ANTHROPIC_API_KEY"), "sae": os.environ.get("SAE_X"),
                          "offline": os.environ.get("HF_HUB_OFFLINE"),
                          "fsize": resource.getrlimit(resource.RLIMIT_FSIZE)[0],
                          "cpu": resource.getrlimit(resource.RLIMIT_CPU)[0]}))
        """, env=env, max_file_bytes=5 * 2**20, cpu_seconds=30)
    assert outcome.report.isolation == "limits-only"
    assert "SCIENTIST_SANDBOX=limits-only" in outcome.report.warning
    assert json.loads(outcome.stdout) == {"key": None, "sae": "1", "offline": "1", "fsize": 5 * 2**20, "cpu": 30}


@pytest.mark.parametrize("code, timeout, exit_code", [
    ("print('hello'); raise SystemExit(7)", "20", 7),
    ("import time; time.sleep(30)", "1", 124),
])
def test_cli_prints_the_report_and_exits_with_the_command_code(place, code, timeout, exit_code):
    result = subprocess.run(
        [sys.executable, "-m", "scientist.experiment.sandbox", "--dir", str(place / "idea"), "--timeout", timeout,
         "--memory-mb", "512", "--", sys.executable, "-c", code],
        cwd=REPO, capture_output=True, text=True, timeout=60)
    assert result.returncode == exit_code, result.stderr
    report = json.loads(result.stdout)
    assert report["exit_code"] == exit_code and report["timed_out"] == (exit_code == 124)
    assert set(report) == {"exit_code", "timed_out", "limits_hit", "isolation", "warning", "seconds"}


@pytest.mark.parametrize("args, message", [
    (["--dir", ".", "--timeout", "5"], "after --"),
    (["--dir", ".", "--timeout", "5", "true"], "unrecognized arguments: true"),
    (["--dir", ".", "--timeout", "5", "--"], "after --"),
    (["--dir", ".", "--timeout", "-1", "--", "true"], "not a positive number"),
    (["--dir", "/no/such/folder", "--timeout", "5", "--", "true"], "not a directory"),
    (["--dir", ".", "--timeout", "5", "--memory-mb", "-2", "--", "true"], "negative"),
    (["--dir", ".", "--timeout", "5", "--expose", "/usr", "usr", "--", "true"], "exposed paths must be absolute: usr"),
])
def test_cli_rejects_bad_arguments(args, message, capsys):
    with pytest.raises(SystemExit) as stopped:
        main(args)
    assert stopped.value.code == 2
    assert message in capsys.readouterr().err
