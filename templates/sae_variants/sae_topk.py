"""TopK SAE (Gao et al., 2024): keep each token's k largest pre-activations, with an AuxK loss that lets
dead features learn from what the live ones fail to reconstruct."""

from typing import TYPE_CHECKING

import torch
from torch import Tensor

from sae_harness.sae_base import LossParts, SAEBase
from sae_harness.sparse import SPARSE_BELOW, ActiveSet, active_features

if TYPE_CHECKING:  # experiment.py imports this file; the type alone is needed here
    from experiment import Settings

AUX_COEFFICIENT = 1 / 32
DEAD_AFTER_TOKENS = 200_000


class TopKSAE(SAEBase):
    saelens_architecture = "topk"

    def __init__(self, settings: "Settings", **base):
        super().__init__(**base)
        self.settings = settings
        self.k = settings.k
        self.k_aux = max(1, self.cfg.d_in // 2)
        self.register_buffer("tokens_since_fired", torch.zeros(self.cfg.d_sae, dtype=torch.long), persistent=False)

    def select(self, pre: Tensor) -> Tensor:
        """Zero all but each row's k largest pre-activations (which are then passed through ReLU)."""
        values, indices = pre.topk(self.k, dim=-1)
        return torch.zeros_like(pre).scatter(-1, indices, values.relu())

    def encode(self, x: Tensor) -> Tensor:
        return self.select(self.pre_activations(x))

    def selected(self, pre: Tensor) -> ActiveSet:
        """Where select(pre) may be nonzero: each token's k largest pre-activations."""
        return ActiveSet.of_indices(pre.topk(self.k, dim=-1).indices, self.cfg.d_sae)

    def training_loss(self, x: Tensor) -> LossParts:
        # The numbers of select() and decode(), but only the k selected features per token enter the decoder
        # and the backward pass (sae_harness/sparse.py): four of a dense step's five big matrix products go.
        with torch.no_grad():
            pre = self.pre_activations(x)
        features = active_features(x, self.b_dec, self.W_enc, self.b_enc, self.selected(pre), pre)
        x_hat = features.decode(self.W_dec) + self.b_dec
        mse = self.reconstruction_mse(x, x_hat)
        dense = features.dense()
        aux = AUX_COEFFICIENT * self.auxk_loss(x, x - x_hat.detach(), pre, dense)
        return LossParts(total=mse + aux, mse=mse, sparsity=aux, features=dense)

    def auxk_loss(self, x: Tensor, residual: Tensor, pre: Tensor, features: Tensor) -> Tensor:
        """Reconstruct the residual from the k_aux strongest dead features, relative to the residual's variance."""
        with torch.no_grad():
            fired = (features > 0).any(dim=0)
            self.tokens_since_fired += len(features)
            self.tokens_since_fired[fired] = 0
            dead = self.tokens_since_fired >= DEAD_AFTER_TOKENS
        n_dead = int(dead.sum())
        k_aux = min(self.k_aux, n_dead)
        if k_aux == 0:
            return pre.new_zeros(())
        if k_aux < SPARSE_BELOW * n_dead:
            strongest_dead = pre.masked_fill(~dead, float("-inf")).topk(k_aux, dim=-1).indices
            dead_features = active_features(x, self.b_dec, self.W_enc, self.b_enc,
                                            ActiveSet.of_indices(strongest_dead, self.cfg.d_sae), pre)
            residual_hat = dead_features.decode(self.W_dec)
        else:
            # Most dead features are picked for every token: dense products over the dead columns alone are
            # cheaper than gathers over that many entries.
            columns = dead.nonzero().squeeze(1)
            W_enc_dead = self.W_enc[:, columns]
            pre_dead = x.to(W_enc_dead.dtype) @ W_enc_dead + (self.b_enc[columns] - self.b_dec @ W_enc_dead)
            strongest = pre[:, columns].topk(k_aux, dim=-1).indices
            kept = torch.zeros_like(pre_dead, dtype=torch.bool).scatter_(-1, strongest, True)
            residual_hat = (torch.relu(pre_dead) * kept) @ self.W_dec[columns]
        variance = (residual - residual.mean(dim=0)).pow(2).sum(dim=-1).mean().clamp_min(1e-8)
        return (residual_hat - residual).pow(2).sum(dim=-1).mean() / variance

    def saelens_extra_config(self) -> dict:
        return {"k": self.k}
