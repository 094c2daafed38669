"""The settings of one launch, typed and frozen: made from the command line, kept in each idea folder's
launch.json, and read back by --resume and by the workers, so that every idea of a launch runs the same way."""

from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass
from pathlib import Path

from scientist.search.policy import SearchParams

DEMO_FLAG = "demo"


@dataclass(frozen=True)
class LaunchConfig:
    experiment: str
    """The template folder under templates_dir."""
    model: str
    """litellm model string of the coder, or 'demo' for the scripted demo."""
    templates_dir: Path
    results_dir: Path
    demo_script: Path
    """The scripted replies --model demo plays."""
    max_runs: int = 5
    max_iters: int = 4
    run_timeout: float = 7200.0
    writeup: bool = True
    """Write, compile and review a paper for each idea."""
    num_reviews: int = 3
    vision_model: str | None = None
    """litellm model string of a model that sees images, for the figure check and the reviewers' page images (None:
    the coder's model when litellm's model information says it takes images; else both are skipped)."""
    engine: str = "semanticscholar"
    """The literature engine of the novelty check and the citation rounds; the other one is asked when it fails."""
    num_cite_rounds: int = 3
    """Rounds of the write-up's literature search for the papers to cite (0: none, the paper cites only what the
    novelty check saw)."""
    preset: str | None = None
    """The template's preset for the runs (its manifest's preset_variable)."""
    autointerp_features: int = 8
    """Features of each run whose explanations the LLM writes and is scored on (0: no autointerp stage)."""
    seeds: int = 1
    """Seeds of each idea's main run: after its last run it is repeated on seeds - 1 more (1: no repeat)."""
    search: str = "linear"
    """How an idea's runs go: "linear" (each run edits the last one's code) or "tree" (a tree search)."""
    search_drafts: int = SearchParams.drafts
    debug_probability: float = SearchParams.debug_probability
    max_debug_depth: int = SearchParams.max_debug_depth
    max_nodes: int = SearchParams.max_nodes
    parallel_nodes: int = SearchParams.parallel_nodes
    launch_id: str = ""
    """Tells the ideas of one launch apart from other launches' (they share its budget)."""
    budget_usd: float | None = dataclasses.field(default=None, compare=False)
    """Given anew on each launch or resume, so it is not recorded."""

    @property
    def template(self) -> Path:
        return self.templates_dir / self.experiment

    @property
    def search_params(self) -> SearchParams:
        return SearchParams(drafts=self.search_drafts, debug_probability=self.debug_probability,
                            max_debug_depth=self.max_debug_depth, max_nodes=self.max_nodes,
                            parallel_nodes=self.parallel_nodes)

    @property
    def demo(self) -> bool:
        return self.model == DEMO_FLAG

    @classmethod
    def from_args(cls, args: argparse.Namespace, launch_id: str = "") -> LaunchConfig:
        return cls(experiment=args.experiment, model=args.model, templates_dir=Path(args.templates_dir),
                   results_dir=Path(args.results_dir), demo_script=Path(args.demo_script), max_runs=args.max_runs,
                   max_iters=args.max_iters, run_timeout=args.run_timeout, writeup=args.writeup,
                   num_reviews=args.num_reviews, vision_model=args.vision_model, engine=args.engine,
                   num_cite_rounds=args.num_cite_rounds, preset=args.preset,
                   autointerp_features=args.autointerp_features, seeds=args.seeds, search=args.search,
                   search_drafts=args.search_drafts, debug_probability=args.debug_probability,
                   max_debug_depth=args.max_debug_depth, max_nodes=args.max_nodes,
                   parallel_nodes=args.parallel_nodes, launch_id=launch_id, budget_usd=args.budget_usd)

    def to_json(self) -> dict:
        """What launch.json keeps: every setting but the budget."""
        return {f.name: str(value) if isinstance(value := getattr(self, f.name), Path) else value
                for f in dataclasses.fields(self) if f.name != "budget_usd"}

    @classmethod
    def from_json(cls, data: dict, budget_usd: float | None = None) -> LaunchConfig:
        """launch.json back into a config; launch.json files of earlier versions wrote writeup as "latex" or null."""
        names = {f.name for f in dataclasses.fields(cls)} - {"budget_usd"}
        values = {name: value for name, value in data.items() if name in names}
        for name in ("templates_dir", "results_dir", "demo_script"):
            values[name] = Path(values[name])
        values["writeup"] = bool(values.get("writeup", True))
        return cls(**values, budget_usd=budget_usd)

    def same_settings(self, other: LaunchConfig) -> bool:
        """Equal in every setting but the launch id (ideas of two launches with equal settings resume together)."""
        return dataclasses.replace(self, launch_id="") == dataclasses.replace(other, launch_id="")
