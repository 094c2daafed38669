"""The template snapshot every module of the benchmark imports from: a copy made once, at import, so that both sides
run one fixed version of the template however the working tree changes during the benchmark."""

import argparse
import atexit
import io
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

IMPORT_STARTED = time.perf_counter()

REPO = Path(__file__).resolve().parent.parent.parent
SOURCE_TEMPLATE = REPO / "templates" / "sae_variants"
# What the launcher leaves out when it copies the template into an idea folder, and the baseline and sweep runs.
SNAPSHOT_IGNORE = shutil.ignore_patterns(".venv", "__pycache__", "*.pyc", ".pytest_cache", "*.png", "run_*", "sweep_*")


def snapshot_template(work: Path, ref: str | None) -> Path:
    """Copy the template, as the launcher copies it into an idea folder, from the working tree or a git ref."""
    source = SOURCE_TEMPLATE
    if ref:
        archive = subprocess.run(["git", "-C", str(REPO), "archive", "--format=tar", ref, "templates/sae_variants"],
                                 check=True, capture_output=True).stdout
        with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
            tar.extractall(work / "git", filter="data")
        source = work / "git" / "templates" / "sae_variants"
    shutil.copytree(source, work / "template", ignore=SNAPSHOT_IGNORE)
    return work / "template"


def template_source(ref: str | None) -> dict:
    def git(*args) -> str:
        done = subprocess.run(["git", "-C", str(REPO), *args], capture_output=True, text=True)
        return done.stdout.rstrip() if done.returncode == 0 else "unknown"

    if ref:
        return {"ref": ref, "commit": git("rev-parse", ref)}
    changed = git("status", "--porcelain", "--", "templates/sae_variants").splitlines()
    return {"ref": "working tree", "commit": git("rev-parse", "HEAD"), "uncommitted": [line[3:] for line in changed]}


# The snapshot has to exist before experiment.py can be imported, so these two flags are read before the rest.
_pre = argparse.ArgumentParser(add_help=False)
_pre.add_argument("--template-ref")
_pre.add_argument("--keep", action="store_true")
PRE_ARGS, _ = _pre.parse_known_args()
WORK = Path(tempfile.mkdtemp(prefix="sae_bench_"))
if not PRE_ARGS.keep:
    atexit.register(shutil.rmtree, WORK, ignore_errors=True)
TEMPLATE_DIR = snapshot_template(WORK, PRE_ARGS.template_ref)
sys.path.insert(0, str(TEMPLATE_DIR))
