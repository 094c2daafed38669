"""The SAE variants and the trainer, on real cached activations of the offline model at tiny sizes."""

import dataclasses

import pytest
import torch

from experiment import SAE_CLASSES, CustomTrainer, build_sae, train
from sae_harness.activations import ShuffleBuffer
from sae_harness.sae_base import HookSpec
from sae_harness.sparse import SPARSE_BELOW
from sae_topk import AUX_COEFFICIENT, DEAD_AFTER_TOKENS

HOOK = HookSpec("google/gemma-3-270m", 6, "blocks.6.hook_resid_post")


def make_sae(settings, d_in=640, d_sae=256, **changes):
    return build_sae(dataclasses.replace(settings, dict_size=d_sae, **changes), d_in, HOOK)


@pytest.mark.parametrize("variant", sorted(SAE_CLASSES))
def test_training_lowers_the_loss(variant, tiny_workspace, tiny_config, tiny_settings):
    settings = dataclasses.replace(tiny_settings, variant=variant)
    sae = make_sae(settings)
    tiny_workspace.initialise_decoder_bias(sae)
    facts = train(sae, tiny_workspace, settings)
    losses = [row["loss"] for row in facts["log"]]
    mses = [row["mse"] for row in facts["log"]]
    assert facts["training_steps"] == settings.epochs * (tiny_config.training_tokens // settings.batch_size)
    assert losses[-1] < losses[0], f"{variant}: loss went {losses[0]:.1f} -> {losses[-1]:.1f}"
    # Reconstruction is learnt fast by every variant; JumpReLU's threshold term moves slowly at this size.
    assert mses[-1] < 0.7 * mses[0], f"{variant}: MSE went {mses[0]:.1f} -> {mses[-1]:.1f}"
    assert torch.allclose(sae.W_dec.norm(dim=1), torch.ones(sae.cfg.d_sae), atol=1e-5)


def test_topk_keeps_exactly_k_features(tiny_settings):
    sae = make_sae(tiny_settings, variant="topk", k=7)
    x = torch.randn(64, 640) * 3
    # Raise every pre-activation so that ReLU never removes one of the k winners.
    with torch.no_grad():
        sae.b_enc.fill_(100.0)
    assert ((sae.encode(x) > 0).sum(dim=-1) == 7).all()


def test_batchtopk_shares_one_budget_across_the_batch_in_training(tiny_settings):
    sae = make_sae(tiny_settings, variant="batchtopk", k=7)
    with torch.no_grad():
        sae.b_enc.fill_(100.0)
    per_token = (sae.training_loss(torch.randn(64, 640) * 3).features > 0).sum(dim=-1)
    assert per_token.sum() == 7 * 64 and per_token.unique().numel() > 1


def dense_topk_loss(sae, x: torch.Tensor, dead: torch.Tensor) -> torch.Tensor:
    """TopK's loss written with dense matrices (select, decode, a dense AuxK), as the reference for the kernels."""
    pre = sae.pre_activations(x)
    x_hat = sae.decode(sae.select(pre))
    k_aux = min(sae.k_aux, int(dead.sum()))
    values, indices = pre.masked_fill(~dead, float("-inf")).topk(k_aux, dim=-1)
    residual = x - x_hat.detach()
    residual_hat = torch.zeros_like(pre).scatter(-1, indices, values.relu()) @ sae.W_dec
    variance = (residual - residual.mean(dim=0)).pow(2).sum(dim=-1).mean()
    aux = (residual_hat - residual).pow(2).sum(dim=-1).mean() / variance
    return sae.reconstruction_mse(x, x_hat) + AUX_COEFFICIENT * aux


# d_in 640 makes AuxK pick every dead feature (its dense path); d_in 16 picks 8 of them (its sparse path).
@pytest.mark.parametrize("variant, d_in", [("topk", 640), ("topk", 16), ("batchtopk", 640)])
def test_topk_sparse_kernels_give_the_dense_loss_and_gradients(variant, d_in, tiny_settings):
    sae = make_sae(tiny_settings, d_in=d_in, variant=variant, k=9)
    # A third of the features count as dead, and their lower bias keeps them out of the top k, so they stay dead
    # and the AuxK term and its kernels are exercised too.
    with torch.no_grad():
        sae.b_enc.uniform_(-0.2, 0.2)
        sae.b_enc[::3] -= 3.0
        sae.b_dec.normal_()
    x = torch.randn(96, d_in, dtype=torch.float64).float() * 2
    sae.tokens_since_fired[::3] = DEAD_AFTER_TOKENS
    dead = sae.tokens_since_fired >= DEAD_AFTER_TOKENS
    params = [sae.W_enc, sae.W_dec, sae.b_enc, sae.b_dec]
    parts = sae.training_loss(x)
    sparse_grads = torch.autograd.grad(parts.total, params)
    selected = sae.select(sae.pre_activations(x))
    if variant == "batchtopk":  # tokens keep different numbers of features: the variable-length kernels
        assert (selected > 0).sum(dim=-1).unique().numel() > 1
    reference = dense_topk_loss(sae, x, dead & ~(selected > 0).any(dim=0))
    dense_grads = torch.autograd.grad(reference, params)
    assert parts.sparsity.item() > 0
    n_dead = int((sae.tokens_since_fired >= DEAD_AFTER_TOKENS).sum())
    assert (min(sae.k_aux, n_dead) < SPARSE_BELOW * n_dead) == (d_in == 16), n_dead  # the AuxK path meant
    assert torch.allclose(parts.total, reference, rtol=1e-5)
    assert torch.equal(parts.features, selected.detach())
    for name, got, expected in zip(("W_enc", "W_dec", "b_enc", "b_dec"), sparse_grads, dense_grads):
        assert torch.allclose(got, expected, rtol=1e-4, atol=1e-5 * expected.abs().max().item()), name


@pytest.mark.parametrize("encoder_bias, path", [(-4.5, "sparse"), (0.0, "dense")])
def test_relu_sae_gives_the_dense_loss_and_gradients_on_either_path(encoder_bias, path, tiny_settings):
    sae = make_sae(tiny_settings, variant="relu")
    with torch.no_grad():
        sae.b_enc.uniform_(encoder_bias - 0.2, encoder_bias + 0.2)
        sae.b_dec.normal_(0, 0.1)
        sae.W_dec.mul_(torch.rand(sae.cfg.d_sae, 1) + 0.5)  # norms other than 1, so the L1 weighting counts
    x = torch.randn(96, 640) * 2
    params = [sae.W_enc, sae.W_dec, sae.b_enc, sae.b_dec]
    parts = sae.training_loss(x)
    grads = torch.autograd.grad(parts.total, params)

    features = sae.encode(x)
    density = (features > 0).float().mean().item()
    assert (density < SPARSE_BELOW) == (path == "sparse") and density > 0.002, density
    reference = (sae.reconstruction_mse(x, sae.decode(features))
                 + tiny_settings.sparsity_penalty * (features * sae.W_dec.norm(dim=1)).sum(dim=-1).mean())
    reference_grads = torch.autograd.grad(reference, params)
    assert torch.allclose(parts.total, reference, rtol=1e-5)
    assert torch.allclose(parts.features, features.detach(), atol=1e-5)
    # SAEBench encodes (batch, positions, d_in) activations.
    assert torch.allclose(sae.encode(x.view(8, 12, 640)).reshape(96, -1), features, atol=1e-5)
    for name, got, expected in zip(("W_enc", "W_dec", "b_enc", "b_dec"), grads, reference_grads):
        assert torch.allclose(got, expected, rtol=1e-4, atol=1e-5 * expected.abs().max().item()), name


@pytest.mark.parametrize("variant", sorted(SAE_CLASSES))
def test_folding_the_normalisation_scale_gives_the_same_reconstruction_on_raw_inputs(variant, tiny_settings):
    sae = make_sae(tiny_settings, variant=variant).eval()
    with torch.no_grad():
        sae.b_enc.uniform_(-0.5, 0.5)
        sae.b_dec.normal_()
    if variant == "batchtopk":
        sae.threshold.fill_(0.3)
    x_raw = torch.randn(32, 640) * 400.0
    scale = 0.0123
    expected = sae(x_raw * scale) / scale
    sae.fold_activation_scale(scale)
    assert torch.allclose(sae(x_raw), expected, rtol=1e-4, atol=1e-2)
    assert torch.allclose(sae.W_dec.norm(dim=1), torch.ones(256), atol=1e-5)


def test_resampling_points_dead_features_at_badly_reconstructed_inputs(tiny_settings):
    sae = make_sae(tiny_settings)
    trainer = CustomTrainer(sae, tiny_settings, total_steps=1000)
    x = torch.randn(512, 640)
    dead = torch.zeros(256, dtype=torch.bool)
    dead[:40] = True
    trainer.steps_since_fired[dead] = tiny_settings.resample_every
    before = sae.W_dec.detach().clone()
    assert trainer.resample_dead_features(x) == 40
    assert not torch.allclose(sae.W_dec[:40], before[:40])
    assert torch.equal(sae.W_dec[40:], before[40:])
    assert torch.allclose(sae.W_dec[:40].norm(dim=1), torch.ones(40), atol=1e-5)
    assert (trainer.steps_since_fired[:40] == 0).all()


def test_learning_rate_warms_up_then_decays_to_zero(tiny_settings):
    settings = dataclasses.replace(tiny_settings, warmup_steps=10)
    trainer = CustomTrainer(make_sae(settings), settings, total_steps=100)
    assert trainer.lr_factor(0) == pytest.approx(0.1)
    assert trainer.lr_factor(50) == 1.0
    assert trainer.lr_factor(100) == 0.0
    assert 0 < trainer.lr_factor(90) < 1


def test_shuffle_buffer_emits_every_row_once_in_a_new_order():
    buffer = ShuffleBuffer(capacity=256, generator=torch.Generator().manual_seed(0))
    out = []
    for start in range(0, 1024, 64):
        buffer.push(torch.arange(start, start + 64, dtype=torch.float32)[:, None])
        out.extend(buffer.drain(32))
    out.extend(buffer.drain(32, final=True))
    rows = torch.cat(out).flatten()
    assert sorted(rows.tolist()) == list(range(1024))
    assert not torch.equal(rows, torch.arange(1024, dtype=torch.float32))


@pytest.mark.parametrize("variant", sorted(SAE_CLASSES))
def test_every_sae_gives_what_saebench_base_sae_gives(variant, tiny_settings):
    """SAEBase implements SAEBench's BaseSAE interface without inheriting it (sae_harness/sae_base.py says why):
    every method BaseSAE has, and the attributes its __init__ sets, with the same values."""
    from sae_bench.custom_saes.base_sae import BaseSAE

    class Reference(BaseSAE):
        encode = decode = forward = None

    reference = Reference(640, 256, HOOK.model_name, HOOK.layer, torch.device("cpu"), torch.float32, HOOK.hook_name)
    sae = make_sae(dataclasses.replace(tiny_settings, variant=variant))
    helpers = {"test_sae"}  # BaseSAE's own smoke test, which loads a model from the hub
    missing = [name for name in dir(BaseSAE) if not name.startswith("_") and name not in helpers
               and not hasattr(sae, name)]
    assert not missing, f"SAEBase lacks BaseSAE's {missing}"
    assert dataclasses.asdict(sae.cfg) == dataclasses.asdict(reference.cfg)
    assert (torch.device(sae.device), sae.dtype) == (reference.device, reference.dtype)
    for name, tensor in reference.named_parameters():
        assert getattr(sae, name).shape == tensor.shape, name
    assert sae.check_decoder_norms()
    with torch.no_grad():
        sae.W_dec.mul_(1.01)
    assert not sae.check_decoder_norms()
    assert sae.to(dtype=torch.float64).dtype == torch.float64 and sae.W_dec.dtype == torch.float64
