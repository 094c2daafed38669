"""launch_scientist.py's command line: its flags, and the dispatch to what they ask for."""

import argparse
import logging
import sys
from pathlib import Path

from scientist import REPO
from scientist.experiment.baseline import BaselineError
from scientist.experiment.manifest import ManifestError
from scientist.ideas.generation import GenerationError
from scientist.ideas.idea_files import IdeaError, load_idea_files, skeleton
from scientist.ideas.literature import ENGINES, URL_VARIABLE
from scientist.launch.preflight import LaunchError
from scientist.llm.client import MissingApiKey, configure_offline_litellm
from scientist.llm.ledger import LedgerError
from scientist.search.policy import SearchParams
from scientist.store.folder import FolderError
from scientist.store.journal import JournalError

# The template a launch runs when --experiment is not given.
DEFAULT_EXPERIMENT = "sae_variants"
LITERATURE_URL_VARIABLE = URL_VARIABLE


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="launch_scientist.py",
        description="Take research ideas through LLM-coded experiments: runs, notes, plots, a paper and its review. "
                    "The default template trains sparse autoencoders on real language-model activations.",
    )
    parser.add_argument("--experiment", default=DEFAULT_EXPERIMENT,
                        help=f"Template folder under --templates-dir (default {DEFAULT_EXPERIMENT}).")
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
                        help="Literature search for the novelty check and the write-up's citation rounds, which "
                             "ask the other engine when this one fails (API keys, optional: S2_API_KEY; "
                             f"OPENALEX_API_KEY and OPENALEX_MAILTO; {LITERATURE_URL_VARIABLE} points both engines at "
                             "a mirror).")
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
    parser.add_argument("--preset", default=None,
                        help="The template's preset for the runs (sets the variable its manifest names).")
    parser.add_argument("--writeup", choices=["latex"], default="latex",
                        help="Write each idea up as a LaTeX paper (paper.pdf in its folder), review it, and list it "
                             "in results/<experiment>/index.html (the default). Needs pdflatex, bibtex, chktex and "
                             "pdftotext (`make setup` installs them).")
    parser.add_argument("--no-writeup", dest="writeup", action="store_const", const=None,
                        help="End each idea after its plots: no paper, no review.")
    parser.add_argument("--num-reviews", type=int, default=3,
                        help="Independent reviews of each paper before the meta-review (default 3).")
    parser.add_argument("--vision-model", default=None, metavar="MODEL",
                        help="litellm model string of a model that sees images: it checks each figure against its "
                             "description after the plots (its feedback goes to the plot coder once) and reviews the "
                             "paper with its pages as images. Default: --model itself when litellm's model "
                             "information says it takes images; otherwise both steps are skipped.")
    parser.add_argument("--num-cite-rounds", type=non_negative_int, default=3, metavar="N",
                        help="Rounds in which the write-up's LLM searches the literature (--engine) for the papers "
                             "the paper cites, one query a round, before the sections are written (default 3; 0: "
                             "none, the paper cites only what the novelty check saw).")
    parser.add_argument("--autointerp-features", type=non_negative_int, default=8, metavar="N",
                        help="Features of each run the LLM explains and is scored on, when the template's runs leave "
                             "contexts for it (default 8; 0 turns autointerp off).")
    parser.add_argument("--seeds", type=positive_int, default=1, metavar="N",
                        help="Seeds of each idea's main result: after its last run, the run the coder names as its "
                             "main result (else the last one) is repeated on N-1 more seeds, and the notes and the "
                             "paper use the means (default 1; the baseline's seeds are the template's setting).")
    search = parser.add_argument_group("tree search (--search tree)")
    search.add_argument("--search", choices=["linear", "tree"], default="linear",
                        help="linear (default): each run edits the last one's code, up to --max-runs runs. tree: "
                             "each idea grows a tree of experiment versions (drafts, fixes of failed nodes, "
                             "improvements of the best node), up to --max-nodes nodes; the best node by the idea's "
                             "primary metric, decided by code with the noise floor, is re-run on --seeds seeds.")
    search.add_argument("--max-nodes", type=positive_int, default=SearchParams.max_nodes, metavar="N",
                        help=f"Nodes in each idea's tree, failed ones included (default {SearchParams.max_nodes}).")
    search.add_argument("--parallel-nodes", type=positive_int, default=SearchParams.parallel_nodes, metavar="N",
                        help="Nodes expanded and run at once, each on an equal share of the CPU threads or on one "
                             f"of the GPUs the idea has (default {SearchParams.parallel_nodes}).")
    search.add_argument("--search-drafts", type=positive_int, default=SearchParams.drafts, metavar="N",
                        help=f"Drafts from the baseline code before any node is improved (default "
                             f"{SearchParams.drafts}).")
    search.add_argument("--debug-probability", type=float, default=SearchParams.debug_probability, metavar="P",
                        help="Chance that a step fixes a failed node rather than improving the best one (default "
                             f"{SearchParams.debug_probability}).")
    search.add_argument("--max-debug-depth", type=non_negative_int, default=SearchParams.max_debug_depth,
                        metavar="N", help=f"Fixes in a row after which a failed node is given up (default "
                                          f"{SearchParams.max_debug_depth}).")
    return parser


def positive_int(text: str) -> int:
    value = non_negative_int(text)
    if value == 0:
        raise argparse.ArgumentTypeError("0 is not allowed here; give 1 or more")
    return value


def non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{value} is below 0; give 0 or more")
    return value


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


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", datefmt="%H:%M:%S")
    args = build_parser().parse_args(argv)
    configure_offline_litellm()
    try:
        return dispatch(args)
    except (LaunchError, BaselineError, GenerationError, IdeaError, MissingApiKey, FolderError, JournalError,
            LedgerError, ManifestError) as err:
        print(f"launch_scientist.py: {err}", file=sys.stderr)
        return 2


def dispatch(args: argparse.Namespace) -> int:
    from scientist.launch.launcher import launch, resume

    check_worker_flags(args)
    if args.new_idea:
        return write_new_idea(args.new_idea)
    if args.check_ideas:
        return check_ideas(args.check_ideas)
    if args.resume:
        return resume(args.resume, args.budget_usd)
    return launch(args)
