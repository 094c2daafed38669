"""The baseline run_0 that every idea is compared with.

It is built before any LLM spend, refused when degenerate (the seed runs of earlier loops compared ideas with an
untrained SAE), and rebuilt when the code or the settings that produced it have changed: a baseline trained on
another preset, another token count or older harness code would make every comparison unfair. What produced a
run_0 is recorded beside it in `baseline_fingerprint.json`.

`python -m scientist.baseline [TEMPLATE_DIR]` builds or checks it alone (`make baseline`).
"""

import hashlib
import json
import logging
import os
import sys
import time
from collections.abc import Mapping
from pathlib import Path

from .files import atomic_write_text
from .runner import run_python

log = logging.getLogger(__name__)
FINGERPRINT_FILE = "baseline_fingerprint.json"
# The files that decide a run's numbers; plot.py, notes and ideas do not.
RESULT_FILES = ("experiment.py", "sae_*.py", "sae_harness/*.py", "config.toml")
# SAE_* variables that change where things are kept or how often they are logged, not the numbers.
SETTINGS_WITHOUT_EFFECT = {"SAE_CACHE_DIR", "SAE_LOG_EVERY"}


class BaselineError(Exception):
    """run_0 cannot be built or cannot serve as a baseline; the message says what to do."""


def baseline_problem(info: dict) -> str | None:
    """Why a run_0's final_info cannot serve as a baseline, or None."""
    training, core = info.get("training", {}).get("means", {}), info.get("core", {}).get("means", {})
    if not training.get("training_steps"):
        return "training_steps is 0 or missing: the baseline SAE was never trained"
    if not core.get("l0"):
        return "L0 is 0 or missing: the baseline SAE has no active features"
    ev = core.get("explained_variance")
    if ev is None or ev < 0:
        return f"explained variance is {ev}: the baseline reconstructs worse than the mean"
    return None


def fingerprint(template: Path, environ: dict) -> dict:
    """Digests of the files that decide a run's numbers, and the SAE_* settings in force."""
    files = {}
    for pattern in RESULT_FILES:
        for path in sorted(template.glob(pattern)):
            files[path.relative_to(template).as_posix()] = hashlib.sha256(path.read_bytes()).hexdigest()
    settings = {k: v for k, v in sorted(environ.items()) if k.startswith("SAE_") and k not in SETTINGS_WITHOUT_EFFECT}
    return {"files": files, "settings": settings}


def fingerprint_changes(recorded: dict, current: dict) -> list[str]:
    changes = []
    for part in ("files", "settings"):
        old, new = recorded.get(part, {}), current[part]
        changes += [f"{name} changed" for name in sorted(old.keys() & new.keys()) if old[name] != new[name]]
        changes += [f"{name} added" for name in sorted(new.keys() - old.keys())]
        changes += [f"{name} removed" for name in sorted(old.keys() - new.keys())]
    return changes


def ensure_baseline(template: Path, python: Path, timeout_s: float, environ: Mapping[str, str] | None = None) -> Path:
    """Return template/run_0, built now if it is missing or stale. A stale run_0 is moved aside, not deleted."""
    environ = os.environ if environ is None else environ
    run_0 = template / "run_0"
    current = fingerprint(template, environ)
    if run_0.exists():
        record = run_0 / FINGERPRINT_FILE
        recorded = json.loads(record.read_text()) if record.exists() else None
        if recorded != current:
            reasons = fingerprint_changes(recorded, current) if recorded else ["it has no " + FINGERPRINT_FILE]
            stale = run_0.with_name(f"run_0.stale-{time.strftime('%Y%m%d_%H%M%S')}")
            run_0.rename(stale)
            log.warning("%s was made by other code or settings (%s); moved to %s and rebuilt.", run_0,
                        "; ".join(reasons), stale.name)
    if not (run_0 / "final_info.json").exists():
        build_baseline(template, python, timeout_s, current, environ)
    problem = baseline_problem(json.loads((run_0 / "final_info.json").read_text()))
    if problem:
        raise BaselineError(f"{run_0 / 'final_info.json'}: not a usable baseline ({problem}); check the template's "
                            f"config.toml, then delete run_0 and run `make baseline`.")
    return run_0


def build_baseline(template: Path, python: Path, timeout_s: float, current: dict, environ: Mapping[str, str]):
    log.info("Training the baseline: python experiment.py --out_dir=run_0 in %s", template)
    result = run_python(python, ["experiment.py", "--out_dir=run_0"], template, timeout_s, "run_0",
                        on_heartbeat=lambda activity: log.info("baseline: %s", activity), environ=environ)
    if not result.ok:
        raise BaselineError(f"{template}/run_0: building the baseline failed (exit {result.returncode}); "
                            f"see {template}/logs/run_0.stderr:\n{result.stderr_tail}")
    atomic_write_text(template / "run_0" / FINGERPRINT_FILE, json.dumps(current, indent=2))
    log.info("Baseline ready in %.0f s", result.seconds)


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", datefmt="%H:%M:%S")
    argv = sys.argv[1:] if argv is None else argv
    template = Path(argv[0] if argv else Path(__file__).resolve().parent.parent / "templates" / "sae_variants")
    python = template / ".venv" / "bin" / "python"
    if not python.exists():
        print(f"{python}: the template's experiment environment is missing; run `make setup`.", file=sys.stderr)
        return 2
    try:
        run_0 = ensure_baseline(template, python, timeout_s=7200.0)
    except BaselineError as err:
        print(f"scientist.baseline: {err}", file=sys.stderr)
        return 2
    print(f"Baseline: {run_0}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
