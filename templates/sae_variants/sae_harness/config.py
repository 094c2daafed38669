"""The harness's typed configuration: defaults here, values from config.toml, overrides from SAE_* variables.

experiment.py takes only --out_dir, so that the research loop has one fixed command. This file holds what the
harness needs (the model preset, token counts, device, evaluation sizes) and the sizes and schedule lengths that
depend on the preset (dict_size, batch_size, epochs, lr, warmup_steps, resample_every, dead_feature_window).
experiment.py's run_settings() reads those and may replace any of them; the SAE variant and its knobs (k,
sparsity_penalty, target_l0, dead_feature_method) are set in experiment.py alone (MOVED_TO_EXPERIMENT). See
config.toml for the order in which the sources apply.
"""

import dataclasses
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from .presets import PRESETS, Preset

ENV_PREFIX = "SAE_"
MOVED_TO_EXPERIMENT = ("variant", "sparsity_penalty", "k", "target_l0", "dead_feature_method")
"""Former fields that experiment.py's run_settings() now sets, so that the file the coder edits says which SAE runs
and with which knobs. Setting one in config.toml or as an SAE_* variable is an error, not silently ignored."""

BASELINE_ONLY = ("baseline_seeds", "frontier_scales")
"""Fields only baseline.py reads (how many runs make run_0), not how any one run trains: final_info.json's
training.config leaves them out."""


class ConfigError(ValueError):
    """A bad configuration value. The message names the source, the field and the fix."""


@dataclass
class ExperimentConfig:
    preset: str = "gemma-3-270m"
    """Model preset, one of sae_harness/presets.py PRESETS."""
    layer: int = -1
    """Residual layer to read; -1 keeps the preset's layer."""
    device: str = "auto"
    """'auto' (cuda when present), 'cpu' or 'cuda[:i]'."""
    dict_size: int = 2048
    """Number of SAE features (d_sae), unless experiment.py's run_settings() sets its own."""
    training_tokens: int = 300_000
    """Language-model tokens (BOS and padding excluded) whose activations are used for training."""
    epochs: int = 1
    """Passes over the training activations."""
    batch_size: int = 2048
    """Activations per SAE optimisation step."""
    lr: float = 2e-3
    """Peak Adam learning rate."""
    warmup_steps: int = 100
    """Steps of linear learning-rate warmup."""
    resample_every: int = 100
    """Steps between dead-feature resamplings (experiment.py's dead_feature_method = resample); 0 turns it off."""
    dead_feature_window: int = 0
    """Steps without firing after which a feature counts as dead; 0 means resample_every, or 1,000 if that is 0."""
    seed: int = 0
    """Seed for the SAE initialisation and the shuffling of activations."""
    heldout_tokens: int = 32_768
    """Tokens of held-out text (never trained on) for our own metrics."""
    context_length: int = 0
    """Tokens per text row, BOS included; 0 keeps the preset's value."""
    log_every: int = 20
    """Steps between lines of training_log.jsonl."""
    cache_dir: str = ""
    """Activation cache folder; empty means $XDG_CACHE_HOME/sae_variants or ~/.cache/sae_variants."""
    cache_max_gb: float = 8.0
    """Largest activation set written to the cache; above it activations are streamed instead."""
    eval_reconstruction_batches: int = 0
    """SAEBench CE/KL batches; 0 keeps the preset's value."""
    eval_sparsity_batches: int = 0
    """SAEBench sparsity/variance batches; 0 keeps the preset's value."""
    eval_batch_prompts: int = 0
    """Prompts per SAEBench batch; 0 keeps the preset's value."""
    lm_batch_prompts: int = 0
    """Prompts per language-model forward pass when computing activations; 0 keeps the preset's value."""
    run_saebench: bool = True
    """Run SAEBench's core eval (CE/KL scores need full forward passes of the language model)."""
    run_interp_evals: bool = True
    """Run the interpretability evals: SAEBench's sparse probing, TPP, absorption and meta_structure."""
    probe_train_texts: int = 0
    """Probing texts per dataset for sparse probing and TPP training (half per class); 0 keeps the preset's."""
    probe_test_texts: int = 0
    """Probing texts per dataset for testing; 0 keeps the preset's."""
    absorption_words: int = 0
    """Words of the vocabulary sample for the absorption task; 0 keeps sae_harness/absorption.py's size."""
    absorption_min_letters: int = 0
    """Letters whose probe must work for an absorption score; 0 keeps SAEBench's 20."""
    synthetic_hub: bool = False
    """On a synthetic preset with a published model (synth-16k: SynthSAEBench-16k), use the hub's copy instead of
    building it from sae_harness/synthetic.py's config; `python -m sae_harness.check --prefetch` fetches it."""
    baseline_seeds: int = 3
    """Seeds baseline.py trains the baseline on (config.seed, seed + 1, ...): their spread is the noise floor."""
    frontier_scales: str = "0.4,0.7,1.3,1.75"
    """Factors on the baseline's sparsity pressure, comma-separated, for baseline.py's sparsity-fidelity frontier
    (sae_harness/baseline_sweep.py FRONTIER_KNOBS); above 1 is sparser; empty turns the frontier off."""
    sources: dict = field(default_factory=dict, repr=False, compare=False)
    """Where each field's value came from, for error messages and final_info."""

    def __post_init__(self):
        checks = [
            ("preset", self.preset in PRESETS, f"use one of: {', '.join(PRESETS)}"),
            ("device", self.device == "auto" or self.device == "cpu" or self.device.startswith("cuda"),
             "use auto, cpu or cuda[:index]"),
            ("dict_size", self.dict_size > 0, "use a positive number of features"),
            ("training_tokens", self.training_tokens >= self.batch_size,
             "use at least batch_size tokens"),
            ("epochs", self.epochs >= 1, "use 1 or more"),
            ("batch_size", self.batch_size > 0, "use a positive batch size"),
            ("lr", 0 < self.lr < 1, "use a learning rate between 0 and 1, e.g. 4e-4"),
            ("warmup_steps", self.warmup_steps >= 0, "use 0 or more"),
            ("resample_every", self.resample_every >= 0, "use 0 (off) or a number of steps"),
            ("dead_feature_window", self.dead_feature_window >= 0, "use 0 (resample_every) or a number of steps"),
            ("heldout_tokens", self.heldout_tokens >= 256, "use at least 256 tokens"),
            ("context_length", self.context_length == 0 or self.context_length >= 8, "use 0 or 8 and more"),
            ("log_every", self.log_every >= 1, "use 1 or more"),
            ("cache_max_gb", self.cache_max_gb >= 0, "use 0 (never cache) or a size in GB"),
        ]
        checks.append(("synthetic_hub", not self.synthetic_hub or bool(PRESETS[self.preset].hub_model),
                       f"preset {self.preset} has no published model on the hub; use synthetic_hub = false"))
        checks.append(("baseline_seeds", self.baseline_seeds >= 1, "use 1 or more"))
        checks.append(("frontier_scales", self.frontier_scale_values() is not None,
                       "give positive numbers separated by commas, e.g. \"0.4,0.7,1.3,1.75\", or \"\" for none"))
        for name in ("eval_reconstruction_batches", "eval_sparsity_batches", "eval_batch_prompts", "lm_batch_prompts",
                     "probe_train_texts", "probe_test_texts", "absorption_words", "absorption_min_letters"):
            checks.append((name, getattr(self, name) >= 0, "use 0 (preset value) or a positive number"))
        for name, ok, fix in checks:
            if not ok:
                raise ConfigError(
                    f"{self.sources.get(name, 'default')}: {name} = {getattr(self, name)!r} is invalid; {fix}."
                )

    def frontier_scale_values(self) -> tuple[float, ...] | None:
        """frontier_scales as numbers, in the order given; None if the text is not a list of positive numbers."""
        try:
            scales = tuple(float(part) for part in self.frontier_scales.split(",") if part.strip())
        except ValueError:
            return None
        return scales if all(0 < scale < float("inf") for scale in scales) else None

    @property
    def preset_spec(self) -> Preset:
        spec = PRESETS[self.preset]
        return spec if self.layer < 0 else dataclasses.replace(spec, layer=self.layer)

    def resolved_device(self) -> str:
        import torch

        if self.device == "auto":
            return "cuda" if torch.cuda.is_available() else "cpu"
        if self.device.startswith("cuda") and not torch.cuda.is_available():
            raise ConfigError(
                f"{self.sources.get('device', 'default')}: device = {self.device!r} but no CUDA GPU is visible; "
                "use device = \"auto\" or \"cpu\"."
            )
        return self.device

    def preset_value(self, name: str, device: str) -> int:
        """A size field, falling back to the preset's value for this device when the field is 0."""
        own = getattr(self, name)
        if own:
            return own
        spec = self.preset_spec
        if name == "context_length":
            return spec.context_length
        return spec.for_device(getattr(spec, name), device)

    def to_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "sources"}


def _fields() -> dict:
    return {f.name: f for f in dataclasses.fields(ExperimentConfig) if f.name != "sources"}


def _coerce(value, f: dataclasses.Field, source: str):
    kind = f.type
    try:
        if kind is bool:
            if isinstance(value, bool):
                return value
            text = str(value).strip().lower()
            if text in ("1", "true", "yes", "on"):
                return True
            if text in ("0", "false", "no", "off"):
                return False
            raise ValueError(value)
        if kind is int:
            if isinstance(value, float) and not value.is_integer():
                raise ValueError(value)
            if isinstance(value, bool):
                raise ValueError(value)
            return int(str(value).replace("_", "")) if isinstance(value, str) else int(value)
        if kind is float:
            if isinstance(value, bool):
                raise ValueError(value)
            return float(value)
        return str(value)
    except ValueError:
        raise ConfigError(
            f"{source}: {f.name} = {value!r} is not a valid {kind.__name__}; "
            f"give a {kind.__name__} (the fields are documented in sae_harness/config.py)."
        ) from None


def load_config(path: Path, environ: dict | None = None) -> ExperimentConfig:
    """Read config.toml, apply the chosen preset's table and SAE_* overrides, and validate."""
    environ = os.environ if environ is None else environ
    fields = _fields()
    values: dict = {}
    sources: dict = {}

    def apply(table: dict, source: str):
        for key, value in table.items():
            if key in MOVED_TO_EXPERIMENT:
                raise ConfigError(
                    f"{source}: {key} is no longer read from config.toml or SAE_* variables; set it in "
                    f"experiment.py's run_settings() (Settings.{key}), where the SAE and its knobs are chosen."
                )
            if key not in fields:
                raise ConfigError(
                    f"{source}: unknown field {key!r}; valid fields are {', '.join(sorted(fields))}."
                )
            values[key] = _coerce(value, fields[key], source)
            sources[key] = source

    try:
        data = tomllib.loads(Path(path).read_text()) if Path(path).exists() else {}
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{path}: not valid TOML ({err}); fix the syntax.") from None
    preset_tables = data.pop("presets", {})
    apply(data, str(path))
    env_values = {
        key[len(ENV_PREFIX):].lower(): value
        for key, value in environ.items()
        if key.startswith(ENV_PREFIX) and key[len(ENV_PREFIX):].lower() in (*fields, *MOVED_TO_EXPERIMENT)
    }
    preset = env_values.get("preset", values.get("preset", ExperimentConfig.preset))
    if preset in preset_tables:
        apply(preset_tables[preset], f"{path} [presets.{preset}]")
    for key, value in env_values.items():
        apply({key: value}, f"environment variable {ENV_PREFIX}{key.upper()}")
    return ExperimentConfig(**values, sources=sources)
