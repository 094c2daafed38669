"""The run sandbox's environment and the lint gate."""

from scientist.runner import lint, scrubbed_environment


def test_runs_get_no_secrets_but_keep_experiment_settings(monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-secret")
    monkeypatch.setenv("HF_TOKEN", "hf-secret")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "aws-secret")
    monkeypatch.setenv("SAE_TRAINING_TOKENS", "8192")
    env = scrubbed_environment()
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
    from scientist.coder import prepare_aider_home

    monkeypatch.setenv("HOME", "/home/researcher")
    monkeypatch.delenv("SCIENTIST_USER_HOME", raising=False)
    prepare_aider_home(tmp_path / "aider_home")
    import os

    assert os.environ["HOME"] == str(tmp_path / "aider_home")
    assert scrubbed_environment()["HOME"] == "/home/researcher"
