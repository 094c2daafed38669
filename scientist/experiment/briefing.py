"""What the coder's first prompt and the idea generator are told about the baseline, from its result files.

`baseline_block` shows the baseline itself (its values with their seed spread, key metrics first, its frontier
points and the rule every run is judged by), where the coder's first prompt once showed the baseline compared with
itself. `judging_values` fills the idea prompts' placeholders that say how runs are judged and what budget they share
with the baseline, and `budget_text` the coder's: every number comes from run_0/final_info.json, none is typed
into a prompt.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

from scientist.experiment.manifest import SCORED_DIRECTIONS, ManifestError, MetricRegistry, manifest_of
from scientist.experiment.metrics import (
    BASELINE_LABEL,
    MetricChange,
    compare,
    direction_hint,
    format_number,
    frontier_rule_text,
    noise_rule_text,
    partition,
    skipped_lines,
    table_lines,
    with_spread,
    wrapped,
    x_label,
)
from scientist.experiment.noise import Frontier, mean_of, read_frontier, seeds_phrase
from scientist.store.folder import ResultsError, read_final_info

log = logging.getLogger(__name__)

BUDGET_METRICS = ("training.training_tokens", "settings.dict_size")
"""The numbers of the baseline that fix what a run may spend, shown to the coder and the idea generator with the
frontier's x (the baseline's sparsity); a template that records none of them shows only that x."""


def _judged(change: MetricChange, registry: MetricRegistry, frontier: Frontier | None) -> str:
    hint = direction_hint(change.direction, change.target)
    along = (frontier is not None and bool(frontier.points) and change.direction in SCORED_DIRECTIONS
             and registry.lookup(change.group, change.name).frontier)
    judged = f"{hint}, along the frontier" if along else hint
    return judged if change.noise is None else f"{judged}; noise {format_number(change.noise)}"


def _frontier_table(frontier: Frontier, baseline: Mapping, registry: MetricRegistry) -> list[str]:
    """The baseline and its frontier points by x, with the key metrics judged along the frontier (all of those
    metrics where none is key) that the baseline records."""
    recorded = [m for m in registry.metrics if m.frontier and mean_of(baseline, m.key) is not None]
    judged = [m for m in recorded if m.key_metric] or recorded
    points = [(mean_of(info, frontier.x), info is baseline, info) for info in (baseline, *frontier.points)]
    points.sort(key=lambda point: (point[0] is None, point[0] or 0.0))
    heading = (x_label(frontier, registry), *(m.display or m.key for m in judged), "")
    rows = [(format_number(x), *(format_number(mean_of(info, m.key)) for m in judged),
             f"{BASELINE_LABEL} (run_0)" if is_baseline else "") for x, is_baseline, info in points]
    return table_lines([[heading, *rows]])


def baseline_block(baseline: Mapping, registry: MetricRegistry, frontier: Frontier | None = None) -> str:
    """The baseline as the coder's first prompt shows it: the seeds, the key metrics and the other scored ones
    with mean ± standard deviation and how each is judged, the numbers that are not scored, the frontier points,
    the rule, and the groups that did not run."""
    changes = compare(baseline, baseline, registry)
    key_rows, scored_rows, rest = partition(changes, registry)

    def rows(title: str, section: list[MetricChange]) -> list[tuple[str, ...]]:
        return [(title, BASELINE_LABEL, "judged")] + [
            (c.key, with_spread(c.baseline, c.baseline_std), _judged(c, registry, frontier)) for c in section]

    lines = [f"{BASELINE_LABEL} (run_0): {seeds_phrase(baseline)}.", ""]
    table = table_lines([rows("key metric", key_rows), rows("other scored metric", scored_rows)])
    lines += [*table, ""] if table else []
    known = [c for c in rest if c.direction != "unknown"]
    unknown = [c for c in rest if c.direction == "unknown"]
    for title, entries in (("Not scored", known), ("Not in the metric registry (never judged)", unknown)):
        if entries:
            listing = ", ".join(f"{c.key} {format_number(c.baseline)}" for c in entries)
            lines += wrapped(f"{title}: {listing}.")
    if frontier is not None and frontier.points:
        lines += ["", "Baseline frontier: the baseline and its runs at other sparsity settings (one seed each):",
                  *_frontier_table(frontier, baseline, registry)]
    lines.append("")
    frontier_text = frontier_rule_text(frontier, baseline, registry)
    if frontier_text:
        lines += wrapped(f"Frontier: {frontier_text}")
    lines += wrapped(f"Rule: {noise_rule_text(baseline)}")
    skipped = skipped_lines(BASELINE_LABEL, baseline, baseline)
    if skipped:
        lines += ["", *skipped]
    return "\n".join(lines) + "\n"


def budget_text(baseline: Mapping | None, registry: MetricRegistry, frontier: Frontier | None = None) -> str:
    """The baseline's budget numbers (BUDGET_METRICS and the frontier's x), each with the registry's description."""
    if baseline is None:
        return "unknown (the template has no baseline run_0 yet)"
    parts = []
    for key in (*BUDGET_METRICS, *([frontier.x] if frontier is not None else [])):
        value = mean_of(baseline, key)
        if value is None:
            continue
        metric = registry.lookup(*key.split(".", 1))
        described = f" — {metric.description}" if metric.direction != "unknown" else ""
        parts.append(f"{key} = {format_number(value)}{described}")
    return "; ".join(parts) or "not recorded in the baseline's results"


def judging_values(baseline: Mapping | None, registry: MetricRegistry, frontier: Frontier | None) -> dict[str, str]:
    """The placeholders noise_rule, frontier_rule and budget of the prompts that say how runs are judged."""
    if baseline is None:
        return {"noise_rule": "", "frontier_rule": "", "budget": budget_text(None, registry)}
    return {"noise_rule": noise_rule_text(baseline),
            "frontier_rule": frontier_rule_text(frontier, baseline, registry),
            "budget": budget_text(baseline, registry, frontier)}


def template_judging_values(template: Path) -> dict[str, str]:
    """judging_values for a template folder, read from its manifest and run_0; a template without a manifest or
    a baseline yet gets the rule without numbers and an unknown budget."""
    try:
        manifest = manifest_of(template)
    except ManifestError as err:
        log.info("no manifest to say how runs are judged: %s", err)
        return judging_values(None, MetricRegistry(()), None)
    try:
        baseline = read_final_info(template, 0)
    except ResultsError as err:
        log.info("no baseline to state the budget: %s", err)
        return judging_values(None, manifest.metrics, None)
    frontier = read_frontier(template, manifest.baseline_plan.frontier_x)
    return judging_values(baseline, manifest.metrics, frontier)
