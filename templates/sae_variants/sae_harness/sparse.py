"""Training kernels for SAEs whose features are mostly zero: TopK (k of d_sae per token), and ReLU once training
has made it sparse.

A dense step spends five (batch x d_in x d_sae) matrix products: the encoder, the decoder and three in the
backward pass. When only a few features per token are nonzero, four of the five touch almost nothing but
zeros. Here only the encoder's forward product stays dense; the decoder and the backward pass touch the active
entries alone, through index gathers and a sparse (CSR) product. Gradients are exact: the same numbers as the
dense computation, up to floating-point summation order (tests/template/test_sae_training.py checks this).

    features = relu_features(x, b_dec, W_enc, b_enc)      # sparse or dense, whichever is faster here
    x_hat = features.decode(W_dec) + b_dec
    l1 = features.row_sums(W_dec.norm(dim=1)).mean()
"""

import warnings
from dataclasses import dataclass
from functools import cached_property

import torch
import torch.nn.functional as F
from torch import Tensor

SPARSE_BELOW = 0.15
"""relu_features goes sparse when fewer than this fraction of the features fire. Above it, gathers over that
many entries cost more than the dense products (bench/sparse_crossover.py measures where the two meet)."""


@dataclass(frozen=True)
class ActiveSet:
    """Where a (batch, d_sae) features matrix may be nonzero, token by token: token b's features are
    cols[offsets[b]:offsets[b + 1]], in increasing order, and rows[i] is the token of entry i."""

    rows: Tensor
    cols: Tensor
    offsets: Tensor
    batch: int
    d_sae: int

    @classmethod
    def of_mask(cls, mask: Tensor) -> "ActiveSet":
        """The True entries of a (batch, d_sae) boolean mask; tokens may keep different numbers of features."""
        rows, cols = mask.nonzero(as_tuple=True)
        counts = torch.bincount(rows, minlength=len(mask))
        return cls(rows, cols, torch.cumsum(counts, 0) - counts, *mask.shape)

    @classmethod
    def of_indices(cls, indices: Tensor, d_sae: int) -> "ActiveSet":
        """The same number of features for every token: indices is (batch, k), with no repeats in a row, e.g.
        pre.topk(k, dim=-1).indices."""
        batch, k = indices.shape
        rows = torch.arange(batch, device=indices.device).repeat_interleave(k)
        offsets = torch.arange(0, batch * k, k, device=indices.device)
        return cls(rows, indices.sort(dim=-1).values.reshape(-1), offsets, batch, d_sae)

    def by_token(self, values: Tensor) -> Tensor:
        """The (batch, d_sae) CSR matrix holding values[i] at (rows[i], cols[i])."""
        crow = torch.cat([self.offsets, self.offsets.new_tensor([len(self.cols)])])
        return csr_matrix(crow, self.cols, values, (self.batch, self.d_sae))

    def by_feature(self, values: Tensor) -> Tensor:
        """The (d_sae, batch) CSR matrix holding values[i] at (cols[i], rows[i]): the transpose, feature-major."""
        order, crow = self.feature_order
        return csr_matrix(crow, self.rows[order], values[order], (self.d_sae, self.batch))

    @cached_property
    def feature_order(self) -> tuple[Tensor, Tensor]:
        """The entries sorted by feature, and where each feature's run starts. Shared by the encoder's and the
        decoder's backward; int32 keys sort several times faster than int64 ones."""
        order = torch.argsort(self.cols.to(torch.int32), stable=True)
        crow = torch.zeros(self.d_sae + 1, dtype=torch.int64, device=self.cols.device)
        crow[1:] = torch.cumsum(torch.bincount(self.cols, minlength=self.d_sae), 0)
        return order, crow


def csr_matrix(crow: Tensor, cols: Tensor, values: Tensor, shape: tuple[int, int]) -> Tensor:
    # torch marks CSR tensors beta and warns at each one; the products used here are checked against the dense
    # ones in the tests.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
        return torch.sparse_csr_tensor(crow, cols, values, shape, check_invariants=False)


class DenseFeatures:
    """A (batch, d_sae) features matrix held densely, with the same interface as SparseFeatures. Wrap any dense
    activation in it (DenseFeatures(torch.relu(pre)), say) to use it where a Features is expected."""

    def __init__(self, matrix: Tensor):
        self.matrix = matrix

    def decode(self, W_dec: Tensor) -> Tensor:
        """features @ W_dec: (batch, d_in), without b_dec."""
        return self.matrix @ W_dec

    def row_sums(self, weights: Tensor) -> Tensor:
        """sum_j features[b, j] * weights[j], per token: (batch,). With weights = W_dec.norm(dim=1), the
        decoder-norm-weighted L1 of each token."""
        return (self.matrix * weights).sum(dim=-1)

    def dense(self) -> Tensor:
        """The (batch, d_sae) matrix itself."""
        return self.matrix


class SparseFeatures:
    """A (batch, d_sae) features matrix held as its values on an ActiveSet; zero elsewhere."""

    def __init__(self, values: Tensor, active: ActiveSet):
        self.values, self.active = values, active

    def decode(self, W_dec: Tensor) -> Tensor:
        """features @ W_dec, with a backward to the values and W_dec that touches the active entries only."""
        return _SparseDecode.apply(self.values, W_dec, self.active)

    def row_sums(self, weights: Tensor) -> Tensor:
        """sum_j features[b, j] * weights[j], per token: (batch,), summed over the active entries only."""
        sums = torch.zeros(self.active.batch, dtype=self.values.dtype, device=self.values.device)
        return sums.index_add(0, self.active.rows, self.values * weights[self.active.cols])

    def dense(self) -> Tensor:
        """The (batch, d_sae) matrix itself (for evaluation, logging and dead-feature counts)."""
        matrix = torch.zeros(self.active.batch, self.active.d_sae, dtype=self.values.dtype,
                             device=self.values.device)
        return matrix.index_put((self.active.rows, self.active.cols), self.values)


Features = DenseFeatures | SparseFeatures
"""A (batch, d_sae) features matrix, dense or sparse: f.decode(W_dec) is f @ W_dec (batch, d_in) without b_dec,
f.row_sums(w) is f @ w (batch,), and f.dense() the matrix itself. Gradients flow through all three."""


def relu_features(x: Tensor, b_dec: Tensor, W_enc: Tensor, b_enc: Tensor) -> Features:
    """relu((x - b_dec) @ W_enc + b_enc) for x (batch, d_in): a (batch, d_sae) Features. It is held sparsely when
    fewer than SPARSE_BELOW of the entries are positive and a gradient is wanted (without one, as in evaluation, the
    dense matrix is all anyone needs); either way its numbers and gradients are the dense computation's."""
    x = x.to(W_enc.dtype)
    # The same numbers as (x - b_dec) @ W_enc + b_enc. Written this way, b_dec's gradient is a vector-matrix
    # product instead of a sixth (batch x d_in x d_sae) product through the centred input.
    pre = x @ W_enc + (b_enc - b_dec @ W_enc)
    positive = pre.detach() > 0
    if not torch.is_grad_enabled() or torch.count_nonzero(positive) >= SPARSE_BELOW * positive.numel():
        return DenseFeatures(torch.relu(pre))  # early in training most features fire: dense products are faster
    return active_features(x, b_dec, W_enc, b_enc, ActiveSet.of_mask(positive), pre.detach())


def active_features(x: Tensor, b_dec: Tensor, W_enc: Tensor, b_enc: Tensor, active: ActiveSet,
                    pre: Tensor) -> SparseFeatures:
    """relu(pre) on `active` and zero elsewhere, as a (batch, d_sae) Features, where pre = (x - b_dec) @ W_enc +
    b_enc was computed under torch.no_grad() (it is used to choose `active`, e.g. each token's top k). The gradient
    reaches b_dec, W_enc and b_enc through the active entries only, exactly as the dense product's would."""
    values = _ActivePreActivations.apply(x.to(W_enc.dtype), b_dec, W_enc, b_enc, pre[active.rows, active.cols],
                                         active)
    return SparseFeatures(values.relu(), active)


class _ActivePreActivations(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, b_dec, W_enc, b_enc, values, active):
        ctx.active = active
        ctx.save_for_backward(x, b_dec, W_enc)
        return values.clone()

    @staticmethod
    def backward(ctx, grad):
        x, b_dec, W_enc = ctx.saved_tensors
        active = ctx.active
        grad_x = grad_b_dec = grad_W_enc = grad_b_enc = None
        if ctx.needs_input_grad[3] or ctx.needs_input_grad[1]:
            grad_b_enc = torch.zeros_like(W_enc[0]).index_add_(0, active.cols, grad)
        if ctx.needs_input_grad[1]:
            # x - b_dec feeds every token, so b_dec's gradient is minus the token gradients' sum: W_enc @ grad_b_enc.
            grad_b_dec = -(W_enc @ grad_b_enc)
        if ctx.needs_input_grad[2]:
            grad_W_enc = (active.by_feature(grad) @ (x - b_dec)).t()
        if ctx.needs_input_grad[0]:
            grad_x = F.embedding_bag(active.cols, W_enc.t().contiguous(), active.offsets, mode="sum",
                                     per_sample_weights=grad)
        return grad_x, grad_b_dec, grad_W_enc, grad_b_enc if ctx.needs_input_grad[3] else None, None, None


class _SparseDecode(torch.autograd.Function):
    @staticmethod
    def forward(ctx, values, W_dec, active):
        ctx.active = active
        ctx.save_for_backward(values, W_dec)
        return F.embedding_bag(active.cols, W_dec, active.offsets, mode="sum", per_sample_weights=values)

    @staticmethod
    def backward(ctx, grad):
        values, W_dec = ctx.saved_tensors
        active = ctx.active
        grad_values = grad_W_dec = None
        if ctx.needs_input_grad[0]:
            # (grad @ W_dec.T) at the active entries only: a sampled product, not the dense (batch, d_sae) one.
            pattern = active.by_token(torch.zeros_like(values))
            grad_values = torch.sparse.sampled_addmm(pattern, grad, W_dec.t(), beta=0.0).values()
        if ctx.needs_input_grad[1]:
            grad_W_dec = active.by_feature(values) @ grad
        return grad_values, grad_W_dec, None
