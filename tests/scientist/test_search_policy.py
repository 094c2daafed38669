"""What the tree search expands next (scientist/search/policy.py): drafts first, debugs bounded in depth, the best
node improved, and the same decisions after tree.json is saved and loaded again."""

import random

import pytest

from scientist.search.policy import Expansion, SearchParams, decision_random, next_actions
from scientist.search.tree import Tree

ALWAYS_DEBUG = SearchParams(drafts=2, debug_probability=1.0, max_debug_depth=2, max_nodes=20, parallel_nodes=2)
NEVER_DEBUG = SearchParams(drafts=2, debug_probability=0.0, max_debug_depth=2, max_nodes=20, parallel_nodes=2)


def tree_of(*nodes: tuple[str, int | None, str, float | None]) -> Tree:
    """Nodes given as (kind, parent, status, score), every one with 10 lines changed; noise floor 0.004."""
    tree = Tree(metric="core.explained_variance", noise=0.004, seed=11)
    for kind, parent, status, node_score in nodes:
        node = tree.add(kind, parent)
        node.status, node.score, node.lines_changed = status, node_score, 10
    return tree


def test_the_defaults_are_one_valid_set():
    params = SearchParams()
    assert params.drafts <= params.max_nodes
    assert params.parallel_nodes == 1


@pytest.mark.parametrize("settings", [dict(drafts=0), dict(debug_probability=1.5), dict(max_debug_depth=-1),
                                      dict(drafts=5, max_nodes=4), dict(parallel_nodes=0)])
def test_settings_that_cannot_work_are_refused(settings):
    with pytest.raises(ValueError):
        SearchParams(**settings)


def test_drafts_come_first_even_with_a_failed_leaf_to_debug():
    tree = tree_of(("draft", None, "failed", None))
    actions = next_actions(tree, ALWAYS_DEBUG, random.Random(0), 2)
    assert actions[0] == Expansion("draft", None)
    # The second draft is the last one the parameters ask for; the next expansion may debug.
    assert actions[1] == Expansion("debug", 0)


def test_an_empty_tree_starts_with_as_many_drafts_as_fit():
    tree = tree_of()
    assert next_actions(tree, NEVER_DEBUG, random.Random(0), 5)[:2] == [Expansion("draft", None)] * 2


def test_improve_extends_the_best_node():
    tree = tree_of(("draft", None, "ok", 0.001), ("draft", None, "ok", 0.020), ("improve", 1, "ok", 0.010))
    assert next_actions(tree, NEVER_DEBUG, random.Random(0), 2) == [Expansion("improve", 1)] * 2


def test_debugging_stops_at_the_depth_bound():
    """Draft 1 failed and was debugged twice in a row without success: at max_debug_depth 2 it is given up."""
    tree = tree_of(("draft", None, "ok", 0.010), ("draft", None, "failed", None),
                   ("debug", 1, "failed", None), ("debug", 2, "failed", None))
    assert tree.node(3).debug_depth == 2
    assert next_actions(tree, ALWAYS_DEBUG, random.Random(0), 1) == [Expansion("improve", 0)]
    deeper = SearchParams(drafts=2, debug_probability=1.0, max_debug_depth=3, max_nodes=20)
    assert next_actions(tree, deeper, random.Random(0), 1) == [Expansion("debug", 3)]


def test_a_failed_leaf_is_debugged_once_at_a_time():
    tree = tree_of(("draft", None, "failed", None), ("draft", None, "ok", 0.010))
    assert next_actions(tree, ALWAYS_DEBUG, random.Random(0), 3) == [
        Expansion("debug", 0), Expansion("improve", 1), Expansion("improve", 1)]


def test_with_nothing_to_improve_it_debugs_or_drafts_again():
    failed = tree_of(("draft", None, "failed", None), ("draft", None, "failed", None))
    assert {action.kind for action in next_actions(failed, NEVER_DEBUG, random.Random(0), 2)} == {"debug"}
    stuck = tree_of(("draft", None, "running", None), ("draft", None, "pending", None))
    assert next_actions(stuck, NEVER_DEBUG, random.Random(0), 1) == [Expansion("draft", None)]


def test_the_search_stops_at_max_nodes():
    params = SearchParams(drafts=2, debug_probability=0.5, max_debug_depth=2, max_nodes=4)
    tree = tree_of(("draft", None, "ok", 0.010), ("draft", None, "ok", 0.0), ("improve", 0, "ok", 0.0))
    assert len(next_actions(tree, params, random.Random(0), 3)) == 1
    tree.add("improve", 0)
    assert next_actions(tree, params, random.Random(0), 3) == []


def test_the_debug_probability_decides_between_debugging_and_improving():
    """With p = 0.5 over many draws both moves occur, about equally often."""
    tree = tree_of(("draft", None, "ok", 0.010), ("draft", None, "failed", None))
    params = SearchParams(drafts=2, debug_probability=0.5, max_debug_depth=2, max_nodes=1000)
    kinds = [next_actions(tree, params, random.Random(seed), 1)[0].kind for seed in range(400)]
    assert 150 < kinds.count("debug") < 250
    assert kinds.count("debug") + kinds.count("improve") == 400


def grow(tree: Tree, params: SearchParams, batches: int) -> list[list[Expansion]]:
    """Run the policy for some batches; every new node's outcome is a fixed function of its id (every third fails)."""
    decided = []
    for _ in range(batches):
        actions = next_actions(tree, params, decision_random(tree), params.parallel_nodes)
        decided.append(actions)
        for action in actions:
            node = tree.add(action.kind, action.parent)
            failed = node.id % 3 == 1
            node.status, node.score, node.lines_changed = ("failed", None, 5) if failed else (
                "ok", 0.002 * node.id, 5 + node.id)
    return decided


def test_the_same_seed_makes_the_same_decisions_after_a_save_and_load(tmp_path):
    """A search killed after three batches and resumed from tree.json decides exactly as an uninterrupted one."""
    params = SearchParams(drafts=2, debug_probability=0.5, max_debug_depth=2, max_nodes=14, parallel_nodes=2)
    uninterrupted = tree_of()
    whole = grow(uninterrupted, params, 7)

    first = tree_of()
    before = grow(first, params, 3)
    path = tmp_path / "tree.json"
    first.save(path)
    resumed = Tree.load(path)
    after = grow(resumed, params, 4)

    assert before + after == whole
    assert resumed == uninterrupted
    assert {action.kind for batch in whole for action in batch} == {"draft", "debug", "improve"}
    assert len(uninterrupted.nodes) == params.max_nodes
