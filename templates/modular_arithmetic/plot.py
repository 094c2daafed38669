"""Plot every finished run of the modular-arithmetic experiment in this folder.

Reads run_*/final_info.json and run_*/curves.json and writes, into the current folder:

- accuracy_curves.png: train and validation accuracy against steps, one colour per run
- loss_curves.png: train and validation cross-entropy against steps (log scale)
- weight_norm.png: the L2 norm of all parameters against steps

Usage: python plot.py
"""

import json
import math
import re
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (the backend must be chosen first)

# Legend label for each run folder; runs not listed here are plotted under their folder name.
labels = {
    "run_0": "Baseline",
}

DPI = 150
RUN_NAME = re.compile(r"run_(\d+)")


def load_runs(root: Path) -> list[dict]:
    """Each run_<n> folder with a final_info.json and curves.json, in run order: {name, label, info, curves}."""
    runs = []
    folders = [path for path in root.iterdir() if path.is_dir() and RUN_NAME.fullmatch(path.name)]
    for folder in sorted(folders, key=lambda path: int(RUN_NAME.fullmatch(path.name).group(1))):
        try:
            info = json.loads((folder / "final_info.json").read_text())
            curves = json.loads((folder / "curves.json").read_text())
        except (OSError, ValueError) as error:
            print(f"plot.py: skipping {folder.name}: {error}", file=sys.stderr)
            continue
        runs.append({"name": folder.name, "label": labels.get(folder.name, folder.name), "info": info,
                     "curves": curves})
    return runs


def series(curves: list[dict], key: str) -> tuple[list[float], list[float]]:
    """(steps, values) for one curve, leaving out rows where the value is missing or not finite."""
    points = [(row["step"], row[key]) for row in curves
              if isinstance(row.get(key), (int, float)) and math.isfinite(row[key])]
    return [step for step, _ in points], [value for _, value in points]


def grok_step(run: dict):
    grokking = run["info"].get("grokking", {})
    return grokking.get("means", {}).get("step_val_acc_99") if grokking.get("status") == "ok" else None


def plot_pairs(runs: list[dict], keys: tuple[str, str], ylabel: str, title: str, path: str, log_y: bool = False):
    """One panel per key (train, validation), one line per run; a dotted line marks each run's grokking step."""
    figure, axes = plt.subplots(1, 2, figsize=(12, 4.5), sharey=True)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for axis, key, name in zip(axes, keys, ("Train", "Validation")):
        for index, run in enumerate(runs):
            colour = colours[index % len(colours)]
            steps, values = series(run["curves"], key)
            axis.plot(steps, values, color=colour, label=run["label"])
            step = grok_step(run)
            if step is not None:
                axis.axvline(step, color=colour, linestyle=":", linewidth=1)
        axis.set_title(f"{name} {title}")
        axis.set_xlabel("step")
        axis.grid(alpha=0.3)
        if log_y:
            axis.set_yscale("log")
    axes[0].set_ylabel(ylabel)
    axes[1].legend(loc="best", fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=DPI)
    plt.close(figure)


def plot_weight_norm(runs: list[dict], path: str):
    figure, axis = plt.subplots(figsize=(7, 4.5))
    for run in runs:
        steps, values = series(run["curves"], "weight_norm")
        axis.plot(steps, values, label=run["label"])
    axis.set_title("Parameter norm during training")
    axis.set_xlabel("step")
    axis.set_ylabel("L2 norm of all parameters")
    axis.grid(alpha=0.3)
    axis.legend(loc="best", fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=DPI)
    plt.close(figure)


def main() -> int:
    runs = load_runs(Path("."))
    if not runs:
        print("plot.py: no run_*/final_info.json with curves.json in this folder", file=sys.stderr)
        return 1
    plot_pairs(runs, ("train_acc", "val_acc"), "accuracy", "accuracy", "accuracy_curves.png")
    plot_pairs(runs, ("train_loss", "val_loss"), "cross-entropy (nats)", "loss", "loss_curves.png", log_y=True)
    plot_weight_norm(runs, "weight_norm.png")
    print(f"plot.py: plotted {', '.join(run['name'] for run in runs)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
