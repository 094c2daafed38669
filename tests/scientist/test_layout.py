"""The orchestrator knows templates only through their manifests, and its modules stay small enough to read."""

import re
from pathlib import Path

from tests.conftest import REPO

SCIENTIST = REPO / "scientist"
# What the SAE template alone knows: a metric, its name, a stage of its own.
TEMPLATE_WORDS = re.compile(r"explained_variance|ce_loss_score|sae_variants|dashboard", re.I)
# The one place the orchestrator may name a template: the CLI's default --experiment.
ALLOWED = {("cli.py", 'DEFAULT_EXPERIMENT = "sae_variants"')}
MAX_MODULE_LINES = 400


def python_files() -> list[Path]:
    return sorted(SCIENTIST.rglob("*.py"))


def test_the_orchestrator_names_no_template_metric_plot_or_module():
    found = []
    for path in python_files():
        for number, line in enumerate(path.read_text().splitlines(), 1):
            code = line.split("#", 1)[0].strip()
            if TEMPLATE_WORDS.search(code) and (path.name, code) not in ALLOWED:
                found.append(f"{path.relative_to(REPO)}:{number}: {line.strip()}")
    assert found == [], "\n".join(found)


def test_every_module_is_under_400_lines():
    long = {str(path.relative_to(REPO)): n for path in python_files()
            if (n := len(path.read_text().splitlines())) > MAX_MODULE_LINES}
    assert long == {}


def test_the_readme_layout_names_every_folder_of_the_orchestrator():
    readme = (REPO / "README.md").read_text()
    layout = readme.split("## Layout", 1)[1].split("```")[1]
    packages = sorted(path.parent.name for path in SCIENTIST.glob("*/__init__.py"))
    named = re.findall(r"^  (\w+)/", layout, flags=re.M)
    assert sorted(named) == packages
    top = {path.name for path in REPO.iterdir() if path.is_dir() and not path.name.startswith(".")} - {"results"}
    assert {re.match(r"([\w.]+)", line)[1] for line in layout.splitlines() if line[:1].isalnum()} >= top - {"docs"}
