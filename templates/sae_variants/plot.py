"""Plot the results of every finished SAE run in an experiment folder.

Reads each ``run_<n>/final_info.json`` (``seeds.json``, the mean over seeds, where the research loop made one; plus
``autointerp.json``, ``feature_frequencies.npy`` and
``training_log.jsonl`` where present) under the root folder and writes:

- metrics_comparison.png: core and interpretability metrics per run, in seven panels; two place each run's L0
  against CE loss score and explained variance over the baseline's sparsity-fidelity frontier (run_0 and the
  frontier points ``baseline.py`` writes under ``run_0/frontier/``)
- feature_density.png: histograms of log10 feature activation frequency
- activation_frequency_rank.png: feature activation frequency against rank
- training_curves.png: loss, mse, L0 and dead fraction against training tokens

Usage: ``python plot.py`` from inside the experiment folder, or
``python plot.py --root DIR``.
"""

import argparse
import json
import logging
import math
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (the backend must be chosen first)
import matplotlib.ticker  # noqa: E402
import numpy as np  # noqa: E402

# Legend label for each run folder; runs not listed here use their folder name.
labels = {
    "run_0": "Baseline",
}

DPI = 150
FREQUENCY_FLOOR = 1e-7
RUN_NAME = re.compile(r"run_(\d+)")
METRIC_COLORS = ("#3b6ea8", "#e08a2c")
FRONTIER_PANELS = (  # (core metric, panel title, y label) of the panels drawn against L0 over the baseline frontier
    ("ce_loss_score", "Sparsity vs fidelity", "CE loss score (higher is better)"),
    ("explained_variance", "Sparsity vs reconstruction", "explained variance (higher is better)"),
)
TRAINING_PANELS = (  # (training_log.jsonl key, panel title, y label)
    ("loss", "Training loss", "loss (MSE + sparsity penalty)"),
    ("mse", "Reconstruction error", "MSE"),
    ("l0", "Sparsity", "L0 (mean active features per token)"),
    ("dead_fraction", "Dead features", "dead fraction (of features)"),
)

log = logging.getLogger("plot")


class PlotError(Exception):
    """A problem with the input folder that stops plotting."""


def as_number(value):
    """Return value as a finite float, or None if it is missing, null, boolean, text or not finite."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


@dataclass
class Run:
    """One finished run: its folder, legend label, plot color and final_info.json contents."""

    path: Path
    label: str
    color: str
    info: dict = field(repr=False)

    def metric(self, key, group="core"):
        """Return ``info[group]["means"][key]`` as a float, or None if it is not a usable number."""
        return self._number(group, "means", key)

    def std(self, key, group="core"):
        """The spread over seeds, ``info[group]["stds"][key]``, where the run is a mean of seeds; else None."""
        return self._number(group, "stds", key)

    def _number(self, group, block, key):
        body = self.info.get(group)
        values = body.get(block) if isinstance(body, dict) else None
        return as_number(values.get(key)) if isinstance(values, dict) else None


def find_run_dirs(root):
    """Return the ``run_<n>`` folders under root that hold a final_info.json, sorted by n."""
    found = []
    for info_path in root.glob("run_*/final_info.json"):
        match = RUN_NAME.fullmatch(info_path.parent.name)
        if match is None:
            log.warning("ignoring %s: folder name is not run_<number>", info_path.parent)
            continue
        found.append((int(match.group(1)), info_path.parent))
    return [path for _, path in sorted(found)]


def load_final_info(path):
    """Read a final_info.json file; raise PlotError if it is not a JSON object."""
    try:
        info = json.loads(path.read_text())
    except ValueError as err:  # JSONDecodeError, or bytes that are not text
        raise PlotError(f"{path} is not valid JSON: {err}") from None
    if not isinstance(info, dict):
        raise PlotError(f"{path} should hold a JSON object, found {type(info).__name__}")
    return info


def load_runs(root):
    """Load every finished run under root; raise PlotError if there are none."""
    run_dirs = find_run_dirs(root)
    if not run_dirs:
        raise PlotError(
            f"no run_*/final_info.json found in {root}; "
            "run `python experiment.py --out_dir=run_0` first"
        )
    runs = []
    for i, path in enumerate(run_dirs):
        # A run the research loop repeated on more seeds keeps their means and spread in seeds.json beside it.
        summary = path / "seeds.json"
        info = load_final_info(summary if summary.is_file() else path / "final_info.json")
        # The research loop's autointerp stage scores a run after it ends, into autointerp.json beside it.
        if (path / "autointerp.json").is_file():
            info["autointerp"] = load_final_info(path / "autointerp.json")
        runs.append(Run(path, labels.get(path.name, path.name), f"C{i % 10}", info))
    return runs


def load_frequencies(run):
    """Return the run's 1-D feature frequency array, or None (with a warning) if unavailable."""
    path = run.path / "feature_frequencies.npy"
    if not path.is_file():
        log.warning("%s: no feature_frequencies.npy; run left out of the frequency plots", run.path.name)
        return None
    try:
        freqs = np.load(path).astype(float)
    except (OSError, ValueError) as err:
        log.warning("%s: cannot read %s (%s); run left out of the frequency plots", run.path.name, path, err)
        return None
    if freqs.ndim != 1:
        log.warning("%s: %s has shape %s, expected 1-D; run left out", run.path.name, path, freqs.shape)
        return None
    return freqs


def load_training_log(run):
    """Return the run's training log records, or None (with a warning) if missing or empty."""
    path = run.path / "training_log.jsonl"
    if not path.is_file():
        log.warning("%s: no training_log.jsonl; run left out of the training curves", run.path.name)
        return None
    records = []
    for number, line in enumerate(path.read_text(errors="replace").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            log.warning("%s:%d is not valid JSON; line skipped", path, number)
            continue
        if isinstance(record, dict):
            records.append(record)
    if not records:
        log.warning("%s: training_log.jsonl has no records; run left out of the training curves",
                    run.path.name)
        return None
    return records


def save(fig, path):
    """Lay out, save at the standard resolution and close a figure."""
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    plt.close(fig)


def draw_bars(ax, values, offset, width, color, name):
    """Draw one bar per run at x = run index + offset, writing "n/a" where a value is None."""
    xs = np.arange(len(values)) + offset
    heights = [np.nan if value is None else value for value in values]
    bars = ax.bar(xs, heights, width, color=color, label=name)
    texts = ["" if value is None else f"{value:.3g}" for value in values]
    ax.bar_label(bars, labels=texts, fontsize=7, padding=2)
    for x, value in zip(xs, values):
        if value is None:
            ax.text(x, 0, "n/a", ha="center", va="bottom", fontsize=8, color="dimgray")


def label_runs_axis(ax, runs):
    """Put one tick per run on the x axis, labelled with the run labels."""
    ax.set_xticks(np.arange(len(runs)))
    ax.set_xticklabels([run.label for run in runs], rotation=25, ha="right")
    ax.set_xlim(-0.6, len(runs) - 0.4)


def plot_grouped_bars(ax, runs, metrics, title, ylabel, group="core"):
    """Bar chart with one group per run and one bar per (metric key in group, legend name) pair."""
    width = 0.8 / len(metrics)
    for i, (key, name) in enumerate(metrics):
        offset = (i - (len(metrics) - 1) / 2) * width
        draw_bars(ax, [run.metric(key, group) for run in runs], offset, width, METRIC_COLORS[i], name)
    label_runs_axis(ax, runs)
    ax.axhline(0, color="black", linewidth=0.8)
    ax.margins(y=0.2)
    ax.set_title(title)
    ax.set_ylabel(ylabel)
    ax.legend(loc="upper left", fontsize=8)


def plot_sparsity(ax, runs):
    """L0 bars on the left axis and dead-fraction bars on a twin right axis, one group per run."""
    twin = ax.twinx()
    draw_bars(ax, [run.metric("l0") for run in runs], -0.2, 0.4, METRIC_COLORS[0], "L0")
    draw_bars(twin, [run.metric("dead_fraction") for run in runs], 0.2, 0.4, METRIC_COLORS[1], "dead fraction")
    label_runs_axis(ax, runs)
    for axis in (ax, twin):
        axis.set_ylim(bottom=0)
        axis.margins(y=0.2)
    ax.set_title("Sparsity")
    ax.set_ylabel("L0 (mean active features per token)", color=METRIC_COLORS[0])
    twin.set_ylabel("dead fraction (of features, held-out tokens)", color=METRIC_COLORS[1])
    handles = ax.get_legend_handles_labels()[0] + twin.get_legend_handles_labels()[0]
    ax.legend(handles, [h.get_label() for h in handles], loc="upper left", fontsize=8)


def read_frontier(root, metric):
    """The baseline's sparsity-fidelity frontier for one core metric: (L0, value) of run_0 and of each frontier
    point baseline.py wrote (run_0/frontier/*/final_info.json), sorted by L0; points lacking either number are left
    out."""
    baseline = root / "run_0"
    paths = [baseline / "final_info.json", *sorted(baseline.glob("frontier/*/final_info.json"))]
    points = []
    for path in paths:
        if path.is_file():
            point = Run(path.parent, "", "", load_final_info(path))
            l0, value = point.metric("l0"), point.metric(metric)
            if l0 is not None and l0 > 0 and value is not None:
                points.append((l0, value))
    return sorted(points)


def frontier_value_at(frontier, l0):
    """The frontier's value at l0, interpolated linearly in log L0 (the panels' x axis); None outside its L0 range
    or when it has fewer than two points."""
    if len(frontier) < 2 or not frontier[0][0] <= l0 <= frontier[-1][0]:
        return None
    xs, ys = zip(*frontier)
    return float(np.interp(math.log(l0), np.log(xs), ys))


def plot_against_frontier(ax, runs, metric, frontier, title, ylabel):
    """L0 (log x) against a core metric, one labelled point per run, over the baseline's frontier as a dashed line:
    a run above the line at its own L0 beats the baseline at that sparsity. A run that aggregates seeds (run_0 from
    baseline.py) carries its spread as error bars; each other run's label gives its distance above (+) or below (-)
    the frontier at its L0. Return the frontier line's (x, y) as drawn, or None."""
    drawn = None
    if len(frontier) >= 2:
        (line,) = ax.plot(*zip(*frontier), color="gray", linestyle="--", marker="s", markersize=4, zorder=2,
                          label="baseline frontier (run_0 at other sparsities)")
        drawn = ([float(x) for x in line.get_xdata()], [float(y) for y in line.get_ydata()])
        ax.legend(loc="lower right", fontsize=8)
    points = [(run, run.metric("l0"), run.metric(metric)) for run in runs]
    points = [(run, l0, y) for run, l0, y in points if l0 is not None and l0 > 0 and y is not None]
    for run, l0, y in points:
        if run.std("l0") is not None or run.std(metric) is not None:
            ax.errorbar(l0, y, xerr=run.std("l0"), yerr=run.std(metric), fmt="none", ecolor=run.color, capsize=3,
                        zorder=3)
        ax.scatter(l0, y, color=run.color, s=50, zorder=4)
        on_line = frontier_value_at(frontier, l0) if run.path.name != "run_0" else None
        text = run.label if on_line is None else f"{run.label} ({y - on_line:+.3g} vs frontier)"
        ax.annotate(text, (l0, y), xytext=(5, 5), textcoords="offset points", fontsize=8)
    if points or drawn:
        ax.set_xscale("log")
        # Plain numbers (20, 30) rather than 2x10^1, 3x10^1; matplotlib picks which minor ticks to label.
        ax.xaxis.set_major_formatter(matplotlib.ticker.LogFormatter())
        ax.xaxis.set_minor_formatter(matplotlib.ticker.LogFormatter(labelOnlyBase=False))
        ax.margins(x=0.3, y=0.2)
    else:
        ax.text(0.5, 0.5, f"n/a: no run has both L0 and {metric}",
                transform=ax.transAxes, ha="center", va="center", color="dimgray")
    ax.grid(True, which="both", alpha=0.3)
    ax.set_title(title)
    ax.set_xlabel("L0 (mean active features per token, log scale)")
    ax.set_ylabel(ylabel)
    return drawn


def plot_probing(ax, runs):
    """Sparse probing accuracy on the top 1 and top 5 SAE features, with the accuracy of a probe on all of the model's
    channels (the same data, no SAE: the ceiling) as a dashed reference line."""
    plot_grouped_bars(
        ax, runs, (("sae.sae_top_1_test_accuracy", "top-1 SAE feature"), ("sae.sae_top_5_test_accuracy",
                                                                         "top-5 SAE features")),
        "Sparse probing", "test accuracy (0.5 = chance, higher is better)", group="sparse_probing")
    ceiling = [value for run in runs if (value := run.metric("llm.llm_test_accuracy", "sparse_probing"))]
    if ceiling:
        ax.axhline(ceiling[0], color="gray", linestyle="--", linewidth=1, label="model, all channels")
        ax.legend(loc="upper left", fontsize=8)


def plot_feature_quality(ax, runs):
    """TPP at 20 ablated features (higher is better) and the absorption fraction (lower is better) side by side;
    autointerp detection accuracy where the orchestrator scored it."""
    metrics = (("tpp", "tpp_metrics.tpp_threshold_20_total_metric", "TPP, 20 features (higher is better)"),
               ("absorption", "mean.mean_absorption_fraction_score", "absorption fraction (lower is better)"),
               ("autointerp", "detection_accuracy", "autointerp detection accuracy (higher is better)"))
    width = 0.8 / len(metrics)
    for i, (group, key, name) in enumerate(metrics):
        offset = (i - (len(metrics) - 1) / 2) * width
        draw_bars(ax, [run.metric(key, group) for run in runs], offset, width, f"C{i + 2}", name)
    label_runs_axis(ax, runs)
    ax.axhline(0, color="black", linewidth=0.8)
    ax.margins(y=0.2)
    ax.set_title("Feature quality")
    ax.set_ylabel("score")
    ax.legend(loc="upper left", fontsize=8)


def plot_metrics_comparison(runs, path, frontiers):
    """Write the comparison figure: behaviour, sparsity, reconstruction and probing per run; CE loss score and
    explained variance against L0 over the baseline frontier (frontiers: {metric: read_frontier(...)}); feature
    quality. Return the frontier lines as drawn, {metric: (L0s, values)}, for the metrics that have one."""
    fig = plt.figure(figsize=(max(12, 4 + 1.6 * len(runs)), 17))
    grid = fig.add_gridspec(4, 2)
    plot_grouped_bars(fig.add_subplot(grid[0, 0]), runs, (("ce_loss_score", "CE loss score"),
                                                           ("kl_div_score", "KL divergence score")),
                      "Model behaviour preservation", "score (1 = original model, higher is better)")
    plot_sparsity(fig.add_subplot(grid[0, 1]), runs)
    plot_grouped_bars(fig.add_subplot(grid[1, 0]), runs, (("explained_variance", "explained variance"),
                                                           ("cossim", "cosine similarity")),
                      "Reconstruction", "fraction / cosine (higher is better)")
    plot_probing(fig.add_subplot(grid[1, 1]), runs)
    drawn = {}
    for column, (metric, title, ylabel) in enumerate(FRONTIER_PANELS):
        line = plot_against_frontier(fig.add_subplot(grid[2, column]), runs, metric, frontiers.get(metric, []),
                                     title, ylabel)
        if line is not None:
            drawn[metric] = line
    plot_feature_quality(fig.add_subplot(grid[3, :]), runs)
    fig.suptitle("SAE metrics per run")
    save(fig, path)
    return drawn


def plot_feature_density(runs_freqs, path):
    """Write overlaid histograms of log10 activation frequency, counting dead features in the legend."""
    logs = [np.log10(freqs[freqs > 0]) for _, freqs in runs_freqs]
    positive = np.concatenate(logs)
    lo, hi = (positive.min(), positive.max()) if positive.size else (-1.0, 0.0)
    bins = np.linspace(lo, hi if hi > lo else lo + 1, 51)
    fig, ax = plt.subplots(figsize=(9, 5.5))
    for (run, freqs), values in zip(runs_freqs, logs):
        dead = int(np.count_nonzero(freqs == 0))
        ax.hist(values, bins=bins, histtype="step", linewidth=1.6, color=run.color,
                label=f"{run.label} ({dead} dead)")
    ax.set_ylim(bottom=0)
    ax.set_title("Feature density (dead features counted in the legend, not plotted)")
    ax.set_xlabel("log10(activation frequency)")
    ax.set_ylabel("number of features")
    ax.legend(fontsize=8)
    save(fig, path)


def plot_frequency_rank(runs_freqs, path):
    """Write activation frequency against feature rank, zeros clipped to FREQUENCY_FLOOR."""
    fig, ax = plt.subplots(figsize=(9, 5.5))
    for run, freqs in runs_freqs:
        ranked = np.clip(np.sort(freqs)[::-1], FREQUENCY_FLOOR, None)
        ax.plot(np.arange(1, ranked.size + 1), ranked, color=run.color, linewidth=1.6, label=run.label)
    ax.axhline(FREQUENCY_FLOOR, color="gray", linestyle=":", linewidth=1,
               label=f"dead (clipped to {FREQUENCY_FLOOR:g})")
    ax.set_yscale("log")
    ax.grid(True, which="major", alpha=0.3)
    ax.set_title(f"Feature activation frequency by rank (zeros clipped to {FREQUENCY_FLOOR:g})")
    ax.set_xlabel("feature rank (most frequent first)")
    ax.set_ylabel("activation frequency (fraction of tokens)")
    ax.legend(fontsize=8)
    save(fig, path)


def plot_training_curves(runs_logs, path):
    """Write the 2x2 training-curve figure: loss, mse, L0 and dead fraction against tokens."""
    fig, axes = plt.subplots(2, 2, figsize=(12, 8))
    for ax, (key, title, ylabel) in zip(axes.flat, TRAINING_PANELS):
        for run, records in runs_logs:
            points = [(as_number(r.get("tokens")), as_number(r.get(key))) for r in records]
            points = [(x, y) for x, y in points if x is not None and y is not None]
            if points:
                xs, ys = zip(*points)
                ax.plot(xs, ys, color=run.color, linewidth=1.4, label=run.label)
        if key in ("loss", "mse") and ax.lines and all(min(line.get_ydata()) > 0 for line in ax.lines):
            ax.set_yscale("log")
        ax.grid(True, alpha=0.3)
        ax.set_title(title)
        ax.set_xlabel("training tokens")
        ax.set_ylabel(ylabel)
        if ax.lines:
            ax.legend(fontsize=8)
    fig.suptitle("SAE training curves")
    save(fig, path)


def write_figures(root, runs):
    """Write every figure the available data allows; return the file names written."""
    written = ["metrics_comparison.png"]
    plot_metrics_comparison(runs, root / written[0],
                            {metric: read_frontier(root, metric) for metric, _, _ in FRONTIER_PANELS})
    runs_freqs = [(run, freqs) for run in runs if (freqs := load_frequencies(run)) is not None]
    if runs_freqs:
        plot_feature_density(runs_freqs, root / "feature_density.png")
        plot_frequency_rank(runs_freqs, root / "activation_frequency_rank.png")
        written += ["feature_density.png", "activation_frequency_rank.png"]
    else:
        log.warning("no run has a usable feature_frequencies.npy; frequency plots not written")
    runs_logs = [(run, records) for run in runs if (records := load_training_log(run)) is not None]
    if runs_logs:
        plot_training_curves(runs_logs, root / "training_curves.png")
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
        runs = load_runs(root)
    except PlotError as err:
        log.error("%s", err)
        return 1
    written = write_figures(root, runs)
    log.info("wrote %s for %d run(s) to %s", ", ".join(written), len(runs), root)
    return 0


if __name__ == "__main__":
    sys.exit(main())
