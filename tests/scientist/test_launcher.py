"""launch_scientist.py's checks before any work: flags, API keys, idea files."""

import json
import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from scientist.launch.cli import build_parser, main
from scientist.launch.config import LaunchConfig
from scientist.pipeline import DONE_COMMIT
from scientist.store.folder import IdeaFolder
from tests.conftest import REPO

FLAGS = ("--experiment", "--model", "--num-ideas", "--skip-idea-generation", "--skip-novelty-check", "--ideas",
         "--max-runs", "--max-iters", "--run-timeout", "--budget-usd", "--results-dir", "--resume", "--parallel",
         "--gpus", "--preset", "--writeup", "--num-reflections", "--engine", "--allow-unchecked", "--new-idea",
         "--check-ideas", "--num-reviews", "--vision-model", "--num-cite-rounds")


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


@pytest.mark.parametrize("make, expected", [
    (lambda tmp: tmp / "missing", "no such folder; --resume takes an idea folder or results/<experiment>"),
    (lambda tmp: (tmp / "state.json").write_text("{}") and tmp,
     "not an idea folder made by this version (no idea.json, launch.json, .git)"),
])
def test_resume_of_a_folder_that_is_not_an_idea_folder_fails_clearly(make, expected, tmp_path, capsys):
    assert main(["--resume", str(make(tmp_path))]) == 2
    assert expected in capsys.readouterr().err


def test_a_bad_idea_file_names_the_file_and_the_fix(tmp_path, capsys):
    ideas = tmp_path / "ideas.json"
    ideas.write_text(json.dumps([{"Name": "x", "Title": "y", "Experiment": "z", "Interestingness": 5,
                                  "Feasibility": 5, "Novelty": "high"}]))
    code = main(["--model", "scripted/demo", "--ideas", str(ideas), "--results-dir", str(tmp_path / "r")])
    err = capsys.readouterr().err
    assert code == 2
    assert f"{ideas}: $[0].Novelty: must be an integer" in err
    assert not (tmp_path / "r").exists()


def test_a_new_idea_file_is_refused_until_it_is_filled_in(tmp_path, capsys):
    path = tmp_path / "ideas" / "mine.json"
    assert main(["--new-idea", str(path)]) == 0
    assert "--check-ideas" in capsys.readouterr().out
    assert main(["--new-idea", str(path)]) == 2, "an existing file is never overwritten"
    assert main(["--check-ideas", str(path)]) == 2
    assert f"{path}: $." in capsys.readouterr().err

    text = path.read_text().replace('"your_idea_name"', '"my_idea"')
    for score in ("Interestingness", "Feasibility", "Novelty"):
        text = re.sub(rf'("{score}": )"FILL IN[^"]*"', r"\g<1>5", text)
    text = re.sub(r'"FILL IN[^"]*"', '"Filled in by hand."', text)
    path.write_text(text)
    assert main(["--check-ideas", str(path)]) == 0
    assert "ok: 1 idea(s) in 1 file(s)" in capsys.readouterr().out


GENERATED = {"Name": "decoder_bias_decay", "Title": "Decaying the decoder bias towards zero",
             "Experiment": "Add an L2 penalty on b_dec in CustomTrainer and compare CE loss score and L0.",
             "Interestingness": 5, "Feasibility": 9, "Novelty": 4}
DRAFT = f"THOUGHT:\nA small change.\n\nNEW IDEA JSON:\n```json\n{json.dumps(GENERATED)}\n```\n"
QUERY = 'Searching first.\n```json\n{"Query": "sparse autoencoder decoder bias penalty"}\n```'


def generate_args(templates_dir, results):
    return ["--model", "scripted/demo", "--templates-dir", str(templates_dir), "--results-dir", str(results),
            "--num-ideas", "1", "--num-reflections", "0"]


def test_unreachable_literature_stops_the_launch_with_the_ideas_kept(
        templates_dir, tmp_path, scripted, monkeypatch, capsys):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    monkeypatch.setenv("LITERATURE_API_URL", f"http://127.0.0.1:{closed_port}")
    scripted([DRAFT, QUERY])
    code = main(generate_args(templates_dir, tmp_path / "results"))
    err = capsys.readouterr().err
    assert code == 2
    assert "novelty of 1 idea(s) is not established" in err and "decoder_bias_decay: unchecked" in err
    [ideas_file] = (tmp_path / "results" / "sae_variants").glob("*_ideas/ideas.json")
    [kept] = json.loads(ideas_file.read_text())
    assert kept["novel"] is None and kept["provenance"]["novelty"]["status"] == "unchecked"
    assert [p.name for p in (tmp_path / "results" / "sae_variants").iterdir()] == [ideas_file.parent.name], \
        "no idea folder was created: nothing ran"


def test_a_generated_idea_found_in_the_literature_is_not_run(templates_dir, tmp_path, scripted, services,
                                                             monkeypatch):
    monkeypatch.setenv("LITERATURE_API_URL", services.base_url)
    scripted([DRAFT, QUERY, "DECISION: not novel\nREASON: the first paper already penalises the decoder bias."])
    assert main(generate_args(templates_dir, tmp_path / "results")) == 0
    [ideas_file] = (tmp_path / "results" / "sae_variants").glob("*_ideas/ideas.json")
    [kept] = json.loads(ideas_file.read_text())
    assert kept["novel"] is False
    assert kept["provenance"]["novelty"]["queries"] == ["sparse autoencoder decoder bias penalty"]
    assert kept["provenance"]["novelty"]["papers"][0]["title"] == "Scaling and evaluating sparse autoencoders"
    assert len(services.requests) == 1
    assert len(list((tmp_path / "results" / "sae_variants").iterdir())) == 1, "the idea was not run"


def test_skip_idea_generation_runs_the_seed_ideas_as_written(templates_dir, tmp_path, scripted):
    seeds = json.loads((templates_dir / "sae_variants" / "seed_ideas.json").read_text())
    handler = scripted(["ALL_COMPLETED"] * len(seeds))
    code = main(["--model", "scripted/demo", "--skip-idea-generation", "--templates-dir", str(templates_dir),
                 "--results-dir", str(tmp_path / "results")])
    assert code == 0
    folders = [path for path in (tmp_path / "results" / "sae_variants").iterdir()
               if path.is_dir() and not path.name.startswith(".")]
    assert sorted(f.name.split("_", 2)[2] for f in folders) == sorted(s["Name"] for s in seeds)
    for seed, prompt in zip(seeds, handler.prompts):
        assert seed["Title"] in prompt[-1]["content"] and seed["Experiment"] in prompt[-1]["content"]


def test_writeup_without_latex_fails_before_any_work(tmp_path, monkeypatch, capsys):
    """The paper is written by default, so its tools are checked by default."""
    monkeypatch.setenv("PATH", str(tmp_path))
    code = main(["--model", "scripted/demo", "--skip-idea-generation", "--results-dir", str(tmp_path / "results")])
    err = capsys.readouterr().err
    assert code == 2
    assert "writing the paper needs pdflatex, bibtex, chktex, pdftotext" in err and "make setup" in err
    assert "--no-writeup" in err
    assert not (tmp_path / "results").exists()
    assert build_parser().parse_args([]).writeup == "latex"
    assert build_parser().parse_args(["--no-writeup"]).writeup is None


def test_every_problem_found_before_any_work_is_reported_at_once(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    ideas = tmp_path / "ideas.json"
    ideas.write_text("{not json")
    blocked = tmp_path / "a_file"
    blocked.write_text("")
    code = main(["--model", "anthropic/claude-sonnet-4-5", "--ideas", str(ideas), "--writeup", "latex",
                 "--results-dir", str(blocked / "results")])
    err = capsys.readouterr().err
    assert code == 2
    assert "4 problem(s) found before any work" in err
    assert "ANTHROPIC_API_KEY" in err
    assert f"{ideas}: line 1, column 2: not valid JSON" in err
    assert "writing the paper needs pdflatex" in err
    assert f"{blocked / 'results'}: the results folder cannot be written" in err


@pytest.mark.parametrize("setting, expected", [
    ("environment", "environment variable SAE_DICT_SIZE: dict_size = 'big' is not a valid int"),
    ("config.toml", "config.toml: dict_size = 'big' is not a valid int"),
    ("preset", "preset gemma-2-2b-l12 is sized for a GPU"),
])
def test_settings_a_run_would_refuse_stop_the_launch_before_any_work(setting, expected, templates_dir, tmp_path,
                                                                     monkeypatch, capsys):
    """The template's own check (sae_harness/check.py) reads the settings as a run will, before any spend."""
    templates = tmp_path / "templates"
    shutil.copytree(templates_dir, templates, symlinks=True)
    config = templates / "sae_variants" / "config.toml"
    extra = []
    if setting == "environment":
        monkeypatch.setenv("SAE_DICT_SIZE", "big")
    elif setting == "config.toml":
        config.write_text(config.read_text().replace("dict_size = 2048", 'dict_size = "big"'))
    else:
        extra = ["--preset", "gemma-2-2b-l12"]
        monkeypatch.setenv("SAE_PRESET", "gemma-2-2b-l12")  # so that the launcher's own setting is undone after
        monkeypatch.setenv("SAE_DEVICE", "cpu")
    code = main(["--model", "scripted/demo", "--skip-idea-generation", "--templates-dir", str(templates),
                 "--results-dir", str(tmp_path / "results"), *extra])
    err = capsys.readouterr().err
    assert code == 2
    assert "found before any work; nothing was run or spent" in err and expected in err
    assert not (tmp_path / "results").exists()


def test_an_unknown_template_and_a_template_missing_files_are_named(templates_dir, tmp_path, capsys):
    templates = tmp_path / "templates"
    shutil.copytree(templates_dir, templates, symlinks=True)
    (templates / "sae_variants" / "plot.py").unlink()
    (templates / "sae_variants" / "final_info.schema.json").unlink()
    base = ["--model", "scripted/demo", "--skip-idea-generation", "--templates-dir", str(templates),
            "--results-dir", str(tmp_path / "results")]

    assert main([*base, "--experiment", "sae_variantz"]) == 2
    assert (f"{templates / 'sae_variantz'}: no such template; --experiment names a folder under {templates} "
            "(sae_variants)") in capsys.readouterr().err
    assert main(base) == 2
    assert (f"{templates / 'sae_variants'}: the template lacks plot.py, final_info.schema.json"
            in capsys.readouterr().err)
    assert not (tmp_path / "results").exists()


def test_resume_of_an_idea_killed_between_marking_it_done_and_committing_makes_the_commit(templates_dir, tmp_path,
                                                                                          capsys):
    folder = IdeaFolder.create(tmp_path / "results", "sae_variants", {"Name": "idea"}, templates_dir / "sae_variants")
    state = folder.state
    state.stage = "done"
    folder.save_state(state)
    assert main(["--resume", str(folder.path)]) == 0
    assert "every idea there is done" in capsys.readouterr().out
    assert folder.repo.head.commit.message == DONE_COMMIT
    assert not folder.repo.is_dirty(untracked_files=True)


@pytest.mark.parametrize("problem", ["results folder", "cache disk"])
def test_resume_checks_what_a_launch_checks_and_says_it_the_same_way(problem, templates_dir, tmp_path, monkeypatch,
                                                                     capsys):
    """One preflight serves both: a resume whose results folder cannot be written, or whose cache disk is full,
    fails before any work with the launch's own message."""
    results = tmp_path / "results"
    if problem == "results folder":
        blocked = tmp_path / "a_file"
        blocked.write_text("")
        results = blocked / "results"
    else:
        monkeypatch.setattr("scientist.launch.preflight.shutil.disk_usage",
                            lambda path: shutil._ntuple_diskusage(1, 1, 0))
    base = ["--model", "scripted/demo", "--no-writeup", "--skip-idea-generation", "--templates-dir",
            str(templates_dir)]
    assert main([*base, "--results-dir", str(results)]) == 2
    launch_error = capsys.readouterr().err

    config = LaunchConfig.from_args(build_parser().parse_args([*base, "--results-dir", str(results)]), "x")
    folder = IdeaFolder.create(tmp_path / "made", "sae_variants", {"Name": "idea"}, templates_dir / "sae_variants",
                               config.to_json())
    assert main(["--resume", str(folder.path)]) == 2
    resume_error = capsys.readouterr().err
    assert resume_error == launch_error
    assert "1 problem(s) found before any work; nothing was run or spent" in resume_error
    assert ("the results folder cannot be written" if problem == "results folder" else "GB free") in resume_error


def system_python() -> str:
    """A python3 outside the repository's environment, as a new user would type it."""
    return str(Path(sys.base_prefix) / "bin" / "python3")


def test_any_python_runs_the_launcher_in_the_repository_environment():
    result = subprocess.run([system_python(), "launch_scientist.py", "--help"], cwd=REPO, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "--no-writeup" in result.stdout


def test_before_setup_the_launcher_says_to_run_make_setup(tmp_path):
    shutil.copy(REPO / "launch_scientist.py", tmp_path)  # a fresh clone: no .venv beside it
    result = subprocess.run([system_python(), "launch_scientist.py", "--help"], cwd=tmp_path, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 2
    assert result.stdout == "" and len(result.stderr.strip().splitlines()) == 1
    assert "make setup" in result.stderr and "Traceback" not in result.stderr
