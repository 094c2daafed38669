"""bench/train_throughput.py at its smoke-test sizes: it runs every side on the same inputs and reports every figure.
Nothing here is timed; the figures are checked for being there and being rates, not for their size."""

import json
import math
import subprocess
import sys

import torch

from tests.conftest import REPO

BENCH = REPO / "bench" / "train_throughput.py"
SETUPS = ("streaming", "cached", "multi")
SWEEP_RATES = ("sweep_ratio_headline", "ours_sweep_tokens_per_s",
               *(f"sweep_ratio_vs_{setup}" for setup in SETUPS),
               *(f"saelens_{setup}_sweep_tokens_per_s" for setup in SETUPS))
STEP_RATES = tuple(name for variant in ("topk", "relu") for name in (
    f"step_ratio_{variant}_matched", f"step_ratio_{variant}_interleaved",
    f"ours_{variant}_step_tokens_per_s", f"saelens_{variant}_step_tokens_per_s"))
PEAK_RATES = tuple(f"{variant}_{side}_{kind}" for variant in ("topk", "relu") for side in ("ours", "saelens")
                   for kind in ("tflops", "peak_share"))

# Run in a fresh interpreter: importing the benchmark snapshots the template and puts the snapshot first on sys.path.
CONFIGURED_TEMPLATES = f"""
import importlib.util, json, sys
sys.path.insert(0, {str(REPO / "bench")!r})
from throughput.config import KNOB, BenchConfig
from throughput.ours import configured_template, set_run_settings
from throughput.snapshot import TEMPLATE_DIR, WORK
from sae_harness.config import load_config

out = {{}}
for variant, value in (("relu", 1.5), ("topk", 48)):
    bench = BenchConfig(variant=variant, tokens=4096, batch_size=1024)
    copy = configured_template(bench, value, WORK / variant)
    spec = importlib.util.spec_from_file_location("experiment_" + variant, copy / "experiment.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    settings = module.run_settings(load_config(copy / "config.toml", environ={{}}))
    out[variant] = [settings.variant, getattr(settings, KNOB[variant])]

text = (TEMPLATE_DIR / "experiment.py").read_text()
k_line = next(line for line in text.splitlines() if line.strip().startswith("k="))
for name, broken in (("missing", text), ("k", text.replace(k_line, k_line + "\\n" + k_line, 1))):
    try:
        set_run_settings(broken, {{name: 16}})
        out[name] = "accepted"
    except SystemExit as stop:
        out[name] = str(stop)
from throughput.config import parse_args
from throughput.report import raced
out["setups"] = list(parse_args(["--skip-streaming"]).setups)
out["raced"] = raced({{"sweep_ratio_vs_cached": 1.0, "sweep_ratio_vs_multi": 2.0}})
print(json.dumps(out))
"""


def is_rate(value) -> bool:
    return isinstance(value, float) and math.isfinite(value) and value > 0


def run_bench(*flags, timeout=1500) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(BENCH), *flags], cwd=REPO, capture_output=True, text=True,
                          timeout=timeout)


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
    # --skip-streaming races the other two set-ups only, and the report shows only those raced.
    assert out["setups"] == out["raced"] == ["cached", "multi"]


def test_throughput_benchmark_compares_every_setup_on_the_same_inputs(tmp_path):
    out = tmp_path / "bench.json"
    # --peak-tflops gives the CPU a nominal peak, so the share-of-peak figure of the GPU mode is computed here too.
    done = run_bench("--quick", "--profile-steps", "0", "--peak-tflops", "1", "--json-out", str(out))
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    last_line = json.loads(done.stdout.strip().splitlines()[-1])
    summary = json.loads(out.read_text())["summary"]
    assert last_line == summary
    for name in SWEEP_RATES + STEP_RATES:
        assert is_rate(summary[name]), name
    for name in PEAK_RATES:
        assert is_rate(summary["peak"][name]), name
    # The headline is against the fastest SAELens set-up.
    assert summary["sweep_ratio_headline"] == min(summary[f"sweep_ratio_vs_{setup}"] for setup in SETUPS)
    # Both sides of each step pair report their quality; TopK runs at the same k on both.
    assert summary["step_topk_values"] == {"ours": 32, "saelens": 32}
    for variant in ("topk", "relu"):
        for side in ("ours", "saelens"):
            quality = summary[f"step_{variant}_quality"][side]
            assert math.isfinite(quality["explained_variance"]), (variant, side)
            assert quality["l0"] > 0 and 0 <= quality["dead_fraction"] <= 1, (variant, side, quality)
    assert summary["saelens_l1_search"]["probes"]
    checks = summary["checks"]
    # Every side reads the same token rows and computes the same activations; ours trained every run in full, each
    # with the configuration's value as its run_settings() recorded it; SAELens's cache holds ours' tokens.
    assert checks["token_rows_prefix_equal"] is True
    assert checks["activation_max_abs_diff"] < 1e-3
    assert checks["ours_tokens_per_run"] == [summary["sae_tokens_per_run"]] * len(summary["configs"])
    assert checks["ours_recorded_values"] == summary["configs"]
    assert checks["saelens_cache_text_tokens"] >= summary["tokens"]


def test_gpu_mode_refuses_clearly_where_it_cannot_run():
    # The GPU configuration reads its model from the hub, which tests cannot reach; the refusal names the flag.
    hub = run_bench("--quick", "--preset", "pythia-70m-deduped", "--skip-steps", timeout=600)
    assert hub.returncode != 0
    assert "--preset pythia-70m-deduped cannot run here" in hub.stderr, hub.stderr[-2000:]
    refusals = [(("--dtype", "bfloat16"), "--dtype bfloat16 needs --device cuda"),
                (("--preset", "gpt3"), "--preset gpt3: not benchmarked")]
    if not torch.cuda.is_available():
        refusals.append((("--device", "cuda"), "--device cuda: torch sees no GPU"))
    for flags, message in refusals:
        done = run_bench("--quick", *flags, timeout=600)
        assert done.returncode != 0 and message in done.stderr, (flags, done.stderr[-2000:])
