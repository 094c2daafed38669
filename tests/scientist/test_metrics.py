"""The results block that code, not the LLM, appends to notes.txt: verdicts follow each metric's direction, and
printed numbers are the ones final_info.json holds. (The noise rule and the frontier: test_noise.py.)"""

import copy
import math
import re

import pytest

from scientist.experiment import metrics
from scientist.experiment.metrics import MetricChange, summary_line
from tests.scientist.conftest import SAE_METRICS

# The SAE template's registry (its template.toml) is the one these tests judge by.
METRICS = SAE_METRICS.metrics
REGISTRY = {(metric.group, metric.name): metric for metric in METRICS}
lookup = SAE_METRICS.lookup


def compare(baseline: dict, run: dict) -> list[MetricChange]:
    return metrics.compare(baseline, run, SAE_METRICS)


def results_block(run_number: int, description: str, baseline: dict, run: dict) -> str:
    return metrics.results_block(run_number, description, baseline, run, SAE_METRICS)


OFFLINE_REASON = "preset gemma-3-270m runs offline; this SAEBench eval needs datasets from the Hugging Face hub"


def final_info(core: dict | None = None, training: dict | None = None, **groups: dict) -> dict:
    """A final_info.json shaped like the harness's, with the given means overriding realistic ones."""
    return {
        "training": {"status": "ok", "means": {
            "training_steps": 585, "training_tokens": 1198080, "final_loss": 17.9, "training_seconds": 136.2,
            "tokens_per_s": 8799.3, "dict_size": 2048, "lr": 0.002, "seed": 0, "wall_seconds": 694.4,
            **(training or {})}},
        "core": {"status": "ok", "means": {
            "explained_variance": 0.9262, "mse": 246.59, "cossim": 0.9937, "l0": 59.48, "l2_ratio": 0.9893,
            "ce_loss_score": 0.8268, **(core or {})}},
        "sparse_probing": {"status": "skipped", "reason": OFFLINE_REASON, "means": {}},
        **groups,
    }


def change_of(changes: list[MetricChange], key: str) -> MetricChange:
    (found,) = [c for c in changes if c.key == key]
    return found


def facts(block: str) -> dict[str, tuple[str, str | None]]:
    """The numbers that are not scored, from the block's compact lists: key -> (the run's value, the baseline's
    where it differs). Continuation lines are joined back, since a list wraps at spaces."""
    text = re.sub(r"\n {4}(?=\S)", " ", block)
    found = {}
    for line in text.splitlines():
        title = re.match(r"  (Not scored, changed|Not scored, unchanged|Not in the metric registry \(never judged\)): "
                         r"(.*)\.$", line)
        if title:
            for entry in title[2].split(", "):
                key, value, *rest = entry.split(" ", 2)
                assert key not in found, f"{key} listed twice"
                found[key] = (value, rest[0].removeprefix("(baseline ").removesuffix(")") if rest else None)
    return found


def table_rows(block: str) -> dict[str, list[str]]:
    """The table's cells by metric; columns are at least two spaces apart and no cell holds two spaces."""
    rows = {}
    for line in block.splitlines():
        cells = re.split(r"\s{2,}", line.strip())
        if len(cells) == 5 and "." in cells[0]:
            rows[cells[0]] = cells
    return rows


def test_mse_going_up_is_worse():
    changes = compare(final_info(core={"mse": 3.281}), final_info(core={"mse": 3.422}))
    mse = change_of(changes, "core.mse")
    assert mse.verdict == "worse"
    assert mse.delta == pytest.approx(0.141)
    assert mse.relative == pytest.approx(0.141 / 3.281)
    row = table_rows(results_block(1, "x", final_info(core={"mse": 3.281}), final_info(core={"mse": 3.422})))
    assert row["core.mse"][4] == "worse (lower is better)"
    assert row["core.mse"][3] == "+0.141 (+4.3%)"


def test_ce_loss_score_going_up_is_better():
    change = change_of(compare(final_info(core={"ce_loss_score": 0.80}), final_info(core={"ce_loss_score": 0.83})),
                       "core.ce_loss_score")
    assert (change.verdict, change.direction) == ("better", "higher")
    assert change.relative == pytest.approx(0.0375)


@pytest.mark.parametrize("before, after, verdict", [
    (0.95, 1.02, "better"),
    (1.02, 0.95, "worse"),
    (0.98, 1.02, "within noise"),
    (1.10, 1.05, "better"),
    (0.90, 0.85, "worse"),
])
def test_l2_ratio_is_judged_by_its_distance_from_one(before, after, verdict):
    change = change_of(compare(final_info(core={"l2_ratio": before}), final_info(core={"l2_ratio": after})),
                       "core.l2_ratio")
    assert change.direction == "target"
    assert change.verdict == verdict


def test_changes_within_the_floor_are_within_noise():
    changes = compare(final_info(core={"explained_variance": 0.9262, "mse": 1e6}),
                      final_info(core={"explained_variance": 0.9262 + 1e-12, "mse": 1e6 + 1e-4}))
    assert change_of(changes, "core.explained_variance").verdict == "within noise"
    assert change_of(changes, "core.mse").verdict == "within noise"


def test_a_metric_missing_or_null_on_one_side_is_n_a():
    baseline = final_info(core={"kl_div_score": 0.835, "dead_fraction": None})
    run = final_info(core={"dense_fraction": 0.07, "dead_fraction": 0.01})
    changes = compare(baseline, run)
    for key in ("core.kl_div_score", "core.dense_fraction", "core.dead_fraction"):
        change = change_of(changes, key)
        assert change.verdict == "n/a"
        assert change.delta is None and change.relative is None
    kl = change_of(changes, "core.kl_div_score")
    assert (kl.baseline, kl.value) == (0.835, None)
    row = table_rows(results_block(2, "x", baseline, run))["core.kl_div_score"]
    assert row[1:4] == ["0.835", "n/a", "n/a"]


@pytest.mark.parametrize("after", [0.0, 0.5, 1.0 + 1e-12, 2.0, 1e9, -5.0])
def test_an_unknown_metric_is_never_better_or_worse(after):
    changes = compare(final_info(core={"novel_score": 1.0}), final_info(core={"novel_score": after}))
    change = change_of(changes, "core.novel_score")
    assert change.direction == "unknown"
    assert change.verdict == "-"
    assert "novel_score" not in summary_line(changes)


def test_a_known_name_in_another_group_is_unknown():
    assert lookup("custom_eval", "mse").direction == "unknown"
    assert lookup("core", "mse").direction == "lower"


def test_info_metrics_are_shown_but_never_scored():
    changes = compare(final_info(core={"l0": 59.48}, training={"dict_size": 2048}),
                      final_info(core={"l0": 20.0}, training={"dict_size": 4096}))
    for key in ("core.l0", "training.dict_size", "training.wall_seconds"):
        assert change_of(changes, key).verdict == "-"
    assert change_of(changes, "core.l0").delta == pytest.approx(-39.48)


def test_printed_numbers_round_trip_to_the_json_within_six_significant_figures():
    core = {"explained_variance": 0.926213457, "mse": 246.5912345, "mse_per_token": 157818.93,
            "dead_fraction": 0.00048828125, "kl_div_with_sae": 1.234567891e-7, "cossim": 0.9937,
            "ce_loss_score": 0.0, "l1": -2209.0744}
    training = {"training_tokens": 1198080, "lr": 0.002, "tokens_per_s": 8799.3456789}
    baseline = final_info(core=core, training=training)
    run = final_info(core={name: value * 1.0123456 + 0.01 for name, value in core.items()},
                     training={name: value * 2 for name, value in training.items()})
    block = results_block(4, "scaled", baseline, run)
    rows, listed = table_rows(block), facts(block)
    checked = 0
    for group in ("core", "training"):
        for name, base_value in baseline[group]["means"].items():
            key, run_value = f"{group}.{name}", run[group]["means"][name]
            assert (key in rows) != (key in listed), f"{key} is printed exactly once"
            if key in rows:
                _, printed_base, printed_run, printed_change, _ = rows[key]
                delta = float(printed_change.split()[0])
                assert math.isclose(delta, run_value - base_value, rel_tol=5e-6, abs_tol=0), key
            else:
                printed_run, printed_base = listed[key]
                printed_base = printed_run if printed_base is None else printed_base
            assert math.isclose(float(printed_base), base_value, rel_tol=5e-6, abs_tol=0), key
            assert math.isclose(float(printed_run), run_value, rel_tol=5e-6, abs_tol=0), key
            checked += 1
    assert checked == len(baseline["core"]["means"]) + len(baseline["training"]["means"])


def test_settings_timings_and_facts_are_listed_compactly_each_once():
    baseline = final_info(core={"novel_score": 0.5}, settings={"status": "ok", "means": {"k": 64, "lr": 0.002}})
    run = final_info(core={"novel_score": 0.7}, training={"training_seconds": 140.0},
                     settings={"status": "ok", "means": {"k": 32, "lr": 0.002}})
    block = results_block(1, "x", baseline, run)
    listed = facts(block)
    assert listed["settings.k"] == ("32", "64")
    assert listed["settings.lr"] == ("0.002", None)
    assert listed["training.training_seconds"] == ("140", "136.2")
    assert listed["training.dict_size"] == ("2048", None)
    assert listed["core.novel_score"] == ("0.7", "0.5")
    [unknown] = [line for line in block.splitlines() if line.startswith("  Not in the metric registry")]
    assert "training.dict_size 2048" in unknown, "this planted result records dict_size where the registry has none"
    assert "core.l0" not in listed, "a key metric is in the table, not in the list"
    final = final_info()
    shown = {key for key in listed} | set(table_rows(block))
    every = {f"{group}.{name}" for group in ("core", "training") for name in final[group]["means"]}
    assert every <= shown
    summary_at = next(i for i, line in enumerate(block.splitlines()) if line.startswith("Summary:"))
    after = block.splitlines()[summary_at + 1:]
    assert all(not line or line.startswith(" ") or line.startswith("skipped") for line in after), \
        "after the summary, the block's own lines are indented (or status lines), as the claim checker reads them"


def test_skipped_groups_are_listed_with_their_reasons():
    baseline = final_info(absorption={"status": "skipped", "reason": "no hub\naccess", "means": {}})
    run = final_info(absorption={"status": "ok", "means": {"mean.mean_absorption_fraction_score": 0.2}},
                     tpp={"status": "skipped", "reason": "ValueError: dataset missing", "means": {}})
    lines = results_block(5, "hub run", baseline, run).splitlines()
    assert f"skipped: sparse_probing ({OFFLINE_REASON})" in lines
    assert "skipped in baseline: absorption (no hub access)" in lines
    assert "skipped in run_5: tpp (ValueError: dataset missing)" in lines
    assert sum("sparse_probing" in line for line in lines) == 1


def test_a_skipped_group_contributes_no_rows():
    stray = {"status": "skipped", "reason": "offline", "means": {"sae.sae_test_accuracy": 0.9}}
    changes = compare(final_info(sparse_probing=stray), final_info(sparse_probing=stray))
    assert changes
    assert not [c for c in changes if c.group == "sparse_probing"]
    block = results_block(1, "x", final_info(sparse_probing=stray), final_info(sparse_probing=stray))
    assert not [key for key in table_rows(block) if key.startswith("sparse_probing.")]
    assert "skipped: sparse_probing (offline)" in block.splitlines()


def test_a_group_that_ran_on_one_side_only_is_compared_as_n_a():
    ran = {"status": "ok", "means": {"unlearning.unlearning_score": 0.1}}
    changes = compare(final_info(), final_info(unlearning=ran))
    change = change_of(changes, "unlearning.unlearning.unlearning_score")
    assert (change.baseline, change.value, change.verdict) == (None, 0.1, "n/a")


def test_relative_change_is_none_for_a_zero_baseline_and_signed_by_the_change():
    changes = compare(final_info(core={"dead_fraction": 0.0, "l1": -2.0}),
                      final_info(core={"dead_fraction": 0.01, "l1": -1.0}))
    dead = change_of(changes, "core.dead_fraction")
    assert dead.relative is None
    assert dead.delta == pytest.approx(0.01)
    assert dead.verdict == "worse"
    assert change_of(changes, "core.l1").relative == pytest.approx(0.5)
    row = table_rows(results_block(1, "x", final_info(core={"dead_fraction": 0.0}),
                                   final_info(core={"dead_fraction": 0.01})))["core.dead_fraction"]
    assert row[3] == "+0.01"


def test_rows_put_the_key_metrics_first_in_registry_order_then_other_scores_then_the_rest():
    changes = compare(final_info(), final_info(core={"explained_variance": 0.93}))
    keys = [c.key for c in changes]
    key_metrics = [m.key for m in SAE_METRICS.key_metrics]
    leading = keys[:5]
    assert leading == ["core.explained_variance", "core.mse", "core.cossim", "core.l0", "core.ce_loss_score"]
    assert leading == sorted(leading, key=key_metrics.index)
    rest = changes[5:]
    scored = [c.direction in {"higher", "lower", "target"} for c in rest]
    assert scored == sorted(scored, reverse=True)
    assert rest[0].key == "core.l2_ratio"
    assert keys.index("training.training_steps") < keys.index("training.dict_size")


def test_results_block_header_and_columns():
    block = results_block(3, "TopK SAE,\n k = 64", final_info(), final_info(core={"explained_variance": 0.95}))
    lines = block.splitlines()
    assert lines[0] == "## Run 3: TopK SAE, k = 64"
    assert lines[1] == "baseline: one run; run_3: one run."
    assert re.split(r"\s{2,}", lines[3]) == ["key metric", "baseline", "run_3", "change", "verdict"]
    assert block.endswith("\n")
    widths = {len(line) for line in lines[2:] if line and not line.startswith("skipped")}
    assert max(widths) < 120
    row = table_rows(block)["core.explained_variance"]
    assert row[1:] == ["0.9262", "0.95", "+0.0238 (+2.57%)", "better (higher is better)"]
    [other_heading] = [line for line in lines if line.startswith("other scored metric")]
    assert re.split(r"\s{2,}", other_heading) == ["other scored metric", "baseline", "run_3", "change", "verdict"]
    key_section = lines[4:lines.index(other_heading)]
    assert [line.split()[0] for line in key_section if line] == [
        "core.explained_variance", "core.mse", "core.cossim", "core.l0", "core.ce_loss_score"]
    assert key_section[-1] == "", "a blank line between the key metrics and the other scored ones"


def test_inputs_are_not_modified():
    baseline, run = final_info(), final_info(core={"mse": 1.0, "novel": None})
    before = copy.deepcopy((baseline, run))
    results_block(1, "x", baseline, run)
    summary_line(compare(baseline, run))
    assert (baseline, run) == before


def test_summary_line_counts_and_names_the_scored_metrics_that_moved():
    changes = compare(final_info(core={"ce_loss_score": 0.80, "mse": 3.281, "cossim": 0.99, "kl_div_score": 0.8}),
                      final_info(core={"ce_loss_score": 0.83, "mse": 3.422, "cossim": 0.99, "l0": 10.0}))
    line = summary_line(changes)
    assert line.startswith("1 better, 1 worse, 3 within noise, 1 n/a on scored metrics (")
    assert line.endswith("(better: core.ce_loss_score; worse: core.mse; n/a: core.kl_div_score)")
    assert "cossim" not in line, "the table, not the summary, lists what stayed within noise"
    assert "l0" not in line and "dict_size" not in line


def test_summary_line_when_nothing_moved():
    changes = compare(final_info(), final_info())
    assert summary_line(changes) == "0 better, 0 worse, 5 within noise on scored metrics"


def test_summary_line_without_scored_metrics():
    assert summary_line([]) == "no scored metrics to compare"


EXPECTED_CORE_DIRECTIONS = {
    "higher": ("explained_variance", "cossim", "ce_loss_score", "kl_div_score", "saebench_cossim"),
    "lower": ("mse", "mse_per_token", "saebench_mse", "dead_fraction", "dense_fraction", "ce_loss_with_sae",
              "kl_div_with_sae"),
    "target": ("l2_ratio", "relative_reconstruction_bias"),
    "info": ("l0", "l1", "saebench_explained_variance", "saebench_l0", "saebench_l1", "heldout_tokens", "eval_seconds",
             "ce_loss_with_ablation",
             "kl_div_with_ablation", "ce_loss_without_sae"),
}


@pytest.mark.parametrize("direction, names", EXPECTED_CORE_DIRECTIONS.items())
def test_registry_directions_for_core(direction, names):
    for name in names:
        assert REGISTRY[("core", name)].direction == direction, name


def test_registry_entries_are_well_formed():
    assert len(REGISTRY) == len(METRICS)
    for metric in METRICS:
        assert metric.direction in {"higher", "lower", "target", "info"}
        assert metric.description and "\n" not in metric.description
        assert (metric.target is not None) == (metric.direction == "target")
    assert REGISTRY[("core", "l2_ratio")].target == 1.0
    for name in ("tokens_per_s", "training_steps", "training_seconds", "wall_seconds", "final_loss"):
        assert REGISTRY[("training", name)].direction == "info", name
    for name in ("dict_size", "lr", "seed", "k", "sparsity_penalty"):  # the settings that ran describe the run
        assert REGISTRY[("settings", name)].direction == "info", name


def test_interpretability_metrics_are_judged_by_their_direction_and_a_failed_eval_is_listed():
    """Sparse probing and TPP higher is better, absorption lower is better, the model's own probing accuracy (the
    reference ceiling) is not scored; an eval that failed is listed with its reason, not scored as zero."""
    baseline = final_info(
        sparse_probing={"status": "ok", "means": {"sae.sae_top_1_test_accuracy": 0.70,
                                                   "llm.llm_top_1_test_accuracy": 0.80}},
        tpp={"status": "ok", "means": {"tpp_metrics.tpp_threshold_20_total_metric": 0.20}},
        absorption={"status": "ok", "means": {"mean.mean_absorption_fraction_score": 0.30}})
    run = final_info(
        sparse_probing={"status": "ok", "means": {"sae.sae_top_1_test_accuracy": 0.75,
                                                   "llm.llm_top_1_test_accuracy": 0.80}},
        tpp={"status": "failed", "reason": "RuntimeError: out of memory", "means": {}},
        absorption={"status": "ok", "means": {"mean.mean_absorption_fraction_score": 0.35}})
    block = results_block(2, "an idea", baseline, run)
    rows = table_rows(block)
    assert rows["sparse_probing.sae.sae_top_1_test_accuracy"][4] == "better (higher is better)"
    assert rows["absorption.mean.mean_absorption_fraction_score"][4] == "worse (lower is better)"
    assert facts(block)["sparse_probing.llm.llm_top_1_test_accuracy"] == ("0.8", None), "listed, not scored"
    assert rows["tpp.tpp_metrics.tpp_threshold_20_total_metric"][2:] == ["n/a", "n/a", "n/a (higher is better)"]
    assert "failed in run_2: tpp (RuntimeError: out of memory)" in block.splitlines()
