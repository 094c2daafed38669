"""Feature dashboards on the synth-cpu preset, made with the real command for an SAE whose decoder is the true
dictionary (sae_harness/synthetic.py true_dictionary_sae): every feature must be matched to its own true feature
with |cos| 1, and the counts must agree with a recomputation from the held-out samples and with SAELens's
ground-truth eval."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from sae_harness.dashboard_latex import ROWS_PER_GROUP
from sae_harness.dashboard_synthetic import decoder_matches, detection_scores
from sae_harness.presets import PRESETS
from sae_harness.synthetic import HELDOUT_SEED, ground_truth_scores, load_synthetic_model, sample_batches
from sae_harness.synthetic import true_dictionary_sae as make_true_dictionary_sae
from tests.conftest import TEMPLATE_DIR
from tests.template.conftest import TINY_SYNTH, tiny_environment
from tests.template.test_dashboard import compiled_text, parse

N_FEATURES = 6
N_SAMPLES = int(TINY_SYNTH["SAE_HELDOUT_TOKENS"])  # the dashboard reads the configured held-out samples


@pytest.fixture(scope="module")
def model(cache_dir):
    return load_synthetic_model(PRESETS["synth-cpu"], cache_dir, "cpu")


@pytest.fixture(scope="module")
def true_dictionary_sae(model):
    """The true dictionary as a TopK SAE, named as a synth-cpu run's SAE is, so that the dashboard accepts it."""
    sae = make_true_dictionary_sae(model)
    sae.cfg.metadata.model_name, sae.cfg.metadata.hook_name = "synth-cpu", PRESETS["synth-cpu"].hook_name
    for parameter in sae.parameters():  # W_dec is set as a transposed view, which safetensors refuses to save
        parameter.data = parameter.data.contiguous()
    return sae.eval()


@pytest.fixture(scope="module")
def dashboard(true_dictionary_sae, cache_dir, tmp_path_factory):
    """The dashboard of a run folder holding the true-dictionary SAE, written by `python -m sae_harness.dashboard`'s
    main() under synth-cpu settings."""
    from sae_harness.dashboard import main

    run = tmp_path_factory.mktemp("synthetic_dashboard") / "run_0"
    true_dictionary_sae.save_model(run / "sae")
    with pytest.MonkeyPatch.context() as patch:
        for name in [name for name in os.environ if name.startswith("SAE_")]:
            patch.delenv(name)
        for name, value in {**tiny_environment(cache_dir), **TINY_SYNTH}.items():
            if name.startswith("SAE_"):
                patch.setenv(name, value)
        assert main(["--run", str(run), "--features", str(N_FEATURES)]) == 0
    assert torch.is_grad_enabled(), "main() must not switch off autograd for the rest of the process"
    return run / "dashboard"


@pytest.fixture(scope="module")
def features(dashboard) -> dict:
    return json.loads((dashboard / "features.json").read_text())


def test_every_feature_of_the_true_dictionary_is_matched_to_its_own_true_feature(features):
    assert features["heldout_samples"] == N_SAMPLES and features["true_features"] == features["d_sae"] == 1024
    assert len(features["features"]) == N_FEATURES
    for f in features["features"]:
        best, second = f["matches"]
        assert best["feature"] == f["id"] and best["cos"] == pytest.approx(1.0, abs=1e-5), f
        assert second["feature"] != f["id"] and second["cos"] < 0.9, f  # near-orthogonal, not a second copy


def test_rates_and_detection_scores_match_a_recomputation_from_the_heldout_samples(features, true_dictionary_sae,
                                                                                   model):
    ids = [f["id"] for f in features["features"]]
    fires = active = both = co_active = 0
    with torch.no_grad():
        for hidden, truth in sample_batches(model, HELDOUT_SEED, N_SAMPLES):
            fired, on = true_dictionary_sae.encode(hidden)[:, ids] != 0, truth[:, ids] > 0
            fires, active, both = fires + fired.sum(0), active + on.sum(0), both + (fired & on).sum(0)
            co_active = co_active + fired.float().T @ (truth > 0).float()
    probability = model.activation_generator.firing_probabilities
    for i, f in enumerate(features["features"]):
        best = f["matches"][0]
        assert f["fires"] == fires[i] and f["density"] == pytest.approx(fires[i].item() / N_SAMPLES)
        assert best["true_rate"] == pytest.approx(active[i].item() / N_SAMPLES)
        assert best["probability"] == pytest.approx(probability[f["id"]].item())
        assert best["both"] == both[i]
        assert best["precision"] == pytest.approx(both[i].item() / fires[i].item())
        assert best["recall"] == pytest.approx(both[i].item() / active[i].item())
        # The true features most often active when it fires: under superposition a frequent true feature may
        # come before its own.
        given = co_active[i] / fires[i]
        shown = [c["p_active_given_fires"] for c in f["co_active"]]
        assert shown == pytest.approx(given.topk(len(shown)).values.tolist())
        assert given[[c["feature"] for c in f["co_active"]]].tolist() == pytest.approx(shown)
        assert given[f["id"]].item() == pytest.approx(best["precision"])


def test_the_run_wide_means_agree_with_saelens_ground_truth_eval(features, true_dictionary_sae, model):
    scores = ground_truth_scores(true_dictionary_sae, model, N_SAMPLES, "cpu")
    for name in ("precision", "recall", "f1"):
        assert features[f"mean_best_{name}"] == pytest.approx(scores[name], rel=1e-5), name
    assert features["mean_best_cos"] == pytest.approx(1.0, abs=1e-5)


def test_pages_show_the_matches_of_features_json_with_only_relative_links(dashboard, features):
    ids = [f["id"] for f in features["features"]]
    assert {path.name for path in dashboard.iterdir()} == (
        {"index.html", "features.json", "appendix.tex"} | {f"feature_{i}.html" for i in ids})
    pages = {path.name: parse(path.read_text()) for path in dashboard.glob("*.html")}
    for name, dom in pages.items():
        assert not dom.find_all("script") and not dom.find_all("link") and not dom.find_all("img"), name
        for anchor in dom.find_all("a"):
            href = anchor.attrs["href"]
            assert "://" not in href and not href.startswith("/") and (dashboard / href).is_file(), (name, href)
    assert {a.attrs["href"] for a in pages["index.html"].find_all("a")} == {f"feature_{i}.html" for i in ids}
    for f in features["features"]:
        page = pages[f"feature_{f['id']}.html"]
        assert f["group"] in page.find("h1").text
        assert float(page.find("span", "density-value").attrs["data-value"]) == f["density"]
        rows = page.find("table", "matches").find_all("tr", "match")
        assert [(int(r.attrs["data-feature"]), float(r.attrs["data-cos"]), float(r.attrs["data-f1"])) for r in rows] \
            == [(m["feature"], m["cos"], m["f1"]) for m in f["matches"]]
        assert [int(r.attrs["data-feature"]) for r in page.find("table", "co-active").find_all("tr", "co-active")] \
            == [c["feature"] for c in f["co_active"]]
        assert page.find("svg", "histogram").find_all("rect") and page.find("svg", "density").find_all("line")


def test_the_appendix_figure_compiles_and_names_each_features_true_feature(dashboard, features, tmp_path):
    appendix = (dashboard / "appendix.tex").read_text(encoding="utf-8")
    text = " ".join(compiled_text(appendix, "run_0", tmp_path / "latex").split())
    assert "Features of run_0, chosen by code" in text
    by_group = {}
    for f in features["features"]:
        by_group.setdefault(f["group"], []).append(f)
    chosen = [f for group in by_group.values() for f in group[:ROWS_PER_GROUP]]
    for f in chosen:
        assert f"{f['id']} {f['group']}" in text and f" {f['matches'][0]['feature']} 1" in text
    assert len([line for line in appendix.splitlines() if line.rstrip().endswith("\\\\") and " & " in line]) \
        == len(chosen)  # one row per chosen feature; the heading row ends in \\hline


def test_matching_finds_a_permuted_and_negated_dictionary():
    true_vectors = torch.nn.functional.normalize(torch.randn(40, 16), dim=1)
    permutation = torch.randperm(40)[:10]
    signs = torch.tensor([1.0, -1.0] * 5)[:, None]
    cos, match = decoder_matches(3.0 * signs * true_vectors[permutation], true_vectors)
    assert match[:, 0].tolist() == permutation.tolist()
    assert cos[:, 0] == pytest.approx(torch.ones(10), abs=1e-5) and (cos[:, 1] < 1 - 1e-3).all()


def test_detection_scores_are_zero_where_nothing_fires():
    precision, recall, f1 = detection_scores(np.array([3, 0, 0]), np.array([4, 0, 5]), np.array([6, 2, 0]))
    assert precision.tolist() == [0.75, 0.0, 0.0] and recall.tolist() == [0.5, 0.0, 0.0]
    assert f1 == pytest.approx([0.6, 0.0, 0.0])


def test_a_synthetic_run_without_a_saved_sae_fails_with_a_clear_message(tmp_path, cache_dir):
    (tmp_path / "run_9").mkdir()
    result = subprocess.run([sys.executable, "-m", "sae_harness.dashboard", "--run", str(tmp_path / "run_9")],
                            cwd=TEMPLATE_DIR, env={**tiny_environment(cache_dir), **TINY_SYNTH},
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 2, result.stderr[-2000:]
    assert "Dashboard error" in result.stderr and "saelens_export" in result.stderr
    assert "Traceback" not in result.stderr
