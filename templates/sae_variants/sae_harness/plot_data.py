"""What plot.py reads: the finished runs of an experiment folder (final_info.json, or seeds.json where the research
loop repeated a run on more seeds; autointerp.json beside it), their feature frequencies and training logs, and the
baseline's sparsity-fidelity frontier (run_0 and run_0/frontier/*). A file that is missing or unreadable leaves its
run out of the figures that need it, with a warning; only an experiment folder without any run stops plot.py."""

import json
import logging
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

RUN_NAME = re.compile(r"run_(\d+)")

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


def load_runs(root, labels):
    """Load every finished run under root, labelled by labels (run folder name -> legend label; the folder name
    where it has none); raise PlotError if there are none."""
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


def read_frontier(root, metric, group="core"):
    """The baseline's sparsity-fidelity frontier for one metric of a group: (core L0, value) of run_0 and of each
    frontier point baseline.py wrote (run_0/frontier/*/final_info.json), sorted by L0; points lacking either number
    are left out."""
    baseline = root / "run_0"
    paths = [baseline / "final_info.json", *sorted(baseline.glob("frontier/*/final_info.json"))]
    points = []
    for path in paths:
        if path.is_file():
            point = Run(path.parent, "", "", load_final_info(path))
            l0, value = point.metric("l0"), point.metric(metric, group)
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
