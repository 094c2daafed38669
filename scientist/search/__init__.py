"""Tree search over an idea's experiment variants (`--search tree`); the stage that drives it is
scientist/pipeline/tree_search.py.

- tree.py: typed nodes (kind draft/debug/improve, status pending/running/ok/failed, commit, run folder, primary
  metric value and score, debug depth) and the Tree, saved atomically to the idea folder's tree.json;
- policy.py: SearchParams (every default in one place; the CLI's flags read them) and next_actions, which says
  what to expand next, with seeded random choices that a resumed search repeats;
- best.py: the primary metric, the noise floor, each node's score, and the best node, all decided by code;
- worktrees.py: a git work tree per node, so that nodes expanded at once are edited and run side by side;
- tree_html.py: tree.html, the tree drawn with each node's metric, status, diff and results.
"""
