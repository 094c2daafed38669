"""bench/train_throughput.py at its smoke-test sizes: it runs both sides on the same inputs and reports every figure.
Nothing here is timed; the figures are checked for being there and being rates, not for their size."""

import json
import math
import subprocess
import sys

from tests.conftest import REPO

FIGURES = ("step_ratio", "sweep_ratio", "ours_step_tokens_per_s", "saelens_step_tokens_per_s",
           "ours_sweep_tokens_per_s", "saelens_sweep_tokens_per_s")


def test_throughput_benchmark_compares_both_sides_on_the_same_inputs(tmp_path):
    out = tmp_path / "bench.json"
    done = subprocess.run([sys.executable, str(REPO / "bench" / "train_throughput.py"), "--quick", "--profile-steps",
                           "0", "--json-out", str(out)], cwd=REPO, capture_output=True, text=True, timeout=1200)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    last_line = json.loads(done.stdout.strip().splitlines()[-1])
    summary = json.loads(out.read_text())["summary"]
    assert last_line == summary
    for name in FIGURES:
        assert isinstance(summary[name], float) and math.isfinite(summary[name]) and summary[name] > 0, name
    checks = summary["checks"]
    # Both sides read the same token rows and compute the same activations; ours trained every run in full.
    assert checks["token_rows_prefix_equal"] is True
    assert checks["activation_max_abs_diff"] < 1e-3
    assert checks["ours_tokens_per_run"] == [summary["sae_tokens_per_run"]] * len(summary["configs"])
