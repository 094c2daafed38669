"""SAEBench's sparse probing and TPP evals, run through SAEBench's own code with the run's loaded model.

Sparse probing trains one-vs-rest probes on mean-pooled activations of labelled texts, on the top-k SAE features
(k = 1, 2, 5) and, as the reference ceiling, on the language model's own channels. TPP (targeted probe perturbation)
ablates the SAE features most tied to one class and measures how much that class's probe loses against the others.

Upstream behaviour worked around here (SAEBench 0.6.0):
- `run_eval` reloads the model from the hub by name: `run_eval_single_sae` is called instead, with the model the
  run already has.
- `llm_batch_size` and `llm_dtype` default to values that fail (None reaches a beartype-checked int): both are set
  from the preset.
- Its probe training checks tensor shapes with jaxtyping, and with jaxtyping 0.3 a beartype-checked helper
  (train_sklearn_probe) inherits the dimension sizes of the jaxtyped function that calls it, so every top-k probe
  fails with "size of dimension train_dataset_size is 2N which does not equal the existing value of N". The
  shape checks are switched off while these evals run (`shape_checks_off`).
- The language model's activations of the probing texts are cached by SAEBench in an artifacts folder keyed by
  dataset name only, and written with a plain torch.save. Here the folder is keyed by model, hook, dtype, sizes and
  seed inside the activation cache, SAEBench writes into a staging copy, and new files are renamed into place only
  after the eval returns: a killed run never leaves a half-written entry that later runs would load.
"""

import contextlib
import dataclasses
import hashlib
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

from .probing_data import offline_datasets_routed

SAE_BATCH = 125             # SAEBench's default SAE batch (texts per encode)
STALE_STAGING_S = 6 * 3600  # a staging folder this old was left by a killed run (no eval runs that long)
PROBE_SEED = 42             # SAEBench's default seed: the same texts and probes for every run
K_VALUES = (1, 2, 5)        # SAEBench's default numbers of features for the sparse probes


def probing_sizes(workspace) -> tuple[int, int]:
    """(train, test) texts per dataset: the configuration's when set, else the preset's for this device."""
    config, preset = workspace.config, workspace.preset
    train, test = preset.for_device(preset.probe_texts, workspace.device)
    return config.probe_train_texts or train, config.probe_test_texts or test


def _llm_settings(workspace) -> dict:
    return {
        "model_name": workspace.preset.model_name,
        "llm_batch_size": (workspace.config.lm_batch_prompts
                           or workspace.preset.for_device(workspace.preset.lm_batch_prompts, workspace.device)),
        "llm_dtype": str(workspace.preset.torch_dtype(workspace.device)).removeprefix("torch."),
    }


def sparse_probing_config(workspace):
    from sae_bench.evals.sparse_probing.eval_config import SparseProbingEvalConfig

    train, test = probing_sizes(workspace)
    return SparseProbingEvalConfig(
        random_seed=PROBE_SEED, dataset_names=list(workspace.preset.probe_datasets), probe_train_set_size=train,
        probe_test_set_size=test, context_length=workspace.preset.context_length, sae_batch_size=SAE_BATCH,
        k_values=list(K_VALUES), **_llm_settings(workspace))


def tpp_config(workspace):
    from sae_bench.evals.scr_and_tpp.eval_config import ScrAndTppEvalConfig

    train, test = probing_sizes(workspace)
    preset = workspace.preset
    return ScrAndTppEvalConfig(
        random_seed=PROBE_SEED, dataset_names=list(preset.tpp_datasets), perform_scr=False, train_set_size=train,
        test_set_size=test, context_length=preset.context_length, sae_batch_size=SAE_BATCH,
        n_values=list(preset.for_device(preset.tpp_thresholds, workspace.device)), **_llm_settings(workspace))


def scr_config(workspace):
    """SCR on SAEBench's own bias_in_bios and Amazon sets (hub presets only: they have no offline copy)."""
    from sae_bench.evals.scr_and_tpp.eval_config import ScrAndTppEvalConfig

    return ScrAndTppEvalConfig(random_seed=PROBE_SEED, perform_scr=True, sae_batch_size=SAE_BATCH,
                               **_llm_settings(workspace))


class ArtifactCache:
    """SAEBench's artifacts folder for one eval, kept in the activation cache and filled atomically."""

    def __init__(self, workspace, eval_name: str, eval_config):
        settings = {key: value for key, value in dataclasses.asdict(eval_config).items()
                    if key not in ("sae_batch_size", "llm_batch_size", "lower_vram_usage", "n_values")}
        settings["hook_name"] = workspace.preset.hook_name
        digest = hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()[:16]
        self.folder = Path(workspace.cache_dir) / "saebench" / eval_name / digest
        self.settings = settings

    def run(self, evaluate):
        """Call evaluate(artifacts_folder) on a staging copy of the cache; keep the files it adds, whole."""
        self.folder.mkdir(parents=True, exist_ok=True)
        prefix = f".{self.folder.name}-"
        for stale in self.folder.parent.glob(f"{prefix}*"):
            if time.time() - stale.stat().st_mtime > STALE_STAGING_S:
                shutil.rmtree(stale, ignore_errors=True)
        staging = Path(tempfile.mkdtemp(dir=self.folder.parent, prefix=prefix))
        try:
            for entry in self.folder.iterdir():
                os.link(entry, staging / entry.name)
            result = evaluate(str(staging))
            for entry in staging.iterdir():
                if not (self.folder / entry.name).exists():
                    os.replace(entry, self.folder / entry.name)
            (self.folder / "settings.json").write_text(json.dumps(self.settings, indent=2, default=str))
            return result
        finally:
            shutil.rmtree(staging, ignore_errors=True)


@contextlib.contextmanager
def shape_checks_off():
    import jaxtyping

    was_disabled = jaxtyping.config.jaxtyping_disable
    jaxtyping.config.update("jaxtyping_disable", True)
    try:
        yield
    finally:
        jaxtyping.config.update("jaxtyping_disable", was_disabled)


def _saebench_sae(sae, device: str):
    from sae_bench.sae_bench_utils.general_utils import load_and_format_sae

    return load_and_format_sae("custom", sae, device)[1]


def sparse_probing_means(sae, workspace) -> tuple[dict, dict]:
    """(means, details) of SAEBench's sparse probing: 'sae.sae_top_<k>_test_accuracy', the all-features probe
    'sae.sae_test_accuracy' and the model's own 'llm.*' accuracies, averaged over datasets."""
    from sae_bench.evals.sparse_probing.main import run_eval_single_sae

    results, details = _run_saebench(run_eval_single_sae, sae, workspace, "sparse_probing",
                                     sparse_probing_config(workspace))
    return {f"{name.split('_', 1)[0]}.{name}": value for name, value in results.items()}, details


def tpp_means(sae, workspace) -> tuple[dict, dict]:
    """(means, details) of SAEBench's TPP: 'tpp_metrics.tpp_threshold_<n>_{total_metric,intended_diff_only,
    unintended_diff_only}', averaged over datasets."""
    return _scr_and_tpp_means(sae, workspace, "tpp", tpp_config(workspace))


def scr_means(sae, workspace) -> tuple[dict, dict]:
    return _scr_and_tpp_means(sae, workspace, "scr", scr_config(workspace))


def _scr_and_tpp_means(sae, workspace, eval_name: str, eval_config) -> tuple[dict, dict]:
    from sae_bench.evals.scr_and_tpp.main import run_eval_single_sae

    results, details = _run_saebench(run_eval_single_sae, sae, workspace, eval_name, eval_config)
    return {f"{eval_name}_metrics.{name}": value for name, value in results.items()}, details


def _run_saebench(run_eval_single_sae, sae, workspace, eval_name: str, eval_config) -> tuple[dict, dict]:
    """One of SAEBench's run_eval_single_sae with the run's model, the offline datasets routed and the artifacts
    cached: (its averaged numbers, details with the config and the per-dataset and per-class results)."""
    cache = ArtifactCache(workspace, eval_name, eval_config)
    sae = _saebench_sae(sae, workspace.device)
    with offline_datasets_routed(), shape_checks_off():
        results, per_class = cache.run(lambda folder: run_eval_single_sae(
            eval_config, sae, workspace.model, workspace.device, folder, save_activations=True))
    averaged = {name: value for name, value in results.items() if not isinstance(value, dict)}
    details = {"eval_config": dataclasses.asdict(eval_config),
               "per_dataset": {name: value for name, value in results.items() if isinstance(value, dict)},
               "per_class": per_class}
    return averaged, details
