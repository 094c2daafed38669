"""bench/train_throughput.py at its smoke-test sizes: it runs both sides on the same inputs and reports every figure.
Nothing here is timed; the figures are checked for being there and being rates, not for their size."""

import json
import math
import subprocess
import sys

from tests.conftest import REPO

FIGURES = ("step_ratio", "sweep_ratio", "ours_step_tokens_per_s", "saelens_step_tokens_per_s",
           "ours_sweep_tokens_per_s", "saelens_sweep_tokens_per_s")

# Run in a fresh interpreter: importing the benchmark snapshots the template and puts the snapshot first on sys.path.
CONFIGURED_TEMPLATES = f"""
import importlib.util, json, sys
sys.path.insert(0, {str(REPO / "bench")!r})
import train_throughput as tt

out = {{}}
for variant, value in (("relu", 1.5), ("topk", 48)):
    bench = tt.BenchConfig(variant=variant, tokens=4096, batch_size=1024)
    copy = tt.configured_template(bench, value, tt.WORK / variant)
    spec = importlib.util.spec_from_file_location("experiment_" + variant, copy / "experiment.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    settings = module.run_settings(tt.load_config(copy / "config.toml", environ={{}}))
    out[variant] = [settings.variant, getattr(settings, tt.KNOB[variant])]

text = (tt.TEMPLATE_DIR / "experiment.py").read_text()
k_line = next(line for line in text.splitlines() if line.strip().startswith("k="))
for name, broken in (("missing", text), ("k", text.replace(k_line, k_line + "\\n" + k_line, 1))):
    try:
        tt.set_run_settings(broken, {{name: 16}})
        out[name] = "accepted"
    except SystemExit as stop:
        out[name] = str(stop)
print(json.dumps(out))
"""


def test_each_sweep_configuration_is_written_into_run_settings_of_its_own_template_copy():
    done = subprocess.run([sys.executable, "-c", CONFIGURED_TEMPLATES], cwd=REPO, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["relu"] == ["relu", 1.5]
    assert out["topk"] == ["topk", 48]
    # A knob that run_settings() does not set exactly once stops the benchmark instead of timing the wrong SAE.
    assert out["missing"].startswith("bench: 0 lines")
    assert out["k"].startswith("bench: 2 lines")


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
    # Both sides read the same token rows and compute the same activations; ours trained every run in full, each
    # with the configuration's value as its run_settings() recorded it.
    assert checks["token_rows_prefix_equal"] is True
    assert checks["activation_max_abs_diff"] < 1e-3
    assert checks["ours_tokens_per_run"] == [summary["sae_tokens_per_run"]] * len(summary["configs"])
    assert checks["ours_recorded_values"] == summary["configs"]
