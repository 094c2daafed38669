"""sae_harness/check.py, the template's answer to the orchestrator's preflight, and the local copy of a hub corpus
that lets hub presets run without network."""

import json
import shutil

from sae_harness import corpus
from sae_harness.check import check
from sae_harness.config import load_config
from tests.conftest import TEMPLATE_DIR

CONFIG = TEMPLATE_DIR / "config.toml"


def test_the_offline_default_has_no_problem(monkeypatch):
    monkeypatch.setenv("SAE_PRESET", "gemma-3-270m")
    report = check(CONFIG)
    assert report["problems"] == [] and report["preset"] == "gemma-3-270m" and report["hub"] == []


def test_a_value_of_the_wrong_type_is_named_with_its_source(monkeypatch, tmp_path):
    monkeypatch.setenv("SAE_DICT_SIZE", "two thousand")
    assert check(CONFIG)["problems"] == [
        "environment variable SAE_DICT_SIZE: dict_size = 'two thousand' is not a valid int; give a int (the fields "
        "are documented in sae_harness/config.py)."]
    monkeypatch.delenv("SAE_DICT_SIZE")
    config = tmp_path / "config.toml"
    config.write_text(CONFIG.read_text().replace("epochs = 3", "epochs = 2.5"))
    [problem] = check(config)["problems"]
    assert problem.startswith(f"{config}: epochs = 2.5")


def test_a_preset_sized_for_a_gpu_is_refused_on_the_cpu(monkeypatch, tmp_path):
    monkeypatch.setenv("SAE_PRESET", "gemma-2-2b-l12")
    monkeypatch.setenv("SAE_DEVICE", "cpu")
    monkeypatch.setenv("SAE_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    report = check(CONFIG)
    assert report["needs_gpu"] and report["hub"] == ["google/gemma-2-2b", "Skylion007/openwebtext"]
    gpu, model, text = report["problems"]
    assert gpu.startswith("preset gemma-2-2b-l12 is sized for a GPU")
    assert ("device = cpu was chosen" if report["gpu"] else "torch sees no CUDA GPU") in gpu
    assert "google/gemma-2-2b is not in the Hugging Face cache, and runs have no network" in model
    assert "hf download google/gemma-2-2b" in model
    config = load_config(CONFIG)
    needed = 6 * (2 * config.training_tokens + 8 * config.heldout_tokens)
    assert f"no local copy of {needed:,} characters in {tmp_path / 'corpora'}" in text


def test_a_hub_corpus_is_copied_once_then_read_without_the_hub(tmp_path, monkeypatch):
    """A local dataset folder stands in for the hub: `datasets` streams both the same way."""
    source = tmp_path / "hub_dataset"
    source.mkdir()
    texts = [f"Document {i}: " + "the residual stream carries features. " * (i % 5 + 1) for i in range(200)]
    (source / "train.jsonl").write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))
    cache = tmp_path / "cache"

    copy = corpus.prefetch_corpus(str(source), cache, n_chars=3000)
    assert copy == corpus.local_copy(str(source), cache)
    copied = [json.loads(line)["text"] for line in copy.read_text().splitlines()]
    assert copied == texts[:len(copied)] and sum(map(len, copied)) >= 3000 > sum(map(len, copied[:-1]))
    assert not list(copy.parent.glob("*.partial"))

    shutil.rmtree(source)  # no hub any more: the run reads the copy
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    train = list(corpus.documents(str(source), "train", cache))
    heldout = list(corpus.documents(str(source), "heldout", cache))
    assert sorted(train + heldout) == sorted(copied)
    assert all(corpus.is_heldout(text) for text in heldout) and not any(corpus.is_heldout(text) for text in train)


def test_the_full_size_synthetic_preset_points_to_the_cpu_one_and_its_hub_model_must_be_fetched(monkeypatch, tmp_path):
    monkeypatch.setenv("SAE_PRESET", "synth-16k")
    monkeypatch.setenv("SAE_DEVICE", "cpu")
    monkeypatch.setenv("SAE_SYNTHETIC_HUB", "true")
    monkeypatch.setenv("SAE_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    report = check(CONFIG)
    assert report["hub"] == ["decoderesearch/synth-sae-bench-16k-v1"]
    gpu, hub = report["problems"]
    assert gpu.startswith("preset synth-16k is sized for a GPU") and "--preset synth-cpu" in gpu
    assert "synthetic_hub = true but decoderesearch/synth-sae-bench-16k-v1 is not in" in hub
    assert "--prefetch" in hub and "synthetic_hub = false" in hub
