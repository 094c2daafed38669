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
from types import MappingProxyType
from typing import Literal

Direction = Literal["higher", "lower", "target", "info", "unknown"]
Verdict = Literal["better", "worse", "same", "n/a", "-"]

SCORED_DIRECTIONS: frozenset[str] = frozenset({"higher", "lower", "target"})
SAME_TOLERANCE = 1e-9
BASELINE_LABEL = "baseline"
_HINTS = {"higher": "higher is better", "lower": "lower is better", "info": "info", "unknown": "not in registry"}


@dataclass(frozen=True)
class Metric:
    """What one number in final_info.json means, and which way is better (or that no way is)."""

    group: str
    name: str
    direction: Direction
    description: str
    target: float | None = None

    def __post_init__(self) -> None:
        if (self.direction == "target") != (self.target is not None):
            raise ValueError(f"{self.group}.{self.name}: a target value goes with direction 'target' only")

    @property
    def key(self) -> str:
        return f"{self.group}.{self.name}"


def _group(group: str, rows: Iterable[tuple]) -> tuple[Metric, ...]:
    """Rows are (name, direction, description) or (name, "target", description, target value)."""
    return tuple(Metric(group, *row) for row in rows)


_TRAINING = _group("training", (
    ("training_steps", "info", "optimizer steps taken"),
    ("training_tokens", "info", "activation vectors seen in training, counting repeats over epochs"),
    ("unique_tokens", "info", "distinct training activation vectors"),
    ("final_loss", "info", "mean training loss over the last logged steps; its terms differ between variants"),
    ("training_seconds", "info", "time spent in the training loop; depends on the machine"),
    ("tokens_per_s", "info", "training throughput in activation vectors per second (machine load moves it)"),
    ("resampled_features", "info", "dead features re-initialised during training"),
    ("dict_size", "info", "number of SAE features (a design choice)"),
    ("layer", "info", "layer whose residual stream the SAE reads"),
    ("d_in", "info", "width of the activations the SAE reconstructs"),
    ("lr", "info", "learning rate"),
    ("sparsity_penalty", "info", "coefficient of the sparsity term in the loss"),
    ("k", "info", "active features per token for TopK variants"),
    ("target_l0", "info", "target L0 for JumpReLU"),
    ("batch_size", "info", "activation vectors per optimizer step"),
    ("epochs", "info", "passes over the training activations"),
    ("seed", "info", "random seed"),
    ("activation_scale", "info", "factor applied to activations before training"),
    ("setup_seconds", "info", "time to load the model and cache activations; depends on the machine"),
    ("wall_seconds", "info", "wall-clock time of the whole run; depends on the machine"),
))

_CORE = _group("core", (
    ("explained_variance", "higher", "1 - SSE / SST of the reconstruction on held-out tokens"),
    ("mse", "lower", "per-element squared reconstruction error on raw activations"),
    ("mse_per_token", "lower", "squared reconstruction error summed over dimensions, per token"),
    ("cossim", "higher", "mean cosine similarity between activations and their reconstructions"),
    ("l0", "info", "mean active features per token (a sparsity choice, not a score)"),
    ("l1", "info", "mean sum of feature activations per token"),
    ("l2_ratio", "target", "mean |x_hat| / |x|; 1 means no shrinkage", 1.0),
    ("dead_fraction", "lower", "fraction of features that never fire on held-out tokens"),
    ("dense_fraction", "lower", "fraction of features that fire on more than 10% of held-out tokens"),
    ("heldout_tokens", "info", "held-out tokens evaluated"),
    ("eval_seconds", "info", "time spent evaluating; depends on the machine"),
    ("ce_loss_score", "higher", "SAEBench: fraction of the CE loss lost to zero-ablation that the SAE recovers"),
    ("kl_div_score", "higher", "SAEBench: fraction of the zero-ablation KL divergence that the SAE removes"),
    ("ce_loss_with_sae", "lower", "SAEBench: the model's CE loss with the SAE spliced in"),
    ("ce_loss_without_sae", "info", "SAEBench: the model's clean CE loss (does not depend on the SAE)"),
    ("ce_loss_with_ablation", "info", "SAEBench: CE loss with the activation zeroed (does not depend on the SAE)"),
    ("kl_div_with_sae", "lower", "SAEBench: KL divergence from the clean model with the SAE spliced in"),
    ("kl_div_with_ablation", "info", "SAEBench: KL divergence with the activation zeroed (no SAE involved)"),
    ("l2_norm_in", "info", "SAEBench: mean norm of the input activations"),
    ("l2_norm_out", "info", "SAEBench: mean norm of the reconstructions"),
    ("relative_reconstruction_bias", "target", "SAEBench: systematic scaling of reconstructions; 1 is unbiased",
     1.0),
    ("saebench_explained_variance", "info",
     "SAEBench 0.6.0's own explained variance; it disagreed with the formula on this model, so it is not scored"),
    ("saebench_explained_variance_legacy", "higher", "SAEBench's legacy explained variance"),
    ("saebench_mse", "lower", "SAEBench's own reconstruction MSE"),
    ("saebench_cossim", "higher", "SAEBench's own cosine similarity"),
    ("saebench_l0", "info", "SAEBench's own L0 (a sparsity choice, not a score)"),
    ("saebench_l1", "info", "SAEBench's own L1"),
))

_PROBE_TOP_K = (1, 2, 5, 10, 20, 50, 100)
_ABLATION_THRESHOLDS = (2, 5, 10, 20, 50, 100, 500)

_SPARSE_PROBING = _group("sparse_probing", (
    ("sae.sae_test_accuracy", "higher", "probe accuracy on all SAE features"),
    *((f"sae.sae_top_{k}_test_accuracy", "higher", f"probe accuracy on the top {k} SAE features")
      for k in _PROBE_TOP_K),
    ("llm.llm_test_accuracy", "info", "probe accuracy on the model's activations (no SAE involved)"),
    *((f"llm.llm_top_{k}_test_accuracy", "info", f"probe accuracy on the model's top {k} channels (no SAE)")
      for k in _PROBE_TOP_K),
))

_ABSORPTION = _group("absorption", (
    ("mean.mean_absorption_fraction_score", "lower", "mean fraction of first-letter features absorbed by others"),
    ("mean.mean_full_absorption_score", "lower", "mean rate of full absorption across letters"),
    ("mean.mean_num_split_features", "info", "mean number of features a first-letter concept is split across"),
    ("mean.std_dev_absorption_fraction_score", "info", "spread of the absorption fraction across letters"),
    ("mean.std_dev_full_absorption_score", "info", "spread of the full absorption rate across letters"),
    ("mean.std_dev_num_split_features", "info", "spread of the number of split features across letters"),
))

_SCR = _group("scr", tuple(
    row for n in _ABLATION_THRESHOLDS for row in (
        (f"scr_metrics.scr_metric_threshold_{n}", "higher", f"spurious correlation removal, top {n} features ablated"),
        (f"scr_metrics.scr_dir1_threshold_{n}", "info", f"one direction of the SCR metric, top {n} features"),
        (f"scr_metrics.scr_dir2_threshold_{n}", "info", f"one direction of the SCR metric, top {n} features"),
    )
))

_TPP = _group("tpp", tuple(
    row for n in _ABLATION_THRESHOLDS for row in (
        (f"tpp_metrics.tpp_threshold_{n}_total_metric", "higher", f"targeted probe perturbation, top {n} features"),
        (f"tpp_metrics.tpp_threshold_{n}_intended_diff_only", "info", f"TPP intended-class part, top {n} features"),
        (f"tpp_metrics.tpp_threshold_{n}_unintended_diff_only", "info", f"TPP unintended part, top {n} features"),
    )
))

_UNLEARNING = _group("unlearning", (
    ("unlearning.unlearning_score", "higher", "SAEBench unlearning score"),
))

METRICS: tuple[Metric, ...] = _TRAINING + _CORE + _SPARSE_PROBING + _ABSORPTION + _SCR + _TPP + _UNLEARNING
REGISTRY: Mapping[tuple[str, str], Metric] = MappingProxyType({(m.group, m.name): m for m in METRICS})


def lookup(group: str, name: str) -> Metric:
    """The registry's entry, or an 'unknown' one: a metric nobody classified must never be called better."""
    return REGISTRY.get((group, name)) or Metric(group, name, "unknown", "not in the metric registry")


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


def _change(group: str, name: str, raw_baseline: object, raw_value: object) -> MetricChange:
    metric = lookup(group, name)
    baseline, value = _number(raw_baseline), _number(raw_value)
    if baseline is None or value is None:
        return MetricChange(group, name, baseline, value, None, None, metric.direction, "n/a")
    delta = value - baseline
    relative = delta / abs(baseline) if baseline != 0 else None
    return MetricChange(group, name, baseline, value, delta, relative, metric.direction,
                        _verdict(metric, baseline, value))


def _row_rank(change: MetricChange) -> tuple[int, int]:
    """Scored rows before info rows, and within each the core group first; sorting is stable."""
    return (change.direction not in SCORED_DIRECTIONS, change.group != "core")


def compare(baseline: Mapping, run: Mapping) -> list[MetricChange]:
    """One row per (group, metric) in either run's groups with status ok, in the order results_block prints.

    A metric whose group was skipped, or that is absent or null, on one side gets verdict "n/a".
    """
    base_groups, run_groups = _ok_means(baseline), _ok_means(run)
    changes = []
    for group in _ordered_union(base_groups, run_groups):
        base_means, run_means = base_groups.get(group, {}), run_groups.get(group, {})
        for name in _ordered_union(base_means, run_means):
            changes.append(_change(group, name, base_means.get(name), run_means.get(name)))
    return sorted(changes, key=_row_rank)


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
        return f"closer to {lookup(change.group, change.name).target:g} is better"
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


def results_block(run_number: int, description: str, baseline: Mapping, run: Mapping) -> str:
    """The block appended to notes.txt after run_{run_number}: header, comparison table, groups that did not run.

    The text ends with a newline so that blocks can be appended one after another.
    """
    header = f"## Run {run_number}: {' '.join(description.split())}"
    changes = compare(baseline, run)
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
