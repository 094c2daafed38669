"""Each node of a tree search gets a work tree of its own (`git worktree`, under the idea folder's nodes/), so that
nodes expanded at once can be edited and run side by side from one repository: a node's code is a commit there,
tagged node-<id>, and a child's work tree starts from its parent's tag.

The work trees are scratch space (nodes/ is not in git, and a resume removes it): what lasts is the commits, the
tags, and the run folders, which are moved into the idea folder as run_<k> once a node's run finishes.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import git

from scientist.store.folder import NODES_DIR, IdeaFolder


class NodeWorkTrees:
    def __init__(self, folder: IdeaFolder, editable: tuple[str, ...]):
        self.folder, self.editable = folder, editable
        self.repo = folder.repo
        self.root = folder.path / NODES_DIR
        self.first_commit = self.repo.git.rev_list("--max-parents=0", "HEAD").split()[0]
        # Work trees a killed search left behind (their folders may be gone already) are forgotten.
        self.repo.git.worktree("prune")

    def path(self, node_id: int) -> Path:
        return self.root / f"node-{node_id}"

    def add(self, node_id: int, start: str | None) -> Path:
        """A fresh work tree for the node at `start` (a commit or tag; None: the baseline code)."""
        path = self.path(node_id)
        if path.exists():
            self.repo.git.worktree("remove", "--force", str(path))
            shutil.rmtree(path, ignore_errors=True)
        self.repo.git.worktree("add", "--detach", str(path), start or self.first_commit)
        return path

    def commit(self, node_id: int, message: str) -> str:
        """Commit the node's edits in its work tree and tag the commit node-<id> (moving a tag a replayed search left
        on an earlier commit); returns the commit."""
        tree = git.Repo(self.path(node_id))
        tree.git.add("--", *self.editable)
        if tree.is_dirty(index=True, working_tree=False):
            tree.index.commit(message)
        commit = tree.head.commit.hexsha
        self.repo.git.tag("-f", f"node-{node_id}", commit)
        return commit

    def lines_changed(self, commit: str) -> int:
        """Lines added plus lines removed in the editable files against the baseline code."""
        numstat = self.repo.git.diff("--numstat", self.first_commit, commit, "--", *self.editable)
        return sum(int(added) + int(removed) for added, removed, _ in
                   (line.split("\t", 2) for line in numstat.splitlines()) if added.isdigit() and removed.isdigit())

    def remove_all(self) -> None:
        """Drop every node's work tree (the commits and tags stay)."""
        shutil.rmtree(self.root, ignore_errors=True)
        self.repo.git.worktree("prune")
