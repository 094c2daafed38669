"""Comparing a run's final_info.json with the baseline's, metric by metric, in code rather than in prose.

After each successful run the research loop appends the block that `results_block` writes to notes.txt. Its
verdicts come from a registry that records, for every known metric, which direction is better, so that no
reader has to guess and no writer can call a worse number better (an earlier system described MSE 3.281 ->
3.422 as improved reconstruction). Numbers that describe the run rather than score it (steps, dictionary
size, L0, timings, the model's own losses) are "info", and numbers the registry does not know are
"unknown": both are shown, but never called better or worse.
"""

from __future__ import annotations

import math
import textwrap
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

from scientist.experiment.manifest import SCORED_DIRECTIONS, Direction, Metric, MetricRegistry

Verdict = Literal["better", "worse", "same", "n/a", "-"]

SAME_TOLERANCE = 1e-9
BASELINE_LABEL = "baseline"
_HINTS = {"higher": "higher is better", "lower": "lower is better", "info": "info", "unknown": "not in registry"}


@dataclass(frozen=True)
class MetricChange:
    """One metric of one run against the baseline; verdict says whether the change is an improvement."""

    group: str
    name: str
    baseline: float | None
    value: float | None
    delta: float | None
    relative: float | None
    direction: Direction
    verdict: Verdict
    target: float | None = None

    @property
    def key(self) -> str:
        return f"{self.group}.{self.name}"


def _number(value: object) -> float | None:
    """A comparable number, or None: JSON null (how the harness records NaN), bools and strings are not."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def _ok_means(info: Mapping) -> dict[str, Mapping]:
    """The means of each group that ran: a skipped group's numbers (there should be none) are never compared."""
    groups = {}
    for group, body in info.items():
        if isinstance(body, Mapping) and body.get("status") == "ok":
            means = body.get("means")
            groups[group] = means if isinstance(means, Mapping) else {}
    return groups


def _ordered_union(first: Iterable[str], second: Iterable[str]) -> list[str]:
    """Keys of both, in the order they first appear, so that rows follow the order final_info.json uses."""
    return list(dict.fromkeys([*first, *second]))


def _verdict(metric: Metric, baseline: float, value: float) -> Verdict:
    """Better, worse or same by the metric's direction; 'same' within a relative tolerance of 1e-9."""
    if metric.direction not in SCORED_DIRECTIONS:
        return "-"
    if metric.direction == "target":
        gain = abs(baseline - metric.target) - abs(value - metric.target)
    elif metric.direction == "higher":
        gain = value - baseline
    else:
        gain = baseline - value
    if abs(gain) <= SAME_TOLERANCE * max(1.0, abs(baseline)):
        return "same"
    return "better" if gain > 0 else "worse"


def _change(metric: Metric, raw_baseline: object, raw_value: object) -> MetricChange:
    group, name = metric.group, metric.name
    baseline, value = _number(raw_baseline), _number(raw_value)
    if baseline is None or value is None:
        return MetricChange(group, name, baseline, value, None, None, metric.direction, "n/a", metric.target)
    delta = value - baseline
    relative = delta / abs(baseline) if baseline != 0 else None
    return MetricChange(group, name, baseline, value, delta, relative, metric.direction,
                        _verdict(metric, baseline, value), metric.target)


def _row_rank(change: MetricChange, key_groups: frozenset[str]) -> tuple[bool, bool]:
    """Scored rows before info rows, and within each the groups that hold key metrics first; sorting is stable."""
    return (change.direction not in SCORED_DIRECTIONS, change.group not in key_groups)


def compare(baseline: Mapping, run: Mapping, registry: MetricRegistry) -> list[MetricChange]:
    """One row per (group, metric) in either run's groups with status ok, in the order results_block prints.

    A metric whose group was skipped, or that is absent or null, on one side gets verdict "n/a".
    """
    base_groups, run_groups = _ok_means(baseline), _ok_means(run)
    changes = []
    for group in _ordered_union(base_groups, run_groups):
        base_means, run_means = base_groups.get(group, {}), run_groups.get(group, {})
        for name in _ordered_union(base_means, run_means):
            changes.append(_change(registry.lookup(group, name), base_means.get(name), run_means.get(name)))
    key_groups = frozenset(metric.group for metric in registry.key_metrics)
    return sorted(changes, key=lambda change: _row_rank(change, key_groups))


def format_number(value: float | None) -> str:
    """Whole numbers exactly, others to six significant figures, so every printed number equals final_info.json's
    to that precision."""
    if value is None:
        return "n/a"
    if float(value).is_integer() and abs(value) < 1e15:
        return str(int(value))
    return f"{value:.6g}"


def _format_change(change: MetricChange) -> str:
    if change.delta is None:
        return "n/a"
    text = f"{change.delta:+.6g}"
    if change.relative is not None:
        percent = 100 * change.relative
        text += f" ({percent:+.3g}%)" if abs(percent) < 1000 else f" ({percent:+.0f}%)"
    return text


def _direction_hint(change: MetricChange) -> str:
    """Printed beside each verdict so that the reader sees which way is better without looking it up."""
    if change.direction == "target":
        return f"closer to {change.target:g} is better"
    return _HINTS[change.direction]


def _table(run_number: int, changes: list[MetricChange]) -> list[str]:
    """A fixed-width table: the metric left-aligned, numbers right-aligned, columns two spaces apart."""
    header = ("metric", BASELINE_LABEL, f"run_{run_number}", "change", "verdict")
    rows = [header] + [
        (c.key, format_number(c.baseline), format_number(c.value), _format_change(c),
         f"{c.verdict} ({_direction_hint(c)})")
        for c in changes
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = []
    for row in rows:
        cells = [row[0].ljust(widths[0]), *(cell.rjust(w) for cell, w in zip(row[1:4], widths[1:4])), row[4]]
        lines.append("  ".join(cells).rstrip())
    return lines


def _not_ok(info: Mapping) -> dict[str, tuple[str, str]]:
    """Each group that did not run, as (status, reason on one line)."""
    groups = {}
    for group, body in info.items():
        if isinstance(body, Mapping) and body.get("status") != "ok":
            reason = " ".join(str(body.get("reason") or "no reason given").split())
            groups[group] = (str(body.get("status") or "no status"), reason)
    return groups


def _skipped_lines(run_number: int, baseline: Mapping, run: Mapping) -> list[str]:
    """One line per group that did not run; a group skipped alike in both runs is named once."""
    sides = ((BASELINE_LABEL, _not_ok(baseline)), (f"run_{run_number}", _not_ok(run)))
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


def results_block(run_number: int, description: str, baseline: Mapping, run: Mapping,
                  registry: MetricRegistry) -> str:
    """The block appended to notes.txt after run_{run_number}: header, comparison table, groups that did not run.

    The text ends with a newline so that blocks can be appended one after another.
    """
    header = f"## Run {run_number}: {' '.join(description.split())}"
    changes = compare(baseline, run, registry)
    lines = [header, "", *_table(run_number, changes), "",
             *textwrap.wrap(f"Summary: {summary_line(changes)}", width=100, subsequent_indent="  ")]
    skipped = _skipped_lines(run_number, baseline, run)
    if skipped:
        lines += ["", *skipped]
    return "\n".join(lines) + "\n"


def summary_line(changes: Iterable[MetricChange]) -> str:
    """Counts of better, worse and same over the scored metrics, then each scored metric with its verdict."""
    scored = [c for c in changes if c.direction in SCORED_DIRECTIONS]
    if not scored:
        return "no scored metrics to compare"
    counts = Counter(c.verdict for c in scored)
    parts = [f"{counts[verdict]} {verdict}" for verdict in ("better", "worse", "same")]
    if counts["n/a"]:
        parts.append(f"{counts['n/a']} n/a")
    listing = ", ".join(f"{c.key} {c.verdict}" for c in scored)
    return f"{', '.join(parts)} on scored metrics ({listing})"
