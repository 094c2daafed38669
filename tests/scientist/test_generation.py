"""Idea generation with reflection, retries on bad JSON and duplicate removal; the LLM's words are scripted."""

import json
import shutil

import pytest

from scientist.ideas.generation import GenerationError, generate_ideas, read_archive, template_prompt, write_ideas
from scientist.llm.ledger import Budget, Ledger
from scientist.llm.scripted import DEMO_MODEL
from tests.conftest import TEMPLATE_DIR

SEEDS = json.loads((TEMPLATE_DIR / "seed_ideas.json").read_text())


def idea(name: str, title: str, **changes) -> dict:
    return {"Name": name, "Title": title, "Experiment": f"Change experiment.py for {title} and compare CE loss score.",
            "Interestingness": 6, "Feasibility": 8, "Novelty": 5, **changes}


def reply(body: dict | str, thought: str = "It tests a clear hypothesis.") -> str:
    text = body if isinstance(body, str) else json.dumps(body, indent=2)
    return f"THOUGHT:\n{thought}\n\nNEW IDEA JSON:\n```json\n{text}\n```\n"


@pytest.fixture
def template(tmp_path):
    path = tmp_path / "sae_variants"
    path.mkdir()
    for name in ("prompt.json", "experiment.py", "seed_ideas.json"):
        shutil.copy(TEMPLATE_DIR / name, path / name)
    return path


def generate(template, tmp_path, num_ideas=2, num_reflections=3):
    ledger = Ledger(tmp_path / "ledger.json")
    ideas = generate_ideas(template, tmp_path / "launch" / "ideas.json", SEEDS + read_archive(tmp_path), DEMO_MODEL,
                           ledger, Budget(None), num_ideas=num_ideas, num_reflections=num_reflections)
    return ideas, ledger


def test_ideas_are_refined_until_the_model_is_done(template, tmp_path, scripted):
    first = idea("tied_init", "Tied encoder initialisation")
    refined = idea("tied_init", "Initialising the encoder as the decoder's transpose", Feasibility=9)
    second = idea("lr_warmup_sweep", "How long should the learning-rate warm-up be?")
    handler = scripted([
        reply(first), reply(refined), reply(refined, "Nothing left to improve.\nI am done"),
        reply(second) + "\nTrailing words after the block.", reply(second, "I am done"),
    ])
    ideas, ledger = generate(template, tmp_path)

    assert [i["Title"] for i in ideas] == [refined["Title"], second["Title"]]
    assert ideas[0]["Feasibility"] == 9
    assert [e.stage for e in ledger.entries] == ["idea_generation", "idea_reflection", "idea_reflection",
                                                 "idea_generation", "idea_reflection"]
    assert not handler.replies, "each idea stopped reflecting when the model said it was done"
    archive = read_archive(tmp_path)
    assert [i["Name"] for i in archive] == ["tied_init", "lr_warmup_sweep"]
    assert archive[0]["provenance"]["source"] == "generated"
    assert archive[0]["provenance"]["model"] == DEMO_MODEL
    first_prompt = handler.prompts[0][-1]["content"]
    assert "class CustomSAE" in first_prompt, "the prompt shows the template's code"
    assert all(seed["Name"] in first_prompt for seed in SEEDS), "the prompt lists the ideas already proposed"
    assert "tied_init" in handler.prompts[3][-1]["content"], "the second draw knows the first idea"


def test_a_bad_idea_gets_one_retry_that_names_the_error(template, tmp_path, scripted):
    broken = idea("wide_dict", "A wider dictionary")
    del broken["Novelty"]
    fixed = idea("wide_dict", "A wider dictionary")
    handler = scripted([reply(broken), reply(fixed, "I am done")])
    ideas, _ = generate(template, tmp_path, num_ideas=1, num_reflections=0)

    assert [i["Name"] for i in ideas] == ["wide_dict"]
    retry_prompt = handler.prompts[1][-1]["content"]
    assert "cannot be used" in retry_prompt and "Novelty" in retry_prompt


def test_an_idea_still_bad_after_its_retry_is_dropped(template, tmp_path, scripted):
    good = idea("good_one", "A usable idea")
    handler = scripted(["no JSON here at all", reply('{"Name": "x", "Title": '), reply(good), reply(good, "I am done")])
    ideas, _ = generate(template, tmp_path, num_ideas=1, num_reflections=1)
    assert [i["Name"] for i in ideas] == ["good_one"]
    assert not handler.replies


def test_duplicates_of_seeds_earlier_launches_and_each_other_are_dropped(template, tmp_path, scripted):
    write_ideas(tmp_path / "earlier_launch" / "ideas.json", [idea("sparsity_warmup", "Warming up sparsity")])
    same_name = idea(SEEDS[0]["Name"], "Something else entirely")
    earlier = idea("sparsity_warmup", "A different title")
    same_title = idea("topk_again", SEEDS[0]["Title"].upper() + "!")
    new = idea("geometric_b_dec_decay", "Decaying the decoder bias towards zero")
    new_again = idea("b_dec_decay", "Decaying the decoder bias towards zero.")
    handler = scripted([reply(same_name), reply(earlier), reply(same_title), reply(new), reply(new_again),
                        reply(earlier)])
    ideas, _ = generate(template, tmp_path, num_ideas=3, num_reflections=0)
    assert [i["Name"] for i in ideas] == ["geometric_b_dec_decay"], "one new idea in the 6 draws allowed"
    assert not handler.replies


def test_a_template_without_a_task_description_is_refused(template, tmp_path):
    (template / "prompt.json").unlink()
    with pytest.raises(GenerationError, match="prompt.json: missing"):
        generate(template, tmp_path)


def test_a_preset_without_a_language_model_tells_the_idea_generator_how_it_is_scored():
    plain = template_prompt(TEMPLATE_DIR)
    synthetic = template_prompt(TEMPLATE_DIR, "synth-cpu")
    assert synthetic["task_description"].startswith(plain["task_description"])
    added = synthetic["task_description"][len(plain["task_description"]):]
    assert "ground_truth.f1" in added and "true features" in added and "not recorded" in added
    assert template_prompt(TEMPLATE_DIR, "gemma-3-270m") == plain


def test_a_malformed_presets_table_is_named(tmp_path):
    (tmp_path / "prompt.json").write_text(json.dumps({"system": "s", "task_description": "t", "presets": ["x"]}))
    with pytest.raises(GenerationError, match="presets must map preset names to text"):
        template_prompt(tmp_path)
