"""Comparing a run's final_info.json with the baseline's, metric by metric, in code rather than in prose.

After each successful run the research loop appends the block that `results_block` writes to notes.txt. Its
verdicts come from a registry that records, for every known metric, which direction is better, so that no
reader has to guess and no writer can call a worse number better (an earlier system described MSE 3.281 ->
3.422 as improved reconstruction), and from one noise rule (scientist/experiment/noise.py), so that seed noise is
not called an effect either: a change smaller than the baseline's seed spread is "within noise". Fidelity metrics
are judged against the baseline frontier at the run's own sparsity. Numbers that describe the run rather than
score it (steps, dictionary size, L0, timings, the model's own losses) are "info", and numbers the registry does
not know are "unknown": both are shown, but never called better or worse.
"""

from __future__ import annotations

import textwrap
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from scientist.experiment.manifest import SCORED_DIRECTIONS, Direction, Metric, MetricRegistry
from scientist.experiment.noise import (
    Frontier,
    Verdict,
    group_part,
    judge,
    mean_of,
    noise_rule_text,
    noise_threshold,
    number,
    ok_groups,
    seeds_phrase,
)
from scientist.experiment.seeds import seed_count

__all__ = ["BASELINE_LABEL", "SAME_TOLERANCE", "Frontier", "MetricChange", "Verdict", "compare", "format_number",
           "frontier_rule_text", "noise_rule_text", "results_block", "summary_line"]

# Float rounding: a setting or fact that moved less than this (relatively) reads as unchanged. Not a verdict: the
# verdicts of scored metrics follow the noise rule.
SAME_TOLERANCE = 1e-9
BASELINE_LABEL = "baseline"
WIDTH = 100
_HINTS = {"higher": "higher is better", "lower": "lower is better", "info": "info", "unknown": "not in registry"}


@dataclass(frozen=True)
class MetricChange:
    """One metric of one run against the baseline; verdict says whether the change is an effect, and which way."""

    group: str
    name: str
    baseline: float | None
    """The baseline's value (its mean over seeds where it has several)."""
    value: float | None
    """The run's value (its mean where the run is itself a summary of seeds)."""
    delta: float | None
    """value - baseline: against the baseline's own point, also for a metric judged along the frontier."""
    relative: float | None
    direction: Direction
    verdict: Verdict
    target: float | None = None
    noise: float | None = None
    """What the change had to exceed to count (noise.noise_threshold); None where it is not scored or n/a."""
    baseline_std: float | None = None
    """The baseline's seed standard deviation; None for a baseline on one seed."""
    baseline_seeds: int = 1
    """How many seeds the baseline's value is the mean of."""
    value_std: float | None = None
    """The run's own seed standard deviation, shown but not used by the rule; None for a single run."""
    frontier_x: float | None = None
    """The run's sparsity, where the verdict was taken against the baseline frontier there; else None."""
    frontier_value: float | None = None
    """The baseline frontier's value at frontier_x, the reference of the verdict; None: judged against baseline."""

    @property
    def key(self) -> str:
        return f"{self.group}.{self.name}"

    @property
    def reference(self) -> float | None:
        """The value the verdict compared the run with: the frontier's at the run's sparsity, or the baseline's."""
        return self.frontier_value if self.frontier_value is not None else self.baseline


def _ordered_union(first: Iterable[str], second: Iterable[str]) -> list[str]:
    """Keys of both, in the order they first appear, so that rows follow the order final_info.json uses."""
    return list(dict.fromkeys([*first, *second]))


def _seeds_behind(body: Mapping | None, name: str) -> int:
    """How many seeds a value is the mean of: its finite per-seed values, or 1 in a single run."""
    values = group_part(body, "per_seed").get(name)
    if not isinstance(values, list):
        return 1
    return max(1, sum(number(value) is not None for value in values))


def _change(metric: Metric, base_body: Mapping | None, run_body: Mapping | None,
            frontier_point: tuple[float, float] | None) -> MetricChange:
    name = metric.name
    baseline = number(group_part(base_body, "means").get(name))
    value = number(group_part(run_body, "means").get(name))
    spread = dict(target=metric.target, baseline_std=number(group_part(base_body, "stds").get(name)),
                  baseline_seeds=_seeds_behind(base_body, name),
                  value_std=number(group_part(run_body, "stds").get(name)))
    if baseline is None or value is None:
        return MetricChange(metric.group, name, baseline, value, None, None, metric.direction, "n/a", **spread)
    delta = value - baseline
    relative = delta / abs(baseline) if baseline != 0 else None
    if metric.direction not in SCORED_DIRECTIONS:
        return MetricChange(metric.group, name, baseline, value, delta, relative, metric.direction, "-", **spread)
    noise = noise_threshold(baseline, spread["baseline_std"])
    frontier_x, frontier_value = frontier_point or (None, None)
    reference = baseline if frontier_value is None else frontier_value
    return MetricChange(metric.group, name, baseline, value, delta, relative, metric.direction,
                        judge(metric, reference, value, noise), noise=noise, frontier_x=frontier_x,
                        frontier_value=frontier_value, **spread)


def _frontier_point(metric: Metric, frontier: Frontier | None, baseline: Mapping,
                    run_x: float | None) -> tuple[float, float] | None:
    """(run's x, frontier's value there) for a scored frontier metric whose run x lies within the frontier."""
    if frontier is None or run_x is None or not metric.frontier or metric.direction not in SCORED_DIRECTIONS:
        return None
    value = frontier.value_at(baseline, metric.key, run_x)
    return None if value is None else (run_x, value)


def compare(baseline: Mapping, run: Mapping, registry: MetricRegistry,
            frontier: Frontier | None = None) -> list[MetricChange]:
    """One row per (group, metric) in either run's groups with status ok, in the order results_block prints: the
    registry's key metrics, the other scored metrics, then the rest. The seeds group of a summary is no metric.

    A metric whose group was skipped, or that is absent or null, on one side gets verdict "n/a". Metrics flagged
    frontier are judged against the baseline frontier at the run's own x when given one and the run lies within it.
    """
    base_groups, run_groups = ok_groups(baseline), ok_groups(run)
    run_x = mean_of(run, frontier.x) if frontier is not None else None
    changes = []
    for group in _ordered_union(base_groups, run_groups):
        base_body, run_body = base_groups.get(group), run_groups.get(group)
        for name in _ordered_union(group_part(base_body, "means"), group_part(run_body, "means")):
            metric = registry.lookup(group, name)
            point = _frontier_point(metric, frontier, baseline, run_x)
            changes.append(_change(metric, base_body, run_body, point))
    key_order = {metric.key: position for position, metric in enumerate(registry.key_metrics)}
    ranked = sorted(enumerate(changes), key=lambda item: (
        (0, key_order[item[1].key]) if item[1].key in key_order
        else (1 if item[1].direction in SCORED_DIRECTIONS else 2, item[0])))
    return [change for _, change in ranked]


def format_number(value: float | None) -> str:
    """Whole numbers exactly, others to six significant figures, so every printed number equals final_info.json's
    to that precision."""
    if value is None:
        return "n/a"
    if float(value).is_integer() and abs(value) < 1e15:
        return str(int(value))
    return f"{value:.6g}"


def with_spread(value: float | None, std: float | None) -> str:
    return format_number(value) if value is None or std is None else f"{format_number(value)} ± {format_number(std)}"


def _format_change(change: MetricChange) -> str:
    if change.delta is None:
        return "n/a"
    text = f"{change.delta:+.6g}"
    if change.relative is not None:
        percent = 100 * change.relative
        text += f" ({percent:+.3g}%)" if abs(percent) < 1000 else f" ({percent:+.0f}%)"
    return text


def direction_hint(direction: Direction, target: float | None) -> str:
    """Printed beside each verdict so that the reader sees which way is better without looking it up."""
    if direction == "target":
        return f"closer to {target:g} is better"
    return _HINTS[direction]


def x_label(frontier: Frontier, registry: MetricRegistry) -> str:
    metric = registry.lookup(*frontier.x.split(".", 1))
    return metric.display or metric.key


def _verdict_text(change: MetricChange, x_name: str) -> str:
    """The verdict, the direction, and for a metric judged along the frontier where it lies against it."""
    hint = direction_hint(change.direction, change.target)
    if change.frontier_value is None or change.value is None:
        return f"{change.verdict} ({hint})"
    at = f"the baseline frontier at {x_name} = {format_number(change.frontier_x)}"
    detail = f"(frontier {format_number(change.frontier_value)}; {hint})"
    if change.verdict == "within noise":
        return f"within noise of {at} {detail}"
    where = "above" if change.value > change.frontier_value else "below"
    return f"{change.verdict}: {where} {at} {detail}"


def table_lines(sections: list[list[tuple[str, ...]]]) -> list[str]:
    """Fixed-width tables that share their column widths, each section a heading row and its rows: the first column
    left-aligned, the middle ones right-aligned, the last as it is, columns two spaces apart; a blank line between
    sections, and a section without rows left out."""
    sections = [rows for rows in sections if len(rows) > 1]
    every_row = [row for rows in sections for row in rows]
    if not every_row:
        return []
    widths = [max(len(row[i]) for row in every_row) for i in range(len(every_row[0]))]
    lines: list[str] = []
    for rows in sections:
        if lines:
            lines.append("")
        for row in rows:
            cells = [row[0].ljust(widths[0]), *(cell.rjust(w) for cell, w in zip(row[1:-1], widths[1:-1])), row[-1]]
            lines.append("  ".join(cells).rstrip())
    return lines


def partition(changes: list[MetricChange], registry: MetricRegistry
              ) -> tuple[list[MetricChange], list[MetricChange], list[MetricChange]]:
    """(key metrics, other scored metrics, the rest: settings, timings, facts and unknown numbers)."""
    keys = {metric.key for metric in registry.key_metrics}
    key_rows = [c for c in changes if c.key in keys]
    scored = [c for c in changes if c.key not in keys and c.direction in SCORED_DIRECTIONS]
    rest = [c for c in changes if c.key not in keys and c.direction not in SCORED_DIRECTIONS]
    return key_rows, scored, rest


def wrapped(text: str, indent: str = "") -> list[str]:
    return textwrap.wrap(text, width=WIDTH, initial_indent=indent, subsequent_indent=indent + "  ")


def _unchanged(change: MetricChange) -> bool:
    return (change.baseline is not None and change.value is not None
            and abs(change.value - change.baseline) <= SAME_TOLERANCE * max(1.0, abs(change.baseline)))


def _facts_lines(rest: list[MetricChange]) -> list[str]:
    """The numbers that are not scored, each once, as compact lists: changed ones with the baseline's beside them,
    unchanged ones with their value, and the ones the registry does not know apart. Indented, so that the claim
    checker reads them as part of the block that code wrote."""
    def entry(change: MetricChange) -> str:
        if _unchanged(change):
            return f"{change.key} {format_number(change.value)}"
        return f"{change.key} {format_number(change.value)} ({BASELINE_LABEL} {format_number(change.baseline)})"

    known = [c for c in rest if c.direction != "unknown"]
    lists = (("Not scored, changed", [c for c in known if not _unchanged(c)]),
             ("Not scored, unchanged", [c for c in known if _unchanged(c)]),
             ("Not in the metric registry (never judged)", [c for c in rest if c.direction == "unknown"]))
    lines = []
    for title, entries in lists:
        if entries:
            lines += wrapped(f"{title}: {', '.join(entry(c) for c in entries)}.", indent="  ")
    return lines


def frontier_rule_text(frontier: Frontier | None, baseline: Mapping, registry: MetricRegistry) -> str:
    """The frontier half of the rule in one sentence ("" where the template has no frontier), naming the frontier
    metrics the baseline records (a preset without a language model has no CE score to judge)."""
    judged = [metric for metric in registry.metrics if metric.frontier and mean_of(baseline, metric.key) is not None]
    if frontier is None or not judged:
        return ""
    x_name = x_label(frontier, registry)
    names = ", ".join(metric.display or metric.key for metric in judged)
    span = frontier.x_range(baseline)
    if span is None:
        return f"The baseline has no runs at other sparsity settings, so {names} are judged against its own values."
    count = len(frontier.points)
    return (f"{names} are judged against the baseline frontier at the run's own {x_name}: the baseline and its "
            f"{count} run{'s' if count > 1 else ''} at other sparsity settings ({x_name} from "
            f"{format_number(span[0])} to {format_number(span[1])}), interpolated linearly in log {x_name}; a run "
            f"whose {x_name} lies outside that range is judged against the baseline's own values.")


def _run_frontier_text(frontier: Frontier | None, baseline: Mapping, run: Mapping, registry: MetricRegistry,
                       label: str) -> str:
    """The frontier rule, and where this run's x puts it when that is outside the frontier."""
    rule = frontier_rule_text(frontier, baseline, registry)
    span = frontier.x_range(baseline) if frontier is not None else None
    if not rule or span is None:
        return rule
    x_name, run_x = x_label(frontier, registry), mean_of(run, frontier.x)
    if run_x is None:
        return f"{rule} {label} records no {x_name}, so it is judged against the baseline's own values."
    if not span[0] <= run_x <= span[1]:
        return f"{rule} {label}'s {x_name} ({format_number(run_x)}) lies outside that range."
    return rule


def reference_text(registry: MetricRegistry, run: Mapping, label: str) -> str:
    """Each scored metric that has a reference value (Metric.reference: on a ground-truth preset, what the true
    features score) beside the run's value: how far the run is from it. Empty when the run records none."""
    parts = []
    for metric in registry.metrics:
        reference, value = mean_of(run, metric.reference) if metric.reference else None, mean_of(run, metric.key)
        if reference is not None and value is not None:
            parts.append(f"{metric.display or metric.key} {format_number(reference)} ({metric.reference}; "
                         f"{label} {format_number(value)})")
    return "; ".join(parts)


def _not_ok(info: Mapping) -> dict[str, tuple[str, str]]:
    """Each group that did not run, as (status, reason on one line)."""
    groups = {}
    for group, body in info.items():
        if isinstance(body, Mapping) and body.get("status") != "ok":
            reason = " ".join(str(body.get("reason") or "no reason given").split())
            groups[group] = (str(body.get("status") or "no status"), reason)
    return groups


def skipped_lines(run_label: str, baseline: Mapping, run: Mapping) -> list[str]:
    """One line per group that did not run; a group skipped alike in both runs is named once."""
    sides = ((BASELINE_LABEL, _not_ok(baseline)), (run_label, _not_ok(run)))
    lines = []
    for group in _ordered_union(sides[0][1], sides[1][1]):
        outcomes = [groups.get(group) for _, groups in sides]
        if outcomes[0] == outcomes[1]:
            status, reason = outcomes[0]
            lines.append(f"{status}: {group} ({reason})")
            continue
        for (label, _), outcome in zip(sides, outcomes):
            if outcome is not None:
                lines.append(f"{outcome[0]} in {label}: {group} ({outcome[1]})")
    return lines


def results_block(run_number: int, description: str, baseline: Mapping, run: Mapping, registry: MetricRegistry,
                  frontier: Frontier | None = None) -> str:
    """The block appended to notes.txt after run_{run_number}: header, the key metrics, the other scored metrics,
    the rule, the summary, the numbers that are not scored, and the groups that did not run.

    Everything up to the summary, and the indented lines after it, are what the claim checker skips as code's own
    words. The text ends with a newline so that blocks can be appended one after another.
    """
    label = f"run_{run_number}"
    changes = compare(baseline, run, registry, frontier)
    key_rows, scored_rows, rest = partition(changes, registry)
    x_name = x_label(frontier, registry) if frontier is not None else ""

    def rows(title: str, section: list[MetricChange]) -> list[tuple[str, ...]]:
        return [(title, BASELINE_LABEL, label, "change", "verdict")] + [
            (c.key, with_spread(c.baseline, c.baseline_std), with_spread(c.value, c.value_std), _format_change(c),
             _verdict_text(c, x_name)) for c in section]

    run_seeds = seeds_phrase(run) + (", compared by its mean" if seed_count(run) > 1 else "")
    lines = [f"## Run {run_number}: {' '.join(description.split())}",
             f"{BASELINE_LABEL}: {seeds_phrase(baseline)}; {label}: {run_seeds}.", ""]
    table = table_lines([rows("key metric", key_rows), rows("other scored metric", scored_rows)])
    lines += [*table, ""] if table else []
    lines += wrapped(f"Rule: {noise_rule_text(baseline)}")
    frontier_text = _run_frontier_text(frontier, baseline, run, registry, label)
    if frontier_text:
        lines += wrapped(f"Frontier: {frontier_text}")
    if reference := reference_text(registry, run, label):
        lines += wrapped(f"Reference: {reference}")
    lines += wrapped(f"Summary: {summary_line(changes)}")
    facts = _facts_lines(rest)
    if facts:
        lines += ["", *facts]
    skipped = skipped_lines(label, baseline, run)
    if skipped:
        lines += ["", *skipped]
    return "\n".join(lines) + "\n"


def summary_line(changes: Iterable[MetricChange]) -> str:
    """Counts of better, worse and within noise over the scored metrics, then the metrics that are better, worse or
    n/a by name (the table shows the ones within noise)."""
    scored = [c for c in changes if c.direction in SCORED_DIRECTIONS]
    if not scored:
        return "no scored metrics to compare"
    counts = Counter(c.verdict for c in scored)
    parts = [f"{counts[verdict]} {verdict}" for verdict in ("better", "worse", "within noise")]
    if counts["n/a"]:
        parts.append(f"{counts['n/a']} n/a")
    named = [f"{verdict}: {', '.join(c.key for c in scored if c.verdict == verdict)}"
             for verdict in ("better", "worse", "n/a") if counts[verdict]]
    return f"{', '.join(parts)} on scored metrics" + (f" ({'; '.join(named)})" if named else "")
