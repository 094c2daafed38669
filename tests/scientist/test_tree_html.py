"""tree.html over a planted search tree: a real git repository whose node commits are tagged node-<id>, tree.json
written by Tree.save, and run folders with results. The page is read back parsed and as headless Chromium renders it
from file://; the results report links it."""

import subprocess
import sys
from pathlib import Path
from urllib.parse import unquote

import git
import pytest

from scientist.experiment.metrics import format_number
from scientist.paper.report import write_report
from scientist.search.tree import Tree
from scientist.search.tree_html import main, write_tree_page
from scientist.store.folder import TREE_FILE
from tests.conftest import REPO
from tests.scientist.conftest import require_tools
from tests.scientist.test_report import DONE_IDEA, FAILED_IDEA, build_results, chromium, parse_dom, write_json

ERROR = "<script>alert('error')</script> Traceback: experiment.py line 12 raised a ValueError"
DESCRIPTION = "<script>alert('description')</script> a gated encoder"
NOISE = 0.004
BEST = 2  # beats node 0 by more than the noise floor; node 1 is within noise of node 0
STATUSES = {0: "ok", 1: "ok", 2: "ok", 3: "failed", 4: "pending", 5: "running"}


def commit(repo: git.Repo, base: str, files: dict[str, str], tag: str) -> str:
    """Commit the files on top of base (detached), tagged; returns the commit."""
    repo.git.checkout("--detach", base)
    for name, text in files.items():
        (Path(repo.working_dir) / name).write_text(text)
    repo.git.add(A=True)
    sha = repo.index.commit(tag).hexsha
    repo.create_tag(tag)
    return sha


def build_tree(folder: Path) -> Tree:
    """Drafts 0 (ok) and 3 (failed); improvements 1 (within noise) and 2 (best) of node 0; debug 4 of node 3, not
    yet committed; improvement 5 of node 2, running."""
    folder.mkdir(parents=True, exist_ok=True)
    repo = git.Repo.init(folder)
    with repo.config_writer() as config:
        config.set_value("user", "name", "test")
        config.set_value("user", "email", "test@localhost")
    (folder / ".gitignore").write_text("/run_*/\n/tree/\n/tree.html\n/tree.json\n")
    (folder / "experiment.py").write_text("x = 1\n")
    repo.git.add(A=True)
    first = repo.index.commit("template copy").hexsha
    tree = Tree(metric="core.explained_variance", noise=NOISE, seed=0)
    plan = [  # kind, parent, the experiment.py it commits, value, std, seeds, score, lines changed
        ("draft", None, "x = 2\n", 0.95, None, 1, 0.05, 2),
        ("improve", 0, "x = 2\ny = 3\n", 0.951, 0.001, 3, 0.051, 3),
        ("improve", 0, "x = 2\nz = 4\n", 0.96, None, 1, 0.06, 3),
        ("draft", None, "x = None\n", None, None, 1, None, 2),
        ("debug", 3, None, None, None, 1, None, None),
        ("improve", 2, "x = 2\nz = 5\n", None, None, 1, None, None),
    ]
    for kind, parent, code, value, std, seeds, score, lines in plan:
        node = tree.add(kind, parent)
        node.status, node.description = STATUSES[node.id], f"node {node.id}'s change"
        node.value, node.value_std, node.seeds, node.score, node.lines_changed = value, std, seeds, score, lines
        if code is not None:
            base = first if parent is None else tree.node(parent).commit
            node.commit = commit(repo, base, {"experiment.py": code}, tag=node.tag)
        if node.status == "ok":
            node.run_dir = f"run_{node.id + 1}"
            write_json(folder / node.run_dir / "final_info.json", {"core": {"status": "ok", "means": {
                "explained_variance": value}}})
    tree.node(3).error, tree.node(3).description, tree.node(3).run_dir = ERROR, DESCRIPTION, "run_4"
    tree.save(folder / TREE_FILE)
    return tree


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    """(the idea folder, tree.html's text, its parsed DOM, the DOM headless Chromium rendered from it)."""
    require_tools("chromium")
    root = tmp_path_factory.mktemp("tree")
    folder = root / "20260101_140000_tree"
    build_tree(folder)
    path = write_tree_page(folder)
    assert path == folder / "tree.html"
    rendered = chromium(root / "profile", "--dump-dom", path.as_uri()).stdout
    return folder, path.read_text(), parse_dom(path.read_text()), parse_dom(rendered)


def boxes(dom) -> dict[int, object]:
    return {int(box.attrs["data-node"]): box for box in dom.find_all("g", "node")}


def test_every_node_is_drawn_with_its_status_and_value(page):
    _, _, dom, _ = page
    drawn = boxes(dom)
    assert sorted(drawn) == list(STATUSES)
    for node_id, box in drawn.items():
        assert f"node {node_id}" in box.text
        assert f"status-{STATUSES[node_id]}" in box.classes
        assert STATUSES[node_id] in box.text
    assert format_number(0.95) in drawn[0].text
    assert f"{format_number(0.951)} ± {format_number(0.001)} (3 seeds)" in drawn[1].text
    rows = {int(row.attrs["data-node"]): row for row in dom.find_all("tr", "node")}
    assert sorted(rows) == list(STATUSES)
    assert [cell.text for cell in rows[1].find_all("td")][:7] == ["1", "0", "improve", "ok", "0.951 ± 0.001 (3 seeds)",
                                                                   "0.051", "3"]


def test_the_page_states_the_metric_the_noise_floor_and_the_rule(page):
    _, _, dom, _ = page
    assert dom.find(cls="metric").text == "core.explained_variance"
    assert dom.find(cls="noise").text == format_number(NOISE)
    assert "ties go to fewer lines changed, then the earlier node" in dom.find("p", "rule").text


def test_children_are_drawn_under_their_parent(page):
    _, _, dom, _ = page
    corner = {node_id: (float(box.find("rect").attrs["x"]), float(box.find("rect").attrs["y"]))
              for node_id, box in boxes(dom).items()}
    assert corner[1][1] == corner[2][1] > corner[0][1] == corner[3][1]
    assert corner[0][0] == (corner[1][0] + corner[2][0]) / 2
    assert corner[5][1] > corner[2][1] and corner[5][0] == corner[2][0]
    assert len(dom.find_all("line")) == 4


def test_the_best_node_is_marked(page):
    _, _, dom, _ = page
    [best] = dom.find_all("g", "best")
    assert best.attrs["data-node"] == str(BEST)
    assert best.find(cls="best-label").text == "best"
    assert [row.attrs["data-node"] for row in dom.find_all("tr", "best")] == [str(BEST)]
    assert dom.find(cls="best-node").text == f"node {BEST}"


def test_text_from_the_tree_is_escaped(page):
    _, html, dom, rendered = page
    assert dom.find_all("script") == [] and rendered.find_all("script") == []
    assert "&lt;script&gt;alert(&#x27;error&#x27;)" in html
    assert "&lt;script&gt;alert(&#x27;description&#x27;)" in html
    failed = boxes(dom)[3]
    assert ERROR in [title.text for title in failed.find_all("title")]  # the whole error, in the tooltip
    assert f"{ERROR[:25]}…" in failed.text  # the box shows its start


def test_each_node_links_its_diff_and_results(page):
    folder, _, dom, _ = page
    links = {node_id: {a.text: unquote(a.attrs["href"]) for a in box.find_all("a")}
             for node_id, box in boxes(dom).items()}
    assert links[0] == {"diff": "tree/node-0.diff", "results": "run_1/final_info.json"}
    assert links[3] == {"diff": "tree/node-3.diff"}  # failed: no results
    assert links[4] == {}  # no commit yet
    assert links[5] == {"diff": "tree/node-5.diff"}
    for target in [a.attrs["href"] for a in dom.find_all("a")]:
        assert "://" not in target and not target.startswith("/"), target
        assert (folder / unquote(target)).is_file(), target
    draft = (folder / "tree" / "node-0.diff").read_text()
    assert "-x = 1" in draft and "+x = 2" in draft
    improvement = (folder / "tree" / "node-1.diff").read_text()  # against its parent, node 0
    assert "+y = 3" in improvement and "x = 1" not in improvement and "+x = 2" not in improvement


def test_chromium_renders_every_node(page):
    _, _, _, rendered = page
    text = rendered.find("svg").text
    for node_id in STATUSES:
        assert f"node {node_id}" in text


def test_the_command_line_names_the_missing_tree(tmp_path):
    done = subprocess.run([sys.executable, "-m", "scientist.search.tree_html", str(tmp_path)], cwd=REPO,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert f"{tmp_path / TREE_FILE}: no such file" in done.stderr
    assert not (tmp_path / "tree.html").exists()


def test_the_command_line_names_an_unreadable_tree(tmp_path, capsys):
    (tmp_path / TREE_FILE).write_text("{not json")
    assert main([str(tmp_path)]) == 2
    assert f"{tmp_path / TREE_FILE}: not a search tree" in capsys.readouterr().err
    build_tree(tmp_path / "idea")
    assert main([str(tmp_path / "idea")]) == 0
    assert capsys.readouterr().out.strip() == str(tmp_path / "idea" / "tree.html")


def test_the_report_links_the_tree_of_an_idea_searched_as_a_tree(tmp_path):
    results = build_results(tmp_path)
    build_tree(results / DONE_IDEA)
    dom = parse_dom(write_report(results).read_text())
    sections = {section.find("h2").text: section for section in dom.find_all("section", "idea")}
    [link] = [a for a in sections[DONE_IDEA].find_all("a") if a.text == "search tree"]
    assert unquote(link.attrs["href"]) == f"{DONE_IDEA}/tree.html"
    assert (results / DONE_IDEA / "tree.html").is_file()
    assert [a for a in sections[FAILED_IDEA].find_all("a") if a.text == "search tree"] == []
