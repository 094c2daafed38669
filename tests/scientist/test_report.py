"""The results page, built over two idea folders and read back the way a person sees it: rendered by headless
Chromium from file://, its DOM parsed, every link and image followed to a file on disk."""

import json
import struct
import subprocess
import sys
import zlib
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote

import pytest

from scientist.experiment.manifest import MANIFEST_FILE
from scientist.experiment.metrics import format_number
from scientist.llm.ledger import Ledger
from scientist.paper.report import ReportError, main, write_report
from tests.conftest import REPO, TEMPLATE_DIR
from tests.scientist.conftest import SAE_METRICS, require_tools

CHROMIUM_TIMEOUT_S = 60
DONE_IDEA = "20260101_120000_topk"
FAILED_IDEA = "20260101_130000_broken"
# Written into state.json to check that the page escapes what it shows.
DONE_IDEA_NAME = "topk_<script>alert(1)</script>"

BASELINE_CORE = {"explained_variance": 0.8974051234, "ce_loss_score": 0.802018, "kl_div_score": 0.794431,
                 "mse": 285.0951234, "l0": 70.68721, "dead_fraction": 0.0, "cossim": 0.992}
RUN_2_CORE = {"explained_variance": 0.9523761, "ce_loss_score": 0.939457, "kl_div_score": 0.794431,
              "mse": 310.5, "l0": 64.0, "dead_fraction": 0.03125, "cossim": 0.995}
EXPECTED_VERDICTS = {"explained_variance": "better", "ce_loss_score": "better", "kl_div_score": "within noise",
                     "mse": "worse", "l0": "info", "dead_fraction": "worse", "cossim": "better"}
# The report shows the key metrics of the idea's template manifest, in its order.
# The runs here report core metrics only: the report leaves out key metrics that neither run has.
KEY_METRICS = [metric.name for metric in SAE_METRICS.key_metrics if metric.group == "core"]


def final_info(core: dict, k: int) -> dict:
    """Shaped like the harness's final_info.json: groups with a status, their means, and skipped groups."""
    skipped = {"status": "skipped", "means": {}, "reason": "runs offline; this eval needs the Hugging Face hub"}
    return {
        "training": {"status": "ok", "means": {"training_steps": 438, "dict_size": 2048, "k": k},
                     "variant": "topk", "config": {"k": k}},
        "core": {"status": "ok", "means": core, "formulas": {"mse": "sum((x - x_hat)^2) / (tokens * d_in)"}},
        "sparse_probing": skipped,
        "unlearning": skipped,
    }


def tiny_png(width: int = 4, height: int = 3) -> bytes:
    """A valid RGB PNG of a red-green gradient."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    rows = b"".join(b"\x00" + bytes(c for x in range(width) for c in (255 * x // width, 255 * y // height, 128))
                    for y in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


def write_json(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2))


def build_results(root: Path) -> Path:
    """results/sae_variants with a finished idea, a failed one, and the idea stage's folder (not an idea)."""
    results = root / "results" / "sae_variants"
    done = results / DONE_IDEA
    for idea in (done, results / FAILED_IDEA):
        idea.mkdir(parents=True)
        (idea / MANIFEST_FILE).write_text((TEMPLATE_DIR / MANIFEST_FILE).read_text())
    write_json(done / "state.json", {"idea": DONE_IDEA_NAME, "status": "runs_done", "stage": "done", "run": 3,
                                     "runs": {"1": {"description": "k=32"}, "2": {"description": "k=64"}}})
    write_json(done / "run_0" / "final_info.json", final_info(BASELINE_CORE, 32))
    write_json(done / "run_1" / "final_info.json", final_info({**RUN_2_CORE, "mse": 1.0}, 32))
    write_json(done / "run_2" / "final_info.json", final_info(RUN_2_CORE, 64))
    (done / "run_3").mkdir()  # a run that failed: no final_info.json, not in state.json
    (done / "metrics_comparison.png").write_bytes(tiny_png())
    (done / "training_curves.png").write_bytes(tiny_png(6, 2))
    (done / "notes.txt").write_text("## Run 1: k=32\n")
    (done / "paper.pdf").write_bytes(b"%PDF-1.4 placeholder\n")
    for run in ("run_2", "run_0"):  # feature dashboards of the baseline and of run 2
        (done / run / "dashboard").mkdir()
        (done / run / "dashboard" / "index.html").write_text("<html></html>")
    # Two reviewers were shown the pages and judged the figures; one of them found a figure unreadable.
    reviews = [{"Figures_readable": True, "Figures_match_captions": True}, {"Figures_readable": False,
               "Figures_match_captions": True, "References_correct": True}, {"Overall": 5}]
    write_json(done / "review.json", {"reviews": reviews, "meta_review": {"Overall": 6, "Decision": "Accept"},
                                      "dropped": [], "model": "scripted/demo", "num_reviews": 3})
    ledger = Ledger(done / "cost_ledger.json")
    ledger.record("run_1", "scripted/demo", 1000, 200, 0.0123)
    ledger.record("review", "scripted/demo", 5000, 900, 0.1)

    failed = results / FAILED_IDEA
    write_json(failed / "state.json", {"idea": "broken", "status": "out_of_tries", "stage": "coding", "run": 1,
                                       "runs": {}})
    write_json(failed / "run_0" / "final_info.json", final_info(BASELINE_CORE, 32))

    Ledger(results / "20260101_110000_ideas" / "cost_ledger.json").record("ideas", "scripted/demo", 1, 1, 0.01)
    return results


# --- A small DOM: enough of the rendered page to query by tag and class ---------------------------------------

VOID_TAGS = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}


class Element:
    def __init__(self, tag: str, attrs: dict, parent=None):
        self.tag, self.attrs, self.parent, self.children = tag, attrs, parent, []

    @property
    def classes(self) -> list[str]:
        return (self.attrs.get("class") or "").split()

    @property
    def text(self) -> str:
        return "".join(c if isinstance(c, str) else c.text for c in self.children)

    def find_all(self, tag: str | None = None, cls: str | None = None) -> list["Element"]:
        found = []
        for child in self.children:
            if isinstance(child, Element):
                if (tag is None or child.tag == tag) and (cls is None or cls in child.classes):
                    found.append(child)
                found += child.find_all(tag, cls)
        return found

    def find(self, tag: str | None = None, cls: str | None = None) -> "Element":
        [element] = self.find_all(tag, cls)
        return element


class DomBuilder(HTMLParser):
    def __init__(self):
        super().__init__()
        self.root = self.current = Element("document", {})

    def handle_starttag(self, tag, attrs):
        element = Element(tag, dict(attrs), self.current)
        self.current.children.append(element)
        if tag not in VOID_TAGS:
            self.current = element

    def handle_endtag(self, tag):
        if tag not in VOID_TAGS:
            self.current = self.current.parent

    def handle_data(self, data):
        self.current.children.append(data)


def parse_dom(html: str) -> Element:
    builder = DomBuilder()
    builder.feed(html)
    return builder.root


def chromium(profile: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["chromium", "--headless", "--no-sandbox", "--disable-gpu", f"--user-data-dir={profile}",
                           *args], capture_output=True, text=True, timeout=CHROMIUM_TIMEOUT_S, check=True)


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    """(the index.html written, the DOM Chromium rendered from it)."""
    require_tools("chromium")
    root = tmp_path_factory.mktemp("report")
    index = write_report(build_results(root))
    dom = chromium(root / "profile", "--dump-dom", index.as_uri()).stdout
    return index, parse_dom(dom)


def idea_sections(dom: Element) -> dict[str, Element]:
    return {section.find("h2").text: section for section in dom.find_all("section", "idea")}


def test_every_idea_is_listed_with_its_status_and_stage(page):
    index, dom = page
    assert index == index.parent / "index.html"
    sections = idea_sections(dom)
    assert list(sections) == [DONE_IDEA, FAILED_IDEA]  # the idea stage's folder has no state.json
    assert sections[DONE_IDEA].find(cls="status").text == "runs_done"
    assert sections[DONE_IDEA].find(cls="stage").text == "done"
    assert sections[FAILED_IDEA].find(cls="status").text == "out_of_tries"
    assert sections[FAILED_IDEA].find(cls="stage").text == "coding"


def test_text_from_the_folders_is_escaped(page):
    _, dom = page
    assert dom.find_all("script") == []
    assert DONE_IDEA_NAME in idea_sections(dom)[DONE_IDEA].find(cls="state").text


def test_metrics_of_the_last_successful_run_against_the_baseline(page):
    _, dom = page
    table = idea_sections(dom)[DONE_IDEA].find("table", "metrics")
    assert "run_2" in table.find_all("tr")[0].text
    rows = {row.attrs["data-metric"]: row for row in table.find_all("tr", "metric")}
    assert list(rows) == list(KEY_METRICS)
    for name, row in rows.items():
        assert row.find("td", "baseline").text == format_number(BASELINE_CORE[name])
        assert row.find("td", "value").text == format_number(RUN_2_CORE[name])
        verdict = row.find("td", "verdict")
        assert verdict.text == EXPECTED_VERDICTS[name]
        assert f"verdict-{EXPECTED_VERDICTS[name].replace('within ', '')}" in verdict.classes
    assert rows["explained_variance"].find("td", "baseline").text == "0.897405"


def test_links_and_images_point_at_files_on_disk(page):
    index, dom = page
    done = idea_sections(dom)[DONE_IDEA]
    links = {a.text: a.attrs["href"] for a in done.find_all("a") if a.text}
    assert set(links) == {"paper.pdf", "notes.txt", "review.json", "cost_ledger.json", "run_0", "run_2"}
    assert [a.text for a in done.find_all("a") if "dashboard" in a.attrs["href"]] == ["run_0", "run_2"]
    images = [img.attrs["src"] for img in done.find_all("img")]
    assert sorted(Path(src).name for src in images) == ["metrics_comparison.png", "training_curves.png"]
    for target in [*links.values(), *images, *(a.attrs["href"] for a in dom.find_all("a"))]:
        assert "://" not in target and not target.startswith("/"), target
        assert (index.parent / unquote(target)).is_file(), target


def test_review_and_cost_are_summarised(page):
    _, dom = page
    done = idea_sections(dom)[DONE_IDEA]
    assert done.find(cls="overall").text == "6"
    assert done.find(cls="decision").text == "Accept"
    assert ("figures readable: 1 of 2 reviewer(s), figures match captions: 2 of 2 reviewer(s), references correct: "
            "1 of 1 reviewer(s)") in done.text
    assert done.find(cls="cost").text == "$0.1123"


def test_what_a_failed_idea_lacks_shows_as_not_yet(page):
    _, dom = page
    failed = idea_sections(dom)[FAILED_IDEA]
    assert failed.find_all("img") == [] and failed.find_all("a") == [] and failed.find_all("table") == []
    # Metrics, plots, paper, notes, review, feature dashboards and cost.
    assert len(failed.find_all(cls="not-yet")) == 7


def test_the_page_renders_to_a_real_screenshot(page, tmp_path):
    index, _ = page
    shot = tmp_path / "report.png"
    chromium(tmp_path / "profile", "--window-size=1280,1000", f"--screenshot={shot}", index.as_uri())
    assert shot.read_bytes().startswith(b"\x89PNG")
    assert shot.stat().st_size > 20_000  # a blank page of this size is about 6 KB


def test_the_command_line_writes_the_page_and_prints_its_path(tmp_path):
    results = build_results(tmp_path)
    done = subprocess.run([sys.executable, "-m", "scientist.paper.report", str(results)], cwd=REPO, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(results / "index.html")
    assert (results / "index.html").is_file()


def test_the_command_line_rejects_a_folder_without_ideas(tmp_path, capsys):
    assert main([str(tmp_path / "missing")]) == 2
    assert "no such folder" in capsys.readouterr().err
    assert main([str(tmp_path)]) == 2
    assert "holds no idea folders (subfolders with a state.json)" in capsys.readouterr().err
    assert not (tmp_path / "index.html").exists()


def test_an_experiment_without_ideas_yet_gets_a_page(tmp_path):
    """The launcher rewrites the page after an idea that may have failed before writing its state.json."""
    index = write_report(tmp_path)
    assert "<p>0 idea(s);" in index.read_text()
    with pytest.raises(ReportError, match="no such folder"):
        write_report(tmp_path / "missing")


def test_a_paper_that_contradicts_its_data_is_flagged(tmp_path):
    folder = tmp_path / "sae_variants" / "20261121_120000_flagged"
    folder.mkdir(parents=True)
    (folder / "state.json").write_text(json.dumps({
        "idea": "flagged", "status": "runs_done", "stage": "done", "runs": {},
        "paper": {"contradictions": ['results.tex:4: "MSE improved" but core.mse rose'],
                  "reverted_sections": ["method"]}}))
    html = write_report(tmp_path / "sae_variants").read_text()
    assert 'class="contradiction">the paper contradicts its data: results.tex:4: &quot;MSE improved&quot;' in html
    assert "section method was reverted" in html
    state = json.loads((folder / "state.json").read_text())
    (folder / "state.json").write_text(json.dumps({**state, "paper": {"error": "bibtex failed"}}))
    assert 'class="paper-error">no paper: bibtex failed' in write_report(tmp_path / "sae_variants").read_text()
