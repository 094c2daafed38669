"""Residual-stream activations: computed with run_with_cache(stop_at_layer=...), cached on disk, shuffled.

The language model is most of the cost of an SAE run (about three quarters on a CPU), and every run of an
idea, and every idea on a preset, reads the same activations. So they are written once to a cache keyed
by (model, hook, corpus, split, tokens, context) and read back by later runs. Above cache_max_gb they are
streamed through a shuffling buffer instead, recomputing the model on each epoch.

BOS and padding positions are left out: Gemma's BOS residual is about 15 times the norm of the others.
"""

import hashlib
import json
import logging
import os
import shutil
from collections.abc import Iterator
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from .corpus import token_rows, valid_token_mask

log = logging.getLogger(__name__)
CACHE_FORMAT = 3  # 2: documents packed into rows with BOS separators; 3: split by content hash


@dataclass(frozen=True)
class ActivationKey:
    model_name: str
    hook_name: str
    corpus: str
    split: str
    n_tokens: int
    context_length: int
    dtype: str
    format: int = CACHE_FORMAT

    def digest(self) -> str:
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:20]


class ActivationSource:
    """Computes activations of one split with the language model, batch by batch."""

    def __init__(self, model, key: ActivationKey, layer: int, lm_batch_prompts: int, cache_dir: Path | None = None):
        self.model, self.key, self.layer, self.lm_batch_prompts = model, key, layer, lm_batch_prompts
        self.cache_dir = cache_dir

    def batches(self, desc: str) -> Iterator[torch.Tensor]:
        tokens = token_rows(self.key.corpus, self.key.split, self.model.tokenizer,
                            self.key.context_length, self.key.n_tokens, self.cache_dir)
        with tqdm(total=self.key.n_tokens, desc=desc, unit="tok", unit_scale=True) as bar:
            for start in range(0, len(tokens), self.lm_batch_prompts):
                batch = tokens[start:start + self.lm_batch_prompts].to(self.model.cfg.device)
                with torch.no_grad():
                    _, cache = self.model.run_with_cache(
                        batch, names_filter=[self.key.hook_name], stop_at_layer=self.layer + 1
                    )
                acts = cache[self.key.hook_name][valid_token_mask(batch, self.model.tokenizer)]
                bar.update(len(acts))
                yield acts.float()


def cached_or_streamed(source: ActivationSource, cache_dir: Path, cache_max_gb: float, d_model: int):
    """A CachedActivations if the set fits under the cap (computing it once if missing), else a StreamedActivations."""
    size_gb = source.key.n_tokens * d_model * 4 / 1e9
    if size_gb > cache_max_gb:
        log.info("Activations (%.1f GB) exceed cache_max_gb=%.1f: streaming them", size_gb, cache_max_gb)
        return StreamedActivations(source)
    path = cache_path(cache_dir, source.key)
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        free_gb = shutil.disk_usage(path.parent).free / 1e9
        if free_gb < size_gb + 1.0:
            log.warning("Only %.1f GB free in %s for %.1f GB of activations: streaming them instead",
                        free_gb, path.parent, size_gb)
            return StreamedActivations(source)
        _write_cache(source, path, d_model)
    else:
        log.info("Reusing cached activations %s", path)
    return CachedActivations(path, source.key)


def _write_cache(source: ActivationSource, path: Path, d_model: int):
    """Fill a memory-mapped file and rename it into place, so a killed run leaves no half-written cache."""
    _remove_abandoned_partials(path)
    partial = path.with_suffix(f".partial-{os.getpid()}.npy")
    out = np.lib.format.open_memmap(partial, mode="w+", dtype=np.float32, shape=(source.key.n_tokens, d_model))
    filled = 0
    for acts in source.batches(desc=f"LM activations ({source.key.split})"):
        out[filled:filled + len(acts)] = acts.cpu().numpy()
        filled += len(acts)
    if filled != source.key.n_tokens:
        raise RuntimeError(f"computed {filled} activations, expected {source.key.n_tokens}")
    out.flush()
    del out
    meta = path.with_suffix(".json")
    meta.write_text(json.dumps(asdict(source.key), indent=2))
    os.replace(partial, path)


def _remove_abandoned_partials(path: Path):
    """Delete partial files of this cache entry left by runs that were killed (their process is gone)."""
    for partial in path.parent.glob(f"{path.stem}.partial-*.npy"):
        pid = partial.name.split(".partial-")[1].removesuffix(".npy")
        if pid.isdigit() and not Path(f"/proc/{pid}").exists():
            partial.unlink(missing_ok=True)


class CachedActivations:
    """Activations held in a .npy file; each epoch visits every row once in a fresh random order."""

    def __init__(self, path: Path, key: ActivationKey):
        self.path, self.key = path, key
        # Copy-on-write mapping: torch wants a writable array, and nothing here writes, so the file stays as it is.
        self.data = torch.from_numpy(np.load(path, mmap_mode="c"))

    def __len__(self) -> int:
        return len(self.data)

    def sample(self, n: int, generator: torch.Generator) -> torch.Tensor:
        idx = torch.randperm(len(self.data), generator=generator)[:n].sort().values
        return self.data[idx].clone()

    def epoch(self, batch_size: int, generator: torch.Generator) -> Iterator[torch.Tensor]:
        order = torch.randperm(len(self.data), generator=generator)
        for start in range(0, len(order) - batch_size + 1, batch_size):
            yield self.data[order[start:start + batch_size].sort().values]

    def all(self) -> torch.Tensor:
        return self.data.clone()


class ShuffleBuffer:
    """Mixes a stream of activation batches: rows leave in random order once the buffer is half full."""

    def __init__(self, capacity: int, generator: torch.Generator):
        self.capacity, self.generator = capacity, generator
        self.rows: list[torch.Tensor] = []
        self.size = 0

    def push(self, acts: torch.Tensor):
        self.rows.append(acts)
        self.size += len(acts)

    def drain(self, batch_size: int, final: bool = False) -> Iterator[torch.Tensor]:
        if self.size < self.capacity and not final:
            return
        pool = torch.cat(self.rows)
        pool = pool[torch.randperm(len(pool), generator=self.generator)]
        keep = 0 if final else len(pool) // 2
        n_out = (len(pool) - keep) // batch_size * batch_size
        for start in range(0, n_out, batch_size):
            yield pool[start:start + batch_size]
        self.rows = [pool[n_out:]]
        self.size = len(pool) - n_out


class StreamedActivations:
    """Activations recomputed on each epoch and mixed through a ShuffleBuffer; for sets above the cache cap."""

    def __init__(self, source: ActivationSource, buffer_batches: int = 32):
        self.source, self.key, self.buffer_batches = source, source.key, buffer_batches

    def __len__(self) -> int:
        return self.key.n_tokens

    def sample(self, n: int, generator: torch.Generator) -> torch.Tensor:
        taken, have = [], 0
        for acts in self.source.batches(desc="LM activations (sample)"):
            taken.append(acts.cpu())
            have += len(acts)
            if have >= n:
                break
        pool = torch.cat(taken)
        return pool[torch.randperm(len(pool), generator=generator)[:n]]

    def epoch(self, batch_size: int, generator: torch.Generator) -> Iterator[torch.Tensor]:
        buffer = ShuffleBuffer(self.buffer_batches * batch_size, generator)
        for acts in self.source.batches(desc="LM activations (streamed)"):
            buffer.push(acts.cpu())
            yield from buffer.drain(batch_size)
        yield from buffer.drain(batch_size, final=True)


class MultiLayerSource:
    """Computes the activations of several layers of one split from a single forward pass per batch.

    `keys` maps each layer to its ActivationKey; the keys must differ in hook_name only. Each batch runs
    run_with_cache with all the hooks in names_filter and stop_at_layer = deepest layer + 1, on the same token
    rows and with the same BOS/padding mask as ActivationSource, so each layer's activations are the ones its
    single-layer source computes, at the cost of one pass to the deepest layer.
    """

    def __init__(self, model, keys: dict[int, ActivationKey], lm_batch_prompts: int, cache_dir: Path | None = None):
        if not keys:
            raise ValueError("MultiLayerSource needs at least one layer")
        first = next(iter(keys.values()))
        if any(replace(key, hook_name=first.hook_name) != first for key in keys.values()):
            raise ValueError("MultiLayerSource keys must differ in hook_name only")
        self.model, self.keys, self.lm_batch_prompts, self.cache_dir = model, dict(keys), lm_batch_prompts, cache_dir
        self.split_key = first

    def batches(self, desc: str) -> Iterator[dict[int, torch.Tensor]]:
        key = self.split_key
        tokens = token_rows(key.corpus, key.split, self.model.tokenizer, key.context_length, key.n_tokens,
                            self.cache_dir)
        hooks = {layer: layer_key.hook_name for layer, layer_key in self.keys.items()}
        with tqdm(total=key.n_tokens, desc=desc, unit="tok", unit_scale=True) as bar:
            for start in range(0, len(tokens), self.lm_batch_prompts):
                batch = tokens[start:start + self.lm_batch_prompts].to(self.model.cfg.device)
                with torch.no_grad():
                    _, cache = self.model.run_with_cache(
                        batch, names_filter=list(hooks.values()), stop_at_layer=max(hooks) + 1
                    )
                mask = valid_token_mask(batch, self.model.tokenizer)
                acts = {layer: cache[hook][mask].float() for layer, hook in hooks.items()}
                bar.update(int(mask.sum()))
                yield acts


def cache_path(cache_dir: Path, key: ActivationKey) -> Path:
    """Where the activation cache keeps the set named by key (the path cached_or_streamed uses)."""
    return cache_dir / "activations" / f"{key.digest()}.npy"


def cached_layers(source: MultiLayerSource, cache_dir: Path, d_model: int) -> dict[int, CachedActivations]:
    """Each layer's CachedActivations. Layers already in the cache are read back; the missing ones are computed
    together, in one pass of the language model to the deepest missing layer, and cached under their own keys,
    so that a later single-layer run (cached_or_streamed) at any of these layers reuses them."""
    missing = {layer: key for layer, key in source.keys.items() if not cache_path(cache_dir, key).exists()}
    for layer in sorted(set(source.keys) - set(missing)):
        log.info("Reusing cached activations of layer %d: %s", layer, cache_path(cache_dir, source.keys[layer]))
    if missing:
        size_gb = source.split_key.n_tokens * d_model * 4 * len(missing) / 1e9
        folder = cache_dir / "activations"
        folder.mkdir(parents=True, exist_ok=True)
        free_gb = shutil.disk_usage(folder).free / 1e9
        if free_gb < size_gb + 1.0:
            raise OSError(f"{size_gb:.1f} GB of activations for layers {sorted(missing)} do not fit in the "
                          f"{free_gb:.1f} GB free in {folder}; free some space or sweep fewer layers")
        todo = MultiLayerSource(source.model, missing, source.lm_batch_prompts, source.cache_dir)
        _write_layer_caches(todo, cache_dir, d_model)
    return {layer: CachedActivations(cache_path(cache_dir, key), key) for layer, key in sorted(source.keys.items())}


def _write_layer_caches(source: MultiLayerSource, cache_dir: Path, d_model: int):
    """_write_cache for several layers at once: fill one memory-mapped partial file per layer, then rename each."""
    n_tokens = source.split_key.n_tokens
    paths = {layer: cache_path(cache_dir, key) for layer, key in source.keys.items()}
    partials, outs = {}, {}
    for layer, path in paths.items():
        _remove_abandoned_partials(path)
        partials[layer] = path.with_suffix(f".partial-{os.getpid()}.npy")
        outs[layer] = np.lib.format.open_memmap(partials[layer], mode="w+", dtype=np.float32,
                                                shape=(n_tokens, d_model))
    filled = 0
    desc = f"LM activations ({source.split_key.split}, {len(paths)} layers, deepest {max(paths)})"
    for acts in source.batches(desc=desc):
        n = len(next(iter(acts.values())))
        for layer, layer_acts in acts.items():
            outs[layer][filled:filled + n] = layer_acts.cpu().numpy()
        filled += n
    if filled != n_tokens:
        raise RuntimeError(f"computed {filled} activations, expected {n_tokens}")
    for out in outs.values():
        out.flush()
    outs.clear()
    for layer, path in paths.items():
        path.with_suffix(".json").write_text(json.dumps(asdict(source.keys[layer]), indent=2))
        os.replace(partials[layer], path)
