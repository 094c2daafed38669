"""Ideas side by side: worker processes on this machine (--parallel, --gpus), and Ray tasks on a real local Ray
cluster (`ray start --head` on 127.0.0.1) with real runs of the template at tiny sizes."""

import json
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from tests.conftest import REPO

DEMO = json.loads((REPO / "demo" / "script.json").read_text())
IDEAS = [{"Name": name, "Title": f"Idea {name}", "Experiment": "Swap the ReLU for TopK.",
          "Interestingness": 3, "Feasibility": 9, "Novelty": 2} for name in ("left_idea", "right_idea")]
RAY = Path(sys.executable).parent / "ray"


def launch(tmp_path, templates_dir, replies: list[str], *extra, timeout_s=900) -> subprocess.CompletedProcess:
    """launch_scientist.py in a process of its own (as a user starts it), each idea playing `replies`."""
    script, ideas = tmp_path / "script.json", tmp_path / "ideas.json"
    script.write_text(json.dumps({"idea": IDEAS[0], "replies": replies}))
    ideas.write_text(json.dumps(IDEAS))
    return subprocess.run([sys.executable, str(REPO / "launch_scientist.py"), "--model", "demo", "--demo-script",
                           str(script), "--ideas", str(ideas), "--templates-dir", str(templates_dir),
                           "--results-dir", str(tmp_path / "results"), "--run-timeout", "900", "--no-writeup",
                           *extra],
                          cwd=REPO, capture_output=True, text=True, timeout=timeout_s)


def folders(tmp_path) -> dict[str, Path]:
    return {json.loads((f / "idea.json").read_text())["Name"]: f
            for f in (tmp_path / "results" / "sae_variants").glob("*_*_idea")}


def state(folder: Path) -> dict:
    return json.loads((folder / "state.json").read_text())


def worker_line(folder: Path) -> str:
    return (folder / "logs" / "worker.log").read_text().splitlines()[0]


def test_parallel_ideas_run_in_workers_with_a_share_of_the_cores_each(templates_dir, tmp_path):
    done = launch(tmp_path, templates_dir, ["ALL_COMPLETED"], "--parallel", "2")

    assert done.returncode == 0, done.stderr[-3000:]
    assert set(folders(tmp_path)) == {"left_idea", "right_idea"}
    for folder in folders(tmp_path).values():
        assert state(folder)["stage"] == "done"
        assert "MKL_NUM_THREADS=1, OMP_NUM_THREADS=1" in worker_line(folder)  # 2 cores, 2 workers
        assert "DEMO: the coder's replies are scripted" in (folder / "logs" / "worker.log").read_text()
    for name in ("left_idea", "right_idea"):
        assert f"{name} | done | run 1 | runs_done" in done.stdout  # the driver's live view
    assert (tmp_path / "results" / "sae_variants" / "index.html").exists()


def test_each_worker_gets_a_gpu_of_its_own(templates_dir, tmp_path):
    done = launch(tmp_path, templates_dir, ["ALL_COMPLETED"], "--gpus", "3,5")

    assert done.returncode == 0, done.stderr[-3000:]
    assigned = sorted(worker_line(folder).rsplit("CUDA_VISIBLE_DEVICES=", 1)[1]
                      for folder in folders(tmp_path).values())
    assert assigned == ["3", "5"]


@pytest.mark.parametrize("flags, expected", [
    (["--parallel", "3", "--gpus", "0,1"], "--parallel 3 with --gpus 0,1: one worker per GPU"),
    (["--parallel", "0"], "--parallel 0: give the number of ideas to run at once"),
    (["--executor", "ray", "--gpus", "0"], "with --executor ray, Ray gives each idea a GPU"),
])
def test_worker_flags_that_cannot_work_are_refused_before_anything_is_made(flags, expected, tmp_path):
    from scientist.launch.cli import main

    assert main(["--model", "demo", "--results-dir", str(tmp_path / "results"), *flags]) == 2
    assert not (tmp_path / "results").exists()


@pytest.fixture
def ray_cluster():
    """A real Ray head node on 127.0.0.1 with 2 CPUs; stopped after the test. Its temp folder has a short path: Ray
    puts unix sockets there, whose paths may not exceed 107 bytes."""
    temp = Path(tempfile.mkdtemp(prefix="ray", dir="/tmp"))
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    started = subprocess.run([str(RAY), "start", "--head", "--node-ip-address", "127.0.0.1", "--port", str(port),
                              "--num-cpus", "2", "--num-gpus", "0", "--disable-usage-stats",
                              "--include-dashboard", "false", "--temp-dir", str(temp)],
                             capture_output=True, text=True, timeout=300)
    assert started.returncode == 0, started.stdout[-2000:] + started.stderr[-2000:]
    yield f"127.0.0.1:{port}"
    subprocess.run([str(RAY), "stop", "--force"], capture_output=True, timeout=120)
    shutil.rmtree(temp, ignore_errors=True)


def test_two_ideas_run_as_ray_tasks_on_a_local_cluster(templates_dir, tmp_path, ray_cluster):
    # Each idea: one TopK run, its interpretation, the plot labels and the figure notes (the demo's replies).
    replies = [DEMO["replies"][0], DEMO["replies"][1], DEMO["replies"][3], DEMO["replies"][4]]
    done = launch(tmp_path, templates_dir, replies, "--executor", "ray", "--ray-address", ray_cluster,
                  "--max-runs", "1")

    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "2 idea(s) in workers (Ray at 127.0.0.1:" in done.stdout
    ran = folders(tmp_path)
    assert set(ran) == {"left_idea", "right_idea"}
    for name, folder in ran.items():
        assert state(folder)["stage"] == "done" and set(state(folder)["runs"]) == {"1"}
        info = json.loads((folder / "run_1" / "final_info.json").read_text())
        assert info["core"]["means"]["explained_variance"] > 0
        assert "## Run 1: TopK activation (k=32)" in (folder / "notes.txt").read_text()
        assert (folder / "metrics_comparison.png").exists()
        assert f"{name} | done | run 2 | runs_done" in done.stdout  # the driver saw it finish
    report = (tmp_path / "results" / "sae_variants" / "index.html").read_text()
    assert "left_idea" in report and "right_idea" in report
