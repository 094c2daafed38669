"""launch_scientist.py's work: check everything that can fail before any LLM spend, then take each idea through
the experiment loop and the plot stage."""

import argparse
import json
import logging
import os
import sys
from pathlib import Path

from .baseline import BaselineError, ensure_baseline
from .llm import Budget, BudgetExceeded, Ledger, MissingApiKey, configure_offline_litellm, require_api_key

log = logging.getLogger("scientist")
REPO = Path(__file__).resolve().parent.parent
DEMO_FLAG = "demo"


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
    parser.add_argument("--num-ideas", type=int, default=1, help="How many ideas to take through the loop.")
    parser.add_argument("--skip-idea-generation", action="store_true",
                        help="Use the template's seed_ideas.json (or --ideas) instead of generating ideas.")
    parser.add_argument("--skip-novelty-check", action="store_true",
                        help="Do not check generated ideas against the literature.")
    parser.add_argument("--ideas", nargs="+", type=Path, metavar="FILE",
                        help="Idea JSON files to run (each a list of ideas or one idea).")
    parser.add_argument("--max-runs", type=int, default=5, help="Successful runs per idea (default 5).")
    parser.add_argument("--max-iters", type=int, default=4,
                        help="Failed tries in a row (edit, lint or run) that end an idea (default 4).")
    parser.add_argument("--run-timeout", type=float, default=7200.0, help="Seconds one run may take (default 7200).")
    parser.add_argument("--budget-usd", type=float, default=None,
                        help="Stop cleanly once the LLM spend of this launch reaches this many dollars.")
    parser.add_argument("--results-dir", type=Path, default=REPO / "results", help="Where idea folders go.")
    parser.add_argument("--templates-dir", type=Path, default=REPO / "templates", help="Where templates live.")
    parser.add_argument("--resume", type=Path, metavar="DIR", help="Resume an interrupted idea folder.")
    parser.add_argument("--parallel", type=int, default=1, help="Ideas run at once.")
    parser.add_argument("--gpus", default=None, help="Comma-separated GPU ids for parallel ideas.")
    parser.add_argument("--preset", default=None, help="Model preset for the runs (sets SAE_PRESET).")
    parser.add_argument("--writeup", action="store_true", help="Write and review a paper for each idea.")
    return parser


def refuse_unbuilt_flags(args: argparse.Namespace):
    """Flags whose stages are not built yet fail clearly rather than being ignored."""
    unbuilt = [
        (args.writeup, "--writeup", "the write-up and review stage"),
        (args.resume is not None, "--resume", "resuming an interrupted idea"),
        (args.parallel != 1 or args.gpus, "--parallel/--gpus", "running ideas in parallel"),
        (not args.skip_idea_generation and not args.ideas and args.model != DEMO_FLAG,
         "idea generation (run with --skip-idea-generation or --ideas FILE)", "generating ideas"),
    ]
    for used, flag, stage in unbuilt:
        if used:
            raise LaunchError(f"{flag}: {stage} is not available yet in this version; leave the flag out.")


def load_ideas(args: argparse.Namespace, template: Path) -> list[dict]:
    files = args.ideas or [template / "seed_ideas.json"]
    ideas = []
    for path in files:
        try:
            data = json.loads(Path(path).read_text())
        except FileNotFoundError:
            raise LaunchError(f"{path}: no such idea file") from None
        except json.JSONDecodeError as err:
            raise LaunchError(f"{path}: not valid JSON ({err})") from None
        for idea in data if isinstance(data, list) else [data]:
            missing = [k for k in ("Name", "Title", "Experiment") if not isinstance(idea, dict) or k not in idea]
            if missing:
                raise LaunchError(f"{path}: an idea lacks {', '.join(missing)}; each idea needs Name, Title and "
                                  "Experiment")
            ideas.append(idea)
    return ideas[: args.num_ideas]


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
    except (LaunchError, BaselineError, MissingApiKey) as err:
        print(f"launch_scientist.py: {err}", file=sys.stderr)
        return 2


def launch(args: argparse.Namespace) -> int:
    from .coder import Coder, prepare_aider_home
    from .folder import IdeaFolder
    from .loop import ExperimentLoop, LoopSettings, plot_stage
    from .progress import ProgressView
    from .scripted import DEMO_MODEL, load_demo_script, register_scripted

    refuse_unbuilt_flags(args)
    template = args.templates_dir / args.experiment
    if not (template / "experiment.py").exists():
        raise LaunchError(f"{template}: no experiment.py; --experiment names a folder under {args.templates_dir}")
    model = args.model
    if model == DEMO_FLAG:
        script = load_demo_script()
        ideas = [script["idea"]]
        register_scripted(script["replies"])
        model = DEMO_MODEL
        print("DEMO: the coder's replies are scripted (demo/script.json); no LLM is called and no money is spent.",
              flush=True)
    else:
        require_api_key(model)
        ideas = load_ideas(args, template)
    if args.preset:
        os.environ["SAE_PRESET"] = args.preset
    python = template_python(template)
    ensure_baseline(template, python, args.run_timeout)
    prepare_aider_home(args.results_dir / ".aider_home")

    budget = Budget(args.budget_usd)
    settings = LoopSettings(max_runs=args.max_runs, max_iters=args.max_iters, run_timeout_s=args.run_timeout)
    for idea in ideas:
        folder = IdeaFolder.create(args.results_dir, args.experiment, idea["Name"], template)
        ledger = Ledger(folder.path / "cost_ledger.json")
        budget.add(ledger)
        folder.log(f"idea {idea['Name']}: {idea['Title']}")
        try:
            coder = Coder(folder.path, ["experiment.py"], model, ledger, budget)
            view = ProgressView(ledger, settings.max_runs, settings.max_iters)
            loop = ExperimentLoop(folder, idea, coder, python, settings, view)
            if loop.run() > 0:
                plot_stage(folder, loop, Coder(folder.path, ["plot.py"], model, ledger, budget),
                           Coder(folder.path, ["notes.txt"], model, ledger, budget))
            loop.update(stage="done")
        except BudgetExceeded as err:
            folder.log(f"budget stop: {err}")
            folder.commit("Stopped at the budget limit")
            print(f"launch_scientist.py: {err}; stopped cleanly, results so far are in {folder.path}",
                  file=sys.stderr)
            return 3
        log.info("Idea %s finished: %s (spent $%.4f)", idea["Name"], folder.path, ledger.total_usd)
    return 0
