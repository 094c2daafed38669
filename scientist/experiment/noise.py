"""When a change is an effect and not seed noise, and what a run's fidelity is compared with: the one rule.

The baseline run_0 is the mean of several seeds (scientist/experiment/seeds.py gives the form), so every metric
has a spread. A run's change in a scored metric counts as better or worse only when it exceeds

    noise = max(NOISE_SIGMAS x the baseline's seed standard deviation, RELATIVE_FLOOR x |the baseline's mean|)

(ABSOLUTE_FLOOR where the mean is 0); anything smaller is "within noise". A baseline on one seed has no spread,
and then the floor alone applies. A run that is itself the mean of several seeds is compared by its mean, against
the baseline's spread only: simple, and a little strict for such a run.

Fidelity metrics (the manifest's `frontier = true`) move with sparsity: a sparser SAE reconstructs worse without
being a worse method. They are judged against the baseline frontier at the run's own sparsity x ([baseline.frontier]
x): the baseline's point and its runs at other sparsity settings (run_0/frontier/*/final_info.json), sorted by x and
interpolated linearly in log x, because fidelity falls roughly linearly in log L0 and the frontier's settings are
spaced by factors. Where the run's x lies outside the frontier's range, nothing is extrapolated: the metric is
judged against the baseline's own point. The noise of a metric is the same either way (the baseline's).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from scientist.experiment.manifest import SCORED_DIRECTIONS, Metric
from scientist.experiment.seeds import SEEDS_GROUP, seed_count
from scientist.store.folder import FINAL_INFO_FILE, FRONTIER_DIR, ResultsError, read_result_file, run_dir

log = logging.getLogger(__name__)

Verdict = Literal["better", "worse", "within noise", "n/a", "-"]

NOISE_SIGMAS = 2.0
"""A change must exceed this many of the baseline's seed standard deviations."""
RELATIVE_FLOOR = 1e-3
"""...and this fraction of the baseline's value, which is all that is left where the spread is zero or unknown."""
ABSOLUTE_FLOOR = 1e-9
"""The floor where the baseline's value is 0 (a fraction of zero would make float rounding an effect)."""


def number(value: object) -> float | None:
    """A comparable number, or None: JSON null (how the harness records NaN), bools and strings are not."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def ok_groups(info: Mapping) -> dict[str, Mapping]:
    """The groups that ran (status ok), less the seeds group, which describes the summary and is no result."""
    return {group: body for group, body in info.items()
            if group != SEEDS_GROUP and isinstance(body, Mapping) and body.get("status") == "ok"}


def group_part(body: Mapping | None, part: str) -> Mapping:
    """A group's "means", "stds" or "per_seed" table; {} where it has none (a single run has no stds)."""
    table = body.get(part) if isinstance(body, Mapping) else None
    return table if isinstance(table, Mapping) else {}


def mean_of(info: Mapping, key: str) -> float | None:
    """The mean of metric "group.name" in a result whose group ran; None where it did not or the value is no number."""
    group, name = key.split(".", 1)
    return number(group_part(ok_groups(info).get(group), "means").get(name))


def seeds_of(info: Mapping) -> list:
    """The seeds a result is the mean of ([] for a single run)."""
    group = info.get(SEEDS_GROUP)
    seeds = group.get("seeds") if isinstance(group, Mapping) else None
    return list(seeds) if isinstance(seeds, list) else []


def seeds_phrase(info: Mapping) -> str:
    """ "mean of 3 seeds (0, 1, 2)", or "one run" for a result that is not a summary of seeds."""
    count = seed_count(info)
    if count < 2:
        return "one run"
    seeds = seeds_of(info)
    listing = f" ({', '.join(map(str, seeds))})" if seeds else ""
    return f"mean of {count} seeds{listing}"


def noise_threshold(baseline_mean: float, baseline_std: float | None) -> float:
    """What a change in a metric must exceed to count: the one place the rule is computed."""
    floor = RELATIVE_FLOOR * abs(baseline_mean) or ABSOLUTE_FLOOR
    spread = NOISE_SIGMAS * baseline_std if baseline_std is not None else 0.0
    return max(spread, floor)


def gain(metric: Metric, reference: float, value: float) -> float:
    """How much better value is than reference by the metric's direction (negative: worse)."""
    if metric.direction == "target":
        return abs(reference - metric.target) - abs(value - metric.target)
    return value - reference if metric.direction == "higher" else reference - value


def judge(metric: Metric, reference: float, value: float, noise: float) -> Verdict:
    """Better or worse when the gain exceeds the noise, else within noise; "-" for a metric that is not scored."""
    if metric.direction not in SCORED_DIRECTIONS:
        return "-"
    change = gain(metric, reference, value)
    if abs(change) <= noise:
        return "within noise"
    return "better" if change > 0 else "worse"


def _percent(fraction: float) -> str:
    return f"{100 * fraction:g}%"


def noise_rule_text(baseline: Mapping) -> str:
    """The rule in one sentence, with the baseline's seeds, printed under every results block."""
    count = seed_count(baseline)
    floor = f"{_percent(RELATIVE_FLOOR)} of the baseline's value ({ABSOLUTE_FLOOR:g} where that value is 0)"
    if count < 2:
        return (f"The baseline ran on one seed, so its spread is unknown: a change counts as better or worse only "
                f"when it exceeds {floor}; smaller changes are within noise.")
    seeds = seeds_of(baseline)
    listing = f" ({', '.join(map(str, seeds))})" if seeds else ""
    return (f"A change counts as better or worse only when it exceeds the larger of {NOISE_SIGMAS:g} standard "
            f"deviations of the baseline over its {count} seeds{listing} and {floor}; smaller changes are within "
            f"noise.")


@dataclass(frozen=True)
class Frontier:
    """The baseline's sparsity-fidelity frontier: the points are final_info dicts of the baseline retrained at other
    sparsity settings; the baseline's own (mean) point is added by whoever reads a curve from it."""

    x: str
    """The sparsity metric "group.name" points are placed by (the manifest's [baseline.frontier] x)."""
    points: tuple[Mapping, ...] = ()

    def curve(self, baseline: Mapping, key: str) -> list[tuple[float, float]]:
        """(x, value of metric key) of the baseline and each point that has both, sorted by x; points at the same x
        are averaged. Points whose x is not positive have no log and are left out."""
        by_x: dict[float, list[float]] = {}
        for info in (baseline, *self.points):
            x, value = mean_of(info, self.x), mean_of(info, key)
            if x is not None and x > 0 and value is not None:
                by_x.setdefault(x, []).append(value)
        return sorted((x, sum(values) / len(values)) for x, values in by_x.items())

    def value_at(self, baseline: Mapping, key: str, x: float) -> float | None:
        """The frontier's value of metric key at x, interpolated linearly in log x; None outside its range, or
        where the frontier has fewer than two points (the baseline alone is no frontier)."""
        curve = self.curve(baseline, key)
        if len(curve) < 2 or x <= 0 or not curve[0][0] <= x <= curve[-1][0]:
            return None
        for (x_low, low), (x_high, high) in zip(curve, curve[1:]):
            if x_low <= x <= x_high:
                share = (math.log(x) - math.log(x_low)) / (math.log(x_high) - math.log(x_low))
                return low + share * (high - low)
        return None  # unreachable: x lies within the curve's range

    def x_range(self, baseline: Mapping) -> tuple[float, float] | None:
        """The lowest and highest x of the baseline and its points; None when there are no points to span."""
        xs = sorted(x for info in (baseline, *self.points) if (x := mean_of(info, self.x)) is not None and x > 0)
        return (xs[0], xs[-1]) if len(xs) >= 2 and self.points else None


def read_frontier(folder: Path, x: str) -> Frontier | None:
    """The frontier of the baseline in folder (a template or an idea folder): run_0/frontier/*/final_info.json,
    in name order. None where the template has no frontier x. A point that cannot be read is left out, with a
    warning: the verdicts then rest on the others."""
    if not x:
        return None
    points = []
    for path in sorted((run_dir(folder, 0) / FRONTIER_DIR).glob(f"*/{FINAL_INFO_FILE}")):
        try:
            points.append(read_result_file(path))
        except ResultsError as err:
            log.warning("frontier point left out: %s", err)
    return Frontier(x, tuple(points))
