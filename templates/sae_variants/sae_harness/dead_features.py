"""Compare the ways of reviving dead features (dead_feature_method: resample, ghost, none) on the same activations.

    cd templates/sae_variants
    .venv/bin/python dead_features.py --out_dir deadcmp
    .venv/bin/python dead_features.py --out_dir deadcmp --methods resample,ghost --force_dead 0.5

dead_features.py, beside experiment.py, passes experiment.py's run_settings(), build_sae() and train() to main()
here: the harness never imports experiment.py. The configuration is a run's (config.toml, its preset table, SAE_*
variables) and the settings are run_settings()'s, with dead_feature_method replaced by each method. One Workspace is
prepared, and the SAE is built and trained on it once per method, from the same seed, initialisation and batches.
With --force_dead F, a fraction F of the features start silenced (their encoder bias set to FORCED_DEAD_BIAS on
normalised activations, where pre-activations have a spread of about 0.3), a stress test of how each method brings
features back; without it the comparison is of the run as configured.

Writes out_dir/dead_features.json (per method: the training log's tokens, dead_fraction, mse and ghost_loss, the
held-out metrics, and how many of the silenced features fire on held-out text at the end) and
out_dir/dead_fraction.png (dead fraction and training MSE against training tokens, one line per method).
The logged dead fraction is the trainer's: features that did not fire in its last dead window of steps.
"""

import argparse
import dataclasses
import json
import logging
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from .config import ConfigError, ExperimentConfig, load_config
from .evaluation import heldout_metrics
from .layer_sweep import TEMPLATE_DIR, pyplot
from .results import atomic_write_text, harness_config
from .sae_base import HookSpec, SAEBase
from .settings import settings_group
from .workspace import Workspace

log = logging.getLogger(__name__)
FORCED_DEAD_BIAS = -3.0
LOGGED = ("tokens", "dead_fraction", "mse", "ghost_loss")
STYLES = {  # methods an idea adds get matplotlib's next colour
    "resample": dict(color="#3b6ea8"), "ghost": dict(color="#e08a2c"), "none": dict(color="#7a7a7a", ls="--")}

BuildSAE = Callable[[object, int, HookSpec, str], SAEBase]
"""experiment.build_sae: (settings, d_in, hook, device) -> a freshly initialised SAE."""
Train = Callable[[SAEBase, Workspace, object], dict]
"""experiment.train: (sae, workspace, settings) -> the training facts, with "log" (rows), "resampled_features",
"training_seconds" and "dead_window"."""
SettingsFor = Callable[[ExperimentConfig], object]
"""experiment.run_settings: the configuration -> experiment.py's Settings (a dataclass with dead_feature_method)."""


def train_with_method(workspace: Workspace, settings, build: BuildSAE, train: Train, force_dead: float = 0.0) -> dict:
    """Build and train the SAE with `settings` (one dead_feature_method); return its log, held-out metrics and
    revivals."""
    sae = build(settings, workspace.preset.d_model, workspace.hook, workspace.device)
    workspace.initialise_decoder_bias(sae)
    n_forced = int(round(force_dead * sae.cfg.d_sae))
    with torch.no_grad():
        sae.b_enc[:n_forced] = FORCED_DEAD_BIAS
    facts = train(sae, workspace, settings)
    sae.eval()
    sae.fold_activation_scale(workspace.scale)
    metrics, frequencies = heldout_metrics(sae, workspace.heldout, workspace.device)
    return {
        "log": {name: [row[name] for row in facts["log"]] for name in LOGGED},
        "heldout": {name: metrics[name] for name in ("explained_variance", "mse", "l0", "dead_fraction")},
        "forced_dead": n_forced,
        "forced_dead_revived": int(np.count_nonzero(frequencies[:n_forced] > 0)),
        "resampled_features": facts["resampled_features"],
        "training_seconds": facts["training_seconds"],
        "dead_window": facts["dead_window"],
    }


def compare_methods(workspace: Workspace, settings, methods: list[str], build: BuildSAE, train: Train,
                    force_dead: float = 0.0) -> dict:
    """Train once per method on the same workspace, each with `settings` but for its dead_feature_method; return
    dead_features.json's contents. Every method's settings are made (and so checked) before any training."""
    if not methods:
        raise ConfigError("no dead-feature method to compare; name at least one")
    per_method = {method: dataclasses.replace(settings, dead_feature_method=method) for method in methods}
    results = {method: train_with_method(workspace, s, build, train, force_dead) for method, s in per_method.items()}
    recorded = settings_group(settings)
    return {
        "preset": workspace.config.preset,
        "layer": workspace.preset.layer,
        "variant": recorded["choices"]["variant"],
        "dead_feature_window": next(iter(results.values()))["dead_window"],
        "force_dead": force_dead,
        "forced_dead_bias": FORCED_DEAD_BIAS,
        "methods": results,
        "config": harness_config(workspace.config, recorded),
        "settings": {**recorded["means"], **recorded["choices"]},
    }


def plot_dead_fraction(comparison: dict, path: Path) -> dict[str, tuple[list[float], list[float]]]:
    """Write dead_fraction.png; return each method's (tokens, dead fraction) line as drawn."""
    plt = pyplot()
    fig, (dead_ax, mse_ax) = plt.subplots(1, 2, figsize=(12, 4.8))
    drawn = {}
    for method, result in comparison["methods"].items():
        tokens = result["log"]["tokens"]
        label = f"{method} (held-out dead {result['heldout']['dead_fraction']:.3f})"
        (line,) = dead_ax.plot(tokens, result["log"]["dead_fraction"], label=label, **STYLES.get(method, {}))
        drawn[method] = ([float(x) for x in line.get_xdata()], [float(y) for y in line.get_ydata()])
        mse_ax.plot(tokens, result["log"]["mse"], label=method, **STYLES.get(method, {}))
    forced = (f"; {comparison['force_dead']:.0%} of features start silenced" if comparison["force_dead"] else "")
    dead_ax.set_title(f"Dead features (silent for {comparison['dead_feature_window']} steps){forced}", fontsize=10)
    dead_ax.set_ylabel("dead fraction (of features)")
    mse_ax.set_title("Training reconstruction error", fontsize=10)
    mse_ax.set_ylabel("MSE (summed over dimensions, normalised activations)")
    if all(min(line.get_ydata()) > 0 for line in mse_ax.lines):
        mse_ax.set_yscale("log")
    for ax in (dead_ax, mse_ax):
        ax.set_xlabel("training tokens")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(f"{comparison['variant']} SAE, {comparison['preset']} layer {comparison['layer']}: "
                 "dead-feature methods compared")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return drawn


def parse_methods(text: str) -> list[str]:
    """'resample,ghost' -> ['resample', 'ghost']; experiment.py's Settings checks each name."""
    methods = [part.strip() for part in text.split(",") if part.strip()]
    if not methods:
        raise ConfigError(f"--methods {text!r}: name the methods to compare, separated by commas, e.g. resample,ghost")
    return methods


def main(argv: list[str] | None = None, *, settings_for: SettingsFor, build: BuildSAE, train: Train) -> int:
    """The command line of dead_features.py, which passes experiment.run_settings, build_sae and train."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out_dir", required=True, type=Path, help="Folder for the comparison, e.g. deadcmp.")
    parser.add_argument("--methods", default="resample,ghost,none", help="Methods to compare, separated by commas.")
    parser.add_argument("--force_dead", type=float, default=0.0,
                        help="Fraction of features that start silenced (0 to 1); 0 trains as configured.")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    started = time.perf_counter()
    try:
        methods = parse_methods(args.methods)
        if not 0 <= args.force_dead < 1:
            raise ConfigError(f"--force_dead {args.force_dead}: use a fraction from 0 up to (not including) 1")
        config = load_config(TEMPLATE_DIR / "config.toml")
        settings = settings_for(config)
        for method in methods:  # a misspelt method fails here, before the activations are computed
            dataclasses.replace(settings, dead_feature_method=method)
        workspace = Workspace.prepare(config)
    except (ConfigError, OSError) as err:
        print(f"Dead-feature comparison error: {err}", file=sys.stderr)
        return 2
    comparison = compare_methods(workspace, settings, methods, build, train, args.force_dead)
    comparison["wall_seconds"] = time.perf_counter() - started
    args.out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out_dir / "dead_features.json", json.dumps(comparison, indent=2))
    plot_dead_fraction(comparison, args.out_dir / "dead_fraction.png")
    for method, result in comparison["methods"].items():
        log.info("%-8s held-out dead %.3f  EV %.3f  L0 %.1f  silenced features revived %d/%d", method,
                 result["heldout"]["dead_fraction"], result["heldout"]["explained_variance"],
                 result["heldout"]["l0"], result["forced_dead_revived"], result["forced_dead"])
    log.info("Wrote %s", args.out_dir / "dead_fraction.png")
    return 0


if __name__ == "__main__":
    sys.exit("The dead-feature comparison trains experiment.py's SAE, which this harness module does not import: "
             "run `python dead_features.py --out_dir deadcmp` in the template folder instead.")
