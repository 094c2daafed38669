"""The baseline run_0 that every idea is compared with.

It is built before any LLM spend, refused when degenerate (the seed runs of earlier loops compared ideas with an
untrained SAE), and rebuilt when the code or the settings that produced it have changed: a baseline trained on
another preset, another token count or older harness code would make every comparison unfair. What produced a
run_0 is recorded beside it in `baseline_fingerprint.json`, written when the build starts and marked complete
when it ends: a build that was killed resumes (the template's baseline command skips what it finished).

The template's manifest says how ([baseline] command): `python baseline.py --out_dir=run_0` for the SAE template
trains the baseline on several seeds (run_0/seeds/) and at other sparsity settings (run_0/frontier/); this module
then summarises the seeds into run_0/final_info.json (experiment/seeds.py), so that every idea is judged against
the baseline's mean and spread.

`python -m scientist.experiment.baseline [TEMPLATE_DIR]` builds or checks it alone (`make baseline`).
"""

import hashlib
import json
import logging
import os
import sys
import time
from collections.abc import Mapping
from pathlib import Path

from scientist.experiment.manifest import Manifest, ManifestError, load_manifest
from scientist.experiment.runner import final_info_problem, run_python
from scientist.experiment.seeds import SeedsError, summarise_seeds
from scientist.store.files import atomic_write_text
from scientist.store.folder import FINAL_INFO_FILE, final_info_path, read_final_info, run_dir

log = logging.getLogger(__name__)
FINGERPRINT_FILE = "baseline_fingerprint.json"
# The baseline command trains several runs (seeds and frontier points); it gets this many runs' time limit.
BASELINE_TIMEOUT_RUNS = 10


class BaselineError(Exception):
    """run_0 cannot be built or cannot serve as a baseline; the message says what to do."""


def fingerprint(manifest: Manifest, environ: Mapping[str, str]) -> dict:
    """Digests of the files that decide a run's numbers (the manifest's run.result_files), and the template's
    settings in force (its variables, less those that change no number)."""
    template, files = manifest.path, {}
    for pattern in manifest.result_files:
        for path in sorted(template.glob(pattern)):
            files[path.relative_to(template).as_posix()] = hashlib.sha256(path.read_bytes()).hexdigest()
    settings = {k: v for k, v in sorted(environ.items())
                if manifest.is_setting(k) and k not in manifest.settings_without_effect}
    return {"files": files, "settings": settings}


def fingerprint_changes(recorded: dict, current: dict) -> list[str]:
    changes = []
    for part in ("files", "settings"):
        old, new = recorded.get(part, {}), current[part]
        changes += [f"{name} changed" for name in sorted(old.keys() & new.keys()) if old[name] != new[name]]
        changes += [f"{name} added" for name in sorted(new.keys() - old.keys())]
        changes += [f"{name} removed" for name in sorted(old.keys() - new.keys())]
    return changes


def ensure_baseline(manifest: Manifest, timeout_s: float, environ: Mapping[str, str] | None = None) -> Path:
    """Return the template's run_0, built now if it is missing, unfinished or stale. A stale run_0 is moved aside,
    not deleted; one moved aside earlier that this code and these settings made (another preset's baseline, when a
    launch switches back) is moved back instead of being built again."""
    environ = os.environ if environ is None else environ
    run_0 = run_dir(manifest.path, 0)
    current = fingerprint(manifest, environ)
    recorded = _recorded_fingerprint(run_0)
    if run_0.exists() and (recorded is None or _identity(recorded) != current):
        reasons = fingerprint_changes(recorded, current) if recorded else ["it has no " + FINGERPRINT_FILE]
        stamp = time.strftime('%Y%m%d_%H%M%S')
        # Launches that switch presets back and forth may move two baselines aside within one second.
        stale = next(path for n in range(1000) if not (path := run_0.with_name(
            f"run_0.stale-{stamp}" + (f"-{n}" if n else ""))).exists())
        run_0.rename(stale)
        log.warning("%s was made by other code or settings (%s); moved to %s and rebuilt.", run_0,
                    "; ".join(reasons), stale.name)
        recorded = None
    if recorded is None and (earlier := _matching_stale(run_0, current)) is not None:
        earlier.rename(run_0)
        log.info("%s: restored from %s, which this code and these settings made", run_0, earlier.name)
        recorded = _recorded_fingerprint(run_0)
    if recorded is None or not recorded.get("complete", True):
        build_baseline(manifest, timeout_s, current, environ)
    problem = manifest.baseline_problem(read_final_info(manifest.path, 0))
    if problem:
        raise BaselineError(f"{final_info_path(manifest.path, 0)}: not a usable baseline ({problem}); check the "
                            f"template's settings, then delete run_0 and build it again (`make baseline`).")
    return run_0


def _recorded_fingerprint(run_0: Path) -> dict | None:
    try:
        return json.loads((run_0 / FINGERPRINT_FILE).read_text())
    except (OSError, ValueError):
        return None


def _matching_stale(run_0: Path, current: dict) -> Path | None:
    """The newest run_0.stale-* folder whose fingerprint is the current one and complete."""
    for stale in sorted(run_0.parent.glob("run_0.stale-*"), reverse=True):
        recorded = _recorded_fingerprint(stale)
        if recorded is not None and recorded.get("complete", True) and _identity(recorded) == current:
            return stale
    return None


def _identity(recorded: dict) -> dict:
    """The fingerprint less its completion mark (fingerprints written before the mark existed have none)."""
    return {part: recorded.get(part) for part in ("files", "settings")}


def build_baseline(manifest: Manifest, timeout_s: float, current: dict, environ: Mapping[str, str]):
    """Run the template's baseline command into run_0 (resuming what a killed build finished), then summarise its
    seeds. The fingerprint is written first, unfinished, so that a resumed build is known to be this one."""
    template, plan = manifest.path, manifest.baseline_plan
    run_0 = run_dir(template, 0)
    run_0.mkdir(exist_ok=True)
    atomic_write_text(run_0 / FINGERPRINT_FILE, json.dumps({**current, "complete": False}, indent=2))
    log.info("Training the baseline: python %s --out_dir=run_0 in %s", plan.command, template)
    result = run_python(manifest, manifest.python_path, [plan.command, "--out_dir=run_0"], template,
                        timeout_s * BASELINE_TIMEOUT_RUNS, "run_0",
                        on_heartbeat=lambda activity: log.info("baseline: %s", activity), environ=environ)
    schema = template / manifest.final_info_schema
    problem = final_info_problem(final_info_path(template, 0), schema) if result.ok else None
    if not result.ok or problem:
        what = problem or f"exit {result.returncode}"
        raise BaselineError(f"{template}/run_0: building the baseline failed ({what}); see {template}/logs/"
                            f"run_0.stderr (what finished is kept; `make baseline` resumes):\n{result.stderr_tail}")
    if plan.seed_setting:
        try:
            seeds = summarise_seeds(run_0, plan.seed_setting, schema, into=run_0 / FINAL_INFO_FILE)
        except SeedsError as err:
            raise BaselineError(str(err)) from None
        log.info("run_0: the baseline on %d seeds (%s)", len(seeds), ", ".join(map(str, seeds)))
    atomic_write_text(run_0 / FINGERPRINT_FILE, json.dumps({**current, "complete": True}, indent=2))
    log.info("Baseline ready in %.0f s", result.seconds)


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", datefmt="%H:%M:%S")
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python -m scientist.experiment.baseline TEMPLATE_DIR", file=sys.stderr)
        return 2
    try:
        manifest = load_manifest(Path(argv[0]))
        if not manifest.python_path.exists():
            raise BaselineError(f"{manifest.python_path}: the template's experiment environment is missing; run "
                                "`make setup`.")
        run_0 = ensure_baseline(manifest, timeout_s=manifest.timeout_s)
    except (BaselineError, ManifestError) as err:
        print(f"scientist.experiment.baseline: {err}", file=sys.stderr)
        return 2
    print(f"Baseline: {run_0}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
