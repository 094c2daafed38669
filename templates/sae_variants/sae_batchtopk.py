"""BatchTopK SAE (Bussmann et al., 2024): keep the k * batch largest activations across the whole batch, so
tokens share a sparsity budget. At inference it is a JumpReLU with one threshold, learned as a running mean of
the smallest activation kept in each training batch."""

from typing import TYPE_CHECKING

import torch
from torch import Tensor

from sae_harness.sparse import ActiveSet
from sae_topk import TopKSAE

if TYPE_CHECKING:  # experiment.py imports this file; the type alone is needed here
    from experiment import Settings

THRESHOLD_MOMENTUM = 0.99


class BatchTopKSAE(TopKSAE):
    saelens_architecture = "jumprelu"

    def __init__(self, settings: "Settings", **base):
        super().__init__(settings, **base)
        self.register_buffer("threshold", torch.tensor(-1.0))

    def selected(self, pre: Tensor) -> ActiveSet:
        # Tokens keep different numbers of features; the sparse kernels take any such set.
        return ActiveSet.of_mask(self.select(pre) > 0)

    def select(self, pre: Tensor) -> Tensor:
        if not self.training:
            return self.threshold_select(pre)
        acts = pre.relu().flatten()
        values, indices = acts.topk(min(self.k * len(pre), acts.numel()))
        features = torch.zeros_like(acts).scatter(-1, indices, values).view_as(pre)
        with torch.no_grad():
            kept_min = values[values > 0].min() if (values > 0).any() else values.new_zeros(())
            first = self.threshold < 0
            updated = kept_min if first else THRESHOLD_MOMENTUM * self.threshold + (1 - THRESHOLD_MOMENTUM) * kept_min
            self.threshold.copy_(updated)
        return features

    def threshold_select(self, pre: Tensor) -> Tensor:
        return pre.relu() * (pre > self.threshold.clamp_min(0))

    def fold_thresholds(self, scale: float):
        self.threshold /= scale

    def saelens_state(self) -> dict[str, Tensor]:
        threshold = self.threshold.clamp_min(0).expand(self.cfg.d_sae).contiguous()
        return {**super().saelens_state(), "threshold": threshold}

    def saelens_extra_config(self) -> dict:
        return {}
