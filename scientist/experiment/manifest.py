"""A template's manifest (templates/<name>/template.toml): the only way the orchestrator learns about a template.

It names the experiment environment, the files the coder may edit, the results schema, the metric registry, the
plots, the extra stages, the settings check, what a usable baseline shows and where runs leave the contexts for
autointerp. templates/README.md documents every field. A manifest that cannot be read fails with one message naming
the file, the field and the fix.
"""

from __future__ import annotations

import dataclasses
import functools
import re
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Literal

MANIFEST_FILE = "template.toml"
# A metric table named "group.*" classifies every number of that group that has no table of its own.
GROUP_RULE = "*"
MANIFEST_DOC = "templates/README.md"
Direction = Literal["higher", "lower", "target", "info", "unknown"]
DIRECTIONS = ("higher", "lower", "target", "info")
SCORED_DIRECTIONS: frozenset[str] = frozenset({"higher", "lower", "target"})


class ManifestError(Exception):
    """The template's manifest is missing or wrong; the message names the file, the field and the fix."""


@dataclass(frozen=True)
class Metric:
    """What one number in final_info.json means, and which way is better (or that no way is)."""

    group: str
    name: str
    direction: Direction
    description: str
    target: float | None = None
    display: str = ""
    """Short column heading in the paper's table."""
    key_metric: bool = False
    """Shown in the report and the paper's table."""
    aliases: tuple[str, ...] = ()
    """How prose names the metric, for the claim checker."""
    fraction: bool = False
    """A fraction: "12%" in prose means 0.12, and "247 dead features" is a count, not a value."""
    frontier: bool = False
    """A fidelity metric that moves with sparsity: judged against the baseline's frontier at the run's own
    sparsity ([baseline.frontier] x), not against the baseline's single point."""
    reference: str = ""
    """The key ("group.name") of a number in the same final_info.json that is this metric's reference value (on
    a ground-truth preset, what the true features score): results blocks and the paper's table show it beside the
    runs, so that a reader sees how far a run is from it."""

    def __post_init__(self) -> None:
        if (self.direction == "target") != (self.target is not None):
            raise ValueError(f"{self.group}.{self.name}: a target value goes with direction 'target' only")

    @property
    def key(self) -> str:
        return f"{self.group}.{self.name}"


class MetricRegistry:
    """The template's metrics by (group, name), in the manifest's order."""

    def __init__(self, metrics: Iterable[Metric]):
        self.metrics: tuple[Metric, ...] = tuple(metrics)
        self._by_key: Mapping[tuple[str, str], Metric] = MappingProxyType({(m.group, m.name): m for m in self.metrics})

    def __iter__(self):
        return iter(self._by_key)

    def __len__(self) -> int:
        return len(self.metrics)

    def lookup(self, group: str, name: str) -> Metric:
        """The registry's entry; else its group's rule ("group.*"), for a group of like numbers such as recorded
        settings; else an 'unknown' one: a metric nobody classified must never be called better."""
        if (group, name) in self._by_key:
            return self._by_key[group, name]
        rule = self._by_key.get((group, GROUP_RULE))
        if rule is not None:
            return dataclasses.replace(rule, name=name, display="", key_metric=False, aliases=())
        return Metric(group, name, "unknown", "not in the metric registry")

    @property
    def key_metrics(self) -> tuple[Metric, ...]:
        return tuple(m for m in self.metrics if m.key_metric)


@dataclass(frozen=True)
class Plot:
    file: str
    caption: str

    @property
    def stem(self) -> str:
        return Path(self.file).stem


@dataclass(frozen=True)
class Stage:
    """Template code run after the plots, for the baseline and each run that lacks its output."""

    name: str
    module: str
    needs: str = ""
    output: str = ""
    appendix: str = ""


@dataclass(frozen=True)
class Autointerp:
    """Where a run leaves the contexts the research loop's autointerp stage scores its features on."""

    contexts: str
    """A path inside a run folder, e.g. "autointerp_contexts.json"; templates/README.md gives its format."""


@dataclass(frozen=True)
class BaselinePlan:
    """How the template's run_0 is built: the command (trains it, its extra seeds and its frontier points), where
    those land, and which setting a run's seed is (so that an idea's run can be repeated on other seeds)."""

    command: str = "experiment.py"
    """A script in the template run as `python <command> --out_dir=run_0`."""
    seed_variable: str = ""
    """The environment variable that sets a run's seed; empty: runs cannot be repeated on other seeds."""
    seed_setting: str = ""
    """Where final_info.json records the seed a run used ("group.name")."""
    frontier_x: str = ""
    """The sparsity metric ("group.name") that frontier points are placed by; empty: no frontier."""


@dataclass(frozen=True)
class Requirement:
    """A condition on one metric of run_0 that a usable baseline meets."""

    metric: str
    reason: str
    above: float | None = None
    at_least: float | None = None

    def problem(self, info: Mapping) -> str | None:
        group, name = self.metric.split(".", 1)
        body = info.get(group)
        value = (body.get("means") or {}).get(name) if isinstance(body, Mapping) else None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return f"{self.metric} is missing: {self.reason}"
        if self.above is not None and not value > self.above:
            return f"{self.metric} is {value:g}, not above {self.above:g}: {self.reason}"
        if self.at_least is not None and not value >= self.at_least:
            return f"{self.metric} is {value:g}, below {self.at_least:g}: {self.reason}"
        return None


@dataclass(frozen=True)
class Manifest:
    path: Path
    """The template's folder (or an idea folder made from it)."""
    name: str
    description: str
    field: str
    """The research area of the template's ideas, named to the reviewers and to the novelty check."""
    python: Path
    setup: str
    editable: tuple[str, ...]
    final_info_schema: str
    result_files: tuple[str, ...]
    untracked: tuple[str, ...]
    """gitignore patterns of large run outputs kept out of an idea's git history."""
    settings_prefix: str
    settings_without_effect: frozenset[str]
    preset_variable: str
    cache: str
    cache_variable: str
    cache_min_free_gb: float
    check: str
    timeout_s: float
    baseline: tuple[Requirement, ...]
    baseline_plan: BaselinePlan
    metrics: MetricRegistry
    plots: tuple[Plot, ...]
    stages: tuple[Stage, ...] = field(default=())
    autointerp: Autointerp | None = None
    """None: the template's runs leave no contexts, and its ideas get no autointerp stage."""

    @property
    def file(self) -> Path:
        return self.path / MANIFEST_FILE

    @property
    def python_path(self) -> Path:
        return self.path / self.python

    def baseline_problem(self, info: Mapping) -> str | None:
        """Why a run_0's final_info cannot serve as a baseline, or None."""
        return next((problem for requirement in self.baseline if (problem := requirement.problem(info))), None)

    def is_setting(self, variable: str) -> bool:
        """An environment variable that a run reads as one of its settings."""
        return bool(self.settings_prefix) and variable.startswith(self.settings_prefix)


def load_manifest(template: Path) -> Manifest:
    """The manifest of the template (or idea folder) at `template`, read afresh (see manifest_of for a cached one)."""
    template = Path(template)
    path = template / MANIFEST_FILE
    if not path.is_file():
        raise ManifestError(f"{path}: missing; every template needs a {MANIFEST_FILE} manifest ({MANIFEST_DOC} "
                            "says what goes in it)")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as err:
        raise ManifestError(f"{path}: not valid TOML ({err}); fix the syntax ({MANIFEST_DOC})") from None
    return _Reader(path, data).manifest(template)


@functools.cache
def _cached(template: Path, mtime_ns: int) -> Manifest:
    return load_manifest(template)


def manifest_of(folder: Path) -> Manifest:
    """load_manifest, cached while the file is unchanged: the loop, the claim checker and the report ask often."""
    folder = Path(folder).resolve()
    path = folder / MANIFEST_FILE
    return _cached(folder, path.stat().st_mtime_ns) if path.is_file() else load_manifest(folder)


class _Reader:
    """Typed access to the TOML tables, each failure naming the field and what it should be."""

    def __init__(self, path: Path, data: dict):
        self.path, self.data = path, data

    def fail(self, where: str, expected: str):
        raise ManifestError(f"{self.path}: {where} must be {expected} ({MANIFEST_DOC})")

    def get(self, table: dict, where: str, key: str, kind: type | tuple, default=None, required: bool = False):
        if key not in table:
            if required:
                self.fail(f"{where}.{key}", f"given (it is missing): {_KINDS.get(kind, 'a value')}")
            return default
        value = table[key]
        if isinstance(value, bool) and kind is not bool or not isinstance(value, kind):
            self.fail(f"{where}.{key}", _KINDS.get(kind, str(kind)))
        return value

    def table(self, table: dict, key: str, required: bool = True) -> dict:
        value = table.get(key, {} if not required else None)
        if not isinstance(value, dict):
            self.fail(f"[{key}]", "a table" + (" (it is missing)" if value is None else ""))
        return value

    def strings(self, table: dict, where: str, key: str, default: tuple = ()) -> tuple[str, ...]:
        value = self.get(table, where, key, list, list(default))
        if not all(isinstance(item, str) for item in value):
            self.fail(f"{where}.{key}", "a list of strings")
        return tuple(value)

    def manifest(self, template: Path) -> Manifest:
        meta, env, run = (self.table(self.data, key) for key in ("template", "environment", "run"))
        name = self.get(meta, "template", "name", str, required=True)
        editable = self.strings(run, "run", "editable", ("experiment.py",))
        if not editable:
            self.fail("run.editable", "a non-empty list of files the coder may edit")
        return Manifest(
            path=template,
            name=name,
            description=self.get(meta, "template", "description", str, ""),
            field=self.get(meta, "template", "field", str, "machine learning"),
            python=Path(self.get(env, "environment", "python", str, required=True)),
            setup=self.get(env, "environment", "setup", str, ""),
            editable=editable,
            final_info_schema=self.get(run, "run", "final_info_schema", str, required=True),
            result_files=self.strings(run, "run", "result_files", editable),
            untracked=self.strings(run, "run", "untracked"),
            settings_prefix=self.get(run, "run", "settings_prefix", str, ""),
            settings_without_effect=frozenset(self.strings(run, "run", "settings_without_effect")),
            preset_variable=self.get(run, "run", "preset_variable", str, ""),
            cache=self.get(run, "run", "cache", str, ""),
            cache_variable=self.get(run, "run", "cache_variable", str, ""),
            cache_min_free_gb=float(self.get(run, "run", "cache_min_free_gb", (int, float), 0)),
            check=self.get(run, "run", "check", str, ""),
            timeout_s=float(self.get(run, "run", "timeout_s", (int, float), 7200)),
            baseline=self.requirements(),
            baseline_plan=self.baseline_plan(),
            metrics=self.metrics(),
            plots=tuple(self.plot(i, p) for i, p in enumerate(self.array("plots"))),
            stages=tuple(self.stage(i, s) for i, s in enumerate(self.array("stages"))),
            autointerp=self.autointerp(),
        )

    def array(self, key: str, table: dict | None = None) -> list[dict]:
        value = (self.data if table is None else table).get(key, [])
        if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
            self.fail(f"[[{key}]]", "an array of tables")
        return value

    def requirements(self) -> tuple[Requirement, ...]:
        found = []
        for i, item in enumerate(self.array("require", self.table(self.data, "baseline", required=False))):
            where = f"baseline.require[{i}]"
            metric = self.get(item, where, "metric", str, required=True)
            above = self.get(item, where, "above", (int, float))
            at_least = self.get(item, where, "at_least", (int, float))
            if "." not in metric or (above is None) == (at_least is None):
                self.fail(where, 'a metric "group.name" with exactly one of above or at_least')
            found.append(Requirement(metric, self.get(item, where, "reason", str, required=True), above, at_least))
        return tuple(found)

    def baseline_plan(self) -> BaselinePlan:
        table = self.table(self.data, "baseline", required=False)
        frontier = table.get("frontier", {})
        if not isinstance(frontier, dict):
            self.fail("[baseline.frontier]", "a table")
        plan = BaselinePlan(
            command=self.get(table, "baseline", "command", str, "experiment.py"),
            seed_variable=self.get(table, "baseline", "seed_variable", str, ""),
            seed_setting=self.get(table, "baseline", "seed_setting", str, ""),
            frontier_x=self.get(frontier, "baseline.frontier", "x", str, ""))
        command = Path(plan.command)
        if not plan.command.endswith(".py") or command.is_absolute() or ".." in command.parts:
            self.fail("baseline.command", 'a python script of the template, e.g. "baseline.py"')
        for where, value in (("baseline.seed_setting", plan.seed_setting), ("baseline.frontier.x", plan.frontier_x)):
            if value and "." not in value:
                self.fail(where, 'a metric "group.name"')
        if bool(plan.seed_variable) != bool(plan.seed_setting):
            self.fail("baseline", "given seed_variable and seed_setting together, or neither")
        return plan

    def metrics(self) -> MetricRegistry:
        metrics = []
        for key, entry in self.table(self.data, "metrics", required=False).items():
            where = f'metrics."{key}"'
            if not isinstance(entry, dict) or "." not in key:
                self.fail(where, 'a table named "group.metric"')
            direction = self.get(entry, where, "direction", str, required=True)
            if direction not in DIRECTIONS:
                self.fail(f"{where}.direction", f"one of {', '.join(DIRECTIONS)}")
            target = self.get(entry, where, "target", (int, float))
            if (direction == "target") != (target is not None):
                self.fail(f"{where}.target", 'given with direction "target", and only then')
            group, name = key.split(".", 1)
            if name == GROUP_RULE and (entry.get("key") or entry.get("aliases")):
                self.fail(where, "a group rule without key or aliases (they belong to single metrics)")
            metrics.append(Metric(
                group, name, direction, self.get(entry, where, "description", str, required=True),
                None if target is None else float(target), self.get(entry, where, "display", str, ""),
                self.get(entry, where, "key", bool, False), self.strings(entry, where, "aliases"),
                self.get(entry, where, "fraction", bool, False), self.get(entry, where, "frontier", bool, False),
                self.get(entry, where, "reference", str, "")))
            if metrics[-1].reference and "." not in metrics[-1].reference:
                self.fail(f"{where}.reference", 'the key of another number, "group.name"')
        return MetricRegistry(metrics)

    def plot(self, index: int, item: dict) -> Plot:
        where = f"plots[{index}]"
        caption = self.get(item, where, "caption", str, required=True)
        if re.search(r"(?<!\\)%", caption):
            self.fail(f"{where}.caption", r"LaTeX with every % escaped as \% (an unescaped % starts a comment)")
        return Plot(self.get(item, where, "file", str, required=True), caption)

    def stage(self, index: int, item: dict) -> Stage:
        where = f"stages[{index}]"
        return Stage(*(self.get(item, where, key, str, "", required=key in ("name", "module"))
                       for key in ("name", "module", "needs", "output", "appendix")))

    def autointerp(self) -> Autointerp | None:
        if "autointerp" not in self.data:
            return None
        table = self.table(self.data, "autointerp")
        contexts = self.get(table, "autointerp", "contexts", str, required=True)
        path = Path(contexts)
        if not contexts or path.is_absolute() or ".." in path.parts:
            self.fail("autointerp.contexts", 'a file name inside a run folder, e.g. "autointerp_contexts.json"')
        return Autointerp(contexts)


_KINDS = {str: "a string", bool: "true or false", list: "a list", (int, float): "a number", dict: "a table"}
