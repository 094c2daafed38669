"""JumpReLU SAE (Rajamanoharan et al., 2024): a feature passes only above its own learned threshold.

The step function has no useful gradient, so thresholds learn through straight-through estimators with a
rectangle kernel of width BANDWIDTH. The sparsity loss steers the L0 towards target_l0:
sparsity_penalty * (L0 / target_l0 - 1)^2.
"""

import math
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from sae_harness.sae_base import LossParts, SAEBase

if TYPE_CHECKING:  # experiment.py imports this file; the type alone is needed here
    from experiment import Settings

BANDWIDTH = 0.001
INITIAL_THRESHOLD = 0.001


def _kernel(pre: Tensor, threshold: Tensor) -> Tensor:
    return ((pre - threshold).abs() < BANDWIDTH / 2).to(pre.dtype) / BANDWIDTH


class _JumpReLU(torch.autograd.Function):
    @staticmethod
    def forward(ctx, pre, threshold):
        ctx.save_for_backward(pre, threshold)
        return pre * (pre > threshold)

    @staticmethod
    def backward(ctx, grad):
        pre, threshold = ctx.saved_tensors
        grad_threshold = -(threshold * _kernel(pre, threshold) * grad).sum(dim=0)
        return grad * (pre > threshold), grad_threshold


class _Step(torch.autograd.Function):
    @staticmethod
    def forward(ctx, pre, threshold):
        ctx.save_for_backward(pre, threshold)
        return (pre > threshold).to(pre.dtype)

    @staticmethod
    def backward(ctx, grad):
        pre, threshold = ctx.saved_tensors
        return torch.zeros_like(pre), -(_kernel(pre, threshold) * grad).sum(dim=0)


class JumpReLUSAE(SAEBase):
    saelens_architecture = "jumprelu"

    def __init__(self, settings: "Settings", **base):
        super().__init__(**base)
        self.settings = settings
        self.l0_coefficient = settings.sparsity_penalty
        self.target_l0 = settings.target_l0
        self.log_threshold = torch.nn.Parameter(torch.full((self.cfg.d_sae,), math.log(INITIAL_THRESHOLD)))

    @property
    def threshold(self) -> Tensor:
        return self.log_threshold.exp()

    def encode(self, x: Tensor) -> Tensor:
        return _JumpReLU.apply(self.pre_activations(x).relu(), self.threshold)

    def training_loss(self, x: Tensor) -> LossParts:
        pre = self.pre_activations(x).relu()
        features = _JumpReLU.apply(pre, self.threshold)
        mse = self.reconstruction_mse(x, self.decode(features))
        l0 = _Step.apply(pre, self.threshold).sum(dim=-1).mean()
        sparsity = self.l0_coefficient * (l0 / self.target_l0 - 1).pow(2)
        return LossParts(total=mse + sparsity, mse=mse, sparsity=sparsity, features=features)

    def fold_thresholds(self, scale: float):
        self.log_threshold -= math.log(scale)

    def saelens_state(self) -> dict[str, Tensor]:
        return {**super().saelens_state(), "threshold": self.threshold}
