"""bench/synthetic_throughput.py at its smoke-test sizes: both sides train the same TopK SAE for the same steps on
the synth-cpu model, and every speed and ground-truth figure is reported. Nothing here is timed; the figures are
checked for being there and being in range, not for their size."""

import json
import math
import os
import subprocess
import sys

import pytest

from tests.conftest import REPO

POSITIVE = ("step_ratio", "ours_steps_per_s", "saelens_steps_per_s", "ours_samples_per_s", "saelens_samples_per_s",
            "ours_train_s", "saelens_train_s", "ours_prepare_s", "ours_steps_per_s_incl_prepare",
            "step_ratio_incl_prepare", "ours_data_s", "saelens_data_s", "ours_steps_per_s_excl_data",
            "saelens_steps_per_s_excl_data", "step_ratio_excl_data", "ours_mcc", "saelens_mcc", "ours_l0", "saelens_l0",
            "reference_f1", "reference_mcc", "true_l0")
UNIT_INTERVAL = ("ours_f1", "saelens_f1", "ours_mcc", "saelens_mcc", "ours_precision", "saelens_precision",
                 "ours_recall", "saelens_recall", "reference_f1", "reference_mcc")


def test_synthetic_benchmark_trains_both_sides_alike_and_scores_them_with_one_function(tmp_path, cache_dir):
    out = tmp_path / "bench.json"
    # The shared test cache holds synth-cpu's model and, at --quick's sizes, the same splits as TINY_SYNTH's runs.
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("SAE_")},
           "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "CUDA_VISIBLE_DEVICES": ""}
    done = subprocess.run([sys.executable, str(REPO / "bench" / "synthetic_throughput.py"), "--quick",
                           "--cache-dir", str(cache_dir), "--json-out", str(out)],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert summary == json.loads(out.read_text())
    for name in POSITIVE:
        assert isinstance(summary[name], float) and math.isfinite(summary[name]) and summary[name] > 0, name
    for name in UNIT_INTERVAL:
        assert 0 <= summary[name] <= 1, name
    for name in ("ours_ev", "saelens_ev"):
        assert math.isfinite(summary[name]) and summary[name] <= 1, name
    # Same SAE, same budget: both took every step at the same batch size, and TopK fires at most k latents.
    assert summary["ours_steps"] == summary["saelens_steps"] == summary["steps"] == 32
    assert summary["ours_batch_size"] == summary["saelens_batch_size"] == summary["batch_size"]
    assert summary["saelens_batches_drawn"] == summary["steps"] + summary["saelens_norm_batches"]
    assert 0 < summary["ours_l0"] <= summary["k"] and 0 < summary["saelens_l0"] <= summary["k"]
    # The ratio is of the unrounded rates, the JSON's rates are rounded: equal to within that rounding.
    ratio = summary["ours_steps_per_s"] / summary["saelens_steps_per_s"]
    assert summary["step_ratio"] == pytest.approx(ratio, rel=1e-2)
    # The time spent getting batches is part of each side's loop, not more than all of it.
    assert summary["ours_data_s"] < summary["ours_train_s"] and summary["saelens_data_s"] < summary["saelens_train_s"]
    assert len(summary["commit"]) == 40 and len(summary["loadavg"]["start"]) == 3
