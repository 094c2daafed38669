"""The machine, the share of the device's peak, the printed report and the JSON summary."""

import datetime
import os
import platform
from pathlib import Path

import sae_lens
import torch

from .config import SETUPS, BenchConfig
from .sweep import sweep_parts

GPU_BF16_PEAK_TFLOPS = (
    # (substring of torch.cuda.get_device_name(), dense bf16 tensor-core peak in TFLOPS, from NVIDIA's data sheets;
    # the figures with structured sparsity are twice these). The first match counts: the specific names first.
    ("H200", 989.4),
    ("H100 PCIe", 756.0),
    ("H100", 989.4),  # SXM
    ("A100", 312.0),
    ("L40S", 362.1),
    ("L4", 121.0),
)


def device_peak(bench: BenchConfig) -> tuple[str, float | None]:
    """(device name, dense bf16 peak in TFLOPS or None when unknown): --peak-tflops, else GPU_BF16_PEAK_TFLOPS."""
    name = torch.cuda.get_device_name(bench.device) if bench.device_type == "cuda" else "cpu"
    if bench.peak_tflops:
        return name, bench.peak_tflops
    return name, next((peak for key, peak in GPU_BF16_PEAK_TFLOPS if key in name), None)


def step_flops(bench: BenchConfig) -> float:
    """Dense-equivalent FLOPs of one SAE step, as model-FLOPs utilisation counts them: encoder and decoder products
    of 2 * batch * d_in * d_sae each forward, twice that backward. Kernels that skip zeros (ours' sparse ones) do
    less work, so a share above what dense products reach means the sparsity paid."""
    return 12 * bench.batch_size * bench.preset_info.d_model * bench.d_sae


def peak_shares(bench: BenchConfig, step_result: dict) -> dict:
    name, peak = device_peak(bench)
    out = {"device_name": name, "peak_bf16_tflops": peak, "step_flops": step_flops(bench)}
    for variant in ("topk", "relu"):
        for side in ("ours", "saelens"):
            tflops = step_result[variant][f"{side}_steps_per_s"] * step_flops(bench) / 1e12
            out[f"{variant}_{side}_tflops"] = tflops
            out[f"{variant}_{side}_peak_share"] = tflops / peak if peak else None
    return out


def machine_info() -> dict:
    cpu = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    mem_kb = next(int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines()
                  if line.startswith("MemTotal"))
    return {"cpu": cpu, "cores": len(os.sched_getaffinity(0)), "memory_gib": round(mem_kb / 2**20, 1),
            "torch_threads": torch.get_num_threads(), "python": platform.python_version(), "torch": torch.__version__,
            "sae_lens": sae_lens.__version__}


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def print_steps(bench: BenchConfig, step_result: dict):
    print(f"\nSAE steps at matched sparsity, whole runs of {step_result['steps']} steps on one shared tensor "
          f"(best of {bench.step_repeats}); quality on the first {step_result['eval_tokens']} activations")
    print(f"  {'pair':6} {'side':8} {'value':>8} {'steps/s':>8} {'EV':>6} {'L0':>7} {'dead':>6}")
    for variant in ("topk", "relu"):
        pair = step_result[variant]
        for side in ("ours", "saelens"):
            q = pair["quality"][side]
            print(f"  {variant:6} {side:8} {pair[f'{side}_value']:8.4g} {pair[f'{side}_steps_per_s']:8.3f} "
                  f"{q['explained_variance']:6.3f} {q['l0']:7.1f} {q['dead_fraction']:6.3f}")
        print(f"  {variant} step_ratio {pair['step_ratio']:.2f}, interleaved single steps (median) "
              f"{pair['step_ratio_interleaved']:.2f}")
        for side, prof in pair.get("profile", {}).items():
            print(f"    profile {side}: {prof['ms_per_step']:.0f} ms/step, GEMM {100 * prof['gemm_fraction']:.0f}% "
                  f"({prof['gemm_calls_per_step']:.0f} calls/step)")
    peer = step_result["topk"]["dictionary_learning"]
    if peer["status"] == "measured":
        q = peer["quality"]
        print(f"  topk   dictionary_learning {peer['steps_per_s']:8.3f} steps/s, EV {q['explained_variance']:.3f}, "
              f"L0 {q['l0']:.1f}, dead {q['dead_fraction']:.3f}: ours / it {peer['step_ratio']:.2f}")
    else:
        print(f"  topk   dictionary_learning {peer['status']}")
    if "l1_search" in step_result["relu"]:
        search = step_result["relu"]["l1_search"]
        print(f"  SAELens L1 search: {search['probes']}; matched within 20%: {search['matched']}")


def print_sweep(bench: BenchConfig, sweep_result: dict):
    print(f"\nSweep of {len(bench.sweep_values)} configurations {bench.sweep_values}, cold caches:")
    per_run = {"streaming": sweep_result["saelens_runs"], "cached": sweep_result["saelens_cached_runs"]}
    for i, o in enumerate(sweep_result["ours_runs"]):
        theirs = ", ".join(f"{setup} {runs[i]['wall_s']:.1f} s" for setup, runs in per_run.items() if runs)
        print(f"  run_{i + 1} ({o['value']}): ours {o['wall_s']:.1f} s (setup {o['setup_s']:.1f}, train "
              f"{o['train_s']:.1f}, eval {o['eval_s']:.1f}); SAELens {theirs}")
    print(f"  ours {sweep_result['ours_sweep_seconds']:.1f} s in all")
    for setup in raced(sweep_result):
        print(f"  SAELens {setup:9} {sweep_result[f'saelens_{setup}_sweep_seconds']:8.1f} s: ratio "
              f"{sweep_result[f'sweep_ratio_vs_{setup}']:.2f}")
    print(f"  headline (against the fastest SAELens set-up, {sweep_result['headline_setup']}): "
          f"{sweep_result['sweep_ratio_headline']:.2f}; checks {sweep_result['checks']}")


def raced(sweep_result: dict) -> list[str]:
    """The SAELens set-ups the sweep raced (streaming may have been skipped)."""
    return [setup for setup in SETUPS if f"sweep_ratio_vs_{setup}" in sweep_result]


def rounded(value):
    return round(value, 4) if isinstance(value, float) else value


def summary_json(bench: BenchConfig, machine: dict, loads: dict, sweep_result, step_result) -> dict:
    out = {"preset": bench.preset, "model": bench.preset_info.model_name, "hook": bench.preset_info.hook_name,
           "device": bench.device, "dtype": bench.dtype, "variant": bench.variant, "configs": bench.sweep_values,
           "d_sae": bench.d_sae, "batch_size": bench.batch_size, "tokens": bench.tokens, "epochs": bench.epochs,
           "sae_tokens_per_run": bench.sae_tokens, "lr": bench.lr, "saebench": "skipped on both sides",
           "date": datetime.date.today().isoformat(), "machine": machine, "loadavg": loads}
    if sweep_result:
        setups = raced(sweep_result)
        out.update({key: rounded(sweep_result[key]) for key in (
            "sweep_ratio_headline", "headline_setup", "ours_sweep_seconds", "ours_sweep_tokens_per_s",
            *(f"sweep_ratio_vs_{setup}" for setup in setups),
            *(f"saelens_{setup}_sweep_{kind}" for setup in setups for kind in ("seconds", "tokens_per_s")))})
        out["sweep_parts"] = sweep_parts(sweep_result)
        out["checks"] = sweep_result["checks"]
    if step_result:
        out["step_steps"] = step_result["steps"]
        for variant in ("topk", "relu"):
            pair = step_result[variant]
            out[f"step_ratio_{variant}_matched"] = rounded(pair["step_ratio"])
            out[f"step_ratio_{variant}_interleaved"] = rounded(pair["step_ratio_interleaved"])
            for side in ("ours", "saelens"):
                out[f"{side}_{variant}_steps_per_s"] = rounded(pair[f"{side}_steps_per_s"])
                out[f"{side}_{variant}_step_tokens_per_s"] = rounded(pair[f"{side}_steps_per_s"] * bench.batch_size)
            out[f"step_{variant}_values"] = {"ours": pair["ours_value"], "saelens": pair["saelens_value"]}
            out[f"step_{variant}_quality"] = {side: {k: rounded(v) for k, v in q.items()}
                                              for side, q in pair["quality"].items()}
            if "profile" in pair:
                out[f"step_{variant}_profile"] = {side: {k: rounded(v) for k, v in p.items()}
                                                  for side, p in pair["profile"].items()}
        out["saelens_l1_search"] = step_result["relu"].get("l1_search")
        peer = step_result["topk"]["dictionary_learning"]
        out["step_topk_dictionary_learning"] = {k: v if k != "quality" else {n: rounded(x) for n, x in v.items()}
                                                for k, v in peer.items() if k != "step_seconds"}
        out["peak"] = {k: rounded(v) for k, v in peak_shares(bench, step_result).items()}
    return out
