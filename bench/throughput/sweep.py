"""The sweep: five configurations trained one after another, activation generation included; ours against SAELens
in three set-ups (streaming, cached, multi-SAE), interleaved so that load from other processes falls on all alike."""

import time
from pathlib import Path

import numpy as np
import torch
from datasets import Dataset
from sae_lens.training.activations_store import ActivationsStore

from sae_harness.config import ConfigError
from sae_harness.lm import load_model

from .config import KNOB, BenchConfig
from .ours import configured_template, fresh_cache_dir, ours_activation_file, run_ours
from .saelens_runs import (
    cache_activations,
    check_token_prefix,
    run_saelens,
    run_saelens_multi,
    saelens_runner_config,
    saelens_token_rows,
)


def load_lm(bench: BenchConfig, cache_dir: Path):
    """The preset's language model, or a stop that names the flag when it cannot be had here (the hub offline)."""
    try:
        return load_model(bench.preset_info, bench.device, cache_dir)
    except ConfigError as err:
        raise SystemExit(f"bench: --preset {bench.preset} cannot run here: {err} The GPU configuration needs the "
                         f"Hugging Face hub (model {bench.preset_info.model_name}, corpus {bench.preset_info.corpus}); "
                         "run it where the hub is reachable, or leave --preset out for the offline "
                         "gemma-3-270m.") from None


def sweep(bench: BenchConfig, root: Path, import_seconds: float) -> tuple[dict, Path]:
    for name in ("ours", "saelens", "logs"):
        (root / name).mkdir(parents=True)
    cache_dir = fresh_cache_dir(root)
    context = bench.preset_info.context_length

    t0 = time.perf_counter()
    model = load_lm(bench, cache_dir)
    model_load_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    rows = saelens_token_rows(bench, model.tokenizer, context)
    dataset = Dataset.from_dict({"tokens": rows.tolist()})
    dataset_s = time.perf_counter() - t0
    print(f"SAELens side: model loaded in {model_load_s:.1f} s, {len(rows)} token rows built in {dataset_s:.1f} s")

    templates = [configured_template(bench, value, root / "templates" / f"run_{i}")
                 for i, value in enumerate(bench.sweep_values, start=1)]
    ours_runs, runs = [], {"streaming": [], "cached": []}
    cache_pass = None
    saelens_cache = root / "saelens" / "activation_cache"
    for i, (value, template) in enumerate(zip(bench.sweep_values, templates), start=1):
        ours_runs.append(run_ours(bench, value, template, cache_dir, root / "ours" / f"run_{i}", root / "logs"))
        print(f"  ours    run_{i} ({value}): {ours_runs[-1]['wall_s']:.1f} s")
        if "streaming" in bench.setups:
            runs["streaming"].append(run_saelens(bench, value, model, dataset, root / "saelens" / f"run_{i}",
                                                 context))
            print(f"  SAELens streaming run_{i} ({value}): {runs['streaming'][-1]['wall_s']:.1f} s")
        if cache_pass is None:
            cache_pass = cache_activations(bench, model, rows, saelens_cache, context)
            print(f"  SAELens CacheActivationsRunner: {cache_pass['wall_s']:.1f} s for {cache_pass['rows']} rows")
        runs["cached"].append(run_saelens(bench, value, model, dataset, root / "saelens" / f"cached_{i}", context,
                                          cached=saelens_cache))
        print(f"  SAELens cached run_{i} ({value}): {runs['cached'][-1]['wall_s']:.1f} s")
    multi = run_saelens_multi(bench, model, dataset, root / "saelens" / "multi", context)
    print(f"  SAELens MultiSAETrainingRunner, all {len(bench.sweep_values)} at once: {multi['wall_s']:.1f} s")

    # Every SAELens set-up pays the imports, the model load and the token rows once, as ours pays them per run.
    fixed = {"imports": import_seconds, "model_load": model_load_s, "token_rows": dataset_s}
    once = sum(fixed.values())
    totals = {"streaming": once + sum(r["wall_s"] for r in runs["streaming"]),
              "cached": once + cache_pass["wall_s"] + sum(r["wall_s"] for r in runs["cached"]),
              "multi": once + multi["wall_s"]}
    totals = {setup: totals[setup] for setup in bench.setups}
    ours_total = sum(r["wall_s"] for r in ours_runs)
    sae_tokens = bench.sae_tokens * len(bench.sweep_values)
    fastest = min(totals, key=totals.get)
    result = {
        "ours_runs": ours_runs,
        "saelens_runs": runs["streaming"],
        "saelens_cached_runs": runs["cached"],
        "saelens_cache_pass": cache_pass,
        "saelens_multi": multi,
        "saelens_fixed_s": fixed,
        "ours_sweep_seconds": ours_total,
        "ours_sweep_tokens_per_s": sae_tokens / ours_total,
        "headline_setup": fastest,
        "sweep_ratio_headline": totals[fastest] / ours_total,
    }
    for setup in totals:
        result[f"saelens_{setup}_sweep_seconds"] = totals[setup]
        result[f"saelens_{setup}_sweep_tokens_per_s"] = sae_tokens / totals[setup]
        result[f"sweep_ratio_vs_{setup}"] = totals[setup] / ours_total
    result["checks"] = {
        "ours_tokens_per_run": [r["training_tokens"] for r in ours_runs],
        # What each of ours' runs recorded as its KNOB (run_ours() has already checked every field it sets).
        "ours_recorded_values": [r["settings"][KNOB[bench.variant]] for r in ours_runs],
        "token_rows_prefix_equal": check_token_prefix(bench, model.tokenizer, context, rows),
        "activation_max_abs_diff": compare_first_activations(bench, model, dataset, cache_dir, context),
        # SAELens's cache holds at least ours' text tokens (whole LM batches of the same rows).
        "saelens_cache_text_tokens": cache_pass["text_tokens"],
    }
    del model
    return result, cache_dir


@torch.no_grad()
def compare_first_activations(bench, model, dataset, cache_dir: Path, context: int) -> float:
    """Largest difference between SAELens's activations of the first LM batch and the template's cache."""
    cfg = saelens_runner_config(bench, bench.sweep_values[0], cache_dir / "unused", model.tokenizer, context)
    store = ActivationsStore.from_config(model, cfg, override_dataset=dataset)
    theirs = store.get_filtered_llm_batch().cpu()
    ours_file = ours_activation_file(cache_dir, "train", bench.tokens)
    ours = torch.from_numpy(np.load(ours_file, mmap_mode="r")[:len(theirs)].copy()).float()
    return float((theirs - ours).abs().max())


def sweep_parts(sweep_result: dict) -> dict:
    """Where the sweep's seconds went, per side (means over runs; ours' first run computes the activations)."""
    ours = sweep_result["ours_runs"]

    def mean(values: list) -> float:
        return round(float(np.mean(values or [0])), 1)

    parts = {
        "ours_first_run_s": round(ours[0]["wall_s"], 1),
        "ours_later_runs_mean_s": mean([r["wall_s"] for r in ours[1:]]),
        "ours_outside_main_mean_s": mean([r["wall_s"] - r["in_process_s"] for r in ours]),
        "ours_setup_later_runs_mean_s": mean([r["setup_s"] for r in ours[1:]]),
        "ours_train_mean_s": mean([r["train_s"] for r in ours]),
        "saelens_streaming_run_mean_s": mean([r["wall_s"] for r in sweep_result["saelens_runs"]]),
        "saelens_streaming_lm_mean_s": mean([r["lm_s"] for r in sweep_result["saelens_runs"]]),
        "saelens_cache_pass_s": round(sweep_result["saelens_cache_pass"]["wall_s"], 1),
        "saelens_cached_run_mean_s": mean([r["wall_s"] for r in sweep_result["saelens_cached_runs"]]),
        "saelens_cached_read_mean_s": mean([r["lm_s"] for r in sweep_result["saelens_cached_runs"]]),
        "saelens_multi_s": round(sweep_result["saelens_multi"]["wall_s"], 1),
        "saelens_once_s": round(sum(sweep_result["saelens_fixed_s"].values()), 1),
    }
    if not sweep_result["saelens_runs"]:  # --skip-streaming
        parts = {name: value for name, value in parts.items() if not name.startswith("saelens_streaming_")}
    return parts
