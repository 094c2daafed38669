"""plot.py's comparison figure places each run against the baseline's sparsity-fidelity frontier (planted
final_info.json files, no training)."""

import json
import math

import plot
import pytest


def plant(folder, l0, ev, ce, stds=None):
    core = {"status": "ok", "means": {"l0": l0, "explained_variance": ev, "ce_loss_score": ce}}
    if stds:
        core["stds"] = stds
    folder.mkdir(parents=True)
    (folder / "final_info.json").write_text(json.dumps({"core": core}))


def test_the_frontier_joins_run_0_and_its_points_by_l0_and_shows_a_sparser_run_above_it(tmp_path):
    plant(tmp_path / "run_0", 70.0, 0.85, 0.80, stds={"l0": 3.0, "explained_variance": 0.01})  # seeds aggregated
    plant(tmp_path / "run_0" / "frontier" / "sparsity_penalty_0.24", 200.0, 0.93, 0.90)
    plant(tmp_path / "run_0" / "frontier" / "sparsity_penalty_1.5", 20.0, 0.60, 0.55)
    plant(tmp_path / "run_1", 30.0, 0.75, 0.70)  # below run_0's EV, but far sparser

    frontier = plot.read_frontier(tmp_path, "explained_variance")
    assert frontier == [(20.0, 0.60), (70.0, 0.85), (200.0, 0.93)]
    # Interpolated in log L0: at L0 30 the baseline reaches 0.681, so run_1 lies above the frontier at its sparsity.
    on_line = plot.frontier_value_at(frontier, 30.0)
    assert on_line == pytest.approx(0.60 + 0.25 * math.log(30 / 20) / math.log(70 / 20))
    assert on_line < 0.75 < 0.85
    assert plot.frontier_value_at(frontier, 10.0) is None  # no extrapolation beyond the sparsest point

    runs = plot.load_runs(tmp_path)
    assert [run.path.name for run in runs] == ["run_0", "run_1"]  # frontier folders are not runs
    assert runs[0].std("l0") == 3.0 and runs[1].std("l0") is None
    frontiers = {metric: plot.read_frontier(tmp_path, metric) for metric, _, _ in plot.FRONTIER_PANELS}
    drawn = plot.plot_metrics_comparison(runs, tmp_path / "comparison.png", frontiers)
    assert drawn == {"explained_variance": ([20.0, 70.0, 200.0], [0.60, 0.85, 0.93]),
                     "ce_loss_score": ([20.0, 70.0, 200.0], [0.55, 0.80, 0.90])}
    assert (tmp_path / "comparison.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    assert plot.main(["--root", str(tmp_path)]) == 0
    assert (tmp_path / "metrics_comparison.png").stat().st_size > 10_000


def test_without_frontier_points_no_line_is_drawn(tmp_path):
    plant(tmp_path / "run_0", 70.0, 0.85, 0.80)
    frontiers = {metric: plot.read_frontier(tmp_path, metric) for metric, _, _ in plot.FRONTIER_PANELS}
    assert frontiers["explained_variance"] == [(70.0, 0.85)]
    assert plot.plot_metrics_comparison(plot.load_runs(tmp_path), tmp_path / "comparison.png", frontiers) == {}
