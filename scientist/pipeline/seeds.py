"""The seeds stage: after an idea's last run, its main result is repeated on --seeds seeds, so that what the notes
and the paper say about it stands on a mean, as the baseline's does.

The main run is the one the coder named (MAIN_RUN: in its last reply), else the last successful one. Each extra
seed is `python experiment.py --out_dir=run_<k>/seeds/seed_<s>` with the run's own code, in the sandbox, with the
template's seed variable set (its manifest's [baseline] seed_variable); a seed whose final_info.json exists is
finished and never run again, so a resumed idea repeats no seed. The summary (experiment/seeds.py) goes to
run_<k>/seeds.json, which the paper, the claim checker and the report read (store.folder.read_results), and a
results block comparing the means with the baseline's goes to notes.txt.
"""

from __future__ import annotations

import os
import shutil

from scientist.experiment.metrics import results_block
from scientist.experiment.noise import read_frontier
from scientist.experiment.runner import run_experiment
from scientist.experiment.seeds import SeedsError, seed_folder, summarise_seeds
from scientist.pipeline.base import IdeaRun
from scientist.pipeline.tree_search import record_seeds
from scientist.store.folder import (
    FINAL_INFO_FILE,
    SEED_SUMMARY_FILE,
    read_final_info,
    read_result_file,
    run_dir,
)


class SeedsStage:
    """Repeat the idea's main run on more seeds (--seeds N > 1, and a template whose runs take a seed)."""

    def applies(self, idea: IdeaRun) -> bool:
        return idea.config.seeds > 1 and bool(idea.state.runs)

    def run(self, idea: IdeaRun) -> None:
        plan = idea.manifest.baseline_plan
        if not plan.seed_variable:
            idea.folder.log(f"seeds: the template {idea.manifest.name} names no seed variable ([baseline] "
                            "seed_variable in its manifest); the main run stays on one seed")
            return
        number = main_run(idea)
        idea.update(stage="seeds", run=number)
        seeds = extra_seeds(idea, number)
        if seeds is None:
            return
        finished = [seed for seed in seeds if run_seed(idea, number, seed)]
        if len(finished) < len(seeds):
            idea.folder.log(f"seeds: run {number} finished on {len(finished) + 1} of {len(seeds) + 1} seeds; "
                            "its summary uses those")
        if not finished:
            return
        summarise(idea, number)


def main_run(idea: IdeaRun) -> int:
    runs = idea.state.runs
    return idea.state.main_run if idea.state.main_run in runs else max(runs)


def recorded_seed(info: dict, seed_setting: str) -> int | None:
    group, name = seed_setting.split(".", 1)
    seed = ((info.get(group) or {}).get("means") or {}).get(name)
    return None if isinstance(seed, bool) or not isinstance(seed, int) else seed


def extra_seeds(idea: IdeaRun, number: int) -> list[int] | None:
    """The seeds after the run's own, or None (logged) when the run records no seed."""
    setting = idea.manifest.baseline_plan.seed_setting
    first = recorded_seed(read_final_info(idea.folder.path, number), setting)
    if first is None:
        idea.folder.log(f"seeds: run {number} records no seed at {setting}; it stays on one seed")
        return None
    return [first + i for i in range(1, idea.config.seeds)]


def run_seed(idea: IdeaRun, number: int, seed: int) -> bool:
    """Run the main run's code on one more seed, unless that seed finished before; whether it has a result."""
    folder, plan = idea.folder, idea.manifest.baseline_plan
    out_dir = f"{run_dir(folder.path, number).name}/{seed_folder(seed)}"
    if (folder.path / out_dir / FINAL_INFO_FILE).exists():
        folder.log(f"seeds: run {number} on seed {seed} finished before; not run again")
        return True
    code = idea.state.runs[number].commit
    editable = list(idea.manifest.editable)
    folder.repo.git.checkout(code, "--", *editable)
    try:
        result = run_experiment(idea.manifest, idea.python, folder.path, number, idea.config.run_timeout,
                                idea.heartbeat, environ={**os.environ, plan.seed_variable: str(seed)},
                                out_dir=out_dir)
    finally:
        folder.repo.git.checkout("HEAD", "--", *editable)
    if not result.ok:
        folder.log(f"seeds: run {number} on seed {seed} failed (exit {result.returncode}): "
                   f"{result.stderr_tail[-300:]}")
        return False
    ran_on = recorded_seed(read_result_file(folder.path / out_dir / FINAL_INFO_FILE), plan.seed_setting)
    if ran_on != seed:
        shutil.rmtree(folder.path / out_dir)
        folder.log(f"seeds: run {number}'s code fixes its seed ({plan.seed_setting} = {ran_on} although "
                   f"{plan.seed_variable} = {seed}); it cannot be repeated on other seeds")
        return False
    folder.log(f"seeds: run {number} on seed {seed} finished in {result.seconds:.0f} s")
    return True


def summarise(idea: IdeaRun, number: int):
    """run_<k>/seeds.json from the run's seeds, and its results block (means against the baseline's) in notes.txt."""
    folder, manifest = idea.folder, idea.manifest
    run = run_dir(folder.path, number)
    try:
        seeds = summarise_seeds(run, manifest.baseline_plan.seed_setting, folder.path / manifest.final_info_schema,
                                into=run / SEED_SUMMARY_FILE)
    except SeedsError as err:
        folder.log(f"seeds: {err}")
        return
    description = idea.state.runs[number].description or "no description given"
    # The summary as written, without the groups later stages add (read_results would join a resumed idea's
    # autointerp.json, which the first pass through this stage did not have): the block must read as it did.
    summary = read_result_file(run / SEED_SUMMARY_FILE)
    folder.append_notes(results_block(number, f"{description} (mean of {len(seeds)} seeds: "
                                              f"{', '.join(map(str, seeds))})",
                                      read_final_info(folder.path, 0), summary, manifest.metrics,
                                      frontier=read_frontier(folder.path, manifest.baseline_plan.frontier_x)))
    record_seeds(folder.path, number, summary, len(seeds))
    folder.commit(f"Run {number} on {len(seeds)} seeds")
    folder.log(f"seeds: run {number} summarised over seeds {', '.join(map(str, seeds))}")
