"""launch_scientist.py's work: check everything that can fail before any LLM spend, then take each idea through
the experiment loop and the plot stage."""

import argparse
import json
import logging
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from .baseline import BaselineError, ensure_baseline
from .folder import FolderError
from .generation import GenerationError
from .ideas import IdeaError, load_idea_files, skeleton
from .journal import JournalError
from .literature import ENGINES
from .llm import (BUDGET_FLAG, Budget, BudgetExceeded, Ledger, LedgerError, MissingApiKey,
                  configure_offline_litellm, require_api_key)

log = logging.getLogger("scientist")
REPO = Path(__file__).resolve().parent.parent
DEMO_FLAG = "demo"
LEDGER_FILE = "cost_ledger.json"
DONE_COMMIT = "Idea done"
SEED_IDEAS = "seed_ideas.json"
LITERATURE_URL_VARIABLE = "LITERATURE_API_URL"
# The offline preset's cache holds ~1 GB of activations and a 1 GB model copy.
MIN_CACHE_FREE_GB = 3
# Beyond the LaTeX tools that scientist.latex checks: the reviewers read the PDF as text.
WRITEUP_TOOLS = ("pdftotext",)
# What the loop runs and reads in every template: the experiment, its plots, and the schema its results follow.
TEMPLATE_FILES = ("experiment.py", "plot.py", "final_info.schema.json")
# A template may check its own settings before any spend; see check_template_settings.
TEMPLATE_CHECK = "sae_harness/check.py"


class LaunchError(Exception):
    """A problem found before any work: the message says what to fix."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="launch_scientist.py",
        description="Take SAE research ideas through LLM-coded experiments on real language-model activations.",
    )
    parser.add_argument("--experiment", default="sae_variants", help="Template folder under --templates-dir.")
    parser.add_argument("--model", default="anthropic/claude-sonnet-4-5",
                        help="litellm model string for the coder (anthropic/..., openai/..., deepseek/..., "
                             "ollama/...), or 'demo' for the offline scripted demo.")
    parser.add_argument("--num-ideas", type=int, default=1,
                        help="How many new ideas to generate (default 1); each novel one goes through the loop.")
    parser.add_argument("--num-reflections", type=int, default=3,
                        help="Rounds of self-critique per generated idea, ending early when the model is done "
                             "(default 3).")
    parser.add_argument("--skip-idea-generation", action="store_true",
                        help="Run the template's seed_ideas.json as written instead of generating ideas.")
    parser.add_argument("--skip-novelty-check", action="store_true",
                        help="Do not check generated ideas against the literature (they run with novel: null).")
    parser.add_argument("--engine", choices=sorted(ENGINES), default="semanticscholar",
                        help="Literature search for the novelty check (API keys, optional: S2_API_KEY; "
                             f"OPENALEX_API_KEY and OPENALEX_MAILTO; {LITERATURE_URL_VARIABLE} points it at a "
                             "mirror).")
    parser.add_argument("--allow-unchecked", action="store_true",
                        help="Run generated ideas whose novelty could not be decided or checked (the literature "
                             "service was unreachable); without it the launch stops.")
    parser.add_argument("--ideas", nargs="+", type=Path, metavar="FILE",
                        help="Run exactly the ideas in these files (each one idea or a list; see ideas/README.md).")
    parser.add_argument("--new-idea", type=Path, metavar="FILE",
                        help="Write a commented skeleton idea file to fill in, and stop.")
    parser.add_argument("--check-ideas", nargs="+", type=Path, metavar="FILE",
                        help="Check idea files against ideas/schema.json, and stop.")
    parser.add_argument("--max-runs", type=int, default=5, help="Successful runs per idea (default 5).")
    parser.add_argument("--max-iters", type=int, default=4,
                        help="Failed tries in a row (edit, lint or run) that end an idea (default 4).")
    parser.add_argument("--run-timeout", type=float, default=7200.0, help="Seconds one run may take (default 7200).")
    parser.add_argument("--budget-usd", type=float, default=None,
                        help="Stop cleanly once the LLM spend of this launch reaches this many dollars.")
    parser.add_argument("--results-dir", type=Path, default=REPO / "results", help="Where idea folders go.")
    parser.add_argument("--templates-dir", type=Path, default=REPO / "templates", help="Where templates live.")
    parser.add_argument("--resume", type=Path, metavar="DIR",
                        help="Continue interrupted or failed ideas: an idea folder, or results/<experiment> for every "
                             "idea there that is not done. Finished runs and paid LLM replies are reused, not redone; "
                             "the settings are the launch's own (launch.json), except --budget-usd.")
    parser.add_argument("--demo-script", type=Path, default=REPO / "demo" / "script.json",
                        help="The scripted replies --model demo plays (default demo/script.json).")
    parser.add_argument("--parallel", type=int, default=1,
                        help="Ideas run at once, each in a worker process of its own (default 1). Without --gpus each "
                             "worker gets an equal share of the CPU cores.")
    parser.add_argument("--gpus", default=None,
                        help="Comma-separated GPU ids (e.g. 0,1,2,3): one worker per GPU, through "
                             "CUDA_VISIBLE_DEVICES; --parallel defaults to their number.")
    parser.add_argument("--executor", choices=["local", "ray"], default="local",
                        help="Where workers run: this machine (default) or a Ray cluster, each idea a Ray task (one "
                             "GPU each when the cluster has GPUs). See README.md, 'Many ideas at once'.")
    parser.add_argument("--ray-address", default="auto",
                        help="The Ray cluster for --executor ray: 'auto' (the one this machine belongs to) or "
                             "HOST:PORT of its head node.")
    parser.add_argument("--preset", default=None, help="Model preset for the runs (sets SAE_PRESET).")
    parser.add_argument("--writeup", choices=["latex"], default=None,
                        help="Write each idea up as a LaTeX paper (paper.pdf in its folder), review it, and list it "
                             "in results/<experiment>/index.html. Needs pdflatex, bibtex, chktex and pdftotext "
                             "(`make setup` installs them).")
    parser.add_argument("--num-reviews", type=int, default=3,
                        help="Independent reviews of each paper before the meta-review (default 3).")
    return parser


def check_worker_flags(args: argparse.Namespace):
    """--parallel, --gpus, --executor and --ray-address, checked before anything is made."""
    args.gpu_ids = [gpu.strip() for gpu in args.gpus.split(",") if gpu.strip()] if args.gpus else []
    if args.gpus is not None and not args.gpu_ids:
        raise LaunchError(f"--gpus {args.gpus!r}: give GPU ids separated by commas, e.g. --gpus 0,1")
    if args.parallel < 1:
        raise LaunchError(f"--parallel {args.parallel}: give the number of ideas to run at once, 1 or more")
    if args.gpu_ids and args.parallel == 1:
        args.parallel = len(args.gpu_ids)
    if args.parallel > len(args.gpu_ids) > 0:
        raise LaunchError(f"--parallel {args.parallel} with --gpus {args.gpus}: one worker per GPU; give --parallel "
                          f"{len(args.gpu_ids)} or more GPUs")
    if args.executor == "ray":
        if args.gpu_ids:
            raise LaunchError("--gpus: with --executor ray, Ray gives each idea a GPU; leave --gpus out")
        try:
            import ray  # noqa: F401
        except ImportError:
            raise LaunchError("--executor ray needs the ray package (`make setup` installs it)") from None


def write_new_idea(path: Path) -> int:
    if path.exists():
        raise LaunchError(f"{path}: already exists; give --new-idea a new file name")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(skeleton())
    print(f"Wrote {path}. Fill in every FILL IN value, then check it with "
          f"`python launch_scientist.py --check-ideas {path}` and run it with --ideas {path}.")
    return 0


def check_ideas(paths: list[Path]) -> int:
    ideas = load_idea_files(paths)
    print(f"ok: {len(ideas)} idea(s) in {len(paths)} file(s) follow ideas/schema.json")
    return 0


def preflight(args: argparse.Namespace, template: Path) -> tuple[str, list[dict], bool]:
    """Everything that can fail before any spend, checked together so that every problem is reported at once.

    Returns (model, the ideas to run or the seeds to generate from, whether to generate)."""
    from .generation import template_prompt

    problems: list[str] = []

    def check(step, *step_args):
        try:
            return step(*step_args)
        except (LaunchError, MissingApiKey, IdeaError, GenerationError) as err:
            problems.append(str(err))
            return None

    template_found = template.is_dir()
    if not template_found:
        known = sorted(path.parent.name for path in args.templates_dir.glob("*/experiment.py"))
        problems.append(f"{template}: no such template; --experiment names a folder under {args.templates_dir} "
                        f"({', '.join(known) or 'none there'})")
    else:
        missing = [name for name in TEMPLATE_FILES if not (template / name).exists()]
        if missing:
            problems.append(f"{template}: the template lacks {', '.join(missing)}; a template needs "
                            f"{', '.join(TEMPLATE_FILES)} (see templates/sae_variants)")
            template_found = False
    if args.model != DEMO_FLAG:
        check(require_api_key, args.model)
    ideas, generate = [], False
    if template_found and (args.model != DEMO_FLAG or args.ideas):
        if args.ideas or args.skip_idea_generation or args.model == DEMO_FLAG:
            ideas = check(load_idea_files, args.ideas or [template / SEED_IDEAS]) or []
        else:
            check(template_prompt, template)
            # The seeds are not run: generation is told about them, so that it does not repeat them.
            ideas, generate = check(load_idea_files, [template / SEED_IDEAS]) or [], True
    if template_found:
        if check(template_python, template):
            check(check_template_settings, template)
        if args.writeup:
            check(check_writeup_tools, template)
    check(check_results_dir, args.results_dir)
    check(check_cache_disk)
    if problems:
        listing = "\n".join(f"- {problem}" for problem in problems)
        raise LaunchError(f"{len(problems)} problem(s) found before any work; nothing was run or spent:\n{listing}")
    return args.model, ideas, generate


def check_results_dir(results_dir: Path):
    """The results folder, or the folder it will be made in, can be written (nothing is created yet)."""
    existing = next(path for path in [results_dir, *results_dir.resolve().parents] if path.exists())
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        raise LaunchError(f"{results_dir}: the results folder cannot be written ({existing} is not a writable "
                          "folder); give --results-dir a folder you can write")


def check_cache_disk():
    from .runner import scrubbed_environment, writable_caches

    cache = writable_caches(scrubbed_environment())[0]
    free_gb = shutil.disk_usage(cache).free / 2**30
    if free_gb < MIN_CACHE_FREE_GB:
        raise LaunchError(f"{cache}: {free_gb:.1f} GB free, and the activation cache needs at least "
                          f"{MIN_CACHE_FREE_GB} GB; free some space or point SAE_CACHE_DIR at a larger disk")


def check_writeup_tools(template: Path):
    from .latex import tools_missing
    from .writeup import LATEX_TEMPLATE

    missing = tools_missing() + [tool for tool in WRITEUP_TOOLS if not shutil.which(tool)]
    if missing:
        raise LaunchError(f"--writeup latex needs {', '.join(missing)}, which are not installed; run `make setup` "
                          "(it installs the Debian packages), or leave out --writeup.")
    if not (template / LATEX_TEMPLATE / "paper.tex").exists():
        raise LaunchError(f"{template / LATEX_TEMPLATE}: the template has no paper.tex; --writeup needs one.")


def check_template_settings(template: Path):
    """The template's own check (sae_harness/check.py) reads the settings exactly as a run will: a config value of the
    wrong type, a preset sized for a GPU on a machine without one. It also fetches what a hub preset needs (model
    and corpus), since runs have no network: so it runs outside the sandbox, online, with HF_TOKEN (gated models)
    and no other secret."""
    from .runner import scrubbed_environment
    from .sandbox import OFFLINE

    if not (template / TEMPLATE_CHECK).exists():
        return
    module = TEMPLATE_CHECK.removesuffix(".py").replace("/", ".")
    # Online, unless the user made the Hugging Face libraries offline themselves.
    env = {name: value for name, value in scrubbed_environment().items() if name not in OFFLINE or name in os.environ}
    if os.environ.get("HF_TOKEN"):
        env["HF_TOKEN"] = os.environ["HF_TOKEN"]
    try:
        result = subprocess.run([str(template_python(template)), "-m", module, "--prefetch"], cwd=template,
                                capture_output=True, text=True, timeout=3600, env=env)
        report = json.loads(result.stdout.strip().splitlines()[-1])
    except (subprocess.TimeoutExpired, ValueError, IndexError) as err:
        raise LaunchError(f"{template / TEMPLATE_CHECK}: the template's check did not report "
                          f"({type(err).__name__}); run `{module}` in {template} to see why") from None
    if report["problems"]:
        raise LaunchError("; ".join(report["problems"]))


def template_python(template: Path) -> Path:
    python = template / ".venv" / "bin" / "python"
    if not python.exists():
        raise LaunchError(f"{python}: the template's experiment environment is missing; run `make setup`.")
    return python


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", datefmt="%H:%M:%S")
    args = build_parser().parse_args(argv)
    configure_offline_litellm()
    try:
        return launch(args)
    except (LaunchError, BaselineError, GenerationError, IdeaError, MissingApiKey, FolderError, JournalError,
            LedgerError) as err:
        print(f"launch_scientist.py: {err}", file=sys.stderr)
        return 2


def launch(args: argparse.Namespace) -> int:
    from .folder import IdeaFolder

    check_worker_flags(args)
    if args.new_idea:
        return write_new_idea(args.new_idea)
    if args.check_ideas:
        return check_ideas(args.check_ideas)
    if args.resume:
        return resume(args)
    template = args.templates_dir / args.experiment
    if args.preset:
        os.environ["SAE_PRESET"] = args.preset
    model, ideas, generate = preflight(args, template)
    if model == DEMO_FLAG:
        script = use_demo_script(args.demo_script)
        ideas = ideas or [script["idea"]]  # with --ideas, each idea plays the script from its start
    python = template_python(template)
    ensure_baseline(template, python, args.run_timeout)

    budget = Budget(args.budget_usd)
    if generate:
        prepare_llm(args)
        try:
            ideas = idea_stage(args, template, ideas, coder_model(args), budget)
        except BudgetExceeded as err:
            print(f"launch_scientist.py: {err}; stopped cleanly during idea generation, the ideas so far are in "
                  f"{args.results_dir / args.experiment}", file=sys.stderr)
            return 3
    # Every idea's folder is made before the first one runs, so that a launch killed half-way can be resumed whole
    # with --resume results/<experiment>.
    record = {name: str(value) if isinstance(value, Path) else value
              for name, value in vars(args).items() if name in RESUMED_SETTINGS}
    record[LAUNCH_ID] = f"{time.strftime('%Y%m%d_%H%M%S')}-{os.getpid()}"
    folders = [IdeaFolder.create(args.results_dir, args.experiment, idea, template, record) for idea in ideas]
    if args.parallel > 1 or args.executor == "ray":
        return run_workers(args, folders)
    return run_ideas(args, folders, budget)


def run_workers(args: argparse.Namespace, folders: list) -> int:
    """Each idea in a worker process of its own (scientist/workers.py), here or on Ray; the report at the end."""
    from .report import write_report
    from .workers import exit_code, run_locally, run_on_ray, worker_for

    workers = [worker_for(folder.path, args.budget_usd) for folder in folders]
    where = f"Ray at {args.ray_address}" if args.executor == "ray" else f"{args.parallel} at once"
    print(f"{len(workers)} idea(s) in workers ({where}); each worker's output is in <idea folder>/logs/worker.log",
          flush=True)
    if args.executor == "ray":
        codes = run_on_ray(workers, args.ray_address)
    else:
        codes = run_locally(workers, args.parallel, args.gpu_ids)
    write_report(args.results_dir / args.experiment)
    failed = [f"{folder.name} (exit {code})" for folder, code in codes.items() if code]
    if failed:
        print("launch_scientist.py: these ideas did not finish (their folders and logs/worker.log say why; --resume "
              "FOLDER goes on): " + "; ".join(failed), file=sys.stderr)
    return exit_code(codes)


# What an idea folder's launch.json keeps of the launch, so that --resume continues with the same settings; and the
# launch's id, which tells the ideas of one launch (they share its budget).
LAUNCH_ID = "launch_id"
RESUMED_SETTINGS = ("model", "demo_script", "max_runs", "max_iters", "run_timeout", "writeup", "num_reviews", "preset",
                    "experiment", "templates_dir", "results_dir")


def use_demo_script(path: Path, replies_used: int = 0) -> dict:
    """Route 'scripted/demo' to the demo's replies, less those a resumed idea already has in its ledger."""
    from .scripted import load_demo_script, register_scripted

    script = load_demo_script(path)
    register_scripted(script["replies"][replies_used:])
    print(f"DEMO: the coder's replies are scripted ({path}); no LLM is called and no money is spent.", flush=True)
    return script


def coder_model(args: argparse.Namespace) -> str:
    from .scripted import DEMO_MODEL

    return DEMO_MODEL if args.model == DEMO_FLAG else args.model


def prepare_llm(args: argparse.Namespace):
    from .coder import prepare_aider_home

    prepare_aider_home(args.results_dir / ".aider_home")


def resume(args: argparse.Namespace) -> int:
    """Continue interrupted ideas: each is replayed from its journals (finished runs and LLM replies are reused, not
    done again or paid again) and then goes on where it stopped."""
    from .llm import Ledger

    folders = resumable_folders(args.resume)
    if not folders:
        print(f"launch_scientist.py: nothing to resume in {args.resume}: every idea there is done.")
        return 0
    stored = folders[0].launch
    resumed = build_parser().parse_args([])
    for name, value in stored.items():
        setattr(resumed, name, Path(value) if name.endswith("_dir") or name == "demo_script" else value)
    resumed.budget_usd = args.budget_usd

    def settings(folder) -> dict:
        return {name: value for name, value in folder.launch.items() if name != LAUNCH_ID}

    others = [f.path for f in folders[1:] if settings(f) != settings(folders[0])]
    if others:
        raise LaunchError(f"{args.resume}: its ideas come from launches with different settings; resume them one "
                          f"folder at a time (for example --resume {others[0]})")
    template = resumed.templates_dir / resumed.experiment
    if resumed.preset:
        os.environ["SAE_PRESET"] = resumed.preset
    problems = []
    if resumed.model != DEMO_FLAG:
        try:
            require_api_key(resumed.model)
        except MissingApiKey as err:
            problems.append(str(err))
    checks = [template_python, check_template_settings] + ([check_writeup_tools] if resumed.writeup else [])
    for check in checks:
        try:
            check(template)
        except LaunchError as err:
            problems.append(str(err))
    if problems:
        listing = "\n".join(f"- {problem}" for problem in problems)
        raise LaunchError(f"{len(problems)} problem(s) found before resuming; nothing was changed:\n{listing}")
    if resumed.model == DEMO_FLAG:
        use_demo_script(resumed.demo_script, len(Ledger(folders[0].path / LEDGER_FILE).entries))
    budget = Budget(args.budget_usd)
    # The launch's budget covers all its ideas, also those other workers run: their ledgers are read at each check.
    budget.watch(path / LEDGER_FILE for path in launch_siblings(folders))
    return run_ideas(resumed, folders, budget, resumed=True)


def launch_siblings(folders: list) -> list[Path]:
    """The other idea folders of the launches these folders come from."""
    from .folder import LAUNCH_FILE

    launches = {folder.launch.get(LAUNCH_ID) for folder in folders} - {None}
    mine = {folder.path.resolve() for folder in folders}
    siblings = []
    for launch_file in folders[0].path.parent.glob(f"*/{LAUNCH_FILE}"):
        try:
            launch_id = json.loads(launch_file.read_text()).get(LAUNCH_ID)
        except (OSError, ValueError):
            continue
        if launch_id in launches and launch_file.parent.resolve() not in mine:
            siblings.append(launch_file.parent)
    return siblings


def resumable_folders(path: Path) -> list:
    """The idea folder `path`, or the idea folders under `path` (results/<experiment>), that are not done."""
    from .folder import STATE_FILE, FolderError, IdeaFolder

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
        if folder.state.get("stage") == "done":
            # A kill between marking the idea done and committing that leaves the commit to make.
            folder.commit(DONE_COMMIT)
    return [folder for folder in folders if folder.state.get("stage") != "done"]


def run_ideas(args: argparse.Namespace, folders: list, budget: Budget, resumed: bool = False) -> int:
    """Take each idea folder through the loop, the plots and (with --writeup) the paper; one idea's failure is
    recorded in its folder and the next idea goes on."""
    from .report import write_report

    prepare_llm(args)
    failed: list[str] = []
    for folder in folders:
        ledger = Ledger(folder.path / LEDGER_FILE)
        budget.add(ledger)
        name = folder.idea["Name"]
        try:
            run_idea(args, folder, ledger, budget, resumed)
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


def run_idea(args: argparse.Namespace, folder, ledger: Ledger, budget: Budget, resumed: bool):
    from .coder import Coder
    from .loop import ExperimentLoop, LoopSettings, dashboard_stage, plot_stage
    from .progress import ProgressView
    from .runner import RunAttempts

    idea, model = folder.idea, coder_model(args)
    template = args.templates_dir / args.experiment
    if resumed:
        attempts = RunAttempts(folder.path)
        tag = folder.prepare_replay(attempts.finished_runs())
        folder.log(f"resumed: the interrupted history is kept under the git tag {tag}; replaying "
                   f"{len(ledger.entries)} recorded LLM replies and {len(attempts.journal.entries)} run attempts")
    folder.log(f"idea {idea['Name']}: {idea['Title']}")
    settings = LoopSettings(max_runs=args.max_runs, max_iters=args.max_iters, run_timeout_s=args.run_timeout)
    coder = Coder(folder.path, ["experiment.py"], model, ledger, budget)
    view = ProgressView(ledger, settings.max_runs, settings.max_iters)
    loop = ExperimentLoop(folder, idea, coder, template_python(template), settings, view)
    if loop.run() > 0:
        plot_stage(folder, loop, Coder(folder.path, ["plot.py"], model, ledger, budget),
                   Coder(folder.path, ["notes.txt"], model, ledger, budget))
        dashboard_stage(folder, loop, settings.plot_timeout_s)
        if args.writeup:
            paper_stage(folder, loop, idea, template, model, ledger, budget, args.num_reviews)
    loop.update(stage="done")
    folder.commit(DONE_COMMIT)


def record_failure(folder, err: Exception):
    """The idea's state says it failed and why; what it had done stays committed."""
    state_path = folder.path / "state.json"
    state = json.loads(state_path.read_text()) if state_path.exists() else {}
    state.update(status="failed", error=f"{type(err).__name__}: {err}")
    folder.save_state(state)
    folder.log(f"idea failed: {type(err).__name__}: {err}")
    folder.commit(f"Idea failed: {type(err).__name__}")


def paper_stage(folder, loop, idea: dict, template: Path, model: str, ledger: Ledger, budget: Budget,
                num_reviews: int):
    """The paper (paper.pdf), then its reviews (review.json); what the paper still gets wrong is kept in state."""
    from .review import review_paper, write_review
    from .writeup import PaperWriter, WriteupError

    loop.update(stage="writing paper")
    papers = idea.get("provenance", {}).get("novelty", {}).get("papers", [])
    try:
        paper = PaperWriter(folder, idea, template, model, ledger, budget, papers).write()
    except WriteupError as err:
        folder.log(f"writeup failed: {err}")
        loop.update(paper={"error": str(err)})
        return
    loop.update(paper={"pdf": paper.pdf.name, "reverted_sections": paper.reverted_sections,
                       "contradictions": paper.contradictions})
    loop.update(stage="reviewing paper")
    write_review(folder.path, review_paper(paper.pdf, model, ledger, budget, num_reviews=num_reviews))
    folder.commit("Paper reviews")


def idea_stage(args: argparse.Namespace, template: Path, seeds: list[dict], model: str, budget: Budget) -> list[dict]:
    """Generate ideas, check each against the literature, and return the ones to run.

    Everything goes into results/<experiment>/<timestamp>_ideas/: ideas.json (each idea with its novelty evidence)
    and the stage's cost ledger. A not-novel idea is not run; one whose novelty is undecided or unchecked runs
    only with --allow-unchecked.
    """
    from .generation import IDEAS_FILE, generate_ideas, read_archive, write_ideas
    from .literature import make_client
    from .novelty import check_novelty

    experiment_results = args.results_dir / args.experiment
    launch_dir = experiment_results / f"{time.strftime('%Y%m%d_%H%M%S')}_ideas"
    ideas_path = launch_dir / IDEAS_FILE
    ledger = Ledger(launch_dir / "cost_ledger.json")
    ideas = generate_ideas(template, ideas_path, seeds + read_archive(experiment_results), model, ledger, budget,
                           args.num_ideas, args.num_reflections)
    if args.skip_novelty_check:
        log.info("Novelty not checked (--skip-novelty-check): %d idea(s) run with novel: null", len(ideas))
        return ideas
    client = make_client(args.engine, args.results_dir / ".literature_cache",
                         base_url=os.environ.get(LITERATURE_URL_VARIABLE) or None)
    for idea in ideas:
        result = check_novelty(idea, client, model, ledger, budget)
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
