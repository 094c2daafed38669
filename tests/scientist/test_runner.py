"""The run sandbox's environment, the lint gate, timeouts and the progress heartbeat."""

import json
import sys
from pathlib import Path

import pytest

from scientist.experiment import runner
from scientist.experiment.runner import lint, scrubbed_environment
from scientist.launch.progress import last_progress_line
from tests.scientist.conftest import SAE_MANIFEST


def test_runs_get_no_secrets_but_keep_experiment_settings(monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-secret")
    monkeypatch.setenv("HF_TOKEN", "hf-secret")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "aws-secret")
    monkeypatch.setenv("SAE_TRAINING_TOKENS", "8192")
    env = scrubbed_environment(SAE_MANIFEST)
    assert not {"ANTHROPIC_API_KEY", "HF_TOKEN", "AWS_SECRET_ACCESS_KEY"} & set(env)
    assert env["SAE_TRAINING_TOKENS"] == "8192"
    assert "PATH" in env


def test_lint_gate_reports_fatal_errors_only(tmp_path):
    code = tmp_path / "experiment.py"
    code.write_text("import os\n\n\ndef main():\n    return undefined_name\n")
    problems = lint(code)
    assert "F821" in problems and "undefined_name" in problems
    assert "F401" not in problems
    code.write_text("import os\n")
    assert lint(code) == ""


def test_runs_get_the_users_home_not_aiders(monkeypatch, tmp_path):
    from scientist.llm.coder import prepare_aider_home

    monkeypatch.setenv("HOME", "/home/researcher")
    monkeypatch.delenv("SCIENTIST_USER_HOME", raising=False)
    prepare_aider_home(tmp_path / "aider_home")
    import os

    assert os.environ["HOME"] == str(tmp_path / "aider_home")
    assert scrubbed_environment(SAE_MANIFEST)["HOME"] == "/home/researcher"


PROGRESS_SCRIPT = """
import sys, time
for step in range(1, 4):
    sys.stderr.write(f"\\rTraining CustomSAE:  {step}0%|###      | {step}/10 [00:0{step}<00:09]")
    sys.stderr.flush()
    time.sleep(0.4)
print("done")
"""


def test_a_long_run_reports_its_latest_progress_line(monkeypatch, tmp_path):
    monkeypatch.setattr(runner, "HEARTBEAT_S", 0.3)
    (tmp_path / "job.py").write_text(PROGRESS_SCRIPT)
    seen = []
    result = runner.run_python(SAE_MANIFEST, Path(sys.executable), ["job.py"], tmp_path, 30, "job",
                               on_heartbeat=seen.append)
    assert result.ok and not result.timed_out
    assert seen and all(line.startswith("Training CustomSAE: ") for line in seen)
    assert "#" not in seen[-1] and "/10" in seen[-1]
    assert (tmp_path / "logs" / "job.stdout").read_text() == "done\n"


def test_a_run_past_its_timeout_is_killed(tmp_path):
    (tmp_path / "job.py").write_text("import time\ntime.sleep(60)\n")
    result = runner.run_python(SAE_MANIFEST, Path(sys.executable), ["job.py"], tmp_path, 1.0, "job")
    assert result.timed_out and not result.ok
    assert result.seconds < 30


def test_the_progress_line_drops_the_bar():
    log = "Loading\nTraining CustomSAE:  45%|████▌     | 263/585 [01:10<01:30,  3.3step/s]\r\n"
    assert last_progress_line(log) == "Training CustomSAE: 45% 263/585 [01:10<01:30, 3.3step/s]"
    assert last_progress_line("") == ""


@pytest.mark.parametrize("mangle, problem", [
    (lambda text: text[: len(text) // 2], "is not valid JSON"),
    (lambda text: text.replace('"explained_variance": ', '"explained_variance": NaN, "was": ', 1),
     "NaN is not a number a result may hold"),
    (lambda text: text.replace('"explained_variance": ', '"explained_variance": -Infinity, "was": ', 1),
     "-Infinity is not a number a result may hold"),
    (lambda text: json.dumps({k: {kk: vv for kk, vv in v.items() if kk != "means"} if k == "core" else v
                              for k, v in json.loads(text).items()}), "breaks final_info.schema.json at core"),
    (lambda text: text.replace('"training_steps": ', '"training_steps": "many", "x": ', 1),
     "breaks final_info.schema.json at training/means/training_steps"),
])
def test_a_final_info_that_cannot_be_read_as_results_is_refused(templates_dir, tmp_path, mangle, problem):
    template = templates_dir / "sae_variants"
    good = (template / "run_0" / "final_info.json").read_text()
    schema = template / "final_info.schema.json"
    assert runner.final_info_problem(template / "run_0" / "final_info.json", schema) is None
    (tmp_path / "run_1").mkdir()
    (tmp_path / "run_1" / "final_info.json").write_text(mangle(good))
    assert problem in runner.final_info_problem(tmp_path / "run_1" / "final_info.json", schema)
    assert runner.final_info_problem(tmp_path / "run_2" / "final_info.json", schema) == "it wrote no final_info.json"
