"""A result on several seeds: its mean, spread and per-seed values, from the seeds' own result files."""

import json
import math

import pytest

from scientist.experiment.seeds import SeedsError, aggregate, seed_count, summarise_seeds
from tests.conftest import TEMPLATE_DIR

SCHEMA = TEMPLATE_DIR / "final_info.schema.json"


def result(seed: int, ev: float, ce: float | None, probing_status: str = "ok") -> dict:
    probing = ({"status": "ok", "means": {"sae_top_1_test_accuracy": 0.6 + seed / 100}} if probing_status == "ok"
               else {"status": probing_status, "means": {}, "reason": f"seed {seed} had no probing texts"})
    return {
        "settings": {"status": "ok", "means": {"dict_size": 256, "batch_size": 512, "epochs": 2, "lr": 0.003,
                                               "seed": seed}, "choices": {"variant": "relu"}},
        "training": {"status": "ok", "means": {"training_steps": 30, "training_tokens": 15360, "unique_tokens": 8192,
                                               "final_loss": 1.0, "training_seconds": 2.0 + seed,
                                               "tokens_per_s": 7000.0, "wall_seconds": 9.0, "layer": 6},
                     "preset": "gemma-3-270m", "sae_class": "CustomSAE", "model_name": "m", "hook_name": "h",
                     "config": {}},
        "core": {"status": "ok", "formulas": {"explained_variance": "1 - SSE/SST"},
                 "means": {"explained_variance": ev, "mse": 0.1, "mse_per_token": 64.0, "cossim": 0.9, "l0": 40.0,
                           "l1": 3.0, "l2_ratio": 0.95, "dead_fraction": 0.0, "heldout_tokens": 2048,
                           "ce_loss_score": ce}},
        "sparse_probing": probing,
    }


def test_means_spreads_and_per_seed_values():
    infos = [result(0, 0.80, 0.90), result(1, 0.82, None), result(2, 0.84, 0.94)]
    summary = aggregate(infos, [0, 1, 2], "settings.seed")

    assert summary["seeds"] == {"status": "ok", "means": {"count": 3}, "seeds": [0, 1, 2],
                                "runs": ["seeds/seed_0", "seeds/seed_1", "seeds/seed_2"]}
    core = summary["core"]
    assert core["means"]["explained_variance"] == pytest.approx(0.82)
    assert core["stds"]["explained_variance"] == pytest.approx(0.02)
    assert core["stderrs"]["explained_variance"] == pytest.approx(0.02 / math.sqrt(3))
    assert core["per_seed"]["explained_variance"] == [0.80, 0.82, 0.84]
    # A seed that recorded null (NaN) is left out of the mean, and shown as null.
    assert core["means"]["ce_loss_score"] == pytest.approx(0.92)
    assert core["per_seed"]["ce_loss_score"] == [0.90, None, 0.94]
    # Constants stay exactly themselves, with no spread; the rest of the group is the first seed's.
    assert core["means"]["heldout_tokens"] == 2048 and core["stds"]["heldout_tokens"] == 0
    assert core["formulas"] == {"explained_variance": "1 - SSE/SST"}
    # The seed setting is the first seed's (a mean seed is no seed), every seed under per_seed.
    assert summary["settings"]["means"]["seed"] == 0
    assert summary["settings"]["per_seed"]["seed"] == [0, 1, 2]
    assert summary["training"]["means"]["training_seconds"] == pytest.approx(3.0)
    assert seed_count(summary) == 3 and seed_count(infos[0]) == 1


def test_a_group_that_failed_on_one_seed_is_averaged_over_the_others_and_says_so():
    infos = [result(0, 0.8, 0.9), result(1, 0.8, 0.9, probing_status="failed"), result(2, 0.8, 0.9)]
    probing = aggregate(infos, [0, 1, 2], "settings.seed")["sparse_probing"]
    assert probing["seeds_ran"] == 2
    assert probing["per_seed"]["sae_top_1_test_accuracy"] == [0.6, 0.62]

    all_failed = [result(seed, 0.8, 0.9, probing_status="skipped") for seed in (0, 1)]
    assert aggregate(all_failed, [0, 1])["sparse_probing"]["reason"] == "seed 0 had no probing texts"


def write(path, info):
    path.mkdir(parents=True, exist_ok=True)
    (path / "final_info.json").write_text(json.dumps(info))


def test_a_run_folder_is_summarised_from_its_seeds_own_files(tmp_path):
    run = tmp_path / "run_0"
    write(run, result(5, 0.80, 0.90))
    write(run / "seeds" / "seed_6", result(6, 0.84, 0.94))
    seeds = summarise_seeds(run, "settings.seed", SCHEMA, into=run / "final_info.json")

    assert seeds == [5, 6]
    assert json.loads((run / "seeds" / "seed_5" / "final_info.json").read_text()) == result(5, 0.80, 0.90), \
        "the run's own result is kept beside the others before its final_info.json becomes the summary"
    summary = json.loads((run / "final_info.json").read_text())
    assert summary["core"]["per_seed"]["explained_variance"] == [0.80, 0.84]

    # Summarising again (a resumed build that added a seed) starts from the files, not from the summary.
    write(run / "seeds" / "seed_7", result(7, 0.88, 0.98))
    assert summarise_seeds(run, "settings.seed", SCHEMA, into=run / "final_info.json") == [5, 6, 7]
    summary = json.loads((run / "final_info.json").read_text())
    assert summary["core"]["means"]["explained_variance"] == pytest.approx(0.84)


def test_a_seed_result_that_breaks_the_schema_is_named(tmp_path):
    run = tmp_path / "run_1"
    write(run, result(0, 0.8, 0.9))
    broken = result(1, 0.8, 0.9)
    del broken["core"]["means"]
    write(run / "seeds" / "seed_1", broken)
    with pytest.raises(SeedsError, match=r"seeds/seed_1/final_info.json: the result of seed 1 cannot be summarised"):
        summarise_seeds(run, "settings.seed", SCHEMA, into=run / "seeds.json")
    assert not (run / "seeds.json").exists()
