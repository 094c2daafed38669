"""Train the baseline SAE at many residual layers of one preset, from one language-model pass per batch.

    cd templates/sae_variants
    .venv/bin/python layer_sweep.py --out_dir sweep --layers 0,3,6,9
    .venv/bin/python layer_sweep.py --out_dir sweep --layers all

layer_sweep.py, beside experiment.py, passes experiment.py's run_settings() and run() to main() here: the harness
never imports experiment.py. The configuration is a run's (config.toml, its preset table, SAE_* variables); its
`layer` field is replaced by each swept layer, and the settings are run_settings()'s, the same for every layer. The
activations of all layers are computed together: each batch of training (then held-out) tokens goes through the
language model once, with run_with_cache hooking every chosen blocks.{L}.hook_resid_post and stopping after the
deepest. Each layer's set is cached under that layer's own ActivationKey, so a later `SAE_LAYER=L python
experiment.py` reuses it, and a sweep reuses what runs cached.

Then, for each layer, experiment.py's run() builds, trains and writes the layer's SAE exactly as a run does:
out_dir/layer_<L>/ holds final_info.json, training_log.jsonl, feature_frequencies.npy and sae/. The metrics are the
run's: our held-out MSE, explained variance, L0, L1 and dead fraction (sae_harness/evaluation.py), and SAEBench's
CE loss score when run_saebench is on (on the CPU, set SAE_EVAL_RECONSTRUCTION_BATCHES and friends small:
SAEBench's core eval is the slowest part of each layer). Hub presets also run SAEBench's dataset evals per layer,
as a run does.

Finally out_dir/sweep.json gathers the per-layer metrics, and out_dir/by_layer.png and
out_dir/feature_density_by_layer.png chart them.
"""

import argparse
import dataclasses
import json
import logging
import math
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from .activations import ActivationKey, MultiLayerSource, cached_layers
from .config import ConfigError, ExperimentConfig, load_config
from .evaluation import FORMULAS
from .lm import load_model
from .results import atomic_write_text, harness_config
from .settings import given_settings, settings_group, settings_values
from .workspace import Workspace, activation_scale, default_cache_dir

log = logging.getLogger(__name__)
TEMPLATE_DIR = Path(__file__).resolve().parent.parent
METRICS = ("mse", "explained_variance", "ce_loss_score", "l0", "l1", "dead_fraction")
"""The per-layer numbers of sweep.json, all from the layer's final_info.json core group."""
PANELS = (  # (metric, panel title, y label) of by_layer.png
    ("mse", "Reconstruction error", "MSE per element (held-out)"),
    ("explained_variance", "Explained variance", "explained variance (held-out)"),
    ("ce_loss_score", "CE loss score (SAEBench)", "CE loss score (1 = clean model)"),
    ("l0", "L0", "mean active features per token"),
    ("l1", "L1", "mean sum of feature activations"),
    ("dead_fraction", "Dead features", "fraction never firing on held-out tokens"),
)
DENSITY_BINS = np.linspace(-6, 0, 49)
"""log10 activation-frequency bins of feature_density_by_layer.png (features rarer than 1e-6 go in the first)."""

RunLayer = Callable[[Workspace, object, Path, float], dict]
"""experiment.run: (workspace, settings, out_dir, started) -> final_info, having written out_dir as a run does."""
SettingsFor = Callable[[ExperimentConfig], object]
"""experiment.run_settings: the configuration -> experiment.py's Settings."""


def parse_layers(text: str, n_layers: int) -> list[int]:
    """'all' or a comma-separated list such as '0,3,6' -> sorted distinct layers, each checked against the model."""
    if text.strip() == "all":
        return list(range(n_layers))
    try:
        layers = sorted({int(part) for part in text.split(",") if part.strip()})
    except ValueError:
        raise ConfigError(f"--layers {text!r}: give 'all' or layer numbers separated by commas, e.g. 0,3,6") from None
    bad = [layer for layer in layers if not 0 <= layer < n_layers]
    if not layers or bad:
        raise ConfigError(f"--layers {text!r}: the model has layers 0 to {n_layers - 1}; {bad or 'none given'} "
                          "cannot be swept")
    return layers


def layer_keys(config: ExperimentConfig, device: str, layers: list[int], split: str, n_tokens: int
               ) -> dict[int, ActivationKey]:
    """The ActivationKey of each layer's set, as Workspace.prepare builds it for a run at that layer."""
    context = config.preset_value("context_length", device)
    keys = {}
    for layer in layers:
        preset = dataclasses.replace(config.preset_spec, layer=layer)
        keys[layer] = ActivationKey(preset.model_name, preset.hook_name, preset.corpus, split, n_tokens, context,
                                    str(preset.torch_dtype(device)))
    return keys


def prepare_layers(config: ExperimentConfig, layers: list[int], model=None) -> list[Workspace]:
    """One Workspace per layer, as Workspace.prepare would give for a run at that layer, but with the activations
    of all the layers computed in a single pass of the language model (`model` is loaded when not given)."""
    started = time.perf_counter()
    device = config.resolved_device()
    cache_dir = Path(config.cache_dir) if config.cache_dir else default_cache_dir()
    spec = config.preset_spec
    size_gb = config.training_tokens * spec.d_model * 4 / 1e9
    if size_gb > config.cache_max_gb:
        raise ConfigError(f"{config.sources.get('training_tokens', 'default')}: a layer sweep caches each layer's "
                          f"activations, and {size_gb:.1f} GB per layer exceeds cache_max_gb = "
                          f"{config.cache_max_gb}; lower training_tokens or raise cache_max_gb.")
    model = load_model(spec, device, cache_dir) if model is None else model
    lm_batch = config.preset_value("lm_batch_prompts", device)
    sets = {}
    for split, n_tokens in (("train", config.training_tokens), ("heldout", config.heldout_tokens)):
        source = MultiLayerSource(model, layer_keys(config, device, layers, split, n_tokens), lm_batch, cache_dir)
        sets[split] = cached_layers(source, cache_dir, spec.d_model)
    setup_seconds = time.perf_counter() - started
    workspaces = []
    for layer in layers:
        layer_config = dataclasses.replace(config, layer=layer)
        train = sets["train"][layer]
        workspaces.append(Workspace(layer_config, layer_config.preset_spec, device, cache_dir, model, train,
                                    sets["heldout"][layer].all(), activation_scale(train, config.seed),
                                    setup_seconds))
    return workspaces


def finished_layer(workspace: Workspace, settings, layer_dir: Path) -> dict | None:
    """The final_info.json of a layer an earlier, interrupted sweep finished with the same configuration and
    settings, else None: a sweep run again after a kill trains only the layers it had not finished (write_run writes
    atomically)."""
    path = layer_dir / "final_info.json"
    if not path.exists():
        return None
    info = json.loads(path.read_text())
    recorded = settings_group(settings)
    same_config = info["training"].get("config") == json.loads(json.dumps(harness_config(workspace.config, recorded)))
    if not same_config or given_settings(info["settings"]) != json.loads(json.dumps(settings_values(settings))):
        return None
    log.info("Layer %d: reusing %s, finished with the same settings", workspace.preset.layer, path)
    return info


def layer_record(layer: int, info: dict) -> dict:
    """One layer's line of sweep.json, read from its final_info.json (None where a metric was not computed)."""
    core, training = info["core"]["means"], info["training"]["means"]
    record = {"layer": layer, "hook_name": info["training"]["hook_name"]}
    record.update({name: core.get(name) for name in METRICS})
    record.update(kl_div_score=core.get("kl_div_score"), cossim=core.get("cossim"),
                  training_seconds=training["training_seconds"], eval_seconds=core.get("eval_seconds"),
                  final_loss=training["final_loss"])
    return record


def run_sweep(config: ExperimentConfig, settings, layers: list[int], out_dir: Path, run: RunLayer,
              model=None) -> dict:
    """Compute the activations of all layers in one pass, then for each layer call run (experiment.run) to train,
    evaluate and write the layer's SAE with `settings`; write sweep.json and the two charts; return sweep.json's
    contents."""
    started = time.perf_counter()
    out_dir.mkdir(parents=True, exist_ok=True)
    recorded = settings_group(settings)
    variant = recorded["choices"]["variant"]
    workspaces = prepare_layers(config, layers, model)
    records = []
    for workspace in workspaces:
        layer = workspace.preset.layer
        info = finished_layer(workspace, settings, out_dir / f"layer_{layer}")
        if info is None:
            log.info("Layer %d: training %s on %s", layer, variant, workspace.preset.hook_name)
            info = run(workspace, settings, out_dir / f"layer_{layer}", time.perf_counter())
        records.append(layer_record(layer, info))
    sweep = {
        "preset": config.preset,
        "model_name": config.preset_spec.model_name,
        "variant": variant,
        "device": workspaces[0].device,
        "layers": records,
        "ce_loss_score_source": ("SAEBench core eval (sae_harness/evaluation.py saebench_core)" if config.run_saebench
                                 else "not computed: run_saebench = false"),
        "formulas": {name: FORMULAS[name] for name in METRICS},
        "activation_seconds": workspaces[0].setup_seconds,
        "wall_seconds": time.perf_counter() - started,
        "config": {**harness_config(config, recorded), "layer": layers},
        "settings": {**recorded["means"], **recorded["choices"]},
    }
    atomic_write_text(out_dir / "sweep.json", json.dumps(sweep, indent=2))
    plot_by_layer(sweep, out_dir / "by_layer.png")
    plot_feature_density_by_layer(sweep, out_dir, out_dir / "feature_density_by_layer.png")
    return sweep


def by_layer_series(sweep: dict) -> dict[str, tuple[list[int], list[float]]]:
    """What by_layer.png plots: for each metric, the layers and their values (NaN where a value is missing)."""
    layers = [record["layer"] for record in sweep["layers"]]
    series = {}
    for name in METRICS:
        values = [record.get(name) for record in sweep["layers"]]
        series[name] = (layers, [float("nan") if v is None or not math.isfinite(v) else float(v) for v in values])
    return series


def pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_by_layer(sweep: dict, path: Path) -> dict[str, tuple[list[float], list[float]]]:
    """Write by_layer.png, one panel a metric against layer; return the (x, y) data of each panel's line, read
    back from the figure."""
    plt = pyplot()
    series = by_layer_series(sweep)
    fig, axes = plt.subplots(2, 3, figsize=(14, 7.5))
    drawn = {}
    for ax, (name, title, ylabel) in zip(axes.flat, PANELS):
        layers, values = series[name]
        (line,) = ax.plot(layers, values, marker="o", color="#3b6ea8")
        drawn[name] = ([float(x) for x in line.get_xdata()], [float(y) for y in line.get_ydata()])
        if all(math.isnan(v) for v in values):
            ax.text(0.5, 0.5, "not computed (run_saebench = false)" if name == "ce_loss_score" else "n/a",
                    transform=ax.transAxes, ha="center", va="center", color="dimgray")
        if name in ("mse", "l1") and all(v > 0 for v in values if not math.isnan(v)) and not all(
                math.isnan(v) for v in values):
            ax.set_yscale("log")
        ax.set_xticks(layers if len(layers) <= 18 else layers[::2])
        ax.grid(True, alpha=0.3)
        ax.set_title(title)
        ax.set_xlabel("layer (blocks.L.hook_resid_post)")
        ax.set_ylabel(ylabel)
    fig.suptitle(f"{sweep['variant']} SAE per residual layer of {sweep['model_name']}")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return drawn


def plot_feature_density_by_layer(sweep: dict, out_dir: Path, path: Path) -> dict[int, np.ndarray]:
    """Write feature_density_by_layer.png: a histogram of log10 feature frequency (held-out) per layer, one facet
    each, dead features counted in the facet's title; return each layer's histogram counts as drawn."""
    plt = pyplot()
    layers = [record["layer"] for record in sweep["layers"]]
    cols = min(6, len(layers))
    rows = math.ceil(len(layers) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(2.6 * cols, 2.2 * rows + 0.6), sharex=True, squeeze=False)
    drawn = {}
    for ax, layer in zip(axes.flat, layers):
        frequencies = np.load(out_dir / f"layer_{layer}" / "feature_frequencies.npy")
        alive = frequencies[frequencies > 0]
        counts, _, _ = ax.hist(np.clip(np.log10(alive), DENSITY_BINS[0], DENSITY_BINS[-1]), bins=DENSITY_BINS,
                               color="#3b6ea8")
        drawn[layer] = np.asarray(counts)
        ax.set_title(f"layer {layer}: {len(frequencies) - len(alive)} dead", fontsize=9)
        ax.tick_params(labelsize=7)
    for ax in list(axes.flat)[len(layers):]:
        ax.set_visible(False)
    for ax in axes[-1]:
        ax.set_xlabel("log10(activation frequency)", fontsize=8)
    for ax in axes[:, 0]:
        ax.set_ylabel("features", fontsize=8)
    fig.suptitle(f"Feature density per layer, held-out tokens ({sweep['variant']} SAE, {sweep['model_name']})")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return drawn


def main(argv: list[str] | None = None, *, settings_for: SettingsFor, run: RunLayer) -> int:
    """The command line of layer_sweep.py, which passes experiment.run_settings and experiment.run."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out_dir", required=True, type=Path, help="Folder for the sweep, e.g. sweep.")
    parser.add_argument("--layers", default="all", help="'all' (default) or layers separated by commas, e.g. 0,3,6.")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        config = load_config(TEMPLATE_DIR / "config.toml")
        settings = settings_for(config)
        device = config.resolved_device()
        cache_dir = Path(config.cache_dir) if config.cache_dir else default_cache_dir()
        model = load_model(config.preset_spec, device, cache_dir)
        layers = parse_layers(args.layers, model.cfg.n_layers)
        sweep = run_sweep(config, settings, layers, args.out_dir, run, model)
    except (ConfigError, OSError) as err:
        print(f"Layer sweep error: {err}", file=sys.stderr)
        return 2
    for record in sweep["layers"]:
        log.info("layer %2d  mse %.4g  EV %.3f  CE score %s  L0 %.1f  dead %.3f", record["layer"], record["mse"],
                 record["explained_variance"], record["ce_loss_score"], record["l0"], record["dead_fraction"])
    log.info("Wrote %s", args.out_dir / "sweep.json")
    return 0


if __name__ == "__main__":
    sys.exit("The layer sweep trains experiment.py's SAE, which this harness module does not import: run "
             "`python layer_sweep.py --out_dir sweep --layers all` in the template folder instead.")
