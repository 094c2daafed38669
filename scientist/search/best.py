"""Which node of the tree is best, decided by code: one primary metric, its registry direction, and the noise rule.

The primary metric is the one the idea names when the registry scores it and the baseline records it, else the
template's first key metric that is scored and that the baseline records. A node's score is its gain over its
reference by the metric's direction (noise.gain): the reference is the baseline's value, or for a fidelity metric
(the manifest's `frontier = true`) the baseline frontier at the node's own sparsity, as the results blocks judge it,
so that a node is not called best merely for being denser.

One node beats another only when its score is higher by more than the noise floor (noise.noise_threshold of the
baseline's mean and seed spread, the rule every verdict in the notes follows). The best node is the simplest (fewest
lines changed), then earliest, of the nodes that no other node beats. That rule does not depend on the order in which
nodes finished, so parallel nodes and a resumed search choose the same best node; and a node ahead only within noise
does not displace a simpler or earlier one.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from scientist.experiment.manifest import SCORED_DIRECTIONS, Metric, MetricRegistry
from scientist.experiment.noise import Frontier, gain, group_part, mean_of, noise_threshold, number, ok_groups
from scientist.search.tree import Node, Tree


class SearchError(Exception):
    """The search cannot rank nodes (no scored metric the baseline records); the message says what to fix."""


@dataclass(frozen=True)
class PrimaryMetric:
    """The metric that ranks the nodes, and why it was chosen (said in the notes and tree.html)."""

    metric: Metric
    reason: str


def primary_metric(registry: MetricRegistry, baseline: Mapping, named: str | None = None) -> PrimaryMetric:
    """The idea's named metric ("group.name") if the registry scores it and the baseline records it, else the
    template's first such key metric. Raises SearchError when there is none."""
    def usable(metric: Metric) -> bool:
        return metric.direction in SCORED_DIRECTIONS and mean_of(baseline, metric.key) is not None

    declined = ""
    if named:
        metric = registry.lookup(*named.split(".", 1)) if "." in named else None
        if metric is not None and usable(metric):
            return PrimaryMetric(metric, f"named by the idea ({metric.direction} is better)")
        declined = (f"; the idea named {named}, which the metric registry does not score or the baseline does not "
                    "record")
    for metric in registry.key_metrics:
        if usable(metric):
            return PrimaryMetric(metric, f"the template's first key metric that the baseline records "
                                         f"({metric.direction} is better){declined}")
    raise SearchError("no key metric of the template is scored and recorded by the baseline run_0; name a scored "
                      "metric in the idea, or mark one key_metric in the template's manifest")


def noise_floor(metric: Metric, baseline: Mapping) -> float:
    """What a difference in score must exceed: the noise rule applied to the baseline's mean and seed spread."""
    mean = mean_of(baseline, metric.key)
    if mean is None:
        raise SearchError(f"the baseline run_0 records no {metric.key}, so no node can be judged on it")
    std = number(group_part(ok_groups(baseline).get(metric.group), "stds").get(metric.name))
    return noise_threshold(mean, std)


def score(metric: Metric, baseline: Mapping, result: Mapping, frontier: Frontier | None = None) -> float | None:
    """How much better the result is than its reference by the metric's direction (negative: worse); None when the
    result or the baseline lacks the metric."""
    value, reference = mean_of(result, metric.key), mean_of(baseline, metric.key)
    if value is None or reference is None:
        return None
    if metric.frontier and frontier is not None:
        x = mean_of(result, frontier.x)
        on_frontier = frontier.value_at(baseline, metric.key, x) if x is not None else None
        reference = reference if on_frontier is None else on_frontier
    return gain(metric, reference, value)


def beats(challenger: Node, incumbent: Node, noise: float) -> bool:
    """Whether challenger's score exceeds incumbent's by more than the noise floor."""
    if challenger.score is None or incumbent.score is None:
        return False
    return challenger.score - incumbent.score > noise


def simplicity(node: Node) -> tuple[float, int]:
    """The tie-break: fewer lines changed (unknown counts as most), then earlier."""
    return (math.inf if node.lines_changed is None else node.lines_changed, node.id)


def best_node(tree: Tree) -> Node | None:
    """The simplest, then earliest, successful node that no other node beats; None while no node has a score."""
    scored = [node for node in tree.nodes if node.status == "ok" and node.score is not None]
    if not scored:
        return None
    unbeaten = [node for node in scored if not any(beats(other, node, tree.noise) for other in scored)]
    return min(unbeaten, key=simplicity)
