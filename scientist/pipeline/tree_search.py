"""The runs of one idea as a tree search (`--search tree`): AIDE's draft, debug and improve over a tree of
experiment versions, with the best node chosen by code (scientist/search/best.py) and re-run on seeds afterwards.

A batch of up to --parallel-nodes nodes is decided at a time from the finished tree (scientist/search/policy.py).
Its nodes are coded one after another, in id order, each by a fresh coder in the node's own work tree
(scientist/search/worktrees.py), and then run side by side in the sandbox, each on its share of the CPUs or GPUs.
Only when the whole batch has finished is the next one decided, so no decision depends on which run finished first.

Resume: the LLM's replies (cost_ledger.json) and the runs (run_attempts.json, keyed by run number and code) are
journaled. A resumed idea replays the search from its first commit: the same decisions, each reply read back from
the ledger rather than paid again, and each finished run's result reused rather than run again. Node k's run is the
idea folder's run_<k+1>; run_0 stays the baseline.

At the end the path to the best node and the nodes that branch off that path (its ablations) are the idea's runs
(state.runs) for the notes, the plots and the paper, the best node is the main run that the seeds stage repeats,
and its code is the idea folder's experiment.py.
"""

from __future__ import annotations

import os
import shutil
import zlib
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

from scientist.experiment.briefing import baseline_block, budget_text
from scientist.experiment.metrics import format_number, results_block
from scientist.experiment.noise import group_part, mean_of, number, ok_groups, read_frontier
from scientist.experiment.runner import ProcessResult, RunAttempts, lint, run_experiment
from scientist.launch.workers import THREAD_VARIABLES
from scientist.llm.coder import Coder
from scientist.llm.prompts import render
from scientist.pipeline.base import IdeaRun
from scientist.pipeline.runs import RUN_COMMAND, code_digest, description_from
from scientist.search.best import best_node, noise_floor, primary_metric, score
from scientist.search.policy import Expansion, decision_random, next_actions
from scientist.search.tree import Node, Tree
from scientist.search.worktrees import NodeWorkTrees
from scientist.store.folder import TREE_FILE, run_dir
from scientist.store.state import RunRecord

PRIMARY_METRIC_FIELD = "Primary_Metric"
"""The idea file's optional field naming the metric that ranks the nodes (ideas/schema.json)."""


class TreeSearchStage:
    """The coder grows a tree of experiment versions, up to --max-nodes nodes (ideas launched with --search tree)."""

    def applies(self, idea: IdeaRun) -> bool:
        return idea.config.search == "tree"

    def run(self, idea: IdeaRun) -> None:
        TreeSearch(idea).run()


def node_run(node: Node) -> int:
    """The run number of a node's run: node 0 is run_1, since run_0 is the baseline."""
    return node.id + 1


def kind_text(node: Node) -> str:
    return {"draft": "a draft from the baseline code", "improve": f"an improvement of node {node.parent}",
            "debug": f"a fix of node {node.parent}"}[node.kind]


def record_seeds(folder: Path, run_number: int, summary: dict, seeds: int) -> None:
    """Give the tree's node of a run repeated on seeds the seeds' mean and spread of the primary metric (nothing for
    an idea without a tree). The node's score, and so the choice of the best node, stay as the search made them."""
    path = folder / TREE_FILE
    if not path.is_file():
        return
    tree = Tree.load(path)
    node = tree.node(run_number - 1)
    group, name = tree.metric.split(".", 1)
    node.value = mean_of(summary, tree.metric)
    node.value_std = number(group_part(ok_groups(summary).get(group), "stds").get(name))
    node.seeds = seeds
    tree.save(path)


def slot_environments(count: int) -> list[dict[str, str]]:
    """The environment of each of `count` nodes run at once: a GPU each, in turn, from the ones this worker was given
    (CUDA_VISIBLE_DEVICES), or else an equal share of its CPU threads."""
    gpus = [gpu for gpu in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if gpu.strip()]
    if gpus:
        return [{**os.environ, "CUDA_VISIBLE_DEVICES": gpus[i % len(gpus)]} for i in range(count)]
    share = int(os.environ.get(THREAD_VARIABLES[0]) or os.cpu_count() or 1)
    threads = str(max(1, share // max(1, count)))
    return [{**os.environ, **dict.fromkeys(THREAD_VARIABLES, threads)} for _ in range(count)]


class TreeSearch:
    def __init__(self, idea: IdeaRun):
        self.idea_run, self.folder, self.manifest = idea, idea.folder, idea.manifest
        self.params = idea.config.search_params
        self.registry = idea.manifest.metrics
        self.baseline = self.folder.read_final_info(0)
        self.frontier = read_frontier(self.folder.path, idea.manifest.baseline_plan.frontier_x)
        self.primary = primary_metric(self.registry, self.baseline, idea.idea.get(PRIMARY_METRIC_FIELD))
        self.tree = Tree(metric=self.primary.metric.key, noise=noise_floor(self.primary.metric, self.baseline),
                         seed=zlib.crc32(idea.idea["Name"].encode()))
        self.work_trees = NodeWorkTrees(self.folder, idea.manifest.editable)
        self.attempts = RunAttempts(self.folder.path, idea.manifest)
        self.experiment = idea.manifest.editable[0]
        self.digests: dict[int, str] = {}
        self.failure_detail: dict[int, str] = {}
        self.seconds: dict[int, float] = {}

    def save(self) -> None:
        self.tree.save(self.folder.path / TREE_FILE)

    def run(self) -> None:
        self.folder.log(f"tree search: up to {self.params.max_nodes} nodes, {self.params.parallel_nodes} at once, "
                        f"ranked on {self.tree.metric}, {self.primary.reason}; noise floor "
                        f"{format_number(self.tree.noise)}")
        while actions := self.next_batch():
            batch = [self.tree.add(action.kind, action.parent) for action in actions]
            self.save()
            runnable = [node for node in batch if self.code(node)]
            self.run_batch(runnable)
            for node in batch:
                self.record(node)
            self.save()
            self.folder.commit(f"Tree search: nodes {', '.join(str(node.id) for node in batch)} finished")
        self.finish()

    def next_batch(self) -> list[Expansion]:
        return next_actions(self.tree, self.params, decision_random(self.tree), self.params.parallel_nodes)

    # --- coding ---------------------------------------------------------------------------------------------

    def code(self, node: Node) -> bool:
        """The coder writes the node in its own work tree; whether it has new, lint-clean code to run."""
        parent = self.tree.node(node.parent) if node.parent is not None else None
        path = self.work_trees.add(node.id, parent.commit if parent else None)
        self.progress(f"coding node {node.id}", node)
        before = code_digest(path / self.experiment)
        coder = Coder(path, list(self.manifest.editable), self.idea_run.model, self.idea_run.ledger,
                      self.idea_run.budget)
        reply = coder.ask(self.prompt(node), stage=f"node_{node.id}")
        node.description = description_from(reply) or "no description given"
        node.commit = self.work_trees.commit(node.id, f"Node {node.id}, {kind_text(node)}: {node.description}")
        digest = code_digest(path / self.experiment)
        same = next((other for other, code in self.digests.items() if code == digest), None)
        if digest == before:
            return self.fail(node, "the coder's edit changed nothing; not run")
        if same is not None:
            return self.fail(node, f"the same code as node {same}; not run again")
        problems = lint(path / self.experiment)
        if problems:
            return self.fail(node, "the lint gate failed; not run", problems)
        self.digests[node.id] = digest
        return True

    def prompt(self, node: Node) -> str:
        metric = self.primary.metric
        context = render("search_context", title=self.idea_run.idea["Title"],
                         experiment=self.idea_run.idea["Experiment"], metric=metric.key,
                         direction=f"{metric.direction} is better", metric_reason=self.primary.reason,
                         noise=format_number(self.tree.noise),
                         baseline_results=baseline_block(self.baseline, self.registry, self.frontier),
                         budget=budget_text(self.baseline, self.registry, self.frontier), run_command=RUN_COMMAND)
        if node.kind == "draft":
            earlier = [f"node {other.id}: {other.description}" for other in self.tree.nodes
                       if other.kind == "draft" and other.id < node.id]
            return render("search_draft", context=context, node=node.id, drafts=self.params.drafts,
                          earlier_drafts="; ".join(earlier) or "none")
        path_results = "\n\n".join(self.node_text(step) for step in self.tree.path(node.parent))
        if node.kind == "improve":
            return render("search_improve", context=context, node=node.id, parent=node.parent,
                          path_results=path_results, metric=metric.key)
        parent = self.tree.node(node.parent)
        return render("search_debug", context=context, node=node.id, parent=node.parent, error=parent.error,
                      failure_detail=self.failure_detail.get(parent.id, "(nothing)"), path_results=path_results)

    def node_text(self, node: Node) -> str:
        """What notes.txt holds for a node: its results block, or why it failed."""
        title = f"{node.description} (tree node {node.id}: {kind_text(node)})"
        if node.status == "ok":
            info = self.folder.read_final_info(node_run(node))
            return results_block(node_run(node), title, self.baseline, info, self.registry, self.frontier)
        return f"## Node {node.id} failed: {title}\n{node.error}\n"

    def fail(self, node: Node, error: str, detail: str = "") -> bool:
        node.status, node.error = "failed", error
        self.failure_detail[node.id] = detail or error
        self.folder.log(f"tree search: node {node.id} failed: {error}")
        return False

    # --- running --------------------------------------------------------------------------------------------

    def run_batch(self, nodes: list[Node]) -> None:
        """Run the batch's nodes side by side; a node whose run is journaled gets its result back instead."""
        results: dict[int, ProcessResult] = {}
        to_run = []
        for node in nodes:
            recorded = self.attempts.recorded(node_run(node), self.digests[node.id])
            if recorded is not None:
                results[node.id] = recorded
                self.folder.log(f"tree search: node {node.id}'s run finished before the resume; reused")
            else:
                node.status = "running"
                to_run.append(node)
        self.save()
        self.progress(f"running nodes {', '.join(str(node.id) for node in to_run)}", *to_run)
        with ThreadPoolExecutor(max_workers=self.params.parallel_nodes) as pool:
            futures = {pool.submit(self.run_node, node, env): node
                       for node, env in zip(to_run, slot_environments(len(to_run)))}
            for future in as_completed(futures):
                node = futures[future]
                results[node.id] = future.result()
                self.attempts.record(node_run(node), self.digests[node.id], results[node.id])
        for node in nodes:
            self.settle(node, results[node.id])

    def run_node(self, node: Node, environ: dict[str, str]) -> ProcessResult:
        """The node's run in its work tree, its run folder then moved into the idea folder as run_<k>."""
        number, work_tree = node_run(node), self.work_trees.path(node.id)
        result = run_experiment(self.manifest, self.idea_run.python, work_tree, number,
                                self.idea_run.config.run_timeout, self.idea_run.heartbeat, environ=environ)
        if result.ok:
            target = run_dir(self.folder.path, number)
            shutil.rmtree(target, ignore_errors=True)
            (work_tree / target.name).rename(target)
        return result

    def settle(self, node: Node, result: ProcessResult) -> None:
        """The node's status, value and score from its run."""
        self.seconds[node.id] = result.seconds
        if result.timed_out:
            self.fail(node, f"timed out after {self.idea_run.config.run_timeout:.0f} s", result.stderr_tail)
            return
        if not result.ok:
            last_line = next((line for line in reversed(result.stderr_tail.splitlines()) if line.strip()), "")
            self.fail(node, f"its run failed with exit code {result.returncode}: {last_line.strip()[:200]}",
                      result.stderr_tail)
            return
        info = self.folder.read_final_info(node_run(node))
        node.status, node.run_dir = "ok", run_dir(self.folder.path, node_run(node)).name
        node.value = mean_of(info, self.tree.metric)
        node.score = score(self.primary.metric, self.baseline, info, self.frontier)
        node.lines_changed = self.work_trees.lines_changed(node.commit)

    # --- recording ------------------------------------------------------------------------------------------

    def record(self, node: Node) -> None:
        self.folder.append_notes(self.node_text(node))
        self.progress("tree search")

    def progress(self, stage: str, *nodes: Node) -> None:
        """The live view: what the search does now, and the tree's counts and its best node so far."""
        self.idea_run.update(stage=stage, run=node_run(nodes[-1]) if nodes else self.idea_run.state.run)
        done, running = self.tree.with_status("ok", "failed"), self.tree.with_status("running")
        best = best_node(self.tree)
        leader = (f"best node {best.id} ({self.tree.metric} {format_number(best.value)})"
                  if best is not None and best.value is not None else "no best node yet")
        self.idea_run.heartbeat(f"tree: {len(done)} of {self.params.max_nodes} nodes done, {len(running)} running, "
                                f"{leader}")

    def finish(self) -> None:
        """The best node's path and its ablations become the idea's runs; its code, the idea's experiment.py."""
        self.work_trees.remove_all()
        best = best_node(self.tree)
        self.folder.append_notes(self.summary(best))
        if best is None:
            reason = f"none of the tree search's {len(self.tree.nodes)} nodes ran successfully"
            self.folder.log(f"ending the idea: {reason}")
            self.idea_run.update(status="out_of_tries", reason=reason)
            self.folder.commit("Tree search: no node succeeded")
            return
        self.folder.repo.git.checkout(best.commit, "--", *self.manifest.editable)
        self.folder.commit(f"Tree search: node {best.id} is best; its code is experiment.py")
        kept = self.runs_for_the_paper(best)
        self.idea_run.update(runs={node_run(node): RunRecord(node.description, node.commit,
                                                             round(self.seconds.get(node.id, 0.0), 1))
                                   for node in kept},
                             main_run=node_run(best), status="runs_done")

    def runs_for_the_paper(self, best: Node) -> list[Node]:
        """The successful nodes on the path to the best one, and the successful nodes branching off that path."""
        path = {node.id for node in self.tree.path(best.id)}
        kept = [node for node in self.tree.nodes if node.status == "ok"
                and (node.id in path or node.parent in path)]
        return sorted(kept, key=lambda node: node.id)

    def summary(self, best: Node | None) -> str:
        ok, failed = self.tree.with_status("ok"), self.tree.with_status("failed")
        lines = [f"## Tree search: {len(self.tree.nodes)} nodes, {len(ok)} ran, {len(failed)} failed",
                 f"Nodes are ranked on {self.tree.metric}, {self.primary.reason}. A node beats another only when its "
                 f"score exceeds the other's by more than the noise floor, {format_number(self.tree.noise)}; ties "
                 "go to fewer changed lines, then to the earlier node."]
        if best is not None:
            path = " -> ".join(f"node {node.id}" for node in self.tree.path(best.id))
            # Its value is in its results block: a typed copy here would contradict the seeds' mean that follows.
            lines.append(f"Best: node {best.id} (run_{node_run(best)}); its path: {path}. The seeds stage repeats it "
                         "when --seeds is above 1.")
        return "\n".join(lines) + "\n"
