"""Ideas side by side: on this machine (--parallel N, one GPU each with --gpus) or on a Ray cluster (--executor ray).

The driver (launch_scientist.py) makes every idea's folder first, queued, and then hands each folder to a worker: a
process running `launch_scientist.py --resume <folder>`, which takes a queued idea from its first step, exactly as
a launch of that idea alone would. So a worker needs nothing from the driver but the folder, and a worker killed
half-way is resumed like any idea. The budget is shared: each worker counts the ledgers of every idea of the launch.

Locally, a worker gets one GPU through CUDA_VISIBLE_DEVICES, or on a machine without GPUs an equal share of the
cores through OMP_NUM_THREADS and MKL_NUM_THREADS (torch sizes its thread pool from them). On Ray, each worker is a
task with one CPU, and one GPU when the cluster has any (Ray then sets CUDA_VISIBLE_DEVICES). Each worker's output
goes to <folder>/logs/worker.log; the driver prints each idea's stage as it changes.
"""

from __future__ import annotations

import os
import queue
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from scientist import REPO
from scientist.store.folder import read_state

POLL_S = 5.0
WORKER_LOG = "logs/worker.log"
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")


@dataclass(frozen=True)
class Worker:
    """One idea's worker: the command and the environment it adds to the one it starts in."""

    folder: Path
    argv: list[str]
    env: dict = field(default_factory=dict)

    @property
    def log(self) -> Path:
        return self.folder / WORKER_LOG


def worker_for(folder: Path, budget_usd: float | None) -> Worker:
    argv = [sys.executable, str(REPO / "launch_scientist.py"), "--resume", str(folder)]
    if budget_usd is not None:
        argv += ["--budget-usd", str(budget_usd)]
    return Worker(folder, argv)


def run_worker(argv: list[str], env: dict, log: str) -> int:
    """Run one worker to its end, its output in `log`; returns its exit code. Also the body of a Ray task."""
    Path(log).parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        settings = {**{n: os.environ[n] for n in ("CUDA_VISIBLE_DEVICES",) if n in os.environ}, **env}  # Ray's GPU
        where = ", ".join(f"{name}={value}" for name, value in sorted(settings.items())) or "no settings of its own"
        out.write(f"[{time.strftime('%H:%M:%S')}] worker on {os.uname().nodename}: {where}\n".encode())
        out.flush()
        return subprocess.run(argv, env={**os.environ, **env}, stdout=out, stderr=subprocess.STDOUT,
                              cwd=REPO).returncode


def run_locally(workers: list[Worker], parallel: int, gpus: list[str]) -> dict[Path, int]:
    """At most `parallel` workers at once; with GPUs, each holds one for as long as it runs."""
    free_gpus: queue.Queue[str] = queue.Queue()
    for gpu in gpus:
        free_gpus.put(gpu)
    threads = str(max(1, (os.cpu_count() or 1) // parallel))

    def run(worker: Worker) -> int:
        if not gpus:
            return run_worker(worker.argv, {**worker.env, **dict.fromkeys(THREAD_VARIABLES, threads)},
                              str(worker.log))
        gpu = free_gpus.get()
        try:
            return run_worker(worker.argv, {**worker.env, "CUDA_VISIBLE_DEVICES": gpu}, str(worker.log))
        finally:
            free_gpus.put(gpu)

    view = StageView([w.folder for w in workers])
    with ThreadPoolExecutor(max_workers=parallel) as pool:
        futures = {pool.submit(run, worker): worker.folder for worker in workers}
        while not all(future.done() for future in futures):
            view.show()
            time.sleep(POLL_S)
        view.show()
        return {folder: future.result() for future, folder in futures.items()}


def run_on_ray(workers: list[Worker], address: str) -> dict[Path, int]:
    """Each worker as a Ray task on the cluster at `address` ('auto', or HOST:PORT of the head node)."""
    import ray

    ray.init(address=address, log_to_driver=False)
    try:
        gpus = 1 if ray.cluster_resources().get("GPU", 0) > 0 else 0
        task = ray.remote(num_cpus=1, num_gpus=gpus, max_retries=0)(run_worker)
        pending = {task.remote(w.argv, w.env, str(w.log)): w.folder for w in workers}
        codes: dict[Path, int] = {}
        view = StageView([w.folder for w in workers])
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1, timeout=POLL_S)
            for ref in done:
                codes[pending.pop(ref)] = ray.get(ref)
            view.show()
        return codes
    finally:
        ray.shutdown()


class StageView:
    """The driver's live view: a line whenever an idea's stage or status changes (read from its state.json)."""

    def __init__(self, folders: list[Path]):
        self.folders, self.seen = folders, {}

    def show(self):
        for folder in self.folders:
            try:
                state = read_state(folder)
            except (OSError, ValueError, TypeError):
                continue  # being written, or not yet there
            line = f"{state.stage} | run {state.run} | {state.status}"
            if self.seen.get(folder) != line:
                self.seen[folder] = line
                print(f"[{time.strftime('%H:%M:%S')}] {state.idea or folder.name} | {line}", flush=True)


def exit_code(codes: dict[Path, int]) -> int:
    """3 when a worker stopped at the budget, else 1 when any failed, else 0 (the launcher's own codes)."""
    values = set(codes.values())
    return 3 if 3 in values else 1 if values - {0} else 0
