"""SAELens's side of the sweep, in three set-ups: a LanguageModelSAETrainingRunner per configuration streaming fresh
activations; CacheActivationsRunner once and then a runner per configuration reading that cache; and
MultiSAETrainingRunner training every configuration from one stream of activations."""

import contextlib
import math
import time
from pathlib import Path

import torch
from datasets import Dataset
from sae_lens import (
    CacheActivationsRunner,
    CacheActivationsRunnerConfig,
    LanguageModelSAERunnerConfig,
    LanguageModelSAETrainingRunner,
    LoggingConfig,
    MultiSAETrainingRunner,
    MultiSAETrainingRunnerConfig,
    cache_activations_runner,
)
from sae_lens.saes.standard_sae import StandardTrainingSAEConfig
from sae_lens.saes.topk_sae import TopKTrainingSAEConfig

from sae_harness.corpus import _pad_id, token_rows
from sae_harness.workspace import NORM_SAMPLE_TOKENS

from .config import BenchConfig


def norm_batches(bench: BenchConfig) -> int:
    """SAELens's norm-estimate batches: as many tokens as the template's own estimate, min(20,000, tokens)."""
    return math.ceil(min(NORM_SAMPLE_TOKENS, bench.tokens) / bench.batch_size)


def saelens_token_rows(bench: BenchConfig, tokenizer, context: int) -> torch.Tensor:
    """The template's token rows, long enough for SAELens's norm estimate, its training tokens and its buffer."""
    slack = 4 * bench.preset_info.for_device(bench.preset_info.lm_batch_prompts, bench.device) * context
    wanted = bench.sae_tokens + norm_batches(bench) * bench.batch_size + slack
    try:
        return token_rows(bench.preset_info.corpus, "train", tokenizer, context, wanted)
    except ValueError:  # ConfigError: the corpus is shorter; SAELens then starts a second pass, with a warning
        return token_rows(bench.preset_info.corpus, "train", tokenizer, context, bench.sae_tokens)


def check_token_prefix(bench: BenchConfig, tokenizer, context: int, rows: torch.Tensor) -> bool:
    """True when the rows the template computes for `tokens` are the first rows SAELens reads."""
    ours = token_rows(bench.preset_info.corpus, "train", tokenizer, context, bench.tokens)
    full = len(ours) - 1  # the template's last row may be padded where SAELens's row goes on
    return bool(torch.equal(ours[:full], rows[:full]))


def saelens_sae_config(bench: BenchConfig, variant: str, value, normalize: str):
    common = dict(d_in=bench.preset_info.d_model, d_sae=bench.d_sae, dtype="float32", device=bench.device,
                  normalize_activations=normalize)
    if variant == "topk":
        return TopKTrainingSAEConfig(k=int(value), **common)
    return StandardTrainingSAEConfig(l1_coefficient=float(value), **common)


def lm_batch_prompts(bench: BenchConfig) -> int:
    return bench.preset_info.for_device(bench.preset_info.lm_batch_prompts, bench.device)


def runner_settings(bench: BenchConfig, tokenizer, out_dir: Path) -> dict:
    """What SAELens's single and multi-SAE runner configs share: sizes, schedule, special tokens, no logging."""
    warmup, decay = bench.schedule(bench.steps)
    return dict(
        training_tokens=bench.sae_tokens,
        train_batch_size_tokens=bench.batch_size,
        store_batch_size_prompts=lm_batch_prompts(bench),
        exclude_special_tokens=sorted({tokenizer.bos_token_id, _pad_id(tokenizer)}),
        n_batches_for_norm_estimate=norm_batches(bench),
        lr=bench.lr,
        lr_warm_up_steps=warmup,
        lr_decay_steps=decay,
        device=bench.device,
        dtype="float32",
        autocast=bench.dtype == "bfloat16",
        seed=bench.seed,
        logger=LoggingConfig(log_to_wandb=False),
        n_eval_batches=0,
        checkpoint_path=None,
        output_path=str(out_dir),
    )


def saelens_runner_config(bench: BenchConfig, value, out_dir: Path, tokenizer, context: int,
                          cached: Path | None = None):
    """One configuration's runner config: streaming from the token rows, or reading the cache at `cached`."""
    return LanguageModelSAERunnerConfig(
        sae=saelens_sae_config(bench, bench.variant, value, normalize="expected_average_only_in"),
        model_name=bench.preset_info.model_name,
        hook_name=bench.preset_info.hook_name,
        dataset_path="",
        is_dataset_tokenized=True,
        streaming=False,
        context_size=context,
        use_cached_activations=cached is not None,
        cached_activations_path=str(cached) if cached else None,
        **runner_settings(bench, tokenizer, out_dir),
        verbose=False,
    )


def run_saelens(bench: BenchConfig, value, model, dataset, out_dir: Path, context: int,
                cached: Path | None = None) -> dict:
    """One LanguageModelSAETrainingRunner run. lm_s is the time its store spent producing activations: the language
    model when streaming, reading the cache from disk when `cached`."""
    cfg = saelens_runner_config(bench, value, out_dir, model.tokenizer, context, cached)
    started = time.perf_counter()
    runner = LanguageModelSAETrainingRunner(cfg, override_dataset=dataset, override_model=model)
    lm = {"seconds": 0.0, "batches": 0}
    get_raw_llm_batch = runner.activations_store.get_raw_llm_batch

    def timed_get_raw_llm_batch(*args, **kwargs):
        t0 = time.perf_counter()
        out = get_raw_llm_batch(*args, **kwargs)
        lm["seconds"] += time.perf_counter() - t0
        lm["batches"] += 1
        return out

    runner.activations_store.get_raw_llm_batch = timed_get_raw_llm_batch
    runner.run()
    wall = time.perf_counter() - started
    return {"value": value, "wall_s": wall, "lm_s": lm["seconds"], "lm_batches": lm["batches"],
            "sae_and_other_s": wall - lm["seconds"]}


@contextlib.contextmanager
def loaded_model_for_cache_runner(model):
    """CacheActivationsRunner loads its model by name (a hub call) and, unlike the training runners, takes no
    override_model: hand it the model already loaded, as the other set-ups get it."""
    load = cache_activations_runner.load_model
    cache_activations_runner.load_model = lambda **_: model
    try:
        yield
    finally:
        cache_activations_runner.load_model = load


def cache_activations(bench: BenchConfig, model, rows: torch.Tensor, path: Path, context: int) -> dict:
    """CacheActivationsRunner over the rows ours computes (the first ones that hold `tokens` text tokens), rounded
    up to whole LM batches, written as one shard: its buffer is sized to the whole cache because a buffer the
    rows cannot fill is dropped. BOS and padding stay in the cache with their token ids; the training runs leave
    them out (exclude_special_tokens), as ours does."""
    batch = lm_batch_prompts(bench)
    text_tokens = (rows != model.tokenizer.bos_token_id) & (rows != _pad_id(model.tokenizer))
    needed = int((text_tokens.sum(dim=1).cumsum(0) < bench.tokens).sum()) + 1
    n_rows = min(len(rows) // batch, math.ceil(needed / batch)) * batch
    cfg = CacheActivationsRunnerConfig(
        dataset_path="",
        model_name=bench.preset_info.model_name,
        model_batch_size=batch,
        hook_name=bench.preset_info.hook_name,
        d_in=bench.preset_info.d_model,
        training_tokens=n_rows * context,
        context_size=context,
        new_cached_activations_path=str(path),
        seed=bench.seed,
        dtype="float32",
        device=bench.device,
        # Half a token over the exact size, so that the float round trip cannot drop the last LM batch.
        buffer_size_gb=(n_rows * context + 0.5) * bench.preset_info.d_model * 4 / 1e9,
    )
    started = time.perf_counter()
    with loaded_model_for_cache_runner(model):
        runner = CacheActivationsRunner(cfg, override_dataset=Dataset.from_dict({"tokens": rows[:n_rows].tolist()}))
    written = runner.run()
    return {"wall_s": time.perf_counter() - started, "rows": len(written), "text_tokens":
            int(text_tokens[:n_rows].sum())}


def run_saelens_multi(bench: BenchConfig, model, dataset, out_dir: Path, context: int) -> dict:
    """MultiSAETrainingRunner: every configuration trained on each batch of one activation stream of epochs * tokens
    fresh tokens. SAELens 6.54 builds its store from a dataset only (from_config_multi_hook), so it cannot read
    a cache."""
    saes = {f"sae_{i}": saelens_sae_config(bench, bench.variant, v, normalize="expected_average_only_in")
            for i, v in enumerate(bench.sweep_values, start=1)}
    cfg = MultiSAETrainingRunnerConfig(
        saes=saes,
        hook_names=bench.preset_info.hook_name,
        model_name=bench.preset_info.model_name,
        dataset_path="",
        streaming=False,
        context_size=context,
        **runner_settings(bench, model.tokenizer, out_dir),
    )
    started = time.perf_counter()
    MultiSAETrainingRunner(cfg, override_dataset=dataset, override_model=model).run()
    return {"wall_s": time.perf_counter() - started}
