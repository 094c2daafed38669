"""launch_scientist.py's checks before any work: flags, API keys, idea files."""

import json
import subprocess
import sys

import pytest

from scientist.launcher import build_parser, main
from tests.conftest import REPO

FLAGS = ("--experiment", "--model", "--num-ideas", "--skip-idea-generation", "--skip-novelty-check", "--ideas",
         "--max-runs", "--max-iters", "--run-timeout", "--budget-usd", "--results-dir", "--resume", "--parallel",
         "--gpus", "--preset", "--writeup")


def test_help_documents_every_flag():
    result = subprocess.run([sys.executable, "launch_scientist.py", "--help"], cwd=REPO, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0
    for flag in FLAGS:
        assert flag in result.stdout
    documented = {a.option_strings[0]: a.help for a in build_parser()._actions if a.option_strings}
    assert all(documented[flag] for flag in FLAGS)


def test_missing_api_key_fails_before_any_work(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    code = main(["--model", "anthropic/claude-sonnet-4-5", "--skip-idea-generation",
                 "--results-dir", str(tmp_path / "results")])
    err = capsys.readouterr().err
    assert code == 2
    assert "ANTHROPIC_API_KEY" in err and "--model demo" in err
    assert not (tmp_path / "results").exists()


@pytest.mark.parametrize("flags, expected", [
    (["--writeup"], "--writeup: the write-up and review stage is not available yet"),
    (["--parallel", "2"], "--parallel/--gpus: running ideas in parallel is not available yet"),
    (["--resume", "results/x"], "--resume: resuming an interrupted idea is not available yet"),
])
def test_flags_of_stages_not_built_yet_fail_clearly(flags, expected, tmp_path, capsys):
    code = main(["--model", "scripted/demo", "--skip-idea-generation", "--results-dir", str(tmp_path), *flags])
    assert code == 2
    assert expected in capsys.readouterr().err


def test_a_bad_idea_file_names_the_file_and_the_fix(tmp_path, capsys):
    ideas = tmp_path / "ideas.json"
    ideas.write_text(json.dumps([{"Name": "x", "Title": "y"}]))
    code = main(["--model", "scripted/demo", "--ideas", str(ideas), "--results-dir", str(tmp_path / "r")])
    err = capsys.readouterr().err
    assert code == 2
    assert f"{ideas}: an idea lacks Experiment" in err
