"""Training throughput of the sae_variants template against SAELens 6.x at its best (issues 7 and 21).

    templates/sae_variants/.venv/bin/python bench/train_throughput.py            # default sizes (~70 min, 2 cores)
    templates/sae_variants/.venv/bin/python bench/train_throughput.py --quick    # tiny sizes, a smoke test
    templates/sae_variants/.venv/bin/python bench/train_throughput.py --preset pythia-70m-deduped \
        --device cuda --dtype bfloat16                                           # the GPU configuration (hub)

Both sides run in this one process and run, on the same model (the preset's, loaded with sae_harness/lm.py), hook,
SAE width, batch size, token count and device. Two comparisons (the code is in bench/throughput/, one module per
concern):

1. The sweep (throughput/sweep.py): the research loop's workload end to end, five configurations of one preset
   (L1 coefficients, or TopK k) trained one after another, activation generation included. Each run steps on
   epochs * tokens activations on every side.
   - Ours (throughput/ours.py): five `python experiment.py --out_dir=run_i` subprocesses, as the launcher runs
     them, each from its own copy of the template whose run_settings() holds the configuration, and one fresh
     activation cache: the first run computes `tokens` activations, every run passes over them `epochs` times.
   - SAELens (throughput/saelens_runs.py), three set-ups, each paying the imports, model load and token rows once:
     streaming (LanguageModelSAETrainingRunner per configuration, epochs * tokens fresh activations each; the
     set-up of the first measurements, the weakest), cached (CacheActivationsRunner once over the rows ours
     computes, then a runner per configuration reading that cache, passing over it about `epochs` times, as
     ours does), and multi (MultiSAETrainingRunner, all five from one stream of epochs * tokens activations).
     The headline is against the fastest of the three.
   - The runs are interleaved (ours 1, streaming 1, cached 1, ours 2, ...) so that load from other processes falls
     on all alike. SAEBench is skipped everywhere; ours still computes its held-out metrics and writes its
     SAELens export, so ours does more.
2. The steps (throughput/steps.py): whole training runs on one shared tensor of activations at matched sparsity,
   TopK at the same k and dead-feature window, ReLU with SAELens's L1 coefficient searched so that its final L0
   is within 20% of ours'; explained variance, L0 and dead fraction beside the speed; on a GPU, the share of its
   bf16 peak from the step's FLOPs (throughput/report.py).

Equality of inputs: every side reads the same token rows (sae_harness.corpus.token_rows, checked as a prefix), leaves
out BOS and padding, and SAELens's activations of the first rows are compared with the template's cache.

The last line printed is one JSON object with all figures.
"""

import json
import sys
import time
import traceback
from dataclasses import asdict

from throughput.config import parse_args
from throughput.report import load_average, machine_info, print_steps, print_sweep, summary_json
from throughput.snapshot import IMPORT_STARTED, PRE_ARGS, TEMPLATE_DIR, WORK, template_source
from throughput.steps import step_benchmark
from throughput.sweep import sweep

IMPORT_SECONDS = time.perf_counter() - IMPORT_STARTED


def main(argv=None) -> int:
    bench = parse_args(argv)
    machine = machine_info()
    source = template_source(PRE_ARGS.template_ref)
    loads = {"start": load_average()}
    print(f"Machine: {machine}; load average before starting {loads['start']} "
          f"(above 0, other processes share the {machine['cores']} cores)")
    print(f"Template: {source}, copied to {TEMPLATE_DIR}")
    sweep_result = cache_dir = step_result = None
    status = 0

    def save():
        summary = summary_json(bench, machine, loads, sweep_result, step_result)
        summary["template"] = source
        if bench.json_out:
            bench.json_out.write_text(json.dumps({"bench": asdict(bench), "summary": summary, "sweep": sweep_result,
                                                  "steps": step_result}, indent=2, default=str))
        return summary

    if not bench.skip_sweep:
        sweep_result, cache_dir = sweep(bench, WORK / "sweep", IMPORT_SECONDS)
        loads["after_sweep"] = load_average()
        print_sweep(bench, sweep_result)
        save()  # kept even if the step benchmark fails
    if not bench.skip_steps:
        try:
            step_result = step_benchmark(bench, cache_dir)
        except Exception:  # report what was measured, and fail the command
            traceback.print_exc()
            status = 1
    loads["end"] = load_average()
    if bench.keep:
        print(f"Kept {WORK}")
    if step_result:
        print_steps(bench, step_result)
    print(json.dumps(save()))
    return status


if __name__ == "__main__":
    sys.exit(main())
