"""Writing a run folder: evaluations, final_info.json (checked against the template's schema), the training log,
feature frequencies and the SAELens export.

Each file is written to a temporary name and renamed into place, and final_info.json is written last: a run
folder without final_info.json is an unfinished run, whatever else it holds.
"""

import json
import math
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path

import jsonschema
import numpy as np

from .evaluation import core_group, dataset_eval_groups
from .saelens_export import export_saelens, verify_saelens_export

SCHEMA_PATH = Path(__file__).resolve().parent.parent / "final_info.schema.json"


def atomic_write_text(path: Path, text: str):
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", dir=path.parent, prefix=f".{path.name}-", delete=False) as tmp:
        tmp.write(text)
        tmp.flush()
        os.fsync(tmp.fileno())
    os.replace(tmp.name, path)


def atomic_save_npy(path: Path, array: np.ndarray):
    with tempfile.NamedTemporaryFile(dir=path.parent, prefix=f".{path.name}-", suffix=".npy", delete=False) as tmp:
        np.save(tmp, array)
    os.replace(tmp.name, path)


def validate_final_info(info: dict):
    """Raise jsonschema.ValidationError if info breaks the template's final_info schema."""
    jsonschema.validate(info, json.loads(SCHEMA_PATH.read_text()))


def _finite(value):
    """JSON has no NaN or infinity; record them as null so that no reader mistakes them for numbers."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def write_run(out_dir: Path, config, workspace, sae, facts: dict, wall_started: float) -> dict:
    out_dir.mkdir(parents=True, exist_ok=True)
    core, frequencies = core_group(sae, workspace)
    groups = {"core": core, **dataset_eval_groups(sae, workspace)}
    log_rows = facts.pop("log")
    training_means = {
        **facts,
        "dict_size": config.dict_size,
        "layer": workspace.preset.layer,
        "d_in": workspace.preset.d_model,
        "lr": config.lr,
        "sparsity_penalty": config.sparsity_penalty,
        "k": config.k,
        "target_l0": config.target_l0,
        "batch_size": config.batch_size,
        "epochs": config.epochs,
        "seed": config.seed,
        "activation_scale": workspace.scale,
        "setup_seconds": workspace.setup_seconds,
        "wall_seconds": time.perf_counter() - wall_started,
    }
    info = {
        "training": {
            "status": "ok",
            "means": training_means,
            "preset": workspace.preset.name,
            "variant": config.variant,
            "model_name": workspace.preset.model_name,
            "hook_name": workspace.preset.hook_name,
            "device": workspace.device,
            "config": config.to_dict(),
            "config_sources": dict(config.sources),
            "platform": platform.platform(),
        },
        **{name: group.to_json() for name, group in groups.items()},
    }
    info = _finite(info)

    atomic_write_text(out_dir / "training_log.jsonl", "".join(json.dumps(row) + "\n" for row in log_rows))
    atomic_save_npy(out_dir / "feature_frequencies.npy", frequencies)
    export = export_saelens(sae, out_dir / "sae", config.preset_value("context_length", workspace.device),
                            {"variant": config.variant, "training_tokens": facts["training_tokens"]})
    problem = verify_saelens_export(sae, export, workspace.heldout[:512])
    if problem:
        shutil.rmtree(export)
    info["training"]["saelens_export"] = problem or "sae/ loads with sae_lens.SAE.load_from_disk"
    validate_final_info(info)
    atomic_write_text(out_dir / "final_info.json", json.dumps(info, indent=2))
    return info
