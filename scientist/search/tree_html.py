"""tree.html: one idea's search tree drawn from its tree.json, with each node's diff and results a click away.

    python -m scientist.search.tree_html <idea folder>      writes <idea folder>/tree.html

The page is the results report's kind (scientist/paper/report.py): no scripts, nothing loaded from outside, every
link relative, so it works opened from disk. Each node's code change is written beside it as plain text,
tree/node-<id>.diff: the node's commit against its parent's, or against the first commit (the template copy) for a
draft. Every text the tree holds is escaped: descriptions and errors are written by an LLM.
"""

from __future__ import annotations

import argparse
import logging
import sys
from html import escape
from pathlib import Path
from urllib.parse import quote

import git

from scientist.experiment.metrics import format_number, with_spread
from scientist.paper.report import STYLE
from scientist.search.best import best_node
from scientist.search.tree import Node, Tree, TreeError
from scientist.store.files import atomic_write_text
from scientist.store.folder import FINAL_INFO_FILE, TREE_FILE

logger = logging.getLogger(__name__)

TREE_PAGE = "tree.html"
DIFF_DIR = "tree"
BOX_WIDTH, BOX_HEIGHT = 190, 92
COLUMN_WIDTH, ROW_HEIGHT, MARGIN = 210, 130, 10
LINE_HEIGHT = 15
ERROR_CHARS = 26
"""How much of a failed node's error its box shows; the whole of it is in the box's tooltip and the table."""

TREE_STYLE = """
svg.tree { display: block; margin: 1em 0; }
svg.tree line { stroke: #888; stroke-width: 1.5; }
svg.tree rect { stroke-width: 1.5; }
svg.tree text { font-size: 12px; }
svg.tree a text { fill: #0645ad; text-decoration: underline; }
.status-ok rect { fill: #e3f4e8; stroke: #126b2f; }
.status-failed rect { fill: #fbe3e1; stroke: #b3261e; }
.status-pending rect { fill: #f2f2f2; stroke: #999; }
.status-running rect { fill: #fff3cd; stroke: #b58100; }
g.best rect { stroke: #d4a000; stroke-width: 4; }
tr.best { background: #fff6d6; }
"""


def write_tree_page(idea_folder: Path) -> Path | None:
    """Write <idea_folder>/tree.html and the nodes' diffs; returns the page's path, or None when the idea has no
    tree.json. Raises TreeError when tree.json cannot be read."""
    folder = Path(idea_folder)
    if not (folder / TREE_FILE).is_file():
        return None
    tree = Tree.load(folder / TREE_FILE)
    best = best_node(tree)
    diffs = _write_diffs(folder, tree)
    links = {node.id: _node_links(folder, node, diffs[node.id]) for node in tree.nodes}
    best_id = best.id if best else None
    best_text = f"node {best_id}" if best else "none yet (no node has a score)"
    page = "\n".join([
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>Search tree: {escape(folder.name)}</title>",
        f"<style>{STYLE}{TREE_STYLE}</style>",
        "</head><body>",
        f"<h1>Search tree: {escape(folder.name)}</h1>",
        f'<p class="rule">Primary metric <b class="metric">{escape(tree.metric)}</b>, noise floor <b class="noise">'
        f"{format_number(tree.noise)}</b>. A node beats another only when its score exceeds it by more than the "
        "noise floor; ties go to fewer lines changed, then the earlier node.</p>",
        f'<p>{len(tree.nodes)} node(s); best: <b class="best-node">{best_text}</b>.</p>',
        _drawing(tree, best_id, links),
        _table(tree, best_id, links),
        "</body></html>",
        "",
    ])
    path = folder / TREE_PAGE
    atomic_write_text(path, page)
    return path


def _write_diffs(folder: Path, tree: Tree) -> dict[int, str]:
    """Write tree/node-<id>.diff for each node with a commit; returns each node's diff path by id, relative to the
    idea folder ("" for a node without one). A diff git cannot make is left out with a warning, never the page."""
    diffs = {node.id: "" for node in tree.nodes}
    committed = [node for node in tree.nodes if node.commit]
    if not committed:
        return diffs
    try:
        repo = git.Repo(folder)
    except git.exc.GitError as err:
        logger.warning("%s is not a git repository (%s); the search tree's diffs are left out", folder, err)
        return diffs
    for node in committed:
        try:
            base = (tree.node(node.parent).commit if node.parent is not None
                    else repo.git.rev_list("--max-parents=0", node.commit).split()[0])
            diff = repo.git.diff(base, node.commit)
        except git.exc.GitError as err:
            logger.warning("%s: no diff for node %d (%s)", folder, node.id, err)
            continue
        diffs[node.id] = f"{DIFF_DIR}/{node.tag}.diff"
        atomic_write_text(folder / diffs[node.id], diff + "\n")
    return diffs


def _node_links(folder: Path, node: Node, diff: str) -> list[tuple[str, str]]:
    """(label, href relative to tree.html) of the node's diff and of its run's final_info.json, where they exist."""
    links = [("diff", quote(diff))] if diff else []
    results = f"{node.run_dir}/{FINAL_INFO_FILE}"
    if node.run_dir and (folder / results).is_file():
        links.append(("results", quote(results)))
    return links


def _value(node: Node) -> str:
    if node.value is None:
        return "n/a"
    seeds = f" ({node.seeds} seeds)" if node.seeds > 1 else ""
    return with_spread(node.value, node.value_std) + seeds


def _layout(tree: Tree) -> dict[int, tuple[float, int]]:
    """Each node's (column, row): its depth is its row; leaves take one column each in depth-first order, and a
    parent sits centred over its children."""
    rows: dict[int, int] = {}
    for node in tree.nodes:  # a parent always comes before its children
        rows[node.id] = 0 if node.parent is None else rows[node.parent] + 1
    columns: dict[int, float] = {}
    stack = [node for node in reversed(tree.nodes) if node.parent is None]
    while stack:
        node = stack.pop()
        children = tree.children(node.id)
        if not children:
            columns[node.id] = len(columns)  # only leaves are placed so far
        stack.extend(reversed(children))
    for node in reversed(tree.nodes):  # children before their parent
        if children := tree.children(node.id):
            columns[node.id] = (columns[children[0].id] + columns[children[-1].id]) / 2
    return {node.id: (columns[node.id], rows[node.id]) for node in tree.nodes}


def _drawing(tree: Tree, best_id: int | None, links: dict[int, list[tuple[str, str]]]) -> str:
    places = _layout(tree)
    corner = {node_id: (MARGIN + column * COLUMN_WIDTH, MARGIN + row * ROW_HEIGHT)
              for node_id, (column, row) in places.items()}
    width = MARGIN * 2 + BOX_WIDTH + COLUMN_WIDTH * max((column for column, _ in places.values()), default=0)
    height = MARGIN * 2 + BOX_HEIGHT + ROW_HEIGHT * max((row for _, row in places.values()), default=0)
    edges = [f'<line x1="{corner[node.parent][0] + BOX_WIDTH / 2}" y1="{corner[node.parent][1] + BOX_HEIGHT}" '
             f'x2="{corner[node.id][0] + BOX_WIDTH / 2}" y2="{corner[node.id][1]}"/>'
             for node in tree.nodes if node.parent is not None]
    boxes = [_box(node, *corner[node.id], node.id == best_id, links[node.id]) for node in tree.nodes]
    return (f'<svg class="tree" xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
            f'viewBox="0 0 {width} {height}">' + "".join(edges + boxes) + "</svg>")


def _box(node: Node, x: float, y: float, is_best: bool, links: list[tuple[str, str]]) -> str:
    def text(line: int, content: str, dx: float = 0) -> str:
        return f'<text x="{x + 8 + dx}" y="{y + LINE_HEIGHT * (line + 1)}">{content}</text>'

    lines = [text(0, f"<tspan font-weight=\"bold\">node {node.id}</tspan> · {escape(node.kind)}"
                     + (' · <tspan class="best-label" font-weight="bold">best</tspan>' if is_best else "")),
             text(1, escape(node.status)), text(2, escape(_value(node)))]
    if node.error:
        shown = node.error if len(node.error) <= ERROR_CHARS else node.error[:ERROR_CHARS - 1] + "…"
        lines.append(text(3, f"<title>{escape(node.error)}</title>{escape(shown)}"))
    lines += [f'<a href="{escape(href)}">{text(4, label, dx=60 * i)}</a>' for i, (label, href) in enumerate(links)]
    classes = f"node status-{node.status}" + (" best" if is_best else "")
    return (f'<g class="{classes}" data-node="{node.id}"><rect x="{x}" y="{y}" width="{BOX_WIDTH}" '
            f'height="{BOX_HEIGHT}" rx="6"><title>{escape(node.description)}</title></rect>{"".join(lines)}</g>')


def _table(tree: Tree, best_id: int | None, links: dict[int, list[tuple[str, str]]]) -> str:
    def row(node: Node) -> str:
        cells = [str(node.id), "" if node.parent is None else str(node.parent), node.kind, node.status,
                 _value(node), format_number(node.score),
                 "n/a" if node.lines_changed is None else str(node.lines_changed), node.description, node.error]
        anchors = ", ".join(f'<a href="{escape(href)}">{label}</a>' for label, href in links[node.id])
        return (f'<tr class="node{" best" if node.id == best_id else ""}" data-node="{node.id}">'
                + "".join(f"<td>{escape(cell)}</td>" for cell in cells) + f"<td>{anchors}</td></tr>")

    header = "".join(f"<th>{escape(name)}</th>" for name in (
        "node", "parent", "kind", "status", tree.metric, "score", "lines changed", "description", "error", "links"))
    return "\n".join(['<table class="metrics nodes">', f"<tr>{header}</tr>", *map(row, tree.nodes), "</table>"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scientist.search.tree_html",
                                     description="Write tree.html over the search tree of one idea.")
    parser.add_argument("idea_folder", type=Path, help="an idea folder searched with --search tree")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
    try:
        path = write_tree_page(args.idea_folder)
    except TreeError as err:
        print(f"python -m scientist.search.tree_html: {err}", file=sys.stderr)
        return 2
    if path is None:
        print(f"python -m scientist.search.tree_html: {args.idea_folder / TREE_FILE}: no such file; give an idea "
              "folder searched with --search tree", file=sys.stderr)
        return 2
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
