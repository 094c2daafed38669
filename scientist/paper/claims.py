"""Numeric claims in an idea's notes and paper, checked against the numbers in its run files.

Notes and papers written by LLMs have called worse numbers better (MSE 3.281 -> 3.422 as "better reconstruction
quality", cosine similarity 0.965 -> 0.961 as "enhanced") and retyped numbers wrongly. This module finds three
kinds of claim about a metric the registry knows, in notes.txt (less the results blocks that code wrote) and in
latex/**/*.tex (less comments and the *_generated.tex files that code wrote):

- change:    "MSE fell from 285.1 to 175.0 in run 1", "EV 0.897 -> 0.937": the first number must be the
             baseline's or an earlier run's, the second the run's, and a direction word must fit the numbers;
- direction: "run 2 improves explained variance", "lower MSE than the baseline": better/worse words are judged
             by the registry's direction, higher/lower words by the raw sign of the change;
- value:     "run 1 reaches an explained variance of 0.937", "CE loss score of 0.93 for run_1".

A direction word must also fit the noise: the baseline is trained on several seeds, and a change no larger than
metrics.compare's noise threshold (from the baseline's seed spread) is "within noise", neither better nor higher.
A fidelity metric that moves with sparsity (a frontier metric of the manifest) is better or worse against the
baseline's frontier at the run's own sparsity, not against the baseline's single point. A run repeated on seeds is
judged by its mean.

A claim names its run ("run 2", "run_2", "the baseline"), or takes it from the notes section it is in; a claim
that names no run holds if any run bears it out. Sentences that speak of expectations ("should", "we expect")
are not claims about results and are skipped.

`python -m scientist.paper.claims IDEA_DIR` prints each contradiction and exits 1, or exits 0 with a count of the claims
checked; a folder that cannot be checked exits 2.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from scientist.experiment.manifest import Manifest, ManifestError, MetricRegistry, manifest_of
from scientist.experiment.metrics import SAME_TOLERANCE, MetricChange, compare, format_number
from scientist.experiment.noise import Frontier, read_frontier
from scientist.paper.claim_text import Claim, find_claims
from scientist.store.folder import (
    FINAL_INFO_FILE,
    NOTES_FILE,
    ResultsError,
    final_info_path,
    read_results,
    run_numbers,
)

# A written number stands for anything that rounds to it: 0.93 for 0.9319, but not for 0.9361.
ROUNDING_SLACK = 0.5  # in units of the last written digit
# A whole number ending in zeros (70, 2000) does not say how far it was rounded: it may be this far off instead.
RELATIVE_TOLERANCE = 0.01
LATEX_DIR = "latex"
GENERATED_TEX_SUFFIX = "_generated.tex"
WITHIN_NOISE = "within noise"  # metrics.compare's verdict for a change no larger than the baseline's seed noise


class ClaimsError(Exception):
    """The idea folder cannot be checked: it is missing, has no runs, or a file in it cannot be read."""


@dataclass(frozen=True)
class Contradiction:
    claim: Claim
    measured: str  # what the run files say instead

    def __str__(self) -> str:
        if self.claim.kind == "baseline":
            return f"{self.claim.path}: {self.measured}"
        return f'{self.claim.path}:{self.claim.line}: "{self.claim.text}": {self.measured}'


def _matches(written: float, places: int | None, measured: float) -> bool:
    slack = RELATIVE_TOLERANCE * abs(measured) if places is None else ROUNDING_SLACK * 10.0 ** -places
    return abs(measured - written) <= slack * (1 + 1e-9)


# ---------------------------------------------------------------------------------------------- checking claims

Means = dict[int, dict[str, float]]  # run number -> registry key -> value


class _Measured:
    """What the run files say: each run's means, and each change from one run to another as metrics.compare judges
    it: against the seed noise, and for a frontier metric against the baseline's frontier at the run's sparsity."""

    def __init__(self, infos: dict[int, dict], registry: MetricRegistry, frontier: Frontier | None):
        self.infos, self.registry, self.frontier = infos, registry, frontier
        self.means: Means = {run: _means(info) for run, info in infos.items()}
        self._changes: dict[tuple[int, int], dict[str, MetricChange]] = {}

    def change(self, reference: int, run: int, metric: str) -> MetricChange:
        """The change of metric from the reference run to run; both must have measured it."""
        if (reference, run) not in self._changes:
            if reference == 0:
                changes = compare(self.infos[0], self.infos[run], self.registry, self.frontier)
            else:
                changes = compare(_with_seed_spread(self.infos[reference], self.infos.get(0, {})), self.infos[run],
                                  self.registry)
            self._changes[reference, run] = {change.key: change for change in changes}
        return self._changes[reference, run][metric]


def _with_seed_spread(reference: dict, baseline: dict) -> dict:
    """A run other than the baseline, as the reference of a comparison: its seed spread is the baseline's (what the
    seeds measured of this setup) unless the run was repeated on seeds itself, so that "run 2 beats run 1" needs
    the same margin as "run 2 beats the baseline"."""
    spread = {}
    for group, body in reference.items():
        base = baseline.get(group)
        if isinstance(body, dict) and body.get("stds") is None and isinstance(base, dict) and base.get("stds"):
            body = {**body, "stds": base["stds"]}
        spread[group] = body
    return spread


def _written_change(metric: str, before: float, after: float, registry: MetricRegistry) -> MetricChange:
    """The change between two written numbers that are not both runs' values: no seed spread is known for them."""
    group, name = metric.split(".", 1)
    [change] = compare({group: {"status": "ok", "means": {name: before}}},
                       {group: {"status": "ok", "means": {name: after}}}, registry)
    return change


def _label(run: int) -> str:
    return "baseline" if run == 0 else f"run_{run}"


def _hint(metric: str, registry: MetricRegistry) -> str:
    entry = registry.lookup(*metric.split(".", 1))
    if entry.direction == "target":
        return f"closer-to-{entry.target:g}-is-better"
    return {"higher": "higher-is-better", "lower": "lower-is-better", "info": "not scored (info)"}.get(
        entry.direction, "not in the metric registry")


def _by_verdict(sense: str) -> bool:
    """Better/worse words are judged by the change's verdict; higher/lower words by the raw sign of the change."""
    return sense in ("better", "worse")


def _judged_delta(change: MetricChange, sense: str) -> float | None:
    """The change the sense speaks of: for better/worse of a frontier metric, from the frontier at the run's
    sparsity; else from the reference run's value."""
    if change.value is None or change.baseline is None:
        return None
    start = change.frontier_value if _by_verdict(sense) and change.frontier_value is not None else change.baseline
    return change.value - start


def _outcome(sense: str, change: MetricChange) -> str | None:
    """What the change is, in the words of the sense ("within noise" when it does not exceed the noise threshold);
    None when better/worse has no meaning for the metric or a value is missing."""
    if _by_verdict(sense):
        return change.verdict if change.verdict in ("better", "worse", WITHIN_NOISE) else None
    delta = _judged_delta(change, sense)
    if delta is None:
        return None
    if change.noise is not None and abs(delta) <= change.noise:
        return WITHIN_NOISE
    if change.noise is None and abs(delta) <= SAME_TOLERANCE * max(1.0, abs(change.baseline)):
        return "unchanged"  # a number that is not scored has no noise rule; float rounding is no change
    return "higher" if delta > 0 else "lower"


def _step(measured: _Measured, reference: int, run: int, metric: str, sense: str | None) -> str:
    """'a -> b in run_1', with the frontier point a better/worse claim was judged against and, for a change within
    noise, the change and the threshold."""
    change = measured.change(reference, run, metric)
    text = f"{format_number(change.baseline)} -> {format_number(change.value)} in {_label(run)}"
    if sense is None:
        return text
    notes = []
    if _by_verdict(sense) and change.frontier_value is not None:
        notes.append(f"the baseline's frontier is {format_number(change.frontier_value)} at this run's "
                     f"{measured.frontier.x} of {format_number(change.frontier_x)}")
    if _outcome(sense, change) == WITHIN_NOISE:
        notes.append(f"a change of {_judged_delta(change, sense):+.6g} is within the noise floor of "
                     f"{format_number(change.noise)}")
    return text + "".join(f" ({note})" for note in notes)


def _went(measured: _Measured, metric: str, reference: int, runs: list[int], sense: str | None) -> str:
    steps = [_step(measured, reference, run, metric, sense) for run in runs if metric in measured.means[run]]
    against = "" if reference == 0 else f" (from {_label(reference)})"
    return f"{metric} is {_hint(metric, measured.registry)} and went {', '.join(steps)}{against}"


def _values(metric: str, means: Means, runs: list[int]) -> str:
    return ", ".join(f"{format_number(means[run][metric])} in {_label(run)}" for run in runs if metric in means[run])


def _unmeasured(claim: Claim, means: Means, runs: list[int]) -> str | None:
    if claim.run is not None and claim.run not in means:
        return f"there are no results of {_label(claim.run)}"
    if not runs:
        return "there is no run besides the baseline"
    if not any(claim.metric in means[run] for run in runs):
        return f"{claim.metric} was not measured in {', '.join(map(_label, runs))}"
    return None


def _check_value(claim: Claim, measured: _Measured) -> str | None:
    means = measured.means
    runs = [claim.run] if claim.run is not None else sorted(means)
    if problem := _unmeasured(claim, means, runs):
        return problem
    [value], [places] = claim.values, claim.places
    if any(_matches(value, places, means[run][claim.metric]) for run in runs if claim.metric in means[run]):
        return None
    elsewhere = [run for run in sorted(means) if claim.metric in means[run] and run not in runs
                 and _matches(value, places, means[run][claim.metric])]
    found = f"{value:g} is {_label(elsewhere[0])}'s value" if elsewhere else f"{value:g} matches no run"
    return f"{claim.metric} is {_values(claim.metric, means, runs)}; {found}"


def _holding(claim: Claim, index: int, means: Means, candidates) -> list[int]:
    """The runs among candidates whose value of the claim's metric is its index-th written number."""
    value, places, metric = claim.values[index], claim.places[index], claim.metric
    return [run for run in candidates if metric in means[run] and _matches(value, places, means[run][metric])]


def _written_pairs(claim: Claim, means: Means, runs: list[int]) -> list[tuple[int, int]]:
    """The (reference, run) pairs whose values "before -> after" are: the run one of runs, the reference the
    baseline or an earlier run."""
    return [(start, end) for end in _holding(claim, 1, means, runs)
            for start in _holding(claim, 0, means, [run for run in sorted(means) if run < end])]


def _mismatch(claim: Claim, means: Means, runs: list[int]) -> str:
    """Why "before -> after" is not the baseline's or an earlier run's value, then one of the runs'."""
    before, after = claim.values
    ends = _holding(claim, 1, means, runs)
    if not ends and not _holding(claim, 0, means, means):
        return f"{before:g}/{after:g} match no run"
    if not ends:
        return f"{after:g} is not {'any run' if claim.run is None else _label(claim.run)}'s value"
    return f"{before:g} is not the value of the baseline or a run before {'/'.join(map(_label, ends))}"


def _check_change(claim: Claim, measured: _Measured) -> str | None:
    means = measured.means
    runs = [claim.run] if claim.run is not None else [run for run in sorted(means) if run > 0]
    if problem := _unmeasured(claim, means, runs):
        return problem
    (before, after), metric = claim.values, claim.metric
    pairs = _written_pairs(claim, means, runs)
    problems = []
    if claim.sense:
        # Numbers that are runs' values are judged as those runs' change (seed noise, frontier); others as written.
        changes = ([measured.change(start, end, metric) for start, end in pairs]
                   or [_written_change(metric, before, after, measured.registry)])
        outcomes = list(dict.fromkeys(_outcome(claim.sense, change) for change in changes))
        if None not in outcomes and claim.sense not in outcomes:
            problems.append(f"{before:g} -> {after:g} is {'/'.join(outcomes)}, not {claim.sense}")
    if not pairs:
        problems.append(_mismatch(claim, means, runs))
    if not problems:
        return None
    if 0 in means and metric in means[0]:
        return f"{_went(measured, metric, 0, runs, claim.sense)}; " + "; ".join(problems)
    return f"{metric} is {_values(metric, means, sorted(means))}; " + "; ".join(problems)


def _check_direction(claim: Claim, measured: _Measured) -> str | None:
    means, reference, metric = measured.means, claim.reference, claim.metric
    if reference not in means or metric not in means[reference]:
        return None  # nothing to compare with; a missing run_0 is reported once, on its own
    runs = [claim.run] if claim.run is not None else [run for run in sorted(means) if run not in (0, reference)]
    if problem := _unmeasured(claim, means, runs):
        return problem
    runs = [run for run in runs if metric in means[run]]
    outcomes = list(dict.fromkeys(_outcome(claim.sense, measured.change(reference, run, metric)) for run in runs))
    if None in outcomes or claim.sense in outcomes:
        return None
    return f"{_went(measured, metric, reference, runs, claim.sense)}: {'/'.join(outcomes)}, not {claim.sense}"


CHECKS: dict[str, Callable[[Claim, _Measured], str | None]] = {
    "value": _check_value, "change": _check_change, "direction": _check_direction,
}


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise ClaimsError(f"{path}: cannot be read ({getattr(err, 'strerror', None) or err})") from None


def _load_runs(idea_dir: Path) -> dict[int, dict]:
    if not idea_dir.is_dir():
        raise ClaimsError(f"{idea_dir}: no such folder")
    infos = {}
    for run in run_numbers(idea_dir):
        if run > 0 and not final_info_path(idea_dir, run).exists():
            continue  # a failed run leaves no numbers; a claim about it is reported as such
        try:
            infos[run] = read_results(idea_dir, run)
        except ResultsError as err:
            raise ClaimsError(str(err)) from None
    if not infos:
        raise ClaimsError(f"{idea_dir}: no run_N/{FINAL_INFO_FILE}, so there are no numbers to check claims against")
    return infos


def _means(info: dict) -> dict[str, float]:
    """Every finite numeric mean of every group that ran, by registry key."""
    means = {}
    for group, body in info.items():
        if isinstance(body, dict) and body.get("status") == "ok" and isinstance(body.get("means"), dict):
            means.update({f"{group}.{name}": float(value) for name, value in body["means"].items()
                          if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)})
    return means


def _baseline_problems(infos: dict[int, dict], manifest: Manifest) -> list[Contradiction]:
    """A missing or degenerate run_0, as contradictions of kind "baseline" (they belong to no sentence)."""
    if 0 not in infos:
        where, problem = "run_0", "missing: no baseline, so no change or direction claim could be checked"
    elif reason := manifest.baseline_problem(infos[0]):
        where, problem = "run_0/final_info.json", f"not a usable baseline ({reason}); every comparison with it is void"
    else:
        return []
    return [Contradiction(Claim(Path(where), 0, "", "", 0, (), "baseline"), problem)]


def check_idea(idea_dir: Path, manifest: Manifest | None = None) -> tuple[list[Claim], list[Contradiction]]:
    """The claims in notes.txt and latex/**/*.tex, and the contradictions between them and run_*/final_info.json.

    The metrics and what a usable baseline is come from `manifest`, by default the idea folder's own copy of its
    template's manifest. Raises ClaimsError for a folder that cannot be checked. Claim paths are relative to
    idea_dir.
    """
    idea_dir = Path(idea_dir)
    infos = _load_runs(idea_dir)
    if manifest is None:
        try:
            manifest = manifest_of(idea_dir)
        except ManifestError as err:
            raise ClaimsError(str(err)) from None
    measured = _Measured(infos, manifest.metrics, read_frontier(idea_dir, manifest.baseline_plan.frontier_x))
    sources = [idea_dir / NOTES_FILE] if (idea_dir / NOTES_FILE).is_file() else []
    sources += [path for path in sorted((idea_dir / LATEX_DIR).rglob("*.tex"))
                if not path.name.endswith(GENERATED_TEX_SUFFIX)]
    claims = [claim for path in sources
              for claim in find_claims(_read(path), path.relative_to(idea_dir), manifest.metrics)]
    contradictions = _baseline_problems(infos, manifest)
    for claim in claims:
        problem = CHECKS[claim.kind](claim, measured)
        if problem:
            contradictions.append(Contradiction(claim, problem))
    return claims, contradictions


def contradictions_by_file(idea_dir: Path, manifest: Manifest | None = None) -> dict[str, list[str]]:
    """check_idea's contradictions as text, keyed by the name of the file that makes the claim (notes.txt,
    results.tex, ...), for the stages that feed them back file by file."""
    _, contradictions = check_idea(idea_dir, manifest)
    found: dict[str, list[str]] = {}
    for contradiction in contradictions:
        found.setdefault(Path(contradiction.claim.path).name, []).append(str(contradiction))
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scientist.paper.claims",
                                     description="Check the numeric claims in an idea's notes and paper against "
                                                 "its run files.")
    parser.add_argument("idea_dir", type=Path, help="idea folder with run_*/final_info.json and notes.txt")
    args = parser.parse_args(argv)
    try:
        claims, contradictions = check_idea(args.idea_dir)
    except ClaimsError as err:
        print(f"scientist.paper.claims: {err}", file=sys.stderr)
        return 2
    for contradiction in contradictions:
        print(contradiction)
    if contradictions:
        print(f"{len(contradictions)} contradiction(s) in {len(claims)} claims checked")
        return 1
    print(f"no contradictions in {len(claims)} claims checked")
    return 0


if __name__ == "__main__":
    sys.exit(main())
