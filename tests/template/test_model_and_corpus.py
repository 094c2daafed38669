"""The offline default: the real Gemma 3 270M on the real gensim text, and the train/held-out split."""

import torch

from sae_harness.activations import ActivationKey, ActivationSource
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
    train = set(documents("offline-wiki", "train"))
    heldout = set(documents("offline-wiki", "heldout"))
    assert len(heldout) > 30 and len(train) > 7 * len(heldout) * 0.7
    assert not train & heldout


def test_activations_leave_out_bos_and_padding(tiny_workspace):
    model = tiny_workspace.model
    key = ActivationKey("google/gemma-3-270m", "blocks.6.hook_resid_post", "offline-wiki", "heldout", 1000, 64,
                        "torch.float32")
    acts = torch.cat(list(ActivationSource(model, key, layer=6, lm_batch_prompts=4).batches(desc="test")))
    assert acts.shape == (1000, 640)
    # BOS sits at position 0 of every row and its residual is the same vector whatever follows it.
    _, cache = model.run_with_cache(torch.tensor([[model.tokenizer.bos_token_id]]), stop_at_layer=7,
                                    names_filter=["blocks.6.hook_resid_post"])
    bos = cache["blocks.6.hook_resid_post"][0, 0]
    distance_to_bos = (acts - bos).norm(dim=-1) / bos.norm()
    assert distance_to_bos.min() > 0.1


def test_a_run_whose_activations_are_cached_loads_the_model_only_when_asked(tiny_workspace, tiny_config):
    from sae_harness.workspace import Workspace

    again = Workspace.prepare(tiny_config)
    assert again.loaded_model is None
    assert torch.equal(again.heldout, tiny_workspace.heldout)
    assert again.model.cfg.d_model == tiny_workspace.preset.d_model and again.loaded_model is not None


def test_the_tokenizer_alone_tokenises_as_the_models_does(tiny_workspace, tiny_config):
    """A run whose activations are cached writes its autointerp contexts with the tokenizer alone; its token rows
    must be the ones the cached activations were computed from."""
    from sae_harness.workspace import Workspace

    again = Workspace.prepare(tiny_config)
    alone, theirs = again.tokenizer, tiny_workspace.model.tokenizer
    assert again.loaded_model is None and alone is not theirs
    for name in ("bos_token_id", "eos_token_id", "pad_token_id"):
        assert getattr(alone, name) == getattr(theirs, name), name
    ours = token_rows("offline-wiki", "heldout", alone, context_length=64, n_tokens=3000)
    assert torch.equal(ours, token_rows("offline-wiki", "heldout", theirs, context_length=64, n_tokens=3000))
