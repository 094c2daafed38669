"""Everything a run needs before training: device, model, training and held-out activations, normalisation.

The model is the language model, or on a synthetic preset the synthetic model whose samples are the activations
(sae_harness/synthetic.py); either way its activations are cached once and read back by later runs."""

import dataclasses
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from .activations import ActivationKey, ActivationSource, cache_path, cached_or_streamed
from .config import ExperimentConfig
from .lm import load_model, load_tokenizer
from .presets import Preset
from .sae_base import HookSpec, SAEBase
from .synthetic import SyntheticSource, load_synthetic_model, split_key

log = logging.getLogger(__name__)
NORM_SAMPLE_TOKENS = 20_000


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "sae_variants"


@dataclass
class Workspace:
    config: ExperimentConfig
    preset: Preset
    device: str
    cache_dir: Path
    loaded_model: object | None
    """The language model (a SyntheticModel on a synthetic preset), or None until a step needs it (see model)."""
    train: object
    """CachedActivations or StreamedActivations of the training split."""
    heldout: torch.Tensor
    """Held-out activations (tokens, d_model), never trained on."""
    scale: float
    """Training inputs are scale * x, so that their mean norm is sqrt(d_model); folded back after training."""
    setup_seconds: float
    loaded_tokenizer: object | None = None
    """The tokenizer alone, when a step needed it while the model was not loaded (see tokenizer)."""
    training_notes: dict = field(default_factory=dict)
    """Facts about why this run was made, copied into final_info.json's training group (baseline.py records a
    frontier point's knob and scale here)."""

    @property
    def model(self):
        """The language model, loaded on first use: a run whose activations are all cached needs it only for the
        evaluations that run it (SAEBench), so runs 2..n of an idea skip the load when those are off."""
        if self.loaded_model is None:
            self.loaded_model = (
                load_synthetic_model(self.preset, self.cache_dir, self.device, self.config.synthetic_hub)
                if self.preset.synthetic else load_model(self.preset, self.device, self.cache_dir))
        return self.loaded_model

    @property
    def tokenizer(self):
        """The language model's tokenizer: the loaded model's, or the tokenizer alone, so that a run whose
        activations are cached shows held-out text without loading the model (about 15 s on the CPU)."""
        if self.loaded_model is not None:
            return self.loaded_model.tokenizer
        if self.loaded_tokenizer is None:
            self.loaded_tokenizer = load_tokenizer(self.preset, self.cache_dir)
        return self.loaded_tokenizer

    @property
    def hook(self) -> HookSpec:
        return HookSpec(self.preset.model_name, self.preset.layer, self.preset.hook_name)

    @classmethod
    def prepare(cls, config: ExperimentConfig) -> "Workspace":
        started = time.perf_counter()
        preset = config.preset_spec
        device = config.resolved_device()
        cache_dir = Path(config.cache_dir) if config.cache_dir else default_cache_dir()
        sizes = {"train": config.training_tokens, "heldout": config.heldout_tokens}
        workspace = cls(config, preset, device, cache_dir, None, None, None, 1.0, 0.0)
        if preset.synthetic:
            sources = {split: SyntheticSource(lambda: workspace.model,
                                              split_key(preset, split, n, config.synthetic_hub))
                       for split, n in sizes.items()}
        else:
            context = config.preset_value("context_length", device)
            lm_batch = config.preset_value("lm_batch_prompts", device)
            keys = {split: ActivationKey(preset.model_name, preset.hook_name, preset.corpus, split, n, context,
                                         str(preset.torch_dtype(device)))
                    for split, n in sizes.items()}
            if not all(cache_path(cache_dir, key).exists() for key in keys.values()):
                workspace.loaded_model = load_model(preset, device, cache_dir)
            sources = {split: ActivationSource(workspace.loaded_model, key, preset.layer, lm_batch, cache_dir)
                       for split, key in keys.items()}
        workspace.train = cached_or_streamed(sources["train"], cache_dir, config.cache_max_gb, preset.d_model)
        workspace.heldout = cached_or_streamed(sources["heldout"], cache_dir, float("inf"), preset.d_model).all()
        workspace.scale = activation_scale(workspace.train, config.seed)
        workspace.setup_seconds = time.perf_counter() - started
        return workspace

    def for_seed(self, seed: int) -> "Workspace":
        """This workspace as a run with config.seed = seed prepares it (the same activations and model; the scale and
        the decoder-bias sample drawn with that seed), so that baseline.py's seed s is `SAE_SEED=s experiment.py`.
        Load the model first (workspace.model) when runs will need it: each copy would load its own."""
        return dataclasses.replace(self, config=dataclasses.replace(self.config, seed=seed),
                                   scale=activation_scale(self.train, seed))

    @torch.no_grad()
    def initialise_decoder_bias(self, sae: SAEBase):
        """Start b_dec at the mean activation: most of the residual's norm is one shared direction."""
        generator = torch.Generator().manual_seed(self.config.seed + 1)
        sample = self.train.sample(min(NORM_SAMPLE_TOKENS, len(self.train)), generator)
        sae.b_dec.copy_((sample.mean(dim=0) * self.scale).to(sae.b_dec))


def activation_scale(train, seed: int) -> float:
    """The factor bringing the mean norm of a seeded sample of the training activations to sqrt(d_model)."""
    sample = train.sample(min(NORM_SAMPLE_TOKENS, len(train)), torch.Generator().manual_seed(seed))
    return float(sample.shape[1] ** 0.5 / sample.norm(dim=-1).mean())
