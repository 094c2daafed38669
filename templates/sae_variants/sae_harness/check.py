"""`python -m sae_harness.check [--prefetch]`: what the orchestrator asks the template before any LLM spend.

It reads the configuration exactly as a run will (config.toml, the preset's table, SAE_* variables) and prints one
JSON object: {"problems": [...], "preset", "device", "gpu", "needs_gpu", "hub": [...]}. Exit 0 when there is no
problem, 1 otherwise. Each problem names the file or variable, the field and the fix.

Runs have no network, so a hub preset's model must be in the Hugging Face cache and its corpus copied into the
activation cache first, and a synthetic preset with synthetic_hub = true needs the published synthetic model in the
activation cache. With --prefetch (the orchestrator passes it, outside the sandbox) they are fetched here.
"""

import argparse
import json
import sys
from pathlib import Path

from .config import ConfigError, load_config
from .corpus import HELDOUT_EVERY, local_copy, prefetch_corpus

CONFIG = Path(__file__).resolve().parent.parent / "config.toml"
# Characters of corpus text copied per token a run asks for: Gemma-style tokenisers average about 4 characters a
# token on English web text; the margin covers documents shorter than that.
CHARS_PER_TOKEN = 6


def check(config_path: Path = CONFIG, prefetch: bool = False) -> dict:
    report: dict = {"problems": []}
    try:
        config = load_config(config_path)
    except ConfigError as err:
        report["problems"].append(str(err))
        return report
    import torch

    spec = config.preset_spec
    gpu = torch.cuda.is_available()
    report.update(preset=config.preset, gpu=gpu, needs_gpu=spec.needs_gpu, hub=[])
    try:
        report["device"] = config.resolved_device()
    except ConfigError as err:
        report["problems"].append(str(err))
        return report
    if spec.needs_gpu and report["device"] == "cpu":
        report["problems"].append(
            f"preset {config.preset} is sized for a GPU ({config.training_tokens:,} training tokens of "
            f"{spec.model_name}) and {'device = cpu was chosen' if gpu else 'torch sees no CUDA GPU'}; run it on a "
            f"GPU machine, or choose --preset {'synth-cpu' if spec.synthetic else 'gemma-3-270m'} (sized for a CPU)")
    if spec.loader == "hub":
        report["hub"] = [spec.model_name, spec.corpus]
        report["problems"] += _hub_model_problems(spec, prefetch)
        report["problems"] += _hub_corpus_problems(config, prefetch)
    if spec.synthetic and config.synthetic_hub:
        report["hub"] = [spec.hub_model]
        report["problems"] += _synthetic_hub_problems(config, prefetch)
    return report


def _synthetic_hub_problems(config, prefetch: bool) -> list[str]:
    from .synthetic import load_synthetic_model, model_dir
    from .workspace import default_cache_dir

    spec = config.preset_spec
    cache_dir = Path(config.cache_dir) if config.cache_dir else default_cache_dir()
    if model_dir(cache_dir, spec, True).is_dir():
        return []
    reason = ""
    if prefetch:
        try:
            load_synthetic_model(spec, cache_dir, "cpu", from_hub=True)
            return []
        except Exception as err:  # the hub client raises many kinds: offline, not found, disk full
            reason = f" (fetching it failed: {type(err).__name__}: {str(err)[:200]})"
    return [f"preset {spec.name}: synthetic_hub = true but {spec.hub_model} is not in {cache_dir}, and runs have no "
            f"network{reason}; run `python -m sae_harness.check --prefetch` in the template folder where the hub can "
            "be reached, or set synthetic_hub = false to build the model from sae_harness/synthetic.py's config"]


def _hub_model_problems(spec, prefetch: bool) -> list[str]:
    from huggingface_hub import snapshot_download, try_to_load_from_cache

    if isinstance(try_to_load_from_cache(spec.model_name, "config.json"), str):
        return []
    if prefetch:
        try:
            snapshot_download(spec.model_name, allow_patterns=["*.json", "*.safetensors", "*.model", "*.txt"])
            return []
        except Exception as err:  # the hub client raises many kinds: offline, gated, not found, disk full
            reason = f" (fetching it failed: {type(err).__name__}: {str(err)[:200]})"
    else:
        reason = ""
    return [f"preset {spec.name}: {spec.model_name} is not in the Hugging Face cache, and runs have no network"
            f"{reason}; fetch it (`.venv/bin/hf download {spec.model_name}` in the template folder, with HF_TOKEN "
            "set for a gated model), or choose --preset gemma-3-270m"]


def _hub_corpus_problems(config, prefetch: bool) -> list[str]:
    from .workspace import default_cache_dir

    spec = config.preset_spec
    cache_dir = Path(config.cache_dir) if config.cache_dir else default_cache_dir()
    copy = local_copy(spec.corpus, cache_dir)
    needed = CHARS_PER_TOKEN * (config.training_tokens * 2 + config.heldout_tokens * HELDOUT_EVERY)
    if copy.exists() and copy.stat().st_size >= needed:
        return []
    if prefetch:
        try:
            prefetch_corpus(spec.corpus, cache_dir, needed)
            return []
        except (ConfigError, OSError) as err:
            reason = f" (copying it failed: {str(err)[:200]})"
    else:
        reason = ""
    return [f"preset {spec.name}: the corpus {spec.corpus} has no local copy of {needed:,} characters in {copy}, and "
            f"runs have no network{reason}; run `python -m sae_harness.check --prefetch` in the template folder "
            "where the hub can be reached, or choose --preset gemma-3-270m"]


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prefetch", action="store_true", help="Fetch a hub preset's model and corpus.")
    result = check(prefetch=parser.parse_args().prefetch)
    print(json.dumps(result))
    sys.exit(1 if result["problems"] else 0)
