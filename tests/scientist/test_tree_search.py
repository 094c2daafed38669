"""The tree search (--search tree) on the ground-truth preset, with the scripted coder of make demo-tree: six nodes,
two at once, a draft that fails and is fixed, the best node chosen by code and re-run on seeds, tree.html drawn in
headless Chromium; and the same search killed (SIGKILL) at several points and resumed, ending with the same tree,
each reply paid once and no finished node run again."""

import json
import os
import shutil
import signal
import subprocess
import time

import pytest

from scientist.launch.cli import build_parser
from scientist.launch.config import LaunchConfig
from scientist.pipeline.tree_search import record_seeds, slot_environments
from scientist.search.best import best_node
from scientist.search.policy import SearchParams
from scientist.search.tree import Tree
from tests.conftest import REPO
from tests.scientist.test_report import chromium, parse_dom
from tests.scientist.test_resume import POLL_S, entries, start
from tests.scientist.test_synthetic_demo import SYNTH_ENV

TREE_SCRIPT = REPO / "demo" / "tree_script.json"
TREE_FLAGS = ["--search", "tree", "--max-nodes", "6", "--parallel-nodes", "2", "--search-drafts", "2",
              "--debug-probability", "1"]
# What the script makes: two drafts (the second asks for more latents than the dictionary has and fails), a fix of
# it, an improvement of the best node, then two improvements of whichever node is best by then.
SHAPE = [("draft", None, "ok"), ("draft", None, "failed"), ("debug", 1, "ok"), ("improve", 0, "ok"),
         ("improve", "best", "ok"), ("improve", "best", "ok")]


@pytest.fixture
def synth_templates(tmp_path, monkeypatch):
    for name, value in SYNTH_ENV.items():
        monkeypatch.setenv(name, value)
    root = tmp_path / "templates"
    shutil.copytree(REPO / "templates" / "sae_variants", root / "sae_variants",
                    ignore=shutil.ignore_patterns(".venv", "run_*", "*.png", "__pycache__", "logs"))
    (root / "sae_variants" / ".venv").symlink_to(REPO / "templates" / "sae_variants" / ".venv")
    return root


def idea_folder(results):
    folders = sorted((results / "sae_variants").glob("*_topk_tree_search"))
    return folders[0] if folders else None


def tree_of(results) -> Tree | None:
    folder = idea_folder(results)
    try:
        return Tree.load(folder / "tree.json") if folder else None
    except Exception:  # written atomically, but not there yet
        return None


def running_together(results) -> bool:
    """Two nodes' runs under way at once, each having printed progress in its own work tree."""
    tree, folder = tree_of(results), idea_folder(results)
    if tree is None:
        return False
    running = tree.with_status("running")
    logs = [folder / "nodes" / f"node-{node.id}" / "logs" / f"run_{node.id + 1}.stderr" for node in running]
    return len(running) == 2 and all(log.is_file() and log.stat().st_size > 0 for log in logs)


def ledger_calls(results) -> int:
    folder = idea_folder(results)
    return len(entries(folder / "cost_ledger.json")) if folder else 0


def stage(results) -> str:
    folder = idea_folder(results)
    try:
        return json.loads((folder / "state.json").read_text())["stage"]
    except (OSError, ValueError, KeyError, TypeError):
        return ""


KILL_POINTS = [
    ("after the first draft was coded", lambda results: ledger_calls(results) >= 1),
    ("the two drafts running at once", running_together),
    ("after the fix and the improvement were coded", lambda results: ledger_calls(results) >= 4),
    ("the last two nodes running at once",
     lambda results: running_together(results) and ledger_calls(results) >= 6),
    ("the best node on its second seed", lambda results: stage(results) == "seeds"),
]


def kill_when(process: subprocess.Popen, results, name: str, met, timeout_s: float = 900) -> None:
    since = time.time()
    while time.time() - since < timeout_s:
        if met(results):
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            return
        if process.poll() is not None:
            pytest.fail(f"the launch ended (exit {process.returncode}) before the kill point: {name}")
        time.sleep(POLL_S)
    pytest.fail(f"kill point not reached in {timeout_s} s: {name}")


def test_a_tree_search_killed_at_several_points_resumes_to_one_tree_with_each_reply_paid_once(
        synth_templates, tmp_path):
    results = tmp_path / "results"
    args = ["--experiment", "sae_variants", "--model", "demo", "--demo-script", str(TREE_SCRIPT),
            "--preset", "synth-cpu", "--templates-dir", str(synth_templates), "--results-dir", str(results),
            "--seeds", "2", "--no-writeup", "--run-timeout", "600", *TREE_FLAGS]
    log = tmp_path / "launch.log"
    process = start(args, log)
    trees = []
    for name, met in KILL_POINTS:
        kill_when(process, results, name, met)
        trees.append(tree_of(results))
        process = start(["--resume", str(idea_folder(results))], log)
    assert process.wait(timeout=900) == 0, log.read_text()[-3000:]

    folder = idea_folder(results)
    state = json.loads((folder / "state.json").read_text())
    assert state["stage"] == "done"
    tree = Tree.load(folder / "tree.json")
    best = best_node(tree)
    shape = [(node.kind, node.parent, node.status) for node in tree.nodes]
    assert shape == [(kind, best_before_batch_three(tree) if parent == "best" else parent, status)
                     for kind, parent, status in SHAPE], log.read_text()[-3000:]
    assert "k = 4096" in tree.node(1).error, "the failed draft says why"

    # The same tree after every resume: each tree seen at a kill is a beginning of the final one, and a node that
    # had finished kept its result (the best node's value then became its seeds' mean).
    for seen in filter(None, trees):
        for node in seen.nodes:
            final = tree.node(node.id)
            assert (node.kind, node.parent) == (final.kind, final.parent)
            if node.status in ("ok", "failed"):
                assert (node.status, node.score) == (final.status, final.score)
                assert node.value == final.value or final.seeds > 1

    # The best node by the rule, repeated on seeds; its code is the idea's experiment.py.
    assert state["main_run"] == best.id + 1
    assert (folder / f"run_{best.id + 1}" / "seeds.json").is_file() and best.seeds == 2
    kept = {node.id + 1 for node in tree.nodes if node.status == "ok"
            and (node.id in {n.id for n in tree.path(best.id)} or node.parent in {n.id for n in tree.path(best.id)})}
    assert {int(run) for run in state["runs"]} == kept
    best_code = subprocess.run(["git", "show", f"node-{best.id}:experiment.py"], cwd=folder, capture_output=True,
                               text=True, check=True).stdout
    assert (folder / "experiment.py").read_text() == best_code

    # Each reply paid once, and no finished node run again.
    ledger = entries(folder / "cost_ledger.json")
    assert [entry["stage"] for entry in ledger] == [f"node_{i}" for i in range(6)] + ["plot", "plot_notes"]
    requests = [entry["request"] for entry in ledger]
    assert len(requests) == len(set(requests)), "two nodes' prompts were the same: a replay could swap their replies"
    keys = [entry["key"] for entry in entries(folder / "run_attempts.json")]
    assert len(keys) == len(set(keys)) == 6, keys  # the failing draft ran too

    notes = (folder / "notes.txt").read_text()
    for node in tree.nodes:
        assert f"tree node {node.id}:" in notes
    assert "## Tree search: 6 nodes, 5 ran, 1 failed" in notes

    page = chromium(tmp_path / "profile", "--dump-dom", (folder / "tree.html").as_uri()).stdout
    drawn = parse_dom(page).text
    assert all(f"node {node.id}" in drawn for node in tree.nodes) and "best" in drawn


def best_before_batch_three(tree: Tree) -> int:
    """The node the last batch improves: the best of the first four nodes."""
    return best_node(Tree(tree.metric, tree.noise, tree.seed, tree.nodes[:4])).id


def test_the_search_flags_reach_the_launch_settings_with_the_defaults_written_once():
    parser = build_parser()
    default = LaunchConfig.from_args(parser.parse_args(["--model", "demo"]))
    assert default.search == "linear" and default.search_params == SearchParams()
    tree = LaunchConfig.from_args(parser.parse_args(["--model", "demo", *TREE_FLAGS]))
    assert tree.search_params == SearchParams(drafts=2, debug_probability=1.0, max_nodes=6, parallel_nodes=2)
    resumed = LaunchConfig.from_json(tree.to_json())
    assert (resumed.search, resumed.search_params) == ("tree", tree.search_params)
    older = {key: value for key, value in tree.to_json().items() if key not in ("search", "max_nodes")}
    assert LaunchConfig.from_json(older).search == "linear", "a launch.json from before the tree search resumes linear"


def test_nodes_run_at_once_share_the_cpu_threads_or_take_a_gpu_each(monkeypatch):
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.setenv("OMP_NUM_THREADS", "8")
    assert [env["OMP_NUM_THREADS"] for env in slot_environments(3)] == ["2", "2", "2"]
    assert slot_environments(16)[0]["MKL_NUM_THREADS"] == "1"
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "4,5")
    assert [env["CUDA_VISIBLE_DEVICES"] for env in slot_environments(3)] == ["4", "5", "4"]


def test_a_node_repeated_on_seeds_shows_their_mean_and_spread_in_the_tree(tmp_path):
    tree = Tree(metric="ground_truth.f1", noise=0.01, seed=1)
    tree.add("draft", None)
    tree.nodes[0].status, tree.nodes[0].value, tree.nodes[0].score = "ok", 0.40, 0.2
    tree.save(tmp_path / "tree.json")
    summary = {"ground_truth": {"status": "ok", "means": {"f1": 0.42}, "stds": {"f1": 0.01}}}
    record_seeds(tmp_path, 1, summary, 3)
    node = Tree.load(tmp_path / "tree.json").node(0)
    assert (node.value, node.value_std, node.seeds, node.score) == (0.42, 0.01, 3, 0.2)
    record_seeds(tmp_path / "no_tree", 1, summary, 3)  # a linear idea has no tree: nothing to do, no error
