"""Training kernels for SAEs whose features are a known, small set of indices per token (TopK: k of d_sae).

A dense TopK step spends six (batch x d_in x d_sae) matrix products: the encoder, the decoder and their
backward passes. Only k entries per token are nonzero, so four of the six touch almost nothing but zeros. Here
only the encoder's forward product stays dense; the decoder and every backward product touch the k selected
entries per token, through index gathers and a sparse (CSR) product. Gradients are exact: the same numbers as
the dense computation, up to floating-point summation order (tests/template/test_sae_training.py checks this).
"""

import warnings

import torch
import torch.nn.functional as F
from torch import Tensor

# CSR products are marked beta in torch; the one used here is checked against the dense product in the tests.
warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")


def gather_pre_activations(x_centered: Tensor, W_enc: Tensor, b_enc: Tensor, indices: Tensor,
                           values: Tensor) -> Tensor:
    """pre[b, indices[b, j]] of pre = x_centered @ W_enc + b_enc, with a backward to x_centered, W_enc and b_enc
    that touches only those entries. `values` are those numbers, already computed by the dense forward."""
    return _GatheredPreActivations.apply(x_centered, W_enc, b_enc, indices, values)


def sparse_decode(values: Tensor, indices: Tensor, W_dec: Tensor) -> Tensor:
    """sum_j values[b, j] * W_dec[indices[b, j]]: the decoder product of a features matrix that is zero outside
    `indices`, with its backward to values and W_dec (embedding_bag does both without a dense features matrix)."""
    return F.embedding_bag(indices, W_dec, per_sample_weights=values, mode="sum")


def dense_features(values: Tensor, indices: Tensor, d_sae: int) -> Tensor:
    """The (batch, d_sae) features matrix, for logging and dead-feature counts (no gradient)."""
    return torch.zeros(len(values), d_sae, dtype=values.dtype, device=values.device).scatter_(
        -1, indices, values.detach())


def _by_feature(grad: Tensor, indices: Tensor, d_sae: int) -> Tensor:
    """The (d_sae, batch) CSR matrix whose row i holds grad[b, j] at column b wherever indices[b, j] == i."""
    batch, k = indices.shape
    flat = indices.reshape(-1)
    order = torch.argsort(flat, stable=True)
    counts = torch.bincount(flat, minlength=d_sae)
    crow = torch.zeros(d_sae + 1, dtype=torch.int64, device=indices.device)
    crow[1:] = torch.cumsum(counts, 0)
    return torch.sparse_csr_tensor(crow, order // k, grad.reshape(-1)[order], (d_sae, batch),
                                   check_invariants=False)


class _GatheredPreActivations(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x_centered, W_enc, b_enc, indices, values):
        ctx.save_for_backward(x_centered, W_enc, indices)
        ctx.mark_non_differentiable(indices)
        return values.clone()

    @staticmethod
    def backward(ctx, grad):
        x_centered, W_enc, indices = ctx.saved_tensors
        d_sae = W_enc.shape[1]
        grad_x = grad_W_enc = grad_b_enc = None
        if ctx.needs_input_grad[0]:
            grad_x = F.embedding_bag(indices, W_enc.t().contiguous(), per_sample_weights=grad, mode="sum")
        if ctx.needs_input_grad[1]:
            grad_W_enc = (_by_feature(grad, indices, d_sae) @ x_centered).t()
        if ctx.needs_input_grad[2]:
            grad_b_enc = torch.zeros(d_sae, dtype=grad.dtype, device=grad.device).index_add_(
                0, indices.reshape(-1), grad.reshape(-1))
        return grad_x, grad_W_enc, grad_b_enc, None, None
