"""Save an SAE in SAELens's on-disk format, written by SAELens itself, so `SAE.load_from_disk(path)` loads it.

An idea may change CustomSAE's encode into something no SAELens architecture computes. So every export is loaded
back and compared with our SAE on real activations; an export that does not reconstruct as ours is removed and
reported, never left behind to mislead.
"""

import os
import shutil
import tempfile
from pathlib import Path

import torch

from .sae_base import SAEBase


def export_saelens(sae: SAEBase, path: Path, context_length: int, extra_metadata: dict) -> Path:
    from sae_lens.registry import get_sae_class
    from sae_lens.saes.sae import SAEMetadata

    sae_class, config_class = get_sae_class(sae.saelens_architecture)
    config = config_class(
        d_in=sae.cfg.d_in,
        d_sae=sae.cfg.d_sae,
        dtype=str(sae.W_dec.dtype).removeprefix("torch."),
        device="cpu",
        apply_b_dec_to_input=True,
        normalize_activations="none",
        metadata=SAEMetadata(
            model_name=sae.cfg.model_name,
            hook_name=sae.cfg.hook_name,
            hook_head_index=None,
            context_size=context_length,
            prepend_bos=True,
            **extra_metadata,
        ),
        **sae.saelens_extra_config(),
    )
    exported = sae_class(config)
    state = {name: tensor.detach().cpu() for name, tensor in sae.saelens_state().items()}
    with torch.no_grad():
        exported.load_state_dict(state, strict=True)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}-"))
    exported.save_model(staging)
    if path.exists():
        shutil.rmtree(path)
    os.replace(staging, path)
    return path


def verify_saelens_export(sae: SAEBase, path: Path, acts: torch.Tensor) -> str | None:
    """None if SAELens's loaded copy reconstructs acts as our SAE does, else the reason it does not."""
    from sae_lens import SAE

    loaded = SAE.load_from_disk(path, device="cpu")
    x = acts.to(torch.float32).cpu()
    with torch.no_grad():
        ours = sae.to(device="cpu")(x)
        theirs = loaded(x)
    scale = ours.norm(dim=-1).mean()
    worst = ((ours - theirs).norm(dim=-1) / scale).max().item()
    if worst > 1e-3:
        return (f"SAELens architecture {sae.saelens_architecture!r} does not reproduce this SAE "
                f"(largest relative difference {worst:.3g}); set saelens_architecture to match encode()")
    return None
