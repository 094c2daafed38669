"""The drawing behind plot.py: the kinds of panel metrics_comparison.png is made of (Bars, SparsityBars, AgainstL0),
its layout, and the frequency and training-curve figures. plot.py chooses the panels; this module draws them.

A comparison panel is drawn only where some run has one of its metrics: on a synthetic preset there is no CE loss,
probing or TPP, on a language-model preset no ground truth, and a panel of nothing but "n/a" would say less than
leaving it out (plot.py logs which panels it left out)."""

from dataclasses import dataclass

import matplotlib

matplotlib.use("Agg")  # figures are written to files, never shown; this must precede pyplot's import
import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.ticker  # noqa: E402
import numpy as np  # noqa: E402

from .plot_data import as_number, frontier_value_at  # noqa: E402

DPI = 150
FREQUENCY_FLOOR = 1e-7
METRIC_COLORS = ("#3b6ea8", "#e08a2c")
CEILING_COLORS = ("#1f4e80", "#a85d12")   # darker shades of METRIC_COLORS: a ceiling line in its bars' hue
REFERENCE_COLOR = "#2a8c45"   # the true dictionary's reference lines and points
ROW_HEIGHT = 4.25             # inches per row of panels in the comparison figure


def save(fig, path):
    """Lay out, save at the standard resolution and close a figure."""
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    plt.close(fig)


def first_value(runs, key, group):
    """The value of key in group of the first run that has it, or None: for references the runs share (the model
    on all channels, the true dictionary), which depend on the preset, not on the SAE."""
    return next((value for run in runs if (value := run.metric(key, group)) is not None), None)


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


def legend_room(*axes):
    """The top margin (a fraction of the data range) that keeps the bars and their value labels below an upper-left
    legend of the axes' entries; bars stand on 0, so the margin adds room at the top only."""
    return 0.1 + 0.1 * sum(len(axis.get_legend_handles_labels()[0]) for axis in axes)


@dataclass(frozen=True)
class Bars:
    """One group of bars per run, one bar per (group, key, legend name) in bars; each (group, key, legend label,
    color) in ceilings is a dashed line at the first run's value of that key: a reference the runs share (the
    model on all channels, the true dictionary as an SAE)."""

    title: str
    ylabel: str
    bars: tuple
    ceilings: tuple = ()
    colors: tuple = METRIC_COLORS
    wide: bool = False

    def applies(self, runs, frontiers):
        return any(run.metric(key, group) is not None for run in runs for group, key, _ in self.bars)

    def draw(self, ax, runs, frontiers):
        width = 0.8 / len(self.bars)
        for i, ((group, key, name), color) in enumerate(zip(self.bars, self.colors)):
            offset = (i - (len(self.bars) - 1) / 2) * width
            draw_bars(ax, [run.metric(key, group) for run in runs], offset, width, color, name)
        for group, key, label, color in self.ceilings:
            value = first_value(runs, key, group)
            if value is not None:
                ax.axhline(value, color=color, linestyle="--", linewidth=1.2, label=f"{label} = {value:.3g}")
        label_runs_axis(ax, runs)
        ax.axhline(0, color="black", linewidth=0.8)
        ax.margins(y=legend_room(ax))
        ax.set_title(self.title)
        ax.set_ylabel(self.ylabel)
        ax.legend(loc="upper left", fontsize=8)


@dataclass(frozen=True)
class SparsityBars:
    """L0 bars on the left axis and dead-fraction bars on a twin right axis, one group per run."""

    title: str = "Sparsity"
    wide: bool = False

    def applies(self, runs, frontiers):
        return any(run.metric(key) is not None for run in runs for key in ("l0", "dead_fraction"))

    def draw(self, ax, runs, frontiers):
        twin = ax.twinx()
        draw_bars(ax, [run.metric("l0") for run in runs], -0.2, 0.4, METRIC_COLORS[0], "L0")
        draw_bars(twin, [run.metric("dead_fraction") for run in runs], 0.2, 0.4, METRIC_COLORS[1], "dead fraction")
        label_runs_axis(ax, runs)
        for axis in (ax, twin):
            axis.margins(y=legend_room(ax, twin))
            axis.set_ylim(bottom=0)  # after the margin, which it keeps at the top: set_ylim ends autoscaling
        ax.set_title(self.title)
        ax.set_ylabel("L0 (mean active features per token)", color=METRIC_COLORS[0])
        twin.set_ylabel("dead fraction (of features, held-out tokens)", color=METRIC_COLORS[1])
        handles = ax.get_legend_handles_labels()[0] + twin.get_legend_handles_labels()[0]
        ax.legend(handles, [h.get_label() for h in handles], loc="upper left", fontsize=8)


def run_points(runs, metric, group):
    """(run, core L0, value) of each run that has a positive L0 and the metric."""
    points = [(run, run.metric("l0"), run.metric(metric, group)) for run in runs]
    return [(run, l0, y) for run, l0, y in points if l0 is not None and l0 > 0 and y is not None]


def plot_against_frontier(ax, runs, metric, frontier, title, ylabel, group="core"):
    """L0 (log x) against a metric, one labelled point per run, over the baseline's frontier as a dashed line: a
    run above the line at its own L0 beats the baseline at that sparsity. A run that aggregates seeds (run_0 from
    baseline.py) carries its spread as error bars; each other run's label gives its distance above (+) or below (-)
    the frontier at its L0. Return the frontier line's (x, y) as drawn, or None."""
    drawn = None
    if len(frontier) >= 2:
        (line,) = ax.plot(*zip(*frontier), color="gray", linestyle="--", marker="s", markersize=4, zorder=2,
                          label="baseline frontier (run_0 at other sparsities)")
        drawn = ([float(x) for x in line.get_xdata()], [float(y) for y in line.get_ydata()])
        ax.legend(loc="lower right", fontsize=8)
    for run, l0, y in run_points(runs, metric, group):
        if run.std("l0") is not None or run.std(metric, group) is not None:
            ax.errorbar(l0, y, xerr=run.std("l0"), yerr=run.std(metric, group), fmt="none", ecolor=run.color,
                        capsize=3, zorder=3)
        ax.scatter(l0, y, color=run.color, s=50, zorder=4)
        on_line = frontier_value_at(frontier, l0) if run.path.name != "run_0" else None
        text = run.label if on_line is None else f"{run.label} ({y - on_line:+.3g} vs frontier)"
        ax.annotate(text, (l0, y), xytext=(5, 5), textcoords="offset points", fontsize=8)
    ax.set_xscale("log")
    # Plain numbers (20, 30) rather than 2x10^1, 3x10^1; matplotlib picks which minor ticks to label.
    ax.xaxis.set_major_formatter(matplotlib.ticker.LogFormatter())
    ax.xaxis.set_minor_formatter(matplotlib.ticker.LogFormatter(labelOnlyBase=False))
    ax.margins(x=0.3, y=0.2)
    ax.grid(True, which="both", alpha=0.3)
    ax.set_title(title)
    ax.set_xlabel("L0 (mean active features per token, log scale)")
    ax.set_ylabel(ylabel)
    return drawn


@dataclass(frozen=True)
class AgainstL0:
    """A metric of a group against core L0 over the baseline's frontier of the same metric (plot_against_frontier).
    reference, (group, L0 key, value key, legend label), adds a point the runs share (the true dictionary at its
    own L0) as a star; with ceiling, its value is also a dashed line across the panel."""

    group: str
    metric: str
    title: str
    ylabel: str
    reference: tuple = ()
    ceiling: bool = False
    wide: bool = False

    @property
    def name(self):
        """The metric's "group.key" name, the key of its frontier in plot.py's frontiers."""
        return f"{self.group}.{self.metric}"

    def applies(self, runs, frontiers):
        return bool(run_points(runs, self.metric, self.group)) or len(frontiers.get(self.name, [])) >= 2

    def draw(self, ax, runs, frontiers):
        drawn = plot_against_frontier(ax, runs, self.metric, frontiers.get(self.name, []), self.title, self.ylabel,
                                      self.group)
        if self.reference:
            group, l0_key, value_key, label = self.reference
            l0, value = first_value(runs, l0_key, group), first_value(runs, value_key, group)
            if l0 is not None and l0 > 0 and value is not None:
                handle = ax.scatter(l0, value, marker="*", s=180, color=REFERENCE_COLOR, zorder=5)
                if self.ceiling:
                    # One legend entry for both: the star on its dashed line.
                    handle = (ax.axhline(value, color=REFERENCE_COLOR, linestyle="--", linewidth=1.2), handle)
                handles, labels = ax.get_legend_handles_labels()
                ax.legend([*handles, handle], [*labels, f"{label}: {value:.3g} at L0 {l0:.3g}"],
                          loc="lower right", fontsize=8)
        return drawn


def panel_rows(panels):
    """The panels in rows of two, a wide panel on a row of its own."""
    rows, row = [], []
    for panel in panels:
        if panel.wide:
            rows += [row, [panel]] if row else [[panel]]
            row = []
        else:
            row.append(panel)
            if len(row) == 2:
                rows.append(row)
                row = []
    return rows + [row] if row else rows


def comparison_figure(panels, runs, frontiers, title):
    """A figure of the panels that apply to these runs, two to a row, for the caller to save; also {panel name: its
    frontier line as drawn, or None} for the AgainstL0 panels drawn, and the titles of the panels left out."""
    drawn = [panel for panel in panels if panel.applies(runs, frontiers)]
    rows = panel_rows(drawn)
    fig = plt.figure(figsize=(max(12, 4 + 1.6 * len(runs)), ROW_HEIGHT * max(1, len(rows))))
    grid = fig.add_gridspec(max(1, len(rows)), 2)
    results = {}
    for r, row in enumerate(rows):
        for column, panel in enumerate(row):
            result = panel.draw(fig.add_subplot(grid[r, :] if panel.wide else grid[r, column]), runs, frontiers)
            if isinstance(panel, AgainstL0):
                results[panel.name] = result
    if not rows:
        ax = fig.add_subplot(grid[0, :])
        ax.axis("off")
        ax.text(0.5, 0.5, "no run reports any of these metrics; see each run's final_info.json", ha="center",
                va="center", color="dimgray", transform=ax.transAxes)
    fig.suptitle(title)
    return fig, results, [panel.title for panel in panels if panel not in drawn]


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


def plot_training_curves(runs_logs, path, panels):
    """Write the training-curve figure, two panels to a row: each (training_log.jsonl key, title, y label) of
    panels against training tokens."""
    fig, axes = plt.subplots(-(-len(panels) // 2), 2, figsize=(12, 4 * -(-len(panels) // 2)), squeeze=False)
    for ax in axes.flat[len(panels):]:
        ax.remove()  # an odd number of panels leaves one cell of the last row: no empty axes
    for ax, (key, title, ylabel) in zip(axes.flat, panels):
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
