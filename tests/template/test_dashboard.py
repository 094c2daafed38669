"""Feature dashboards for a tiny trained run, made with the real command and read back the way a person sees them:
rendered by headless Chromium from file://, the DOM parsed, the contexts found in the held-out corpus text, and the
numbers in features.json checked against the pages and against a recomputation from the SAE."""

import json
import os
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
import torch

from sae_harness.corpus import heldout_texts
from sae_harness.dashboard import GROUPS, MARK_CLOSE, MARK_OPEN, sample_features, split_pieces
from sae_harness.dashboard_latex import ROWS_PER_GROUP, appendix_tex, escape_latex
from tests.conftest import TEMPLATE_DIR
from tests.template.conftest import tiny_environment

N_FEATURES = 6
CHROMIUM_TIMEOUT_S = 60
VOID_TAGS = {"meta", "br", "img", "link", "input", "hr"}


class Element:
    def __init__(self, tag: str, attrs: dict):
        self.tag, self.attrs, self.children = tag, attrs, []

    @property
    def text(self) -> str:
        return "".join(c if isinstance(c, str) else c.text for c in self.children)

    @property
    def classes(self) -> set[str]:
        return set((self.attrs.get("class") or "").split())

    def find_all(self, tag: str, cls: str | None = None) -> list["Element"]:
        found = []
        for child in self.children:
            if isinstance(child, Element):
                if child.tag == tag and (cls is None or cls in child.classes):
                    found.append(child)
                found.extend(child.find_all(tag, cls))
        return found

    def find(self, tag: str, cls: str | None = None) -> "Element":
        found = self.find_all(tag, cls)
        assert found, f"no <{tag} class={cls}>"
        return found[0]


class DomBuilder(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.root = Element("#root", {})
        self.stack = [self.root]

    def handle_starttag(self, tag, attrs):
        element = Element(tag, dict(attrs))
        self.stack[-1].children.append(element)
        if tag not in VOID_TAGS:
            self.stack.append(element)

    def handle_startendtag(self, tag, attrs):
        self.stack[-1].children.append(Element(tag, dict(attrs)))

    def handle_endtag(self, tag):
        if tag in VOID_TAGS:
            return
        while self.stack[-1].tag != tag:
            self.stack.pop()
        self.stack.pop()

    def handle_data(self, data):
        self.stack[-1].children.append(data)


def parse(html: str) -> Element:
    builder = DomBuilder()
    builder.feed(html)
    builder.close()
    return builder.root


def rendered_dom(path: Path, profile: Path) -> Element:
    """The DOM headless Chromium builds from the file. Missing Chromium fails: a skip would hide a broken setup."""
    if shutil.which("chromium") is None:
        pytest.fail("chromium not installed; `make setup` installs the Debian packages")
    result = subprocess.run(["chromium", "--headless", "--no-sandbox", "--disable-gpu", f"--user-data-dir={profile}",
                             "--dump-dom", path.as_uri()], capture_output=True, text=True, timeout=CHROMIUM_TIMEOUT_S)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "<body" in result.stdout, result.stderr[-2000:]
    return parse(result.stdout)


@pytest.fixture(scope="module")
def dashboard(tiny_trained_sae_run, tiny_workspace, cache_dir, tmp_path_factory) -> Path:
    """The dashboard of a tiny trained run, written by the command's main() with the tiny SAE_* settings. The model
    comes from the shared tiny workspace instead of a second load; the test checks main() asks for the right one."""
    from sae_harness import lm
    from sae_harness.dashboard import main

    run = tmp_path_factory.mktemp("dashboard") / "run_0"
    shutil.copytree(tiny_trained_sae_run, run)
    requests = []

    def load_model(preset, device, cache):
        requests.append((preset.name, preset.hook_name, device, cache))
        return tiny_workspace.model

    with pytest.MonkeyPatch.context() as patch:
        for name in [name for name in os.environ if name.startswith("SAE_")]:
            patch.delenv(name)
        for name, value in tiny_environment(cache_dir).items():
            if name.startswith("SAE_"):
                patch.setenv(name, value)
        patch.setattr(lm, "load_model", load_model)
        assert main(["--run", str(run), "--features", str(N_FEATURES)]) == 0
    assert torch.is_grad_enabled(), "main() must not switch off autograd for the rest of the process"
    assert requests == [("gemma-3-270m", "blocks.6.hook_resid_post", "cpu", cache_dir)]
    return run / "dashboard"


@pytest.fixture(scope="module")
def features(dashboard) -> dict:
    return json.loads((dashboard / "features.json").read_text())


@pytest.fixture(scope="module")
def rendered(dashboard, tmp_path_factory) -> dict[str, Element]:
    """File name -> the DOM Chromium rendered, for index.html and every feature page."""
    pages = sorted(dashboard.glob("*.html"))
    profiles = [tmp_path_factory.mktemp("chromium-profile") for _ in pages]
    with ThreadPoolExecutor(max_workers=2) as pool:
        return {path.name: dom for path, dom in zip(pages, pool.map(rendered_dom, pages, profiles))}


@pytest.fixture(scope="module")
def corpus_documents(tiny_config) -> list[str]:
    """The first held-out documents, from which the tiny held-out tokens are drawn."""
    return heldout_texts(tiny_config.preset_spec.corpus, n_docs=40)


def contexts_of(page: Element) -> list[Element]:
    return page.find("ol", "contexts").find_all("span", "context")


def test_a_dashboard_is_written_for_a_trained_run(dashboard, features):
    ids = [f["id"] for f in features["features"]]
    assert len(ids) == N_FEATURES == len(set(ids))
    assert {path.name for path in dashboard.iterdir()} == (
        {"index.html", "features.json", "appendix.tex"} | {f"feature_{i}.html" for i in ids})
    assert features["hook_name"] == "blocks.6.hook_resid_post" and features["heldout_tokens"] == 2048
    groups = [f["group"] for f in features["features"]]
    assert [groups.count(g) for g in GROUPS] == [N_FEATURES // 3] * 3
    densities = {g: [f["density"] for f in features["features"] if f["group"] == g] for g in GROUPS}
    assert min(densities["frequent"]) >= max(densities["random"]) >= min(densities["random"]) >= max(densities["rare"])
    assert all(0 < d <= 1 for d in sum(densities.values(), []))


def test_densities_and_max_activations_match_the_saved_sae_on_heldout_activations(dashboard, features, tiny_workspace):
    from sae_lens import SAE

    sae = SAE.load_from_disk(dashboard.parent / "sae", device="cpu")
    with torch.no_grad():
        acts = sae.encode(tiny_workspace.heldout)
    for f in features["features"]:
        column = acts[:, f["id"]]
        assert f["density"] == pytest.approx((column > 0).float().mean().item(), abs=1e-9)
        assert f["max_activation"] == pytest.approx(column.max().item(), rel=1e-4)
    alive = (acts > 0).any(dim=0)
    assert features["alive_features"] == int(alive.sum())
    rarest_alive = (acts > 0).sum(dim=0)[alive].min().item()
    assert any(f["fires"] == rarest_alive for f in features["features"] if f["group"] == "rare")


def test_every_highlighted_context_is_real_heldout_text(rendered, corpus_documents):
    pages = {name: dom for name, dom in rendered.items() if name.startswith("feature_")}
    assert len(pages) == N_FEATURES
    for name, page in pages.items():
        contexts = contexts_of(page)
        assert contexts, name
        for context in contexts:
            text = context.text
            assert len(text.strip()) >= 3, (name, text)
            assert any(text in doc for doc in corpus_documents), (name, text)
            assert len(context.find_all("span", "max")) == 1, (name, text)
            tokens = context.find_all("span", "tok")
            assert all(tok.attrs["style"].startswith("background-color:rgba(") for tok in tokens), (name, text)


def test_pages_render_with_svg_histograms_and_only_relative_links(rendered, dashboard):
    assert set(rendered) == {path.name for path in dashboard.glob("*.html")}
    for name, dom in rendered.items():
        assert not dom.find_all("script") and not dom.find_all("link") and not dom.find_all("img"), name
        for anchor in dom.find_all("a"):
            href = anchor.attrs["href"]
            assert "://" not in href and not href.startswith("/"), (name, href)
            assert (dashboard / href).is_file(), (name, href)
        if name.startswith("feature_"):
            histogram = dom.find("svg", "histogram")
            assert len(histogram.find_all("rect")) >= 1, name
            assert dom.find("svg", "density").find_all("line"), name
    linked = {a.attrs["href"] for a in rendered["index.html"].find_all("a")}
    assert linked == {name for name in rendered if name.startswith("feature_")}


def test_features_json_agrees_with_the_pages(features, rendered):
    for f in features["features"]:
        page = rendered[f"feature_{f['id']}.html"]
        assert f["group"] in page.find("h1").text
        assert float(page.find("span", "density-value").attrs["data-value"]) == f["density"]
        assert float(page.find("span", "max-activation").attrs["data-value"]) == f["max_activation"]
        top = contexts_of(page)[0]
        assert top.text == f["top_context"]
        assert top.find("span", "max").text == f["max_token"]
        before, _, after = f["top_context_marked"].partition(f"{MARK_OPEN}{f['max_token']}{MARK_CLOSE}")
        assert before + f["max_token"] + after == f["top_context"]
        top_activation = float(page.find("ol", "contexts").find("span", "act").attrs["data-value"])
        assert top_activation == pytest.approx(f["max_activation"])
        for kind in ("promoted", "suppressed"):
            shown = [code.attrs["data-token"] for code in page.find("p", kind).find_all("code")]
            assert shown == [t["token"] for t in f[kind]], (f["id"], kind)
        logits = [t["logit"] for t in f["promoted"]] + [t["logit"] for t in f["suppressed"]][::-1]
        assert logits == sorted(logits, reverse=True) and logits[0] > 0 > logits[-1]


def test_promoted_and_suppressed_tokens_follow_the_models_own_final_norm_and_unembedding(
        dashboard, features, tiny_workspace):
    from safetensors.torch import load_file

    model = tiny_workspace.model
    W_dec = load_file(dashboard.parent / "sae" / "sae_weights.safetensors")["W_dec"]
    for f in features["features"]:
        with torch.no_grad():
            logits = model.unembed(model.ln_final(W_dec[f["id"]][None, None]))[0, 0]
        n = len(f["promoted"])
        # Sets, not lists: dividing by the residual norm may reorder logits that tie to rounding error.
        assert set(logits.topk(n).indices.tolist()) == {t["token_id"] for t in f["promoted"]}
        assert set(logits.topk(n, largest=False).indices.tolist()) == {t["token_id"] for t in f["suppressed"]}
        for t in f["promoted"] + f["suppressed"]:
            assert model.tokenizer.decode([t["token_id"]]) == t["token"]


def test_sampling_takes_the_most_frequent_random_alive_and_rarest_alive_features():
    density = np.array([0.0, 0.5, 0.4, 0.3, 0.2, 0.1, 0.05, 0.01, 0.001, 0.0, 0.02, 0.03])
    sampled = sample_features(density, 6, seed=3)
    by_group = {g: [i for i, group in sampled if group == g] for g in GROUPS}
    assert by_group["frequent"] == [1, 2] and by_group["rare"] == [8, 7]
    assert len(by_group["random"]) == 2 and not set(by_group["random"]) & {0, 9, 1, 2, 7, 8}
    assert sample_features(density, 6, seed=3) == sampled
    few = sample_features(np.array([0.0, 0.2, 0.1]), 12, seed=0)
    assert sorted(i for i, _ in few) == [1, 2]


def test_characters_split_over_byte_tokens_are_shown_whole(tiny_workspace):
    tokenizer = tiny_workspace.model.tokenizer
    text = "naïve \U00013000 glyph \ua66e."
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    assert any("\ufffd" in tokenizer.decode([i]) for i in ids), "the test text needs byte-fallback tokens"
    spans = split_pieces(tokenizer, ids)
    assert "".join(piece for _, _, piece in spans) == text
    assert not any("\ufffd" in piece for _, _, piece in spans)
    assert [s for s, _, _ in spans][1:] == [e for _, e, _ in spans][:-1]


# The run's figure for the paper's appendix.

LATEX_DOCUMENT = r"""\documentclass[11pt]{article}
\usepackage[T1]{fontenc}
\begin{document}
Figure~\ref{fig:dashboard_%s} shows the features.
\input{appendix.tex}
\end{document}
"""


def compiled_text(appendix: str, run: str, folder: Path) -> str:
    """appendix.tex compiled inside a minimal document (twice, so that the reference resolves); the PDF's text."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "appendix.tex").write_text(appendix, encoding="utf-8")
    (folder / "main.tex").write_text(LATEX_DOCUMENT % run)
    for _ in range(2):
        done = subprocess.run(["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "main.tex"], cwd=folder,
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stdout[-3000:]
    log = (folder / "main.log").read_text(errors="replace")
    assert "undefined" not in log and "Missing character" not in log, log[-3000:]
    return subprocess.run(["pdftotext", "-layout", "main.pdf", "-"], cwd=folder, capture_output=True, text=True,
                          check=True).stdout


def test_the_appendix_figure_compiles_and_shows_the_chosen_features(dashboard, features, tmp_path):
    appendix = (dashboard / "appendix.tex").read_text(encoding="utf-8")
    assert appendix.count("\\label{fig:dashboard_run_0}") == 1 and "\\section" not in appendix
    text = compiled_text(appendix, "run_0", tmp_path / "latex")
    assert "Figure 1 shows the features." in text and "Features of run_0, chosen by code" in text
    flat = " ".join(text.split())
    chosen = [f for group in GROUPS for f in [f for f in features["features"] if f["group"] == group][:ROWS_PER_GROUP]]
    assert len(chosen) == N_FEATURES
    for feature in chosen:
        assert f"{feature['id']} {feature['group']}" in flat
        token = " ".join(feature["top_context_parts"][1].split())
        assert f"\\textbf{{{escape_latex(token)}}}" in appendix
    rows = [line for line in appendix.splitlines() if line.rstrip().endswith("\\\\") and " & " in line]
    assert len(rows) == N_FEATURES  # one row per chosen feature; the heading row ends in \hline


def test_the_appendix_escapes_whatever_text_the_corpus_and_tokeniser_give(tmp_path):
    nasty = "50% of $x_1 & {y} # ~ ^ \\ na\u00efve \u03b1\u4e1c\x07"
    summary = {"run": "run_3", "features": [
        {"id": 7, "group": "frequent", "density": 0.000041, "top_context_parts": [f"before {nasty} ", "\n", " after"],
         "promoted": [{"token": " "}, {"token": "_x"}, {"token": "}"}]},
        {"id": 9, "group": "rare", "density": 1.0, "top_context_parts": ["", nasty, ""], "promoted": []},
    ]}
    appendix = appendix_tex(summary)
    text = " ".join(compiled_text(appendix, "run_3", tmp_path).split())
    assert "50% of $x_1 & {y} # ~ ^ \\ na\u00efve" in text
    assert "na\u00efve \u03b1" in text and "4.100" in text
    assert r"4.100\texttimes 10\textsuperscript{\textminus 5}" in appendix
    assert r"\texttt{?}, \texttt{\_x}, \texttt{\textbraceright{}}" in appendix
    assert "fig:dashboard_run_3" in appendix and "Features of run_3" in text


def test_a_run_without_a_saved_sae_fails_with_a_clear_message(tmp_path, cache_dir):
    (tmp_path / "run_9").mkdir()
    result = subprocess.run([sys.executable, "-m", "sae_harness.dashboard", "--run", str(tmp_path / "run_9")],
                            cwd=TEMPLATE_DIR, env=tiny_environment(cache_dir), capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 2
    assert "Dashboard error" in result.stderr and "saelens_export" in result.stderr
