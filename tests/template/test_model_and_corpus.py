"""The offline default: the real Gemma 3 270M on the real gensim text, and the train/held-out split."""

import itertools

import torch

from sae_harness.corpus import documents, token_rows, valid_token_mask


def test_offline_model_gives_about_three_nats_on_heldout_text(tiny_workspace):
    model = tiny_workspace.model
    rows = token_rows("offline-wiki", "heldout", model.tokenizer, context_length=128, n_tokens=2000)[:8]
    with torch.no_grad():
        losses = model(rows, return_type="loss", loss_per_token=True)
    mask = valid_token_mask(rows[:, 1:], model.tokenizer)
    ce = losses[mask].mean().item()
    assert 2.5 < ce < 3.6, f"CE {ce:.2f} nats is far from the ~3.0 measured for Gemma 3 270M on this text"


def test_every_row_starts_with_bos_and_bos_and_padding_are_masked(tiny_workspace):
    tokenizer = tiny_workspace.model.tokenizer
    rows = token_rows("offline-wiki", "train", tokenizer, context_length=64, n_tokens=3000)
    assert (rows[:, 0] == tokenizer.bos_token_id).all()
    mask = valid_token_mask(rows, tokenizer)
    assert int(mask.sum()) == 3000
    assert not mask[:, 0].any()


def test_heldout_documents_are_never_training_documents():
    train = set(itertools.islice(documents("offline-wiki", "train"), 300))
    heldout = set(itertools.islice(documents("offline-wiki", "heldout"), 40))
    assert heldout and train
    assert not train & heldout


def test_cached_activations_exclude_bos_and_have_the_model_width(tiny_workspace):
    acts = tiny_workspace.heldout
    assert acts.shape == (tiny_workspace.config.heldout_tokens, 640)
    # Gemma's BOS residual is about 15 times the others; none should be in the set.
    norms = acts.norm(dim=-1)
    assert norms.max() < 5 * norms.median()
