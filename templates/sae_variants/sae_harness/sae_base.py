"""What every SAE architecture shares, so that a variant writes only its encode and its loss.

SAEBase satisfies SAEBench's custom-SAE interface (sae_bench.custom_saes.base_sae.BaseSAE): W_enc (d_in, d_sae),
W_dec (d_sae, d_in) with unit-norm rows, b_enc, b_dec, encode, decode, forward, device, dtype, to(), and a `cfg`
(SAEBench's CustomSAEConfig) that SAEBench reads. It implements that interface rather than inheriting BaseSAE:
sae_bench/custom_saes/base_sae.py imports transformer_lens at its top (for its test_sae helper, which loads a
model), about 8 s per run process, and SAEBench's evaluations only read the attributes, never check the class.
tests/template/test_sae_training.py holds SAEBase to every attribute BaseSAE gives.
"""

from dataclasses import dataclass, field
from typing import ClassVar

import torch
from sae_bench.custom_saes.custom_sae_config import CustomSAEConfig
from torch import Tensor, nn

from .settings import settings_attributes

DIAGNOSTIC_PREFIX = "diagnostic."
"""How a loss's own diagnostics are named in training_log.jsonl and in final_info.json's training group."""


@dataclass
class LossParts:
    """One training step's loss and the pieces the trainer logs."""

    total: Tensor
    """What the optimiser minimises (a 0-dim tensor with a gradient)."""
    mse: Tensor
    """Squared error summed over the d_in dimensions, averaged over tokens (SAELens's convention)."""
    sparsity: Tensor
    """The architecture's sparsity or auxiliary term, already multiplied by its coefficient."""
    features: Tensor
    """Feature activations (batch, d_sae), for L0 and dead-feature counts."""
    diagnostics: dict[str, Tensor | float] = field(default_factory=dict)
    """Extra numbers of this step, one each (a 0-dim tensor or a float), by name. The training log keeps them as
    diagnostic.<name>, and final_info.json's training group their mean over the last log_every steps."""

    def logged_diagnostics(self) -> dict[str, float]:
        """diagnostics as {"diagnostic.<name>": number}, the names the training log and final_info.json use."""
        logged = {}
        for name, value in self.diagnostics.items():
            if isinstance(value, Tensor):
                if value.numel() != 1:
                    raise ValueError(f"LossParts.diagnostics[{name!r}] has shape {tuple(value.shape)}; give one "
                                     "number per step (a 0-dim tensor or a float), e.g. its .mean()")
                value = value.item()
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ValueError(f"LossParts.diagnostics[{name!r}] is a {type(value).__name__}; give one number per "
                                 "step (a 0-dim tensor or a float)")
            logged[f"{DIAGNOSTIC_PREFIX}{name}"] = float(value)
        return logged


@dataclass(frozen=True)
class HookSpec:
    model_name: str
    layer: int
    hook_name: str


class SAEBase(nn.Module):
    saelens_architecture: ClassVar[str] = "standard"
    """The SAELens architecture this SAE is exported as (see sae_harness/saelens_export.py)."""

    def __init__(self, d_in: int, d_sae: int, hook: HookSpec, device: str = "cpu",
                 dtype: torch.dtype = torch.float32, generator: torch.Generator | None = None):
        super().__init__()
        self.W_enc = nn.Parameter(torch.zeros(d_in, d_sae))
        self.W_dec = nn.Parameter(torch.zeros(d_sae, d_in))
        self.b_enc = nn.Parameter(torch.zeros(d_sae))
        self.b_dec = nn.Parameter(torch.zeros(d_in))
        self.device, self.dtype = torch.device(device), dtype
        self.cfg = CustomSAEConfig(hook.model_name, d_in=d_in, d_sae=d_sae, hook_layer=hook.layer,
                                   hook_name=hook.hook_name)
        self.cfg.dtype = str(dtype).removeprefix("torch.")
        self.to(device=self.device, dtype=dtype)
        with torch.no_grad():
            # Random unit-norm decoder rows and a tied encoder: a standard, stable start.
            W_dec = torch.randn(d_sae, d_in, generator=generator, dtype=torch.float32)
            W_dec /= W_dec.norm(dim=1, keepdim=True)
            self.W_dec.copy_(W_dec)
            self.W_enc.copy_(W_dec.T)

    def to(self, *args, **kwargs):
        """nn.Module.to, keeping the device and dtype attributes SAEBench reads in step (as BaseSAE.to does)."""
        super().to(*args, **kwargs)
        self.device = kwargs.get("device") or self.device
        self.dtype = kwargs.get("dtype") or self.dtype
        return self

    @torch.no_grad()
    def check_decoder_norms(self) -> bool:
        """Whether W_dec's rows are unit-norm, to BaseSAE's tolerance (looser in half precision)."""
        tolerance = 1e-2 if self.W_dec.dtype in (torch.bfloat16, torch.float16) else 1e-5
        return bool(torch.allclose(self.W_dec.norm(dim=1), torch.ones(self.cfg.d_sae, device=self.W_dec.device,
                                                                      dtype=self.W_dec.dtype), atol=tolerance))

    def pre_activations(self, x: Tensor) -> Tensor:
        # A bf16 language model (gemma-2-2b on a GPU) hands us bf16 activations; the SAE computes in its own dtype.
        return (x.to(self.W_enc.dtype) - self.b_dec) @ self.W_enc + self.b_enc

    def decode(self, features: Tensor) -> Tensor:
        return features @ self.W_dec + self.b_dec

    def forward(self, x: Tensor) -> Tensor:
        return self.decode(self.encode(x))

    def training_loss(self, x: Tensor) -> LossParts:
        raise NotImplementedError

    def effective_settings(self) -> dict:
        """The settings this SAE uses, read from the object itself for final_info.json's settings group: its width as
        dict_size, and each attribute named as a field of self.settings or an alias of one (TopK's self.k,
        CustomSAE's self.l1_coefficient; sae_harness/settings.py settings_attributes), so that a value set in code
        is recorded as the one that ran."""
        return {**settings_attributes(self, getattr(self, "settings", None)), "dict_size": self.cfg.d_sae}

    @staticmethod
    def reconstruction_mse(x: Tensor, x_hat: Tensor) -> Tensor:
        return (x_hat - x).pow(2).sum(dim=-1).mean()

    @torch.no_grad()
    def normalize_decoder(self):
        self.W_dec /= self.W_dec.norm(dim=1, keepdim=True).clamp_min(1e-8)

    @torch.no_grad()
    def fold_activation_scale(self, scale: float):
        """Make an SAE trained on scale * x work on raw x, keeping W_dec's rows unit-norm.

        pre(scale*x) = scale * ((x - b_dec/scale) @ W_enc + b_enc/scale), so dividing the biases (and any
        threshold, in fold_thresholds) by scale gives features divided by scale and a reconstruction of x.
        """
        self.b_enc /= scale
        self.b_dec /= scale
        self.fold_thresholds(scale)

    def fold_thresholds(self, scale: float):
        """Architectures with activation thresholds divide them by scale here."""

    def saelens_state(self) -> dict[str, Tensor]:
        """The tensors SAELens's architecture expects, under its names."""
        return {"W_enc": self.W_enc, "W_dec": self.W_dec, "b_enc": self.b_enc, "b_dec": self.b_dec}

    def saelens_extra_config(self) -> dict:
        """Extra SAELens config fields for this architecture (k for TopK, for example)."""
        return {}
