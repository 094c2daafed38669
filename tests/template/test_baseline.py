"""baseline.py: the baseline on several seeds and along its sparsity-fidelity frontier, resumable unit by unit."""

import dataclasses
import json
import subprocess
import sys

import pytest

from sae_harness.baseline_sweep import frontier_units, seed_units
from sae_harness.config import ConfigError
from sae_harness.results import validate_final_info
from sae_harness.workspace import Workspace
from tests.conftest import TEMPLATE_DIR
from tests.template.conftest import tiny_environment


def with_scales(config, scales: str, seeds: int = 3):
    return dataclasses.replace(config, frontier_scales=scales, baseline_seeds=seeds,
                               sources={**config.sources, "frontier_scales": "config.toml"})


@pytest.mark.parametrize("variant, scales, expected", [
    ("relu", "0.4,2.5", [("sparsity_penalty", 0.24), ("sparsity_penalty", 1.5)]),
    ("jumprelu", "0.5,2", [("target_l0", 40.0), ("target_l0", 10.0)]),
    ("topk", "0.5,3", [("k", 64), ("k", 11)]),
    ("batchtopk", "0.5", [("k", 64)]),
])
def test_each_variant_moves_its_own_sparsity_knob_sparser_above_one(tiny_config, tiny_settings, tmp_path, variant,
                                                                     scales, expected):
    settings = dataclasses.replace(tiny_settings, variant=variant)
    units, notes = frontier_units(with_scales(tiny_config, scales), settings, tmp_path / "run_0")
    assert [(unit.frontier["knob"], unit.frontier["value"]) for unit in units] == expected and notes == []
    for unit, (knob, value) in zip(units, expected):
        assert getattr(unit.settings, knob) == value and unit.seed == tiny_config.seed
        assert unit.out_dir == tmp_path / "run_0" / "frontier" / f"{knob}_{value:g}"
        assert unit.frontier["baseline_value"] == getattr(settings, knob)


def test_a_factor_that_repeats_a_point_gets_no_run_and_an_empty_list_turns_the_frontier_off(tiny_config,
                                                                                           tiny_settings, tmp_path):
    topk = dataclasses.replace(tiny_settings, variant="topk")
    units, notes = frontier_units(with_scales(tiny_config, "1.01,0.5,0.502"), topk, tmp_path)
    assert [unit.frontier["value"] for unit in units] == [64]
    assert notes == ["frontier x1.01: k = 32 is already a point; no run of its own",
                     "frontier x0.502: k = 64 is already a point; no run of its own"]
    assert frontier_units(with_scales(tiny_config, ""), tiny_settings, tmp_path) == ([], [])


def test_a_factor_experiment_py_refuses_is_named_with_its_fix(tiny_config, tiny_settings, tmp_path):
    topk = dataclasses.replace(tiny_settings, variant="topk")
    with pytest.raises(ConfigError, match=r"config.toml: frontier_scales = '0.1': the factor 0.1 sets k = 320, which "
                                          r"experiment.py refuses \(.*k = 320 is invalid.*\); drop that factor"):
        frontier_units(with_scales(tiny_config, "0.1"), topk, tmp_path)


def test_seed_units_write_the_first_seed_into_out_dir_and_count_its_copy_as_done(tiny_config, tiny_settings,
                                                                                tmp_path):
    out_dir = tmp_path / "run_0"
    units = seed_units(with_scales(tiny_config, "", seeds=3), tiny_settings, out_dir)
    assert [(unit.seed, unit.settings.seed, unit.out_dir) for unit in units] == [
        (0, 0, out_dir), (1, 1, out_dir / "seeds" / "seed_1"), (2, 2, out_dir / "seeds" / "seed_2")]
    # After the research loop aggregates the seeds, out_dir/final_info.json is theirs; seed 0's own file is copied.
    (out_dir / "seeds" / "seed_0").mkdir(parents=True)
    (out_dir / "seeds" / "seed_0" / "final_info.json").write_text("{}")
    assert units[0].finished() == out_dir / "seeds" / "seed_0" / "final_info.json"
    assert units[1].finished() is None


def test_a_seeds_workspace_is_the_one_a_run_with_that_seed_prepares(tiny_config, tiny_workspace):
    prepared = Workspace.prepare(dataclasses.replace(tiny_config, seed=1))
    seeded = tiny_workspace.for_seed(1)
    assert seeded.scale == prepared.scale and seeded.config == prepared.config
    assert seeded.train is tiny_workspace.train and tiny_workspace.config.seed == 0


def run_baseline(cwd, env) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(TEMPLATE_DIR / "baseline.py"), "--out_dir=run_0"], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=1500)


def test_baseline_trains_seeds_and_frontier_points_once(tmp_path, cache_dir):
    """Two seeds and two frontier factors at tiny sizes: each unit writes a valid run folder, a larger L1 penalty
    gives a lower L0, frontier points record their factor, and a second invocation trains nothing. SAEBench's evals
    are off: they are most of a tiny unit's minute and are a run's own (tests/template/test_run_outputs.py)."""
    env = tiny_environment(cache_dir, SAE_BASELINE_SEEDS="2", SAE_FRONTIER_SCALES="0.5,2",
                           SAE_RUN_INTERP_EVALS="false", SAE_RUN_SAEBENCH="false")
    result = run_baseline(tmp_path, env)
    assert result.returncode == 0, result.stderr[-3000:]
    out = tmp_path / "run_0"
    folders = {"seed 0": out, "seed 1": out / "seeds" / "seed_1",
               "low": out / "frontier" / "sparsity_penalty_0.3", "high": out / "frontier" / "sparsity_penalty_1.2"}
    infos = {name: json.loads((folder / "final_info.json").read_text()) for name, folder in folders.items()}
    for info in infos.values():
        validate_final_info(info)
    assert sorted(path.name for path in (out / "frontier").iterdir()) == ["sparsity_penalty_0.3",
                                                                            "sparsity_penalty_1.2"]
    assert [info["settings"]["means"]["seed"] for info in infos.values()] == [0, 1, 0, 0]
    assert infos["seed 1"]["core"]["means"]["mse"] != infos["seed 0"]["core"]["means"]["mse"]
    l0 = {name: info["core"]["means"]["l0"] for name, info in infos.items()}
    assert l0["high"] < l0["seed 0"] < l0["low"]
    assert infos["high"]["training"]["frontier"] == {"knob": "sparsity_penalty", "scale": 2.0,
                                                     "baseline_value": 0.6, "value": 1.2}
    assert infos["high"]["settings"]["means"]["sparsity_penalty"] == 1.2
    assert infos["high"]["training"]["config"]["run_interp_evals"] is False
    assert infos["seed 0"]["training"]["config"]["run_interp_evals"] is False  # as the environment says
    assert "frontier_scales" not in infos["seed 0"]["training"]["config"]  # baseline.py's field, not a run's
    assert "frontier" not in infos["seed 1"]["training"]
    assert [line.split(" -> ")[0] for line in result.stdout.splitlines() if "trained in" in line] == [
        "seed 0", "seed 1", "frontier sparsity_penalty = 0.3 (x0.5)", "frontier sparsity_penalty = 1.2 (x2)"]

    written = {path: path.stat().st_mtime_ns for path in out.rglob("*") if path.is_file()}
    again = run_baseline(tmp_path, env)
    assert again.returncode == 0, again.stderr[-3000:]
    assert again.stdout.count("skipped") == 4 and "trained in" not in again.stdout
    assert {path: path.stat().st_mtime_ns for path in out.rglob("*") if path.is_file()} == written


def test_a_bad_frontier_factor_exits_2_before_any_work(tmp_path, cache_dir):
    env = tiny_environment(cache_dir, SAE_FRONTIER_SCALES="0.5,nope")
    result = run_baseline(tmp_path, env)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "environment variable SAE_FRONTIER_SCALES: frontier_scales = '0.5,nope' is invalid" in result.stderr
    assert not (tmp_path / "run_0").exists()
