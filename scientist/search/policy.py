"""What the tree search expands next: AIDE's policy (draft, debug, greedy improve) with the best node chosen by code.

First `drafts` nodes from the baseline code. After that, each expansion debugs a failed leaf with probability
`debug_probability` (a leaf that is already `max_debug_depth` debugs deep is left alone), and otherwise improves the
best node (scientist/search/best.py). Where the chosen move has nothing to work on it falls back: no failed leaf to
debug means improving the best node; no best node yet (every node so far failed or is still running) means debugging
a failed leaf, or, with none, one more draft. The search stops at `max_nodes` nodes.

Decisions are a pure function of the tree, the parameters and a random.Random. `decision_random` seeds that from the
tree's journaled seed and the number of nodes created so far, so a resumed search, which reloads the same tree,
makes the same decisions.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from scientist.search.best import best_node
from scientist.search.tree import NodeKind, Tree


@dataclass(frozen=True)
class SearchParams:
    """The tree search's settings: the defaults here are the one place they are written (the CLI reads them)."""

    drafts: int = 3
    """Nodes written from the baseline code before any node is debugged or improved."""
    debug_probability: float = 0.5
    """Chance that an expansion debugs a failed leaf rather than improving the best node."""
    max_debug_depth: int = 3
    """Debug nodes in a row after which a failed leaf is given up."""
    max_nodes: int = 12
    """Nodes in the whole tree, failed ones included (the best node's re-run on seeds is not a node)."""
    parallel_nodes: int = 1
    """Nodes expanded at once. 1 by default because one run already uses every core of a CPU machine."""

    def __post_init__(self) -> None:
        problems = [text for bad, text in (
            (self.drafts < 1, f"drafts must be at least 1, got {self.drafts}"),
            (not 0.0 <= self.debug_probability <= 1.0,
             f"debug_probability must be between 0 and 1, got {self.debug_probability}"),
            (self.max_debug_depth < 0, f"max_debug_depth must be at least 0, got {self.max_debug_depth}"),
            (self.max_nodes < self.drafts, f"max_nodes ({self.max_nodes}) must be at least drafts ({self.drafts})"),
            (self.parallel_nodes < 1, f"parallel_nodes must be at least 1, got {self.parallel_nodes}"),
        ) if bad]
        if problems:
            raise ValueError("; ".join(problems))


@dataclass(frozen=True)
class Expansion:
    """One node to create: its kind and the node it extends (None for a draft)."""

    kind: NodeKind
    parent: int | None


def decision_random(tree: Tree) -> random.Random:
    """The random source of the next batch of decisions: seeded by the tree's seed and its size, both in tree.json,
    so that it is the same after a resume. (A string seed is hashed with SHA-512, the same in every process.)"""
    return random.Random(f"{tree.seed}:{len(tree.nodes)}")


def next_actions(tree: Tree, params: SearchParams, rng: random.Random, n: int) -> list[Expansion]:
    """Up to n expansions to start now (fewer where max_nodes is near); no failed leaf is debugged twice at once."""
    room = max(0, min(n, params.max_nodes - len(tree.nodes)))
    drafts = sum(node.kind == "draft" for node in tree.nodes)
    best = best_node(tree)
    claimed: set[int] = set()
    actions: list[Expansion] = []
    for _ in range(room):
        if drafts < params.drafts:
            actions.append(Expansion("draft", None))
            drafts += 1
            continue
        wants_debug = rng.random() < params.debug_probability
        debuggable = [leaf.id for leaf in tree.failed_leaves()
                      if leaf.debug_depth < params.max_debug_depth and leaf.id not in claimed]
        if debuggable and (wants_debug or best is None):
            leaf = rng.choice(debuggable)
            claimed.add(leaf)
            actions.append(Expansion("debug", leaf))
        elif best is not None:
            actions.append(Expansion("improve", best.id))
        else:
            actions.append(Expansion("draft", None))
    return actions
