"""SAEBench's meta_structure eval: how much of the SAE's decoder a small BatchTopK "meta-SAE" trained on its rows
explains (Bussmann et al. 2025, appendix D.1). It needs only W_dec: no model, no data.

Called through SAEBench 0.6.0's own `meta_structure.main.run_eval_single_sae`, adapted at the edge:
- its defaults (1,500 steps of 1,024 rows) are sized for a GPU: SIZES gives the CPU fewer steps;
- it autocasts to bfloat16 by default, which on the CPU is slow and changes the numbers: on only on CUDA;
- it seeds nothing outside its command line (`_set_random_seed` runs only under __main__) and draws its meta-SAE
  and its batches from torch's global generator: the eval seeds it and puts the caller's state back afterwards;
- it trains with gradients, so it runs under torch.enable_grad() whatever the caller's mode.
"""

import json
import time
from dataclasses import dataclass

import torch

from .absorption import EVAL_SEED, seeded_generators
from .evaluation import EvalGroup
from .sae_base import SAEBase


@dataclass(frozen=True)
class MetaStructureSizes:
    train_steps: int
    """Meta-SAE training steps (SAEBench: 1,500)."""
    train_batch_size: int
    """Decoder rows per step, drawn with replacement (SAEBench: 1,024)."""


SIZES = {
    "cpu": MetaStructureSizes(train_steps=300, train_batch_size=1024),
    "cuda": MetaStructureSizes(train_steps=1500, train_batch_size=1024),
}


def meta_structure_group(sae: SAEBase, workspace, sizes: MetaStructureSizes | None = None) -> EvalGroup:
    """SAEBench's meta_structure metrics for one SAE, flattened as meta_structure.<name>; its output in details."""
    from sae_bench.evals.meta_structure.eval_config import MetaStructureEvalConfig
    from sae_bench.evals.meta_structure.main import run_eval_single_sae
    from sae_bench.sae_bench_utils.general_utils import load_and_format_sae

    started = time.perf_counter()
    device = workspace.device
    sizes = sizes or SIZES["cuda" if device.startswith("cuda") else "cpu"]
    config = MetaStructureEvalConfig(
        random_seed=EVAL_SEED,  # the meta-SAE is part of the instrument: the same for every run
        train_steps=sizes.train_steps,
        train_batch_size=sizes.train_batch_size,
        autocast=device.startswith("cuda"),
        # run_eval_single_sae moves the SAE to this dtype in place: keep the SAE's own.
        dtype=str(sae.W_dec.dtype).removeprefix("torch."),
    )
    _, sae, _ = load_and_format_sae("custom", sae, device)
    with seeded_generators(config.random_seed), torch.enable_grad():
        output = run_eval_single_sae("custom", "custom_sae", sae, config, device)
    full = json.loads(output.to_json())
    means = {f"meta_structure.{name}": value
             for name, value in full["eval_result_metrics"]["meta_structure"].items()}
    return EvalGroup("ok", means, details={"saebench": full, "eval_seconds": time.perf_counter() - started})
