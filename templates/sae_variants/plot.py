"""Plot the results of every finished SAE run in an experiment folder.

Reads each ``run_<n>/final_info.json`` (``seeds.json``, the mean over seeds, where the research loop made one; plus
``autointerp.json``, ``feature_frequencies.npy`` and
``training_log.jsonl`` where present) under the root folder and writes:

- metrics_comparison.png: the metrics per run in the panels of COMPARISON_PANELS that some run has metrics for.
  Language-model presets: model behaviour (CE/KL scores), sparsity, reconstruction, sparse probing, CE loss score
  and explained variance against L0 over the baseline's sparsity-fidelity frontier (run_0 and the frontier points
  ``baseline.py`` writes under ``run_0/frontier/``), feature quality. Synthetic presets: sparsity, reconstruction,
  recovery of the known true features (MCC, F1, precision, recall) with the true dictionary as a dashed ceiling,
  and explained variance and F1 against L0 over the frontier.
- feature_density.png: histograms of log10 feature activation frequency
- activation_frequency_rank.png: feature activation frequency against rank
- training_curves.png: loss, mse, L0 and dead fraction against training tokens

Usage: ``python plot.py`` from inside the experiment folder, or
``python plot.py --root DIR``.
"""

import argparse
import logging
import sys
from pathlib import Path

from sae_harness.plot_data import PlotError, load_frequencies, load_runs, load_training_log, read_frontier
from sae_harness.plot_panels import (
    CEILING_COLORS,
    AgainstL0,
    Bars,
    SparsityBars,
    comparison_figure,
    plot_feature_density,
    plot_frequency_rank,
    plot_training_curves,
    save,
)

# Legend label for each run folder; runs not listed here use their folder name.
labels = {
    "run_0": "Baseline",
}

TRUE_DICTIONARY = "true dictionary (ceiling)"
# The panels of metrics_comparison.png, two to a row (a wide one alone), in this order. A panel is drawn only where
# some run has one of its metrics; the others are left out and logged. Each entry names (group, key) in
# final_info.json; an idea that reports a metric of its own can add a panel for it here.
COMPARISON_PANELS = (
    Bars("Model behaviour preservation", "score (1 = original model, higher is better)",
         (("core", "ce_loss_score", "CE loss score"), ("core", "kl_div_score", "KL divergence score"))),
    SparsityBars(),
    Bars("Reconstruction", "fraction / cosine (higher is better)",
         (("core", "explained_variance", "explained variance"), ("core", "cossim", "cosine similarity"))),
    Bars("Sparse probing", "test accuracy (0.5 = chance, higher is better)",
         (("sparse_probing", "sae.sae_top_1_test_accuracy", "top-1 SAE feature"),
          ("sparse_probing", "sae.sae_top_5_test_accuracy", "top-5 SAE features")),
         ceilings=(("sparse_probing", "llm.llm_test_accuracy", "model, all channels", "gray"),)),
    # Synthetic presets: each SAE latent scored against the known true features (sae_harness/synthetic.py).
    Bars("Ground truth: feature recovery", "score (1 = the true features, higher is better)",
         (("ground_truth", "mcc", "MCC (decoder vs true features)"), ("ground_truth", "f1", "F1 (as detectors)")),
         ceilings=(("ground_truth", "reference_mcc", f"MCC, {TRUE_DICTIONARY}", CEILING_COLORS[0]),
                   ("ground_truth", "reference_f1", f"F1, {TRUE_DICTIONARY}", CEILING_COLORS[1]))),
    Bars("Ground truth: detection", "fraction (higher is better)",
         (("ground_truth", "precision", "precision"), ("ground_truth", "recall", "recall")),
         ceilings=(("ground_truth", "reference_precision", f"precision, {TRUE_DICTIONARY}", CEILING_COLORS[0]),
                   ("ground_truth", "reference_recall", f"recall, {TRUE_DICTIONARY}", CEILING_COLORS[1]))),
    AgainstL0("core", "ce_loss_score", "Sparsity vs fidelity", "CE loss score (higher is better)"),
    AgainstL0("core", "explained_variance", "Sparsity vs reconstruction", "explained variance (higher is better)",
              reference=("ground_truth", "reference_sae_l0", "reference_explained_variance", "true dictionary")),
    AgainstL0("ground_truth", "f1", "Sparsity vs ground-truth F1",
              "F1 as detectors of true features (higher is better)",
              reference=("ground_truth", "reference_sae_l0", "reference_f1", TRUE_DICTIONARY), ceiling=True),
    Bars("Feature quality", "score",
         (("tpp", "tpp_metrics.tpp_threshold_20_total_metric", "TPP, 20 features (higher is better)"),
          ("absorption", "mean.mean_absorption_fraction_score", "absorption fraction (lower is better)"),
          ("autointerp", "detection_accuracy", "autointerp detection accuracy (higher is better)")),
         colors=("C2", "C3", "C4"), wide=True),
)
TRAINING_PANELS = (  # (training_log.jsonl key, panel title, y label)
    ("loss", "Training loss", "loss (MSE + sparsity penalty)"),
    ("mse", "Reconstruction error", "MSE"),
    ("l0", "Sparsity", "L0 (mean active features per token)"),
    ("dead_fraction", "Dead features", "dead fraction (of features)"),
)

log = logging.getLogger("plot")


def read_frontiers(root):
    """{panel name: read_frontier(...)} for each panel drawn against L0 over the baseline frontier."""
    return {panel.name: read_frontier(root, panel.metric, panel.group)
            for panel in COMPARISON_PANELS if isinstance(panel, AgainstL0)}


def plot_metrics_comparison(runs, path, frontiers):
    """Write the comparison figure from the panels of COMPARISON_PANELS that apply to these runs (frontiers: from
    read_frontiers). Return the frontier lines as drawn, {panel name: (L0s, values)}, for the panels that have one."""
    fig, drawn, left_out = comparison_figure(COMPARISON_PANELS, runs, frontiers, "SAE metrics per run")
    save(fig, path)
    if left_out:
        log.info("metrics_comparison.png leaves out (no run has their metrics): %s", ", ".join(left_out))
    return {name: line for name, line in drawn.items() if line is not None}


def write_figures(root, runs):
    """Write every figure the available data allows; return the file names written."""
    written = ["metrics_comparison.png"]
    plot_metrics_comparison(runs, root / written[0], read_frontiers(root))
    runs_freqs = [(run, freqs) for run in runs if (freqs := load_frequencies(run)) is not None]
    if runs_freqs:
        plot_feature_density(runs_freqs, root / "feature_density.png")
        plot_frequency_rank(runs_freqs, root / "activation_frequency_rank.png")
        written += ["feature_density.png", "activation_frequency_rank.png"]
    else:
        log.warning("no run has a usable feature_frequencies.npy; frequency plots not written")
    runs_logs = [(run, records) for run in runs if (records := load_training_log(run)) is not None]
    if runs_logs:
        plot_training_curves(runs_logs, root / "training_curves.png", TRAINING_PANELS)
        written.append("training_curves.png")
    else:
        log.warning("no run has a usable training_log.jsonl; training curves not written")
    return written


def main(argv=None):
    """Parse the command line, write the figures and return the process exit status."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--root", type=Path, default=Path.cwd(),
                        help="experiment folder holding the run_* folders (default: current folder)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s: %(message)s")
    root = args.root.resolve()
    try:
        runs = load_runs(root, labels)
    except PlotError as err:
        log.error("%s", err)
        return 1
    written = write_figures(root, runs)
    log.info("wrote %s for %d run(s) to %s", ", ".join(written), len(runs), root)
    return 0


if __name__ == "__main__":
    sys.exit(main())
