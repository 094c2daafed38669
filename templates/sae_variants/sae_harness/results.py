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
from collections.abc import Collection
from pathlib import Path

import jsonschema
import numpy as np

from .autointerp_contexts import write_autointerp_contexts
from .config import BASELINE_ONLY
from .evaluation import core_group, ground_truth_group, interpretability_groups
from .saelens_export import export_saelens, verify_saelens_export
from .settings import given_settings, settings_group

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


def validate_group(name: str, group: dict):
    """Raise jsonschema.ValidationError if one group breaks its part of the schema: a run checks its settings group
    before training, so that a missing field costs seconds, not a whole run."""
    schema = json.loads(SCHEMA_PATH.read_text())
    jsonschema.validate(group, {**schema["properties"].get(name, schema["additionalProperties"]),
                                "$defs": schema["$defs"]})


def _finite(value):
    """JSON has no NaN or infinity; record them as null so that no reader mistakes them for numbers."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def harness_config(config, recorded_settings: dict) -> dict:
    """final_info.json's training.config: the configuration less the fields the settings group records (ran, unused
    or overridden), whose config.toml values experiment.py may have replaced, so that a reader sees only the values
    that ran, and less the fields of baseline.py alone (BASELINE_ONLY)."""
    shown = given_settings(recorded_settings)
    return {name: value for name, value in config.to_dict().items() if name not in shown and name not in BASELINE_ONLY}


def write_run(out_dir: Path, workspace, sae, facts: dict, settings, wall_started: float,
              read: Collection[str] | None = None) -> dict:
    """Evaluate the trained sae and write out_dir; return final_info. facts: train()'s return (its "log" becomes
    training_log.jsonl, its "effective_settings" the trainer's report of the settings it used, the rest the training
    group's means); settings: run_settings()'s Settings; read: the fields the run's code read (SettingsReads). The
    "settings" group records what ran: the values sae.effective_settings() and the trainer report over
    run_settings()'s, with any difference noted, and the fields nothing read or reported moved to "unused"
    (sae_harness/settings.py)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    config = workspace.config
    core, frequencies = core_group(sae, workspace)
    truth = {"ground_truth": ground_truth_group(sae, workspace)} if workspace.preset.synthetic else {}
    groups = {"core": core, **truth, **interpretability_groups(sae, workspace, out_dir.name)}
    facts = dict(facts)
    log_rows = facts.pop("log")
    # After the evaluations, so that a field read only when the SAE encodes held-out text counts as read.
    recorded = settings_group(settings, {**facts.pop("effective_settings", {}), **sae.effective_settings()}, read)
    shown_config = harness_config(config, recorded)
    training_means = {
        **facts,
        "layer": workspace.preset.layer,
        "d_in": workspace.preset.d_model,
        "activation_scale": workspace.scale,
        "setup_seconds": workspace.setup_seconds,
        "wall_seconds": time.perf_counter() - wall_started,
    }
    info = {
        "settings": recorded,
        "training": {
            "status": "ok",
            "means": training_means,
            "preset": workspace.preset.name,
            "sae_class": type(sae).__name__,
            "model_name": workspace.preset.model_name,
            "hook_name": workspace.preset.hook_name,
            "device": workspace.device,
            "config": shown_config,
            "config_sources": {name: source for name, source in config.sources.items() if name in shown_config},
            "platform": platform.platform(),
            **workspace.training_notes,
        },
        **{name: group.to_json() for name, group in groups.items()},
    }
    info = _finite(info)

    atomic_write_text(out_dir / "training_log.jsonl", "".join(json.dumps(row) + "\n" for row in log_rows))
    atomic_save_npy(out_dir / "feature_frequencies.npy", frequencies)
    if not workspace.preset.synthetic:  # autointerp explains text; synthetic samples have none
        write_autointerp_contexts(sae, workspace, out_dir)
    metadata = {"variant": recorded["choices"].get("variant", type(sae).__name__), "sae_class": type(sae).__name__,
                "training_tokens": facts["training_tokens"], "settings": {**recorded["means"], **recorded["choices"]}}
    export = export_saelens(sae, out_dir / "sae", config.preset_value("context_length", workspace.device), metadata)
    problem = verify_saelens_export(sae, export, workspace.heldout[:512])
    if problem:
        shutil.rmtree(export)
    info["training"]["saelens_export"] = problem or "sae/ loads with sae_lens.SAE.load_from_disk"
    validate_final_info(info)
    atomic_write_text(out_dir / "final_info.json", json.dumps(info, indent=2))
    return info
