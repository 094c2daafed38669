"""Everything that can fail before any LLM spend, checked together so that every problem is reported at once.

One preflight serves a launch and a resume: the template (its manifest, environment and own settings check), the
API key, the LaTeX tools, the results folder and the cache disk. A launch also checks its idea files.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from scientist.experiment.manifest import MANIFEST_FILE, Manifest, ManifestError, load_manifest
from scientist.experiment.runner import EXPERIMENT_FILE, PLOT_FILE, scrubbed_environment, writable_caches
from scientist.experiment.sandbox import OFFLINE
from scientist.ideas.generation import GenerationError, template_prompt
from scientist.ideas.idea_files import IdeaError, load_idea_files
from scientist.launch.config import LaunchConfig
from scientist.llm.client import MissingApiKey, require_api_key
from scientist.search.policy import SearchParams

# Beyond the LaTeX tools that scientist.paper.latex checks: the reviewers read the PDF as text.
WRITEUP_TOOLS = ("pdftotext", "pdftoppm")
SEED_IDEAS = "seed_ideas.json"
LATEX_TEMPLATE = "latex"
CHECK_TIMEOUT_S = 3600


class LaunchError(Exception):
    """A problem found before any work: the message says what to fix."""


@dataclass(frozen=True)
class IdeaRequest:
    """Which ideas a launch runs: these files, the template's seeds, or new ones generated from the seeds."""

    files: tuple[Path, ...] = ()
    skip_generation: bool = False


@dataclass
class Preflight:
    """What a passed preflight found: the template's manifest, the ideas to run (or the seeds to generate from),
    and whether to generate."""

    manifest: Manifest
    ideas: list[dict] = field(default_factory=list)
    generate: bool = False


def preflight(config: LaunchConfig, request: IdeaRequest | None) -> Preflight:
    """Check everything; raise LaunchError listing every problem found. `request` is None on resume (the ideas are
    in their folders already)."""
    problems: list[str] = []

    def check(step: Callable, *step_args):
        try:
            return step(*step_args)
        except (LaunchError, ManifestError, MissingApiKey, IdeaError, GenerationError) as err:
            problems.append(str(err))
            return None

    manifest = check(template_manifest, config)
    if not config.demo:
        check(require_api_key, config.model)
    if config.vision_model:
        check(require_api_key, config.vision_model)
    ideas, generate = [], False
    if manifest and request is not None and (not config.demo or request.files):
        if request.files or request.skip_generation or config.demo:
            ideas = check(load_idea_files, list(request.files) or [manifest.path / SEED_IDEAS]) or []
        else:
            check(template_prompt, manifest.path)
            # The seeds are not run: generation is told about them, so that it does not repeat them.
            ideas, generate = check(load_idea_files, [manifest.path / SEED_IDEAS]) or [], True
    if manifest:
        check(apply_preset, manifest, config.preset)
        if check(template_python, manifest):
            check(check_template_settings, manifest)
        if config.writeup:
            check(check_writeup_tools, manifest)
    check(check_results_dir, config.results_dir)
    check(check_search_settings, config)
    if manifest:
        check(check_cache_disk, manifest)
    if problems:
        listing = "\n".join(f"- {problem}" for problem in problems)
        raise LaunchError(f"{len(problems)} problem(s) found before any work; nothing was run or spent:\n{listing}")
    return Preflight(manifest, ideas, generate)


def template_manifest(config: LaunchConfig) -> Manifest:
    """The template's manifest, and the files every template has (AI-Scientist's contract)."""
    template = config.template
    if not template.is_dir():
        known = sorted(path.parent.name for path in config.templates_dir.glob(f"*/{MANIFEST_FILE}"))
        raise LaunchError(f"{template}: no such template; --experiment names a folder under {config.templates_dir} "
                          f"({', '.join(known) or 'none there'})")
    manifest = load_manifest(template)
    if manifest.name != template.name:
        raise LaunchError(f"{manifest.file}: template.name is {manifest.name!r}, but the folder is "
                          f"{template.name!r}; make them equal")
    needed = (EXPERIMENT_FILE, PLOT_FILE, manifest.final_info_schema, *manifest.editable)
    missing = [name for name in dict.fromkeys(needed) if not (template / name).exists()]
    if missing:
        raise LaunchError(f"{template}: the template lacks {', '.join(missing)}, which its {MANIFEST_FILE} and "
                          f"the file contract need (see templates/README.md)")
    return manifest


def apply_preset(manifest: Manifest, preset: str | None):
    """--preset sets the template's preset variable, for the runs and the settings check alike."""
    if not preset:
        return
    if not manifest.preset_variable:
        raise LaunchError(f"--preset {preset}: the template {manifest.name} has no presets (its {MANIFEST_FILE} "
                          "names no run.preset_variable); leave out --preset")
    os.environ[manifest.preset_variable] = preset


def template_python(manifest: Manifest) -> Path:
    python = manifest.python_path
    if not python.exists():
        raise LaunchError(f"{python}: the template's experiment environment is missing; run `make setup`.")
    return python


def check_results_dir(results_dir: Path):
    """The results folder, or the folder it will be made in, can be written (nothing is created yet)."""
    existing = next(path for path in [results_dir, *results_dir.resolve().parents] if path.exists())
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        raise LaunchError(f"{results_dir}: the results folder cannot be written ({existing} is not a writable "
                          "folder); give --results-dir a folder you can write")


def check_cache_disk(manifest: Manifest):
    for cache in writable_caches(manifest, scrubbed_environment(manifest)):
        free_gb = shutil.disk_usage(cache).free / 2**30
        if free_gb < manifest.cache_min_free_gb:
            where = f"point {manifest.cache_variable} at a larger disk" if manifest.cache_variable else "free some"
            raise LaunchError(f"{cache}: {free_gb:.1f} GB free, and the template's cache needs at least "
                              f"{manifest.cache_min_free_gb:g} GB; free some space or {where}")


def check_writeup_tools(manifest: Manifest):
    from scientist.paper.latex import tools_missing

    missing = tools_missing() + [tool for tool in WRITEUP_TOOLS if not shutil.which(tool)]
    if missing:
        raise LaunchError(f"writing the paper needs {', '.join(missing)}, which are not installed; run `make setup` "
                          "(it installs the Debian packages), or add --no-writeup.")
    if not (manifest.path / LATEX_TEMPLATE / "paper.tex").exists():
        raise LaunchError(f"{manifest.path / LATEX_TEMPLATE}: the template has no paper.tex; writing the paper needs "
                          "one (or add --no-writeup).")


def check_template_settings(manifest: Manifest):
    """The template's own check (its manifest's run.check) reads the settings exactly as a run will: a config value
    of the wrong type, a preset sized for a GPU on a machine without one. It may also fetch what a run needs from
    the network (a hub model), since runs have none: so it runs outside the sandbox, online, with HF_TOKEN (gated
    models) and no other secret."""
    if not manifest.check:
        return
    env = {name: value for name, value in scrubbed_environment(manifest).items()
           if name not in OFFLINE or name in os.environ}  # online, unless the user made the hub libraries offline
    if os.environ.get("HF_TOKEN"):
        env["HF_TOKEN"] = os.environ["HF_TOKEN"]
    try:
        result = subprocess.run([str(manifest.python_path), "-m", manifest.check, "--prefetch"], cwd=manifest.path,
                                capture_output=True, text=True, timeout=CHECK_TIMEOUT_S, env=env)
        report = json.loads(result.stdout.strip().splitlines()[-1])
    except (subprocess.TimeoutExpired, ValueError, IndexError) as err:
        raise LaunchError(f"{manifest.file}: the template's check ({manifest.check}) did not report "
                          f"({type(err).__name__}); run `python -m {manifest.check}` in {manifest.path} to see "
                          "why") from None
    if report["problems"]:
        raise LaunchError("; ".join(report["problems"]))


def check_search_settings(config: LaunchConfig) -> SearchParams:
    """The tree search's settings, when its flags fit together (--max-nodes at least --search-drafts, a probability
    within 0..1)."""
    try:
        return config.search_params
    except ValueError as err:
        raise LaunchError(f"the tree search's settings do not fit together: {err}; change --max-nodes, "
                          "--search-drafts, --debug-probability or --max-debug-depth") from None
