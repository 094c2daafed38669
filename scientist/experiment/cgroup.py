"""A cgroup for one sandboxed run: its memory and process limits, whether they were hit, and every process it
started, killed at the end. cgroup v1 and v2 alike."""

import contextlib
import os
import signal
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

# Rounds of KILL_ROUND_S: a process-limited cgroup is emptied in a few. Short rounds, because a finished run's last
# processes usually leave within milliseconds, and the paper's TeX tools start a sandboxed run for every pass.
KILL_ROUNDS = 200
KILL_ROUND_S = 0.01


@dataclass(frozen=True)
class Controller:
    """A cgroup controller's limit file, and the file and key counting how often the limit was enforced."""
    limit_file: str
    events_file: str
    event: str


CONTROLLERS = {  # (controller, cgroup version) -> its files
    ("pids", 1): Controller("pids.max", "pids.events", "max"),
    ("pids", 2): Controller("pids.max", "pids.events", "max"),
    ("memory", 1): Controller("memory.limit_in_bytes", "memory.oom_control", "oom_kill"),
    ("memory", 2): Controller("memory.max", "memory.events", "oom_kill"),
}
LIMIT_NAMES = {"pids": "processes", "memory": "memory"}


def cgroup_parents(root: Path = Path("/sys/fs/cgroup")) -> dict[str, tuple[Path, int]]:
    """This process's own cgroup and its version, per controller we use. A run's cgroup nests in it, so whatever
    limits the orchestrator itself has still hold for the run."""
    parents = {}
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        if controllers:  # v1: a hierarchy per controller, mounted under its name
            for name in {"pids", "memory"} & set(controllers.split(",")):
                parents[name] = (root / controllers / path.lstrip("/"), 1)
        elif (root / "cgroup.controllers").exists():  # pure v2: a child only gets the controllers enabled here
            own = root / path.lstrip("/")
            for name in {"pids", "memory"} & set((own / "cgroup.subtree_control").read_text().split()):
                parents.setdefault(name, (own, 2))
    return parents


class RunCgroup:
    """A cgroup made for one run in each hierarchy that has a controller we use (one directory on v2). The pids one
    is made even without a process limit: it is how every process of the run is found and killed."""

    def __init__(self, limits: dict[str, int | None]):
        self.name = f"scientist-sandbox-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self.controllers: dict[str, tuple[Path, Controller]] = {}
        self.created: list[Path] = []
        parents = cgroup_parents()
        for controller, limit in limits.items():
            if controller in parents:
                self._add(controller, *parents[controller], limit)

    def _add(self, controller: str, parent: Path, version: int, limit: int | None) -> None:
        files = CONTROLLERS[controller, version]
        directory = parent / self.name
        try:
            if not directory.exists():
                directory.mkdir()
                self.created.append(directory)
            if limit is not None:
                (directory / files.limit_file).write_text(str(limit))
        except OSError:
            return  # not ours to change (no root, or not delegated): the limit falls back to an rlimit
        self.controllers[controller] = (directory, files)

    def procs_files(self) -> list[str]:
        return sorted({str(directory / "cgroup.procs") for directory, _ in self.controllers.values()})

    def pids(self) -> set[int]:
        return {int(pid) for directory in self.created for pid in (directory / "cgroup.procs").read_text().split()}

    def limits_hit(self) -> list[str]:
        return [LIMIT_NAMES[controller] for controller, (directory, files) in self.controllers.items()
                if counter(directory / files.events_file, files.event) > 0]

    def close(self) -> list[int]:
        """Kill whatever the run left behind (daemons that left its process group), then remove the cgroup.
        Returns the pids that would not die (the cgroup then stays)."""
        for _ in range(KILL_ROUNDS):
            left = self.pids()
            if not left:
                break
            for pid in left:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(KILL_ROUND_S)
        left = self.pids()
        if not left:
            for directory in self.created:
                directory.rmdir()
        return sorted(left)


def counter(path: Path, key: str) -> int:
    """The value of `key` in a cgroup file of 'key value' lines (0 where the kernel does not have it)."""
    if not path.exists():
        return 0
    values = dict(line.split() for line in path.read_text().splitlines() if len(line.split()) == 2)
    return int(values.get(key, 0))
