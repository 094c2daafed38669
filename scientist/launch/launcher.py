"""launch_scientist.py's work: preflight, the baseline, the ideas' folders, then each idea through the pipeline
(scientist/pipeline/), here or in workers; --resume takes interrupted ideas through the same pipeline."""

import argparse
import json
import logging
import os
import sys
import time
from pathlib import Path

from scientist.experiment.baseline import ensure_baseline
from scientist.experiment.manifest import Manifest
from scientist.launch.cli import LITERATURE_URL_VARIABLE
from scientist.launch.config import LaunchConfig
from scientist.launch.preflight import IdeaRequest, LaunchError, preflight
from scientist.llm.ledger import BUDGET_FLAG, Budget, BudgetExceeded, Ledger
from scientist.store.folder import LAUNCH_FILE, STATE_FILE, FolderError, IdeaFolder

log = logging.getLogger("scientist")


def launch(args: argparse.Namespace) -> int:
    config = LaunchConfig.from_args(args, launch_id=f"{time.strftime('%Y%m%d_%H%M%S')}-{os.getpid()}")
    checked = preflight(config, IdeaRequest(tuple(args.ideas or ()), args.skip_idea_generation))
    manifest, ideas = checked.manifest, checked.ideas
    if config.demo:
        script = use_demo_script(config.demo_script)
        ideas = ideas or [script["idea"]]  # with --ideas, each idea plays the script from its start
    ensure_baseline(manifest, config.run_timeout)

    budget = Budget(config.budget_usd)
    if checked.generate:
        prepare_llm(config)
        try:
            ideas = idea_stage(args, manifest, ideas, coder_model(config), budget)
        except BudgetExceeded as err:
            print(f"launch_scientist.py: {err}; stopped cleanly during idea generation, the ideas so far are in "
                  f"{config.results_dir / config.experiment}", file=sys.stderr)
            return 3
    # Every idea's folder is made before the first one runs, so that a launch killed half-way can be resumed whole
    # with --resume results/<experiment>.
    folders = [IdeaFolder.create(config.results_dir, config.experiment, idea, config.template, config.to_json())
               for idea in ideas]
    if args.parallel > 1 or args.executor == "ray":
        return run_workers(args, config, folders)
    return run_ideas(config, manifest, folders, budget)


def run_workers(args: argparse.Namespace, config: LaunchConfig, folders: list[IdeaFolder]) -> int:
    """Each idea in a worker process of its own (scientist/launch/workers.py), here or on Ray; the report at the end."""
    from scientist.launch.workers import exit_code, run_locally, run_on_ray, worker_for
    from scientist.paper.report import write_report

    workers = [worker_for(folder.path, config.budget_usd) for folder in folders]
    where = f"Ray at {args.ray_address}" if args.executor == "ray" else f"{args.parallel} at once"
    print(f"{len(workers)} idea(s) in workers ({where}); each worker's output is in <idea folder>/logs/worker.log",
          flush=True)
    if args.executor == "ray":
        codes = run_on_ray(workers, args.ray_address)
    else:
        codes = run_locally(workers, args.parallel, args.gpu_ids)
    write_report(config.results_dir / config.experiment)
    failed = [f"{folder.name} (exit {code})" for folder, code in codes.items() if code]
    if failed:
        print("launch_scientist.py: these ideas did not finish (their folders and logs/worker.log say why; --resume "
              "FOLDER goes on): " + "; ".join(failed), file=sys.stderr)
    return exit_code(codes)


def use_demo_script(path: Path, replies_used: int = 0) -> dict:
    """Route 'scripted/demo' to the demo's replies, less those a resumed idea already has in its ledger."""
    from scientist.llm.scripted import SEES_IMAGES_FIELD, load_demo_script, register_scripted

    script = load_demo_script(path)
    sees_images = script.get(SEES_IMAGES_FIELD, False)
    if not isinstance(sees_images, bool):
        raise LaunchError(f'{path}: "{SEES_IMAGES_FIELD}" must be true or false (true: the scripted model is shown '
                          f'the figures and the paper\'s pages, and its replies must answer those calls), not '
                          f'{sees_images!r}')
    register_scripted(script["replies"][replies_used:], sees_images)
    print(f"DEMO: the coder's replies are scripted ({path}); no LLM is called and no money is spent.", flush=True)
    return script


def coder_model(config: LaunchConfig) -> str:
    from scientist.llm.scripted import DEMO_MODEL

    return DEMO_MODEL if config.demo else config.model


def prepare_llm(config: LaunchConfig):
    from scientist.llm.coder import prepare_aider_home

    prepare_aider_home(config.results_dir / ".aider_home")


def resume(path: Path, budget_usd: float | None) -> int:
    """Continue interrupted ideas: each is replayed from its journals (finished runs and LLM replies are reused, not
    done again or paid again) and then goes on where it stopped. The preflight is a launch's."""
    folders = resumable_folders(path)
    if not folders:
        print(f"launch_scientist.py: nothing to resume in {path}: every idea there is done.")
        return 0
    configs = [LaunchConfig.from_json(folder.launch, budget_usd) for folder in folders]
    others = [f.path for f, c in zip(folders[1:], configs[1:]) if not c.same_settings(configs[0])]
    if others:
        raise LaunchError(f"{path}: its ideas come from launches with different settings; resume them one "
                          f"folder at a time (for example --resume {others[0]})")
    config = configs[0]
    manifest = preflight(config, None).manifest
    if config.demo:
        use_demo_script(config.demo_script, len(Ledger(folders[0].ledger).entries))
    budget = Budget(budget_usd)
    # The launch's budget covers all its ideas, also those other workers run: their ledgers are read at each check.
    budget.watch(sibling.ledger for sibling in launch_siblings(folders))
    return run_ideas(config, manifest, folders, budget, resumed=True)


def launch_siblings(folders: list[IdeaFolder]) -> list[IdeaFolder]:
    """The other idea folders of the launches these folders come from."""
    launches = {folder.launch.get("launch_id") for folder in folders} - {None, ""}
    mine = {folder.path.resolve() for folder in folders}
    siblings = []
    for launch_file in folders[0].path.parent.glob(f"*/{LAUNCH_FILE}"):
        try:
            launch_id = json.loads(launch_file.read_text()).get("launch_id")
        except (OSError, ValueError):
            continue
        if launch_id in launches and launch_file.parent.resolve() not in mine:
            siblings.append(IdeaFolder(launch_file.parent))
    return siblings


def resumable_folders(path: Path) -> list[IdeaFolder]:
    """The idea folder `path`, or the idea folders under `path` (results/<experiment>), that are not done."""
    from scientist.pipeline import DONE_COMMIT

    if (path / STATE_FILE).exists():
        folders = [IdeaFolder.open(path)]
    elif path.is_dir():
        folders = []
        for state in sorted(path.glob(f"*/{STATE_FILE}")):
            try:
                folders.append(IdeaFolder.open(state.parent))
            except FolderError as err:
                log.warning("Not resumed: %s", err)
    else:
        raise LaunchError(f"{path}: no such folder; --resume takes an idea folder or results/<experiment>")
    for folder in folders:
        if folder.state.done:
            # A kill between marking the idea done and committing that leaves the commit to make.
            folder.commit(DONE_COMMIT)
    return [folder for folder in folders if not folder.state.done]


def run_ideas(config: LaunchConfig, manifest: Manifest, folders: list[IdeaFolder], budget: Budget,
              resumed: bool = False) -> int:
    """Take each idea folder through the pipeline; one idea's failure is recorded in its folder and the next idea
    goes on."""
    from scientist.paper.report import write_report

    prepare_llm(config)
    failed: list[str] = []
    for folder in folders:
        ledger = Ledger(folder.ledger)
        budget.add(ledger)
        name = folder.idea["Name"]
        try:
            run_idea(config, manifest, folder, ledger, budget, resumed)
        except BudgetExceeded as err:
            folder.log(f"budget stop: {err}")
            folder.commit("Stopped at the budget limit")
            print(f"launch_scientist.py: {err}; stopped cleanly, results so far are in {folder.path}; continue with "
                  f"--resume {folder.path.parent} and a larger {BUDGET_FLAG}", file=sys.stderr)
            return 3
        except Exception as err:  # one idea's failure must not take the ideas after it down too
            log.exception("Idea %s failed", name)
            record_failure(folder, err)
            failed.append(f"{name} ({type(err).__name__}: {err})")
            continue
        finally:
            report = write_report(folder.path.parent)
        log.info("Idea %s finished: %s (spent $%.4f); report: %s", name, folder.path, ledger.total_usd, report)
    if failed:
        print("launch_scientist.py: these ideas failed (their folders say why; --resume FOLDER tries again, reusing "
              "what they finished): " + "; ".join(failed), file=sys.stderr)
        return 1
    return 0


def run_idea(config: LaunchConfig, manifest: Manifest, folder: IdeaFolder, ledger: Ledger, budget: Budget,
             resumed: bool):
    from scientist.experiment.runner import RunAttempts
    from scientist.launch.progress import ProgressView
    from scientist.pipeline import IdeaRun, run_pipeline

    if resumed:
        attempts = RunAttempts(folder.path, manifest)
        tag = folder.prepare_replay(attempts.finished_runs())
        folder.log(f"resumed: the interrupted history is kept under the git tag {tag}; replaying "
                   f"{len(ledger.entries)} recorded LLM replies and {len(attempts.journal.entries)} run attempts")
    idea = folder.idea
    folder.log(f"idea {idea['Name']}: {idea['Title']}")
    view = ProgressView(ledger, config.max_runs, config.max_iters)
    run_pipeline(IdeaRun(folder, manifest, config, ledger, budget, coder_model(config), view))


def record_failure(folder: IdeaFolder, err: Exception):
    """The idea's state says it failed and why; what it had done stays committed."""
    state = folder.state
    state.status, state.error = "failed", f"{type(err).__name__}: {err}"
    folder.save_state(state)
    folder.log(f"idea failed: {type(err).__name__}: {err}")
    folder.commit(f"Idea failed: {type(err).__name__}")


def idea_stage(args: argparse.Namespace, manifest: Manifest, seeds: list[dict], model: str,
               budget: Budget) -> list[dict]:
    """Generate ideas, check each against the literature, and return the ones to run.

    Everything goes into results/<experiment>/<timestamp>_ideas/: ideas.json (each idea with its novelty evidence)
    and the stage's cost ledger. A not-novel idea is not run; one whose novelty is undecided or unchecked runs
    only with --allow-unchecked.
    """
    from scientist.ideas.generation import IDEAS_FILE, generate_ideas, read_archive, write_ideas
    from scientist.ideas.literature import CACHE_DIR, make_client
    from scientist.ideas.novelty import check_novelty

    experiment_results = args.results_dir / args.experiment
    launch_dir = experiment_results / f"{time.strftime('%Y%m%d_%H%M%S')}_ideas"
    ideas_path = launch_dir / IDEAS_FILE
    ledger = Ledger(launch_dir / "cost_ledger.json")
    ideas = generate_ideas(manifest.path, ideas_path, seeds + read_archive(experiment_results), model, ledger, budget,
                           args.num_ideas, args.num_reflections, max_runs=args.max_runs, preset=args.preset)
    if args.skip_novelty_check:
        log.info("Novelty not checked (--skip-novelty-check): %d idea(s) run with novel: null", len(ideas))
        return ideas
    client = make_client(args.engine, args.results_dir / CACHE_DIR,
                         base_url=os.environ.get(LITERATURE_URL_VARIABLE) or None)
    for idea in ideas:
        result = check_novelty(idea, client, model, ledger, budget, field=manifest.field)
        idea["novel"] = result.novel
        idea["provenance"]["novelty"] = {"status": result.status, "engine": result.engine, "queries": result.queries,
                                         "papers": result.papers_seen, "reason": result.reason}
        write_ideas(ideas_path, ideas)
        log.info("Novelty of %s: %s (%s)", idea["Name"], result.status, result.reason)
    for idea in ideas:
        if idea["novel"] is False:
            log.info("Not run: %s is not novel; its evidence is in %s", idea["Name"], ideas_path)
    open_ideas = [i for i in ideas if i["novel"] is None]
    if open_ideas and not args.allow_unchecked:
        evidence = [(i["Name"], i["provenance"]["novelty"]) for i in open_ideas]
        lines = "\n".join(f"  {name}: {novelty['status']} ({novelty['reason']})" for name, novelty in evidence)
        raise LaunchError(f"{ideas_path}: the novelty of {len(open_ideas)} idea(s) is not established:\n{lines}\n"
                          f"Nothing was run. Run them anyway with --ideas {ideas_path} (or add --allow-unchecked), "
                          f"or check again later.")
    return [i for i in ideas if i["novel"] is not False]
