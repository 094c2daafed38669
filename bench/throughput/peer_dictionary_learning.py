"""dictionary_learning (on PyPI as dictionary-learning 0.1.0) as a third peer in the TopK step pair, when installed.

It is not in the template's environment: with the CPU torch held (constraints-cpu.txt) it resolves beside the
template's packages without changing torch, transformers or sae_lens, but adds 17 packages (nnsight 0.3.7,
diffusers, numba, llvmlite, umap-learn, torchvision, ...), and its package imports nnsight at import time. Without
the constraint pip would replace the CPU torch by a CUDA build. Install it where you want the third figure:

    pip install dictionary-learning==0.1.0 -c templates/sae_variants/constraints-cpu.txt

or into a folder of its own (pip install --target DIR ...) put on PYTHONPATH for the benchmark's run only.
"""

import time

import torch

from sae_topk import DEAD_AFTER_TOKENS

from .config import BenchConfig
from .steps import as_cached_activations, precision, quality, synchronize

try:
    from dictionary_learning.trainers.top_k import TopKTrainer
except ImportError:  # the peer is optional: the JSON then says how to add it
    TopKTrainer = None

MISSING = ("not installed: pip install dictionary-learning==0.1.0 -c templates/sae_variants/constraints-cpu.txt "
           "(see bench/throughput/peer_dictionary_learning.py)")


def topk_run(bench: BenchConfig, acts: torch.Tensor, k: int):
    """Seconds for dictionary_learning's TopKTrainer over the same batches in the same order as the other two sides,
    at the same lr, warmup and final 20% decay, and the same dead-feature window in tokens (its default is 10M
    tokens); its AuxK picks activation_dim // 2 dead latents, as ours does. Returns the seconds and the SAE."""
    steps = len(acts) // bench.batch_size
    warmup, decay = bench.schedule(steps)
    synchronize(bench)
    started = time.perf_counter()
    trainer = TopKTrainer(steps=steps, activation_dim=bench.preset_info.d_model, dict_size=bench.d_sae, k=k,
                          layer=bench.preset_info.layer, lm_name=bench.preset_info.model_name, lr=bench.lr,
                          warmup_steps=warmup, decay_start=steps - decay if decay else None, seed=bench.seed,
                          device=bench.device)
    trainer.dead_feature_threshold = DEAD_AFTER_TOKENS
    batches = as_cached_activations(acts).epoch(bench.batch_size, torch.Generator().manual_seed(bench.seed))
    with precision(bench):
        for step, x in enumerate(batches):
            trainer.update(step, x)
    synchronize(bench)
    return time.perf_counter() - started, trainer.ae


def topk_side(bench: BenchConfig, acts: torch.Tensor, eval_x: torch.Tensor, k: int, ours_best_s: float) -> dict:
    """The third side of the TopK pair: best of step_repeats runs after one warm-up, and its quality; or why not."""
    if TopKTrainer is None:
        return {"status": MISSING}
    topk_run(bench, acts[:3 * bench.batch_size], k)
    seconds = [topk_run(bench, acts, k) for _ in range(bench.step_repeats)]
    best, ae = min(seconds, key=lambda run: run[0])
    steps = len(acts) // bench.batch_size
    return {"status": "measured", "steps_per_s": steps / best, "step_seconds": [s for s, _ in seconds],
            "step_ratio": best / ours_best_s, "quality": quality(ae, eval_x)}
