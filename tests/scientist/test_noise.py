"""Verdicts that respect the baseline's seed noise, and fidelity judged along the baseline frontier at the run's own
sparsity (scientist/experiment/noise.py), as compare and the results block report them. Planted results only."""

import json
import math
import re
from pathlib import Path

import pytest

from scientist.experiment import metrics
from scientist.experiment.metrics import MetricChange
from scientist.experiment.noise import (
    ABSOLUTE_FLOOR,
    NOISE_SIGMAS,
    RELATIVE_FLOOR,
    Frontier,
    noise_rule_text,
    noise_threshold,
    read_frontier,
)
from scientist.experiment.seeds import aggregate
from scientist.paper.claim_text import find_claims
from tests.scientist.conftest import SAE_METRICS

CORE = {"explained_variance": 0.90, "mse": 250.0, "cossim": 0.99, "l0": 60.0, "ce_loss_score": 0.82,
        "kl_div_score": 0.80, "l2_ratio": 0.99, "dead_fraction": 0.0}
# Seed-to-seed offsets: EV's sample std over the three seeds is 0.002, MSE's 3, L0's 1.5.
SEED_OFFSETS = ({"explained_variance": -0.002, "mse": -3.0, "l0": -1.5},
                {},
                {"explained_variance": 0.002, "mse": 3.0, "l0": 1.5})


def result(core: dict | None = None, training: dict | None = None, seed: int = 0) -> dict:
    """A single run's final_info.json."""
    return {"settings": {"status": "ok", "means": {"k": 32, "seed": seed}},
            "training": {"status": "ok", "means": {"training_tokens": 1198080, "training_seconds": 136.2,
                                                   **(training or {})}},
            "core": {"status": "ok", "means": {**CORE, **(core or {})}}}


def seeded_baseline(core: dict | None = None) -> dict:
    """The baseline as the lead's build writes it: the mean, spread and per-seed values over seeds 0, 1, 2."""
    centre = {**CORE, **(core or {})}
    runs = [result({**centre, **{name: centre[name] + offset for name, offset in offsets.items()}}, seed=seed)
            for seed, offsets in enumerate(SEED_OFFSETS)]
    return aggregate(runs, [0, 1, 2], "settings.seed")


def compare(baseline: dict, run: dict, frontier: Frontier | None = None) -> dict[str, MetricChange]:
    return {change.key: change for change in metrics.compare(baseline, run, SAE_METRICS, frontier)}


def verdict_cell(block: str, key: str) -> str:
    [line] = [line for line in block.splitlines() if line.startswith(key + " ")]
    return re.split(r"\s{2,}", line)[-1]


# ------------------------------------------------------------------------------------------------ the noise rule


def test_the_aggregate_baseline_carries_the_planted_spread():
    baseline = seeded_baseline()
    assert baseline["core"]["stds"]["explained_variance"] == pytest.approx(0.002)
    assert baseline["core"]["means"]["explained_variance"] == pytest.approx(0.90)


@pytest.mark.parametrize("baseline", [seeded_baseline(), result()], ids=["three seeds", "one seed"])
def test_a_run_that_is_the_baseline_up_to_float_rounding_is_within_noise_everywhere(baseline):
    """The issue's motivating example: changes of about 4e-7 in EV were once called better."""
    means = baseline["core"]["means"]
    # EV off by 4e-7, every other number off by 4e-7 of itself, and a zero off by 1e-12.
    run = result({name: value * (1 + 4e-7 * (1 if i % 2 else -1)) or 1e-12
                  for i, (name, value) in enumerate(means.items())})
    run["core"]["means"]["explained_variance"] = means["explained_variance"] - 4e-7
    changes = compare(baseline, run)
    scored = [c for c in changes.values() if c.direction in ("higher", "lower", "target")]
    assert len(scored) == 7
    assert {c.verdict for c in scored} == {"within noise"}
    block = metrics.results_block(1, "a rerun of the baseline", baseline, run, SAE_METRICS)
    assert "0 better, 0 worse, 7 within noise on scored metrics" in block
    assert " better (" not in block and " worse (" not in block


@pytest.mark.parametrize("sigmas, verdicts", [(10, ("better", "worse")), (-10, ("worse", "better")),
                                              (1.5, ("within noise", "within noise"))])
def test_a_change_is_an_effect_only_beyond_two_standard_deviations(sigmas, verdicts):
    baseline = seeded_baseline()
    run = result({"explained_variance": 0.90 + sigmas * 0.002, "mse": 250.0 + sigmas * 3.0})
    changes = compare(baseline, run)
    assert (changes["core.explained_variance"].verdict, changes["core.mse"].verdict) == verdicts
    ev = changes["core.explained_variance"]
    assert ev.baseline_std == pytest.approx(0.002)
    assert ev.noise == pytest.approx(NOISE_SIGMAS * 0.002)
    assert ev.baseline_seeds == 3
    assert ev.frontier_value is None and ev.frontier_x is None and ev.reference == ev.baseline


def test_one_and_a_half_standard_deviations_would_count_without_the_seeds():
    """The same change against the one-seed baseline exceeds the 0.1% floor: only the spread makes it noise."""
    run = result({"explained_variance": 0.90 + 1.5 * 0.002})
    single = compare(result(), run)["core.explained_variance"]
    assert single.verdict == "better"
    assert single.baseline_std is None and single.baseline_seeds == 1
    assert single.noise == pytest.approx(RELATIVE_FLOOR * 0.90)
    assert compare(seeded_baseline(), run)["core.explained_variance"].verdict == "within noise"


@pytest.mark.parametrize("mean, std, expected", [
    (0.9, 0.002, NOISE_SIGMAS * 0.002),  # the spread dominates
    (250.0, 0.01, RELATIVE_FLOOR * 250.0),  # a spread below the floor: the floor
    (-250.0, None, RELATIVE_FLOOR * 250.0),  # unknown spread: the floor of |mean|
    (0.0, None, ABSOLUTE_FLOOR),
    (0.0, 0.0, ABSOLUTE_FLOOR),
])
def test_noise_threshold_is_the_larger_of_the_spread_and_the_floor(mean, std, expected):
    assert noise_threshold(mean, std) == pytest.approx(expected)


def test_a_zero_baseline_still_tells_a_real_change():
    changes = compare(result({"dead_fraction": 0.0}), result({"dead_fraction": 0.01}))
    assert changes["core.dead_fraction"].verdict == "worse"


def test_info_and_missing_metrics_have_no_noise():
    changes = compare(seeded_baseline(), result({"l0": 20.0, "kl_div_score": None}))
    assert changes["core.l0"].verdict == "-" and changes["core.l0"].noise is None
    assert changes["core.l0"].baseline_std == pytest.approx(1.5), "the spread is still there to show"
    assert changes["core.kl_div_score"].verdict == "n/a" and changes["core.kl_div_score"].noise is None


def test_the_rule_sentence_names_the_seeds_or_says_there_is_one():
    three = noise_rule_text(seeded_baseline())
    assert "2 standard deviations of the baseline over its 3 seeds (0, 1, 2)" in three
    assert "0.1% of the baseline's value" in three and three.endswith("smaller changes are within noise.")
    one = noise_rule_text(result())
    assert one.startswith("The baseline ran on one seed, so its spread is unknown")
    assert "standard deviation" not in one


def test_the_block_prints_the_rule_the_spread_and_the_seeds_but_not_the_seeds_group():
    baseline = seeded_baseline()
    block = metrics.results_block(2, "x", baseline, result({"explained_variance": 0.95}), SAE_METRICS)
    assert block.splitlines()[1] == "baseline: mean of 3 seeds (0, 1, 2); run_2: one run."
    assert "Rule: A change counts as better or worse only when it exceeds the larger of 2 standard" in block
    row = [line for line in block.splitlines() if line.startswith("core.explained_variance ")][0]
    assert re.split(r"\s{2,}", row)[1:3] == ["0.9 ± 0.002", "0.95"]
    assert "seeds.count" not in block and "seeds." not in block
    assert not [key for key in compare(baseline, result()) if key.startswith("seeds.")]


def test_a_run_on_several_seeds_is_compared_by_its_mean_against_the_baselines_spread():
    baseline = seeded_baseline()
    run = seeded_baseline({"explained_variance": 0.92})
    ev = compare(baseline, run)["core.explained_variance"]
    assert ev.value == pytest.approx(0.92) and ev.value_std == pytest.approx(0.002)
    assert ev.noise == pytest.approx(NOISE_SIGMAS * 0.002), "the run's own spread does not widen the noise"
    assert ev.verdict == "better"
    block = metrics.results_block(3, "x", baseline, run, SAE_METRICS)
    assert "run_3: mean of 3 seeds (0, 1, 2), compared by its mean." in block
    assert "0.92 ± 0.002" in block


# ---------------------------------------------------------------------------------------------------- the frontier

# The baseline (L0 60, EV 0.90, MSE 250) retrained at other sparsity settings: fidelity falls as L0 falls.
FRONTIER = Frontier("core.l0", (result({"l0": 15.0, "explained_variance": 0.70, "mse": 500.0}),
                                result({"l0": 30.0, "explained_variance": 0.80, "mse": 380.0}),
                                result({"l0": 120.0, "explained_variance": 0.95, "mse": 150.0})))
AT_20 = 0.70 + (0.80 - 0.70) * math.log(20 / 15) / math.log(2)  # linear in log L0 between 15 and 30


def test_the_frontier_interpolates_linearly_in_log_x():
    baseline = seeded_baseline()
    assert FRONTIER.value_at(baseline, "core.explained_variance", 20.0) == pytest.approx(AT_20)
    midway = math.sqrt(30.0 * 60.0)
    assert FRONTIER.value_at(baseline, "core.explained_variance", midway) == pytest.approx((0.80 + 0.90) / 2)
    assert FRONTIER.value_at(baseline, "core.explained_variance", 30.0) == pytest.approx(0.80)
    assert FRONTIER.value_at(baseline, "core.explained_variance", 60.0) == pytest.approx(0.90)
    for outside in (10.0, 121.0, 0.0, -5.0):
        assert FRONTIER.value_at(baseline, "core.explained_variance", outside) is None
    assert FRONTIER.x_range(baseline) == (15.0, 120.0)


def test_points_at_the_same_x_are_averaged_and_one_point_is_no_frontier():
    twin = Frontier("core.l0", (result({"l0": 30.0, "explained_variance": 0.70}),
                                result({"l0": 30.0, "explained_variance": 0.80})))
    assert twin.curve(result(), "core.explained_variance") == [(30.0, pytest.approx(0.75)), (60.0, 0.90)]
    assert Frontier("core.l0").value_at(result(), "core.explained_variance", 60.0) is None
    assert Frontier("core.l0").x_range(result()) is None


def test_a_sparser_run_above_the_frontier_is_better_though_below_the_baselines_point():
    """The must-show case: at its own L0 of 20 the run's EV beats the frontier (0.74), not the baseline's 0.90."""
    baseline = seeded_baseline()
    run = result({"l0": 20.0, "explained_variance": 0.78})
    ev = compare(baseline, run, FRONTIER)["core.explained_variance"]
    assert ev.verdict == "better"
    assert ev.frontier_x == 20.0 and ev.frontier_value == pytest.approx(AT_20) and ev.reference == ev.frontier_value
    assert ev.delta == pytest.approx(0.78 - 0.90), "the change column is still against the baseline's point"
    assert compare(baseline, run)["core.explained_variance"].verdict == "worse", "without the frontier: worse"
    block = metrics.results_block(4, "a sparser SAE", baseline, run, SAE_METRICS, FRONTIER)
    assert verdict_cell(block, "core.explained_variance") == (
        f"better: above the baseline frontier at L0 = 20 (frontier {metrics.format_number(AT_20)}; "
        "higher is better)")
    flat = " ".join(block.split())  # the rule's line breaks undone: where they fall depends on the metrics listed
    assert "Frontier: EV, MSE, " in flat and "interpolated linearly in log L0" in flat
    assert "F1" not in flat.split("Frontier:")[1].split("Summary:")[0], "a metric the baseline lacks is not listed"


def test_a_run_below_the_frontier_is_worse_and_lower_is_better_metrics_read_the_other_way():
    baseline = seeded_baseline()
    run = result({"l0": 20.0, "explained_variance": 0.70, "mse": 600.0})
    changes = compare(baseline, run, FRONTIER)
    assert changes["core.explained_variance"].verdict == "worse"
    assert changes["core.mse"].verdict == "worse"
    block = metrics.results_block(5, "x", baseline, run, SAE_METRICS, FRONTIER)
    assert verdict_cell(block, "core.explained_variance").startswith("worse: below the baseline frontier at L0 = 20")
    assert verdict_cell(block, "core.mse").startswith("worse: above the baseline frontier at L0 = 20")
    on_it = compare(baseline, result({"l0": 20.0, "explained_variance": AT_20 + 1e-4}), FRONTIER)
    assert on_it["core.explained_variance"].verdict == "within noise"


def test_only_frontier_metrics_are_judged_along_it():
    run = result({"l0": 20.0, "dead_fraction": 0.0, "explained_variance": 0.78})
    changes = compare(seeded_baseline(), run, FRONTIER)
    assert changes["core.dead_fraction"].frontier_value is None
    assert changes["core.l0"].frontier_value is None, "the x itself is info"


def test_outside_the_frontier_a_run_is_judged_against_the_baselines_point_and_the_block_says_so():
    baseline = seeded_baseline()
    run = result({"l0": 5.0, "explained_variance": 0.78})
    ev = compare(baseline, run, FRONTIER)["core.explained_variance"]
    assert ev.frontier_value is None and ev.verdict == "worse"
    block = metrics.results_block(6, "x", baseline, run, SAE_METRICS, FRONTIER)
    assert verdict_cell(block, "core.explained_variance") == "worse (higher is better)"
    assert "run_6's L0 (5) lies outside that range." in re.sub(r"\n\s+", " ", block)


def test_without_frontier_points_the_baselines_point_is_the_reference():
    baseline = seeded_baseline()
    run = result({"l0": 20.0, "explained_variance": 0.78})
    ev = compare(baseline, run, Frontier("core.l0"))["core.explained_variance"]
    assert ev.frontier_value is None and ev.verdict == "worse"
    block = metrics.results_block(7, "x", baseline, run, SAE_METRICS, Frontier("core.l0"))
    assert "The baseline has no runs at other sparsity settings" in re.sub(r"\n\s+", " ", block)


def test_read_frontier_reads_the_points_and_leaves_out_an_unreadable_one(tmp_path):
    for name, l0 in (("scale_0.5", 30.0), ("scale_2", 120.0)):
        folder = tmp_path / "run_0" / "frontier" / name
        folder.mkdir(parents=True)
        (folder / "final_info.json").write_text(json.dumps(result({"l0": l0})))
    broken = tmp_path / "run_0" / "frontier" / "scale_4"
    broken.mkdir()
    (broken / "final_info.json").write_text("{not json")
    frontier = read_frontier(tmp_path, "core.l0")
    assert frontier.x == "core.l0"
    assert [point["core"]["means"]["l0"] for point in frontier.points] == [30.0, 120.0]
    assert read_frontier(tmp_path, "") is None
    assert read_frontier(tmp_path / "elsewhere", "core.l0") == Frontier("core.l0", ())


def test_the_claim_checker_reads_the_whole_block_as_codes_own_words():
    """Tables, rule, frontier sentence, summary and the compact lists after it are all skipped; the interpretation
    below the block is what gets checked."""
    baseline = seeded_baseline()
    run = result({"l0": 20.0, "explained_variance": 0.78, "novel_score": 3.5}, training={"training_seconds": 99.0})
    block = metrics.results_block(4, "a sparser SAE", baseline, run, SAE_METRICS, FRONTIER)
    assert "Not scored, changed: " in block and "Frontier: " in block
    notes = block + "\nInterpretation of run 4 (written by the LLM coder):\nThe explained variance is 0.78 in run 4.\n"
    claims = find_claims(notes, Path("notes.txt"), SAE_METRICS)
    assert [claim.text for claim in claims] == ["The explained variance is 0.78 in run 4."]
