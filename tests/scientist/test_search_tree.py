"""The search tree (scientist/search/tree.py): its family relations, and tree.json written atomically and read back
as the same tree."""

import json

import pytest

from scientist.search.tree import Node, Tree, TreeError

TREE_FILE = "tree.json"


def grown_tree() -> Tree:
    """Two drafts; draft 0 improved twice in a line, draft 1 failed and debugged twice (the second debug failed)."""
    tree = Tree(metric="core.explained_variance", noise=0.004, seed=7)
    tree.add("draft", None).status = "ok"
    tree.add("draft", None).status = "failed"
    tree.add("improve", 0).status = "ok"
    tree.add("debug", 1).status = "failed"
    tree.add("improve", 2).status = "running"
    tree.add("debug", 3).status = "failed"
    return tree


def test_nodes_are_numbered_in_the_order_they_were_made_and_debugs_in_a_row_are_counted():
    tree = grown_tree()
    assert [node.id for node in tree.nodes] == [0, 1, 2, 3, 4, 5]
    assert [node.debug_depth for node in tree.nodes] == [0, 0, 0, 1, 0, 2]
    assert tree.node(4).tag == "node-4"


def test_path_runs_from_the_draft_down_to_the_node():
    tree = grown_tree()
    assert [node.id for node in tree.path(4)] == [0, 2, 4]
    assert [node.id for node in tree.path(5)] == [1, 3, 5]
    assert [node.id for node in tree.path(0)] == [0]


def test_leaves_and_failed_leaves():
    tree = grown_tree()
    assert [node.id for node in tree.leaves()] == [4, 5]
    assert [node.id for node in tree.failed_leaves()] == [5]
    assert [node.id for node in tree.children(0)] == [2]
    assert [node.id for node in tree.with_status("pending", "running")] == [4]


def test_a_node_that_breaks_the_rules_is_refused():
    with pytest.raises(ValueError, match="draft"):
        Node(id=0, parent=None, kind="improve")
    with pytest.raises(ValueError, match="kind"):
        Node(id=0, parent=None, kind="sketch")
    with pytest.raises(ValueError, match="status"):
        Node(id=0, parent=None, kind="draft", status="done")


def test_the_tree_round_trips_through_tree_json(tmp_path):
    tree = grown_tree()
    node = tree.node(2)
    node.commit, node.run_dir, node.description = "a" * 40, "run_3", "AuxK loss"
    node.value, node.value_std, node.seeds, node.score, node.lines_changed = 0.91, 0.002, 3, 0.01, 12
    tree.node(1).error = "exit code 1: NameError"
    path = tmp_path / TREE_FILE
    tree.save(path)
    assert Tree.load(path) == tree
    # Nothing but the file is left behind: the temporary file was renamed over it.
    assert [p.name for p in tmp_path.iterdir()] == [TREE_FILE]


def test_a_failed_write_leaves_the_previous_tree(tmp_path, monkeypatch):
    path = tmp_path / TREE_FILE
    grown_tree().save(path)
    before = path.read_text()
    bigger = grown_tree()
    bigger.add("improve", 4)

    def killed(*_args):
        raise KeyboardInterrupt("killed mid-write")

    monkeypatch.setattr("os.replace", killed)
    with pytest.raises(KeyboardInterrupt):
        bigger.save(path)
    assert path.read_text() == before
    assert [p.name for p in tmp_path.iterdir()] == [TREE_FILE]


@pytest.mark.parametrize("damage", [
    lambda data: data.update(version=99),
    lambda data: data["nodes"][2].update(parent=5),
    lambda data: data["nodes"][1].update(id=4),
    lambda data: data["nodes"][0].update(kind="sketch"),
    lambda data: data.pop("noise"),
], ids=["version", "later parent", "id out of order", "kind", "no noise"])
def test_a_damaged_tree_json_is_refused_with_its_name(tmp_path, damage):
    path = tmp_path / TREE_FILE
    data = grown_tree().to_json()
    damage(data)
    path.write_text(json.dumps(data))
    with pytest.raises(TreeError, match=TREE_FILE):
        Tree.load(path)


def test_unreadable_json_is_refused(tmp_path):
    path = tmp_path / TREE_FILE
    path.write_text("{not json")
    with pytest.raises(TreeError, match="move it aside"):
        Tree.load(path)
