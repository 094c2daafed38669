"""Synthetic activations with known features: the ground-truth presets synth-cpu and synth-16k.

On a language model nobody knows the true features; here they are known. SAELens's sae_lens.synthetic (the
generator behind SynthSAEBench) draws sparse feature activations (Zipfian firing probabilities, a hierarchy of
mutually exclusive children, low-rank correlations, per-feature magnitudes) and maps them through a fixed
dictionary of unit vectors plus a bias. A run trains on those hidden vectors as it would on residual-stream
activations, and SAELens's eval_sae_on_synthetic_data scores the SAE against the true dictionary (GROUND_TRUTH).

- The synthetic model is built once from its documented config and seed, offline, and saved in the cache
  (cache_dir/synthetic/<preset>-<digest>/); a later run loads it. With synthetic_hub = true (config.toml) the
  published model is fetched from the hub instead, by `python -m sae_harness.check --prefetch`, and saved there.
- Samples are drawn batch by batch, each batch under its own seed (split seed and batch index), so that a split
  is the same set of vectors every time whatever else used the global generator (SAELens samples from it).
- The reference line: the true dictionary as an SAE (decoder and encoder both the true feature vectors, SAELens's
  init_sae_to_match_feature_dict; decoder bias the generator's bias; TopK at the true mean L0), scored by the same
  eval on the same held-out samples, kept beside the model as reference.json. Its mcc is 1; its F1 is what a linear
  encoder of the true dictionary reaches under superposition, not 1.
"""

import dataclasses
import hashlib
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import torch
from tqdm.auto import tqdm

from .activations import ActivationKey

log = logging.getLogger(__name__)
SAMPLE_BATCH = 8192          # vectors drawn per call of the generator
TRAIN_SEED, HELDOUT_SEED = 1, 2   # sample seeds of the splits; the model's own seed is in its config
MODELS_DIR = "synthetic"
REFERENCE_FILE = "reference.json"

GROUND_TRUTH = {
    "mcc": "mean |cos| between SAE decoder rows and true feature vectors under the best one-to-one matching "
           "(Hungarian); 1 = every true feature has its own latent",
    "uniqueness": "distinct true features that are some latent's best match, divided by the number of latents",
    "precision": "per latent, of the samples where it fires, the fraction where its best-matching true feature is "
                 "active; mean over latents",
    "recall": "per latent, of the samples where its best-matching true feature is active, the fraction where it "
              "fires; mean over latents",
    "f1": "per latent, the harmonic mean of that precision and recall; mean over latents",
    "accuracy": "per latent, the fraction of samples where firing agrees with its true feature being active",
    "explained_variance": "SAELens's R^2 of the reconstruction on the held-out samples",
    "shrinkage": "mean |x_hat| / |x| (1 = no shrinkage)",
    "sae_l0": "mean active latents per held-out sample",
    "true_l0": "mean active true features per held-out sample (the generator's, not the SAE's)",
    "dead_latents": "latents that never fire on the held-out samples",
}


def model_config(preset_name: str):
    """The SyntheticModelConfig of a synthetic preset: the SynthSAEBench-16k recipe, or it scaled down for a CPU."""
    from sae_lens.synthetic import (
        FoldedNormalMagnitudeConfig,
        HierarchyConfig,
        LinearMagnitudeConfig,
        LowRankCorrelationConfig,
        OrthogonalizationConfig,
        SyntheticModelConfig,
        ZipfianFiringProbabilityConfig,
    )

    # SynthSAEBench-16k: 16,384 features in 768 dimensions, Zipfian firing (exponent 0.5, 0.4 down to 5e-4), 128
    # hierarchy roots with 4 mutually exclusive children to depth 3, rank-25 correlations, magnitudes 5 to 4.
    sizes = {"synth-16k": dict(num_features=16_384, hidden_dim=768, roots=128, depth=3, rank=25),
             # A sixteenth of the features in a third of the dimensions: 25-35k samples/s on one core.
             "synth-cpu": dict(num_features=1024, hidden_dim=256, roots=16, depth=2, rank=8)}[preset_name]
    return SyntheticModelConfig(
        num_features=sizes["num_features"],
        hidden_dim=sizes["hidden_dim"],
        firing_probability=ZipfianFiringProbabilityConfig(exponent=0.5, max_prob=0.4, min_prob=5e-4),
        hierarchy=HierarchyConfig(total_root_nodes=sizes["roots"], branching_factor=4, max_depth=sizes["depth"],
                                  mutually_exclusive_portion=1.0, compensate_probabilities=True,
                                  scale_children_by_parent=True),
        orthogonalization=OrthogonalizationConfig(num_steps=100, lr=3e-4),
        correlation=LowRankCorrelationConfig(rank=sizes["rank"], correlation_scale=0.1),
        mean_firing_magnitudes=LinearMagnitudeConfig(start=5.0, end=4.0),
        std_firing_magnitudes=FoldedNormalMagnitudeConfig(mean=0.5, std=0.5),
        seed=42,
    )


def model_identity(preset, from_hub: bool) -> str:
    """What names a synthetic model in the cache and in activation keys: the preset and its config's digest, or
    the hub repository it came from (preset.hub_model, the published SynthSAEBench-16k for synth-16k)."""
    if from_hub:
        return f"{preset.name}-hub-{preset.hub_model.replace('/', '--')}"
    config = json.dumps(model_config(preset.name).to_dict(), sort_keys=True, default=str)
    return f"{preset.name}-{hashlib.sha256(config.encode()).hexdigest()[:12]}"


def model_dir(cache_dir: Path, preset, from_hub: bool) -> Path:
    return cache_dir / MODELS_DIR / model_identity(preset, from_hub)


def load_synthetic_model(preset, cache_dir: Path, device: str, from_hub: bool = False):
    """The preset's SyntheticModel from the cache, built (or, from_hub, fetched) and saved there first if missing;
    the save is written to a temporary folder and renamed, so a killed run leaves no half-saved model."""
    from sae_lens.synthetic import SyntheticModel

    folder = model_dir(cache_dir, preset, from_hub)
    if not folder.is_dir():
        if from_hub:
            log.info("Fetching %s from the Hugging Face hub", preset.hub_model)
            model = SyntheticModel.from_pretrained(preset.hub_model, device=device)
        else:
            # On the run's device: orthogonalising synth-16k's dictionary takes about an hour on a CPU.
            log.info("Building the synthetic model %s (once; it is kept in %s)", preset.name, folder)
            model = SyntheticModel(model_config(preset.name), device=device)
        folder.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}-"))
        model.save(staging)
        try:
            os.replace(staging, folder)
        except OSError:  # another run saved the same model first
            shutil.rmtree(staging, ignore_errors=True)
    return SyntheticModel.load_from_disk(folder, device=device)


def split_key(preset, split: str, n_samples: int, from_hub: bool) -> ActivationKey:
    """The activation-cache key of a split's samples: the model's identity, the split, its seed and size."""
    seed = TRAIN_SEED if split == "train" else HELDOUT_SEED
    return ActivationKey(model_identity(preset, from_hub), preset.hook_name, f"synthetic-seed-{seed}", split,
                         n_samples, 1, "torch.float32")


def sample_batches(model, seed: int, n_samples: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """(hidden vectors, true feature activations) in batches of SAMPLE_BATCH, batch i drawn under seed
    (seed, i): the same samples whatever else draws from torch's global generator in between."""
    from sae_lens.util import temporary_seed

    for index, start in enumerate(range(0, n_samples, SAMPLE_BATCH)):
        with temporary_seed(seed * 1_000_003 + index):
            hidden, features = model.sample_with_features(min(SAMPLE_BATCH, n_samples - start))
        yield hidden.float(), features.float()


class SyntheticSource:
    """The interface of activations.ActivationSource for synthetic samples, so that they are cached or streamed
    exactly like language-model activations (activations.cached_or_streamed)."""

    def __init__(self, model_loader, key: ActivationKey):
        self.model_loader, self.key = model_loader, key

    def batches(self, desc: str) -> Iterator[torch.Tensor]:
        seed = TRAIN_SEED if self.key.split == "train" else HELDOUT_SEED
        with tqdm(total=self.key.n_tokens, desc=desc.replace("LM", "synthetic"), unit="vec", unit_scale=True) as bar:
            for hidden, _ in sample_batches(self.model_loader(), seed, self.key.n_tokens):
                bar.update(len(hidden))
                yield hidden


class _HeldoutReplay:
    """What eval_sae_on_synthetic_data calls `activations_generator`: it hands back the held-out split's true
    feature activations, batch by batch, so that the ground-truth eval scores the same samples as the core
    metrics (SAELens would otherwise draw fresh ones from the global generator)."""

    def __init__(self, model, n_samples: int):
        self.batches = (features for _, features in sample_batches(model, HELDOUT_SEED, n_samples))

    def sample(self, batch_size: int) -> torch.Tensor:
        features = next(self.batches)
        if len(features) != batch_size:
            raise RuntimeError(f"the ground-truth eval asked for {batch_size} samples, not the held-out batch of "
                               f"{len(features)}: its batch_size must be SAMPLE_BATCH")
        return features


@torch.no_grad()
def ground_truth_scores(sae, model, n_samples: int, device: str) -> dict:
    """SAELens's eval_sae_on_synthetic_data on the held-out split, flattened under our names (GROUND_TRUTH).
    sae needs W_dec (d_sae, d_in), encode and decode on raw (unscaled) vectors."""
    from sae_lens.synthetic import eval_sae_on_synthetic_data

    result = eval_sae_on_synthetic_data(sae, model.feature_dict.to(device), _HeldoutReplay(model, n_samples),
                                        num_samples=n_samples, batch_size=SAMPLE_BATCH)
    scores = {name: float(value) for name, value in dataclasses.asdict(result).items() if name != "classification"}
    classification = result.classification
    scores.update(precision=classification.precision, recall=classification.recall, f1=classification.f1_score,
                  accuracy=classification.accuracy)
    return scores


@torch.no_grad()
def true_dictionary_sae(model):
    """The reference SAE: SAELens's TopK SAE whose encoder and decoder are the true feature vectors, whose decoder
    bias is the generator's bias, and whose k is the generator's mean L0 on the training split's first batch."""
    from sae_lens import TopKSAE, TopKSAEConfig
    from sae_lens.synthetic import init_sae_to_match_feature_dict

    _, features = next(sample_batches(model, TRAIN_SEED, SAMPLE_BATCH))
    k = max(1, round(float((features > 0).float().sum(dim=-1).mean())))
    cfg = model.cfg
    sae = TopKSAE(TopKSAEConfig(d_in=cfg.hidden_dim, d_sae=cfg.num_features, k=k, device=str(model.device)))
    init_sae_to_match_feature_dict(sae, model.feature_dict)
    # SAELens leaves W_dec a transposed (non-contiguous) copy, which safetensors refuses to save.
    sae.W_dec.data = sae.W_dec.data.contiguous()
    sae.b_dec.copy_(model.feature_dict.bias)
    return sae


def reference_scores(model, preset, cache_dir: Path, n_samples: int, from_hub: bool = False) -> dict:
    """The true dictionary's ground-truth scores on n_samples held-out samples, computed once per model and sample
    count and kept in the model's cache folder."""
    path = model_dir(cache_dir, preset, from_hub) / REFERENCE_FILE
    stored = json.loads(path.read_text()) if path.is_file() else {}
    if str(n_samples) not in stored:
        sae = true_dictionary_sae(model)
        stored[str(n_samples)] = {"k": sae.cfg.k, **ground_truth_scores(sae, model, n_samples, str(model.device))}
        staging = path.with_suffix(f".partial-{os.getpid()}")
        staging.write_text(json.dumps(stored, indent=2))
        os.replace(staging, path)
    return stored[str(n_samples)]
