"""plot.py's comparison figure: each run against the baseline's sparsity-fidelity frontier (planted final_info.json
files, no training), and on a synthetic preset the ground-truth panels, from a real tiny synth-cpu run, with no
panel left empty."""

import copy
import json
import math
import shutil

import plot
import pytest
from matplotlib.container import ErrorbarContainer

from sae_harness.plot_data import frontier_value_at, load_runs, read_frontier
from sae_harness.plot_panels import comparison_figure

GROUND_TRUTH_PANELS = ["Ground truth: feature recovery", "Ground truth: detection", "Sparsity vs ground-truth F1"]
LANGUAGE_MODEL_PANELS = ["Model behaviour preservation", "Sparse probing", "Sparsity vs fidelity", "Feature quality"]


def plant(folder, l0, ev, ce, stds=None):
    core = {"status": "ok", "means": {"l0": l0, "explained_variance": ev, "ce_loss_score": ce}}
    if stds:
        core["stds"] = stds
    folder.mkdir(parents=True)
    (folder / "final_info.json").write_text(json.dumps({"core": core}))


def panel_titles(fig):
    return [ax.get_title() for ax in fig.axes if ax.get_title()]  # a twin axis (dead fraction) has no title


def test_the_frontier_joins_run_0_and_its_points_by_l0_and_shows_a_sparser_run_above_it(tmp_path):
    plant(tmp_path / "run_0", 70.0, 0.85, 0.80, stds={"l0": 3.0, "explained_variance": 0.01})  # seeds aggregated
    plant(tmp_path / "run_0" / "frontier" / "sparsity_penalty_0.24", 200.0, 0.93, 0.90)
    plant(tmp_path / "run_0" / "frontier" / "sparsity_penalty_1.5", 20.0, 0.60, 0.55)
    plant(tmp_path / "run_1", 30.0, 0.75, 0.70)  # below run_0's EV, but far sparser

    frontier = read_frontier(tmp_path, "explained_variance")
    assert frontier == [(20.0, 0.60), (70.0, 0.85), (200.0, 0.93)]
    # Interpolated in log L0: at L0 30 the baseline reaches 0.681, so run_1 lies above the frontier at its sparsity.
    on_line = frontier_value_at(frontier, 30.0)
    assert on_line == pytest.approx(0.60 + 0.25 * math.log(30 / 20) / math.log(70 / 20))
    assert on_line < 0.75 < 0.85
    assert frontier_value_at(frontier, 10.0) is None  # no extrapolation beyond the sparsest point

    runs = load_runs(tmp_path, plot.labels)
    assert [run.path.name for run in runs] == ["run_0", "run_1"]  # frontier folders are not runs
    assert [run.label for run in runs] == ["Baseline", "run_1"]
    assert runs[0].std("l0") == 3.0 and runs[1].std("l0") is None
    drawn = plot.plot_metrics_comparison(runs, tmp_path / "comparison.png", plot.read_frontiers(tmp_path))
    assert drawn == {"core.explained_variance": ([20.0, 70.0, 200.0], [0.60, 0.85, 0.93]),
                     "core.ce_loss_score": ([20.0, 70.0, 200.0], [0.55, 0.80, 0.90])}
    assert (tmp_path / "comparison.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    assert plot.main(["--root", str(tmp_path)]) == 0
    assert (tmp_path / "metrics_comparison.png").stat().st_size > 10_000


def test_without_frontier_points_no_line_is_drawn(tmp_path):
    plant(tmp_path / "run_0", 70.0, 0.85, 0.80)
    frontiers = plot.read_frontiers(tmp_path)
    assert frontiers["core.explained_variance"] == [(70.0, 0.85)]
    assert plot.plot_metrics_comparison(load_runs(tmp_path, plot.labels), tmp_path / "comparison.png", frontiers) == {}


def test_a_language_model_run_gets_no_ground_truth_panels_and_no_panel_without_data(tmp_path):
    plant(tmp_path / "run_0", 70.0, 0.85, 0.80)  # core only: no probing, TPP, absorption or autointerp either
    fig, _, left_out = comparison_figure(plot.COMPARISON_PANELS, load_runs(tmp_path, plot.labels),
                                         plot.read_frontiers(tmp_path), "test")
    assert panel_titles(fig) == ["Model behaviour preservation", "Sparsity", "Reconstruction", "Sparsity vs fidelity",
                                 "Sparsity vs reconstruction"]
    assert left_out == ["Sparse probing", *GROUND_TRUTH_PANELS[:2], "Sparsity vs ground-truth F1", "Feature quality"]
    assert all(ax.has_data() for ax in fig.axes)


def test_runs_without_any_metric_get_a_figure_that_says_so(tmp_path):
    (tmp_path / "run_0").mkdir()
    (tmp_path / "run_0" / "final_info.json").write_text(json.dumps({"core": {"status": "failed", "means": {}}}))
    fig, drawn, left_out = comparison_figure(plot.COMPARISON_PANELS, load_runs(tmp_path, plot.labels),
                                             plot.read_frontiers(tmp_path), "test")
    assert drawn == {} and left_out == [panel.title for panel in plot.COMPARISON_PANELS]
    assert [text.get_text() for ax in fig.axes for text in ax.texts] == [
        "no run reports any of these metrics; see each run's final_info.json"]


@pytest.fixture(scope="module")
def synthetic_experiment(tmp_path_factory, tiny_synth_run):
    """An experiment folder on the synth-cpu preset: run_0 a copy of the session's real tiny run, given the seed
    spread a baseline's summary has; two frontier points and a sparser run_1 planted from its final_info.json."""
    root = tmp_path_factory.mktemp("synthetic_plot")
    shutil.copytree(tiny_synth_run, root / "run_0")
    info = json.loads((root / "run_0" / "final_info.json").read_text())
    assert info["ground_truth"]["status"] == "ok" and "ce_loss_score" not in info["core"]["means"]
    summary = copy.deepcopy(info)
    summary["core"]["stds"] = {"l0": 2.0}
    summary["ground_truth"]["stds"] = {"f1": 0.01}
    (root / "run_0" / "final_info.json").write_text(json.dumps(summary))
    for name, l0_scale, shift in (("sparsity_penalty_0.3", 2.0, 0.02), ("sparsity_penalty_1.2", 0.5, -0.03),
                                  ("run_1", 0.6, 0.01)):
        planted = copy.deepcopy(info)
        planted["core"]["means"]["l0"] *= l0_scale
        planted["core"]["means"]["explained_variance"] += shift
        planted["ground_truth"]["means"]["f1"] += shift
        folder = root / ("run_1" if name == "run_1" else f"run_0/frontier/{name}")
        folder.mkdir(parents=True)
        (folder / "final_info.json").write_text(json.dumps(planted))
    return root, info


def test_a_synthetic_run_gets_ground_truth_panels_with_the_true_dictionary_as_ceiling(synthetic_experiment):
    root, info = synthetic_experiment
    means = info["ground_truth"]["means"]
    runs = load_runs(root, plot.labels)
    fig, drawn, left_out = comparison_figure(plot.COMPARISON_PANELS, runs, plot.read_frontiers(root), "test")
    axes = {ax.get_title(): ax for ax in fig.axes if ax.get_title()}
    assert list(axes) == ["Sparsity", "Reconstruction", *GROUND_TRUTH_PANELS[:2], "Sparsity vs reconstruction",
                          "Sparsity vs ground-truth F1"]
    assert left_out == LANGUAGE_MODEL_PANELS  # no CE/KL, probing, TPP, absorption or autointerp on synthetic data
    for title, ax in axes.items():  # every panel drawn has every run's value: no empty panel, no "n/a" bar
        assert ax.has_data(), title
        assert "n/a" not in [text.get_text() for text in ax.texts], title

    recovery = axes["Ground truth: feature recovery"]
    heights = [bar.get_height() for bar in recovery.patches]
    assert heights == pytest.approx([means["mcc"], means["mcc"], means["f1"], means["f1"] + 0.01])
    ceilings = {line.get_label(): line.get_ydata()[0] for line in recovery.lines if line.get_linestyle() == "--"}
    assert ceilings == {f"MCC, true dictionary (ceiling) = {means['reference_mcc']:.3g}": means["reference_mcc"],
                        f"F1, true dictionary (ceiling) = {means['reference_f1']:.3g}": means["reference_f1"]}
    assert means["reference_mcc"] == pytest.approx(1.0)

    # F1 against L0: the frontier of the baseline's F1 by L0, the seed spread on run_0, the true dictionary's F1
    # across the panel at its own L0.
    l0 = info["core"]["means"]["l0"]
    assert drawn["ground_truth.f1"] == (pytest.approx([0.5 * l0, l0, 2.0 * l0]),
                                        pytest.approx([means["f1"] - 0.03, means["f1"], means["f1"] + 0.02]))
    f1 = axes["Sparsity vs ground-truth F1"]
    assert any(isinstance(container, ErrorbarContainer) for container in f1.containers)
    ceiling = [line for line in f1.lines if list(line.get_ydata()) == [means["reference_f1"]] * 2]
    assert len(ceiling) == 1 and ceiling[0].get_linestyle() == "--"
    legend = [text.get_text() for text in f1.get_legend().get_texts()]
    assert f"true dictionary (ceiling): {means['reference_f1']:.3g} at L0 {means['reference_sae_l0']:.3g}" in legend
    assert any(text.get_text().startswith("run_1 (") and "vs frontier" in text.get_text() for text in f1.texts)

    assert plot.main(["--root", str(root)]) == 0
    for name in ("metrics_comparison", "feature_density", "activation_frequency_rank", "training_curves"):
        assert (root / f"{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
