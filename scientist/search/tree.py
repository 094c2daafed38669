"""The tree of one idea's tree search: typed nodes, their family, and its JSON file (tree.json in the idea folder,
once wired), written atomically.

A node is one version of the editable files (a commit in the idea's repository) with the run it got. Nodes are
numbered in the order they are created, so a node's id is also its age: a parent always has a smaller id than its
children, and "the earlier node" is the one with the smaller id. The tree also keeps what every later decision must
repeat identically after a resume: the seed of the policy's random choices, and the primary metric and noise floor
that decide which node is best (scientist/search/best.py).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Literal, get_args

from scientist.store.files import atomic_write_text

NodeKind = Literal["draft", "debug", "improve"]
NodeStatus = Literal["pending", "running", "ok", "failed"]
FORMAT_VERSION = 1


class TreeError(Exception):
    """tree.json cannot be read as a tree; the message names the file and what is wrong."""


@dataclass
class Node:
    """One version of the editable files and the run it got."""

    id: int
    """Its place in the order nodes were created (0, 1, 2, ...)."""
    parent: int | None
    """The node whose code it extends; None for a draft, which starts from the baseline code."""
    kind: NodeKind
    status: NodeStatus = "pending"
    debug_depth: int = 0
    """How many debug nodes in a row end at this one (itself included): 0 for a draft or an improvement."""
    commit: str = ""
    """The commit of its code in the idea's repository; empty until the coder's edit is committed."""
    run_dir: str = ""
    """Its run's folder, relative to the idea folder; empty until it runs."""
    description: str = ""
    """What the coder said the node changes."""
    value: float | None = None
    """The primary metric's value in its run (the mean over seeds once re-run on several)."""
    value_std: float | None = None
    """The primary metric's standard deviation over the node's own seeds; None for a single run."""
    seeds: int = 1
    """How many seeds value is the mean of."""
    score: float | None = None
    """How much better than its reference (the baseline, or the baseline frontier at its own sparsity) value is, by
    the metric's direction: what best.py compares. None while it has no result."""
    lines_changed: int | None = None
    """Lines its code adds or removes against the baseline code: the simpler of two tied nodes wins."""
    error: str = ""
    """Why it failed, in one line."""

    def __post_init__(self) -> None:
        if self.kind not in get_args(NodeKind):
            raise ValueError(f"node {self.id}: kind {self.kind!r} is not one of {', '.join(get_args(NodeKind))}")
        if self.status not in get_args(NodeStatus):
            raise ValueError(f"node {self.id}: status {self.status!r} is not one of "
                             f"{', '.join(get_args(NodeStatus))}")
        if (self.kind == "draft") != (self.parent is None):
            raise ValueError(f"node {self.id}: a draft, and only a draft, has no parent")

    @property
    def tag(self) -> str:
        """The git tag that names the node's commit in the idea's repository."""
        return f"node-{self.id}"


@dataclass
class Tree:
    """Every node of one idea's search, and what its decisions depend on."""

    metric: str
    """The primary metric ("group.name") that ranks the nodes."""
    noise: float
    """What a difference in score must exceed for one node to beat another (noise.noise_threshold of the baseline)."""
    seed: int
    """The seed of the policy's random choices, kept so that a resumed search repeats them."""
    nodes: list[Node] = field(default_factory=list)

    def node(self, node_id: int) -> Node:
        if not 0 <= node_id < len(self.nodes):
            raise KeyError(f"no node {node_id} in a tree of {len(self.nodes)}")
        return self.nodes[node_id]

    def add(self, kind: NodeKind, parent: int | None) -> Node:
        """A new pending node; a debug node counts one more debug in a row than its parent."""
        depth = self.node(parent).debug_depth + 1 if kind == "debug" and parent is not None else 0
        node = Node(id=len(self.nodes), parent=parent, kind=kind, debug_depth=depth)
        self.nodes.append(node)
        return node

    def children(self, node_id: int) -> list[Node]:
        return [node for node in self.nodes if node.parent == node_id]

    def path(self, node_id: int) -> list[Node]:
        """The node's line of descent, from its draft down to the node itself: the runs whose results the coder
        reads when it extends the node."""
        line = [self.node(node_id)]
        while line[-1].parent is not None:
            line.append(self.node(line[-1].parent))
        return line[::-1]

    def leaves(self) -> list[Node]:
        parents = {node.parent for node in self.nodes}
        return [node for node in self.nodes if node.id not in parents]

    def failed_leaves(self) -> list[Node]:
        """Failed nodes nobody has tried to fix yet (a debug child in flight counts as a try)."""
        return [node for node in self.leaves() if node.status == "failed"]

    def with_status(self, *statuses: NodeStatus) -> list[Node]:
        return [node for node in self.nodes if node.status in statuses]

    def to_json(self) -> dict:
        return {"version": FORMAT_VERSION, "metric": self.metric, "noise": self.noise, "seed": self.seed,
                "nodes": [asdict(node) for node in self.nodes]}

    @classmethod
    def from_json(cls, data: dict) -> Tree:
        """The tree from what to_json wrote; raises ValueError, KeyError or TypeError on anything else."""
        if data.get("version") != FORMAT_VERSION:
            raise ValueError(f"format version {data.get('version')!r}, expected {FORMAT_VERSION}")
        known = {f.name for f in fields(Node)}
        nodes = [Node(**{key: value for key, value in raw.items() if key in known}) for raw in data["nodes"]]
        for position, node in enumerate(nodes):
            if node.id != position:
                raise ValueError(f"node {node.id} is stored at position {position}; ids must count up from 0")
            if node.parent is not None and not 0 <= node.parent < node.id:
                raise ValueError(f"node {node.id}'s parent {node.parent} is not an earlier node")
        return cls(metric=str(data["metric"]), noise=float(data["noise"]), seed=int(data["seed"]), nodes=nodes)

    def save(self, path: Path) -> None:
        """Write the tree to path atomically: a killed process leaves the previous tree or this one."""
        atomic_write_text(Path(path), json.dumps(self.to_json(), indent=2) + "\n")

    @classmethod
    def load(cls, path: Path) -> Tree:
        path = Path(path)
        try:
            return cls.from_json(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError, AttributeError) as err:
            raise TreeError(f"{path}: not a search tree ({type(err).__name__}: {err}); move it aside to start the "
                            "search again") from err
