"""Evaluation of a trained SAE: our own reconstruction metrics and SAEBench's core eval on held-out text, and
SAEBench's interpretability evals (sparse probing, TPP, absorption, meta_structure; SCR where the hub is reachable).
On a synthetic preset the true features are known: the ground_truth group scores the SAE against them, and the
language-model evals are recorded as not applicable, with the reason.

Explained variance is computed here as 1 - sum((x - x_hat)^2) / sum((x - mean(x))^2) over held-out tokens.
SAEBench 0.6.0's core explained_variance disagreed with that formula on this model (1.0015 for an SAE whose
true value is 0.68), so its figure is kept only under its own name, saebench_explained_variance.
"""

import dataclasses
import logging
import time
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from .corpus import heldout_texts
from .sae_base import SAEBase
from .synthetic import GROUND_TRUTH, ground_truth_scores, reference_scores

log = logging.getLogger(__name__)

FORMULAS = {
    "explained_variance": "1 - sum((x - x_hat)^2) / sum((x - mean(x))^2), summed over held-out tokens and dimensions",
    "mse": "sum((x - x_hat)^2) / (tokens * d_in): per-element squared error on raw activations",
    "mse_per_token": "sum((x - x_hat)^2) / tokens: squared error summed over dimensions (SAEBench's 'mse')",
    "cossim": "mean over tokens of cos(x, x_hat)",
    "l0": "mean over tokens of the number of features > 0",
    "l1": "mean over tokens of the sum of feature activations (raw activation scale)",
    "l2_ratio": "mean over tokens of |x_hat| / |x|",
    "dead_fraction": "fraction of features that never fire on the held-out tokens",
    "dense_fraction": "fraction of features that fire on more than 10% of held-out tokens",
    "ce_loss_score": "SAEBench: (CE_zero_ablation - CE_with_sae) / (CE_zero_ablation - CE_clean)",
    "kl_div_score": "SAEBench: (KL_zero_ablation - KL_with_sae) / KL_zero_ablation",
}
INTERPRETABILITY_EVALS = ("sparse_probing", "tpp", "absorption", "meta_structure", "scr", "unlearning")
NOT_APPLICABLE = ("not applicable: preset {preset} has synthetic activations and no language model, so there is no "
                  "{what}")


@dataclass
class EvalGroup:
    """One evaluation's outcome: a flat block of numbers, or the reason it was skipped."""

    status: str
    means: dict = field(default_factory=dict)
    reason: str = ""
    details: dict = field(default_factory=dict)

    def to_json(self) -> dict:
        out = {"status": self.status, "means": self.means}
        if self.reason:
            out["reason"] = self.reason
        out.update(self.details)
        return out


@torch.no_grad()
def heldout_metrics(sae: SAEBase, acts: torch.Tensor, device: str, batch: int = 4096):
    """Reconstruction and sparsity on held-out activations; also the per-feature firing frequencies."""
    mean = acts.mean(dim=0).to(device)
    sums = dict(sse=0.0, sst=0.0, cossim=0.0, l0=0.0, l1=0.0, l2_ratio=0.0)
    fired = torch.zeros(sae.cfg.d_sae, dtype=torch.float64, device=device)
    for chunk in acts.split(batch):
        x = chunk.to(device, sae.W_dec.dtype)
        features = sae.encode(x)
        x_hat = sae.decode(features)
        active = features > 0
        sums["sse"] += (x - x_hat).pow(2).sum().item()
        sums["sst"] += (x - mean).pow(2).sum().item()
        sums["cossim"] += F.cosine_similarity(x, x_hat, dim=-1).sum().item()
        sums["l0"] += active.sum().item()
        sums["l1"] += features.abs().sum().item()
        sums["l2_ratio"] += (x_hat.norm(dim=-1) / x.norm(dim=-1).clamp_min(1e-8)).sum().item()
        fired += active.sum(dim=0)
    n, d_in = acts.shape
    frequencies = (fired / n).cpu().numpy()
    metrics = {
        "explained_variance": 1.0 - sums["sse"] / sums["sst"],
        "mse": sums["sse"] / (n * d_in),
        "mse_per_token": sums["sse"] / n,
        "cossim": sums["cossim"] / n,
        "l0": sums["l0"] / n,
        "l1": sums["l1"] / n,
        "l2_ratio": sums["l2_ratio"] / n,
        "dead_fraction": float(np.mean(frequencies == 0)),
        "dense_fraction": float(np.mean(frequencies > 0.1)),
        "heldout_tokens": n,
    }
    return metrics, frequencies


def saebench_core(sae: SAEBase, workspace) -> tuple[dict, dict]:
    """SAEBench's core eval on held-out text: CE and KL scores with the SAE spliced in, and its own metrics.

    Returns (flat means, full SAEBench output). BOS is left unreconstructed, as in training.
    """
    from datasets import Dataset
    from sae_bench.evals.core.eval_config import CoreEvalConfig
    from sae_bench.evals.core.main import run_evals
    from sae_bench.sae_bench_utils.general_utils import load_and_format_sae
    from sae_lens import ActivationsStore

    config, device, model = workspace.config, workspace.device, workspace.model
    context = config.preset_value("context_length", device)
    eval_config = CoreEvalConfig(
        model_name=workspace.preset.model_name,
        llm_dtype=str(workspace.preset.torch_dtype(device)).removeprefix("torch."),
        batch_size_prompts=config.preset_value("eval_batch_prompts", device),
        n_eval_reconstruction_batches=config.preset_value("eval_reconstruction_batches", device),
        n_eval_sparsity_variance_batches=config.preset_value("eval_sparsity_batches", device),
        context_size=context,
        compute_kl=True,
        compute_ce_loss=True,
        compute_l2_norms=True,
        compute_sparsity_metrics=True,
        compute_variance_metrics=True,
        exclude_special_tokens_from_reconstruction=True,
    )
    _, sae, _ = load_and_format_sae("custom", sae, device)
    texts = heldout_texts(workspace.preset.corpus, n_docs=256, cache_dir=workspace.cache_dir)
    store = ActivationsStore.from_sae(
        model, sae, dataset=Dataset.from_dict({"text": texts}), context_size=context, streaming=False,
        store_batch_size_prompts=eval_config.batch_size_prompts, device=device,
    )
    tokenizer = model.tokenizer
    metrics, _ = run_evals(
        sae, store, model, eval_config,
        ignore_tokens={tokenizer.pad_token_id, tokenizer.eos_token_id, tokenizer.bos_token_id},
        verbose=True,
    )
    flat = {}
    for group in ("model_behavior_preservation", "model_performance_preservation", "shrinkage"):
        flat.update(metrics.get(group, {}))
    # SAEBench's own reconstruction and sparsity figures, kept under their own names beside ours.
    for name, value in metrics.get("reconstruction_quality", {}).items():
        flat[f"saebench_{name}"] = value
    for name, value in metrics.get("sparsity", {}).items():
        flat[f"saebench_{name}"] = value
    return flat, {"eval_config": dataclasses.asdict(eval_config), "metrics": metrics}


def core_group(sae: SAEBase, workspace) -> tuple[EvalGroup, np.ndarray]:
    started = time.perf_counter()
    means, frequencies = heldout_metrics(sae, workspace.heldout, workspace.device)
    details = {"formulas": FORMULAS}
    if workspace.preset.synthetic:
        details["saebench_skipped"] = NOT_APPLICABLE.format(
            preset=workspace.preset.name, what="next-token loss for SAEBench's CE and KL scores")
    elif workspace.config.run_saebench:
        saebench_means, saebench_full = saebench_core(sae, workspace)
        means.update(saebench_means)
        details["saebench"] = saebench_full
    else:
        details["saebench_skipped"] = "run_saebench = false in the configuration"
    means["eval_seconds"] = time.perf_counter() - started
    return EvalGroup("ok", means, details=details), frequencies


def ground_truth_group(sae: SAEBase, workspace) -> EvalGroup:
    """SAELens's synthetic-data eval against the true features, on the held-out samples the core metrics use, and
    the same eval of the true dictionary as an SAE (reference_*: the ceiling an idea is measured from). Synthetic
    presets only (results.py leaves the group out on a language model, whose true features nobody knows)."""
    preset = workspace.preset
    started = time.perf_counter()
    n_samples, hub = len(workspace.heldout), workspace.config.synthetic_hub
    means = ground_truth_scores(sae, workspace.model, n_samples, workspace.device)
    reference = reference_scores(workspace.model, preset, workspace.cache_dir, n_samples, hub)
    means.update({f"reference_{name}": value for name, value in reference.items()})
    means["eval_seconds"] = time.perf_counter() - started
    return EvalGroup("ok", means, details={"definitions": GROUND_TRUTH, "reference": (
        "the true dictionary as a TopK SAE (encoder and decoder the true feature vectors, k = reference_k, the "
        "generator's mean L0) scored by the same eval on the same held-out samples")})


def interpretability_groups(sae: SAEBase, workspace, run_name: str) -> dict[str, EvalGroup]:
    """SAEBench's interpretability evals, each its own group: sparse probing, TPP, absorption and meta_structure on
    every preset (offline data on the offline one), SCR where its hub data exists.

    An exception inside one eval becomes that group's failure with its reason: the run keeps every other result.
    run_name makes the SAE's name unique to its run (SAEBench caches some results by SAE name)."""
    if workspace.preset.synthetic:
        reason = NOT_APPLICABLE.format(preset=workspace.preset.name, what="text for SAEBench's {} eval")
        return {name: EvalGroup("skipped", reason=reason.format(name)) for name in INTERPRETABILITY_EVALS}
    if not workspace.config.run_interp_evals:
        reason = "run_interp_evals = false in the configuration"
        return {name: EvalGroup("skipped", reason=reason) for name in INTERPRETABILITY_EVALS}
    return {name: _guarded(name, evaluate, sae, workspace, run_name) for name, evaluate in _evals(workspace).items()}


def _evals(workspace) -> dict:
    from .absorption import absorption_group
    from .meta_structure import meta_structure_group
    from .probing import scr_means, sparse_probing_means, tpp_means

    preset = workspace.preset

    def means_group(compute):
        def evaluate(sae, ws, run_name):
            means, details = _json_safe(compute(sae, ws))
            return EvalGroup("ok", means, details=details)
        return evaluate

    evals = {
        "sparse_probing": means_group(sparse_probing_means),
        "tpp": means_group(tpp_means),
        "absorption": absorption_group,
        "meta_structure": lambda sae, ws, run_name: meta_structure_group(sae, ws),
        "scr": means_group(scr_means),
        # SAEBench's unlearning eval refuses models that are not instruction-tuned Gemma-2; no preset is one.
        "unlearning": _skip("SAEBench's unlearning eval needs an instruction-tuned Gemma-2 model (it raises "
                            "'Model should be instruct tuned' otherwise); no preset uses one"),
    }
    if not preset.hub_evals:
        reason = (f"preset {preset.name} runs offline; SAEBench's {{}} eval needs its datasets from the Hugging Face "
                  "hub (use a hub preset on a machine with network access)")
        evals["scr"] = _skip(reason.format("SCR (bias_in_bios)"))
    return evals


def _skip(reason: str):
    return lambda sae, workspace, run_name: EvalGroup("skipped", reason=reason)


def _guarded(name: str, evaluate, sae, workspace, run_name: str) -> EvalGroup:
    """One eval, timed; any exception is its failure with the reason. Upstream evals switch autograd off globally
    (SAEBench's TPP ends with torch.set_grad_enabled(False)): the mode is restored, or a layer sweep's next SAE
    would train without gradients."""
    started = time.perf_counter()
    grad_mode = torch.is_grad_enabled()
    try:
        group = evaluate(sae, workspace, run_name)
    except Exception as err:  # noqa: BLE001 - an eval's failure is recorded, never fatal to the run
        log.exception("%s eval failed", name)
        group = EvalGroup("failed", reason=f"{type(err).__name__}: {err}"[:500] or type(err).__name__)
    finally:
        torch.set_grad_enabled(grad_mode)
    group.details["seconds"] = time.perf_counter() - started
    return group


def _json_safe(pair: tuple[dict, dict]) -> tuple[dict, dict]:
    """SAEBench's numbers may be numpy scalars and its keys ints: plain JSON types, NaN kept for results.py."""
    import json

    means, details = pair
    return ({name: float(value) for name, value in means.items()},
            json.loads(json.dumps(details, default=float)))
