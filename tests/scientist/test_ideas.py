"""Idea files: every malformed file gets a message naming the file, the JSON path and the rule; the shipped ideas
validate; and the helpers idea generation relies on (extract_json, deduplicate, skeleton) behave."""

import json

import jsonschema
import pytest

from scientist.ideas.idea_files import (
    IDEAS_DIR,
    SCHEMA_PATH,
    IdeaError,
    deduplicate,
    extract_json,
    load_idea_file,
    load_idea_files,
    skeleton,
    strip_comments,
    validate_idea,
)
from tests.conftest import TEMPLATE_DIR

IDEA = {
    "Name": "topk_sweep",
    "Title": "Sweeping k in a TopK SAE",
    "Experiment": "Use TopKSAE with k in 16, 32 and 64 and compare explained variance and CE loss score.",
    "Interestingness": 5,
    "Feasibility": 9,
    "Novelty": 2,
}
OTHER = {**IDEA, "Name": "l1_sweep", "Title": "Sweeping the L1 coefficient"}


def idea(**changes) -> dict:
    """IDEA with some fields changed; a value of None removes the field."""
    return {k: v for k, v in {**IDEA, **changes}.items() if v is not None}


def as_text(content) -> str:
    return content if isinstance(content, str) else json.dumps(content, indent=2)


# Each case: the files to write (name -> text or JSON value), then the fragments the message must hold, the
# first being the start of the message: the file that is wrong and the JSON path.
MALFORMED = {
    "invalid JSON": ({"bad.json": '{\n  "Name": "x",\n  "Title": \n}'},
                     ["bad.json: line 4, column 1:", "not valid JSON", "Expecting value"]),
    "trailing comma": ({"bad.json": '{"Name": "x",}'}, ["bad.json: line 1, column 14:", "not valid JSON"]),
    "empty file": ({"empty.json": ""}, ["empty.json: the file is empty", "--new-idea FILE"]),
    "only comments": ({"empty.json": "// nothing here yet\n"}, ["empty.json: the file is empty"]),
    "top-level string": ({"s.json": '"an idea"'}, ["s.json: $: the top level is a string", "[{...}, {...}]"]),
    "top-level number": ({"n.json": "7"}, ["n.json: $: the top level is an integer"]),
    "empty list": ({"e.json": "[]"}, ["e.json: $: the list is empty", "add at least one idea"]),
    "list item not an object": ({"l.json": [IDEA, 3]},
                                ["l.json: $[1]: must be an object, not an integer (3)", "give an idea object: {"]),
    "missing Name": ({"m.json": idea(Name=None)}, ['m.json: $.Name: missing required field "Name"', "slug"]),
    "several missing": ({"m.json": idea(Title=None, Novelty=None)},
                        ['m.json: $.Title: missing required field "Title" (also missing: "Novelty")']),
    "Name not a slug": ({"n.json": idea(Name="TopK SAE")},
                        ['n.json: $.Name: "TopK SAE" is not a slug', 'use e.g. "topk_sae"']),
    "Name starts with a digit": ({"n.json": idea(Name="2_topk")}, ["n.json: $.Name:", 'use e.g. "idea_2_topk"']),
    "Name too long": ({"n.json": idea(Name="a" * 61)}, ["n.json: $.Name: is 61 characters long, over the limit of 60"]),
    "Interestingness 0": ({"i.json": idea(Interestingness=0)},
                          ["i.json: $.Interestingness: 0 is out of range 1 to 10", "use an integer from 1 to 10"]),
    "Interestingness 11": ({"i.json": idea(Interestingness=11)},
                           ["i.json: $.Interestingness: 11 is out of range 1 to 10"]),
    "Novelty as a string": ({"s.json": [OTHER, idea(Novelty="7")]},
                            ['s.json: $[1].Novelty: must be an integer, not a string ("7")', "write 7 without quotes"]),
    "Feasibility a fraction": ({"f.json": idea(Feasibility=7.5)},
                               ["f.json: $.Feasibility: must be an integer, not a number (7.5)"]),
    "unknown field typo": ({"t.json": {**idea(Experiment=None), "Experment": IDEA["Experiment"]}},
                           ['t.json: $.Experment: unknown field "Experment"', 'did you mean "Experiment"?']),
    "unknown field": ({"t.json": idea(Budget="cheap")},
                      ['t.json: $.Budget: unknown field "Budget"', "the allowed fields are Name, Title"]),
    "empty Title": ({"t.json": idea(Title="")}, ["t.json: $.Title: is empty", "write a one-line title"]),
    "blank Experiment": ({"t.json": idea(Experiment="  \n")}, ["t.json: $.Experiment: is empty"]),
    "novel as yes": ({"n.json": idea(novel="yes")},
                     ['n.json: $.novel: must be a boolean or null, not a string ("yes")', "true, false or null"]),
    "provenance source invalid": ({"p.json": idea(provenance={"source": "handwritten"})},
                                  ['p.json: $.provenance.source: "handwritten" is not one of generated, hand-written',
                                   'did you mean "hand-written"?']),
    "provenance without source": ({"p.json": idea(provenance={"model": "gpt-4o"})},
                                  ['p.json: $.provenance.source: missing required field "source"']),
    "provenance date not ISO": ({"p.json": idea(provenance={"source": "generated", "date": "21/11/2026"})},
                                ['p.json: $.provenance.date: "21/11/2026" is not an ISO date', "YYYY-MM-DD"]),
    "novelty status invalid": ({"p.json": idea(provenance={"source": "generated", "novelty": {"status": "maybe"}})},
                               ['p.json: $.provenance.novelty.status: "maybe" is not one of novel, not_novel',
                                "pick one of them"]),
    "duplicate Names across files": ({"a.json": IDEA, "b.json": [OTHER, IDEA]},
                                     ['b.json: $[1].Name: the Name "topk_sweep" is already used by the idea at',
                                      "a.json: $;"]),
    "duplicate Names in one file": ({"d.json": [IDEA, OTHER, idea(Title="Another title")]},
                                    ['d.json: $[2].Name: the Name "topk_sweep" is already used', "d.json: $[0];"]),
    "unfilled skeleton": ({"s.json": skeleton()},
                          ['s.json: $.Title: still holds the placeholder "FILL IN', "fill it in with"]),
}


@pytest.mark.parametrize("files, fragments", MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_files_name_file_path_and_rule(tmp_path, files, fragments):
    paths = []
    for name, content in files.items():
        paths.append(tmp_path / name)
        paths[-1].write_text(as_text(content))
    with pytest.raises(IdeaError) as caught:
        load_idea_files(paths)
    message = str(caught.value)
    assert message.startswith(f"{tmp_path}/{fragments[0]}"), message
    for fragment in fragments[1:]:
        assert fragment in message


def test_missing_file_is_an_idea_error(tmp_path):
    with pytest.raises(IdeaError, match="nope.json: no such idea file"):
        load_idea_file(tmp_path / "nope.json")


def test_schema_is_valid_draft_2020_12():
    jsonschema.Draft202012Validator.check_schema(json.loads(SCHEMA_PATH.read_text()))


def test_seed_ideas_validate():
    ideas = load_idea_file(TEMPLATE_DIR / "seed_ideas.json")
    assert [i["Name"] for i in ideas] == ["topk_activation", "l1_warmup", "decoder_bias_geometric_median"]


def test_hand_written_ideas_validate_and_are_distinct_from_the_seeds():
    files = sorted(p for p in IDEAS_DIR.glob("*.json") if p != SCHEMA_PATH)
    assert len(files) >= 2
    ideas = load_idea_files(files + [TEMPLATE_DIR / "seed_ideas.json"])
    assert all(i["provenance"]["source"] == "hand-written" for i in ideas[:len(files)])
    kept, dropped = deduplicate(ideas)
    assert dropped == []


def test_a_single_idea_and_a_list_of_ideas_load_in_order(tmp_path):
    (tmp_path / "one.json").write_text(json.dumps(IDEA))
    (tmp_path / "two.json").write_text(json.dumps([OTHER, idea(Name="third", Title="A third idea")]))
    ideas = load_idea_files([tmp_path / "one.json", tmp_path / "two.json"])
    assert [i["Name"] for i in ideas] == ["topk_sweep", "l1_sweep", "third"]


def test_full_line_comments_are_stripped_and_line_numbers_kept(tmp_path):
    path = tmp_path / "commented.json"
    path.write_text("// a comment\n{\n    // an indented comment\n" + json.dumps(IDEA)[1:])
    assert load_idea_file(path) == [IDEA]
    path.write_text('// a comment\n// another\n{\n  "Name": "x" "Title": "y"}')
    with pytest.raises(IdeaError, match="line 4, column 15"):
        load_idea_file(path)


def test_end_of_line_comments_are_not_allowed(tmp_path):
    path = tmp_path / "commented.json"
    path.write_text('{"Name": "x", // why\n}')
    with pytest.raises(IdeaError, match="line 1, column 15: not valid JSON"):
        load_idea_file(path)
    assert strip_comments('  // gone\n"url": "http://kept"') == '\n"url": "http://kept"'


def test_validate_idea_names_its_origin():
    with pytest.raises(IdeaError, match=r'^idea draw 3: \$\.Novelty: must be an integer'):
        validate_idea(idea(Novelty="high"), "idea draw 3")
    validate_idea(idea(novel=None, provenance={"source": "generated", "model": "m", "date": "2026-11-21",
                                               "novelty": {"status": "novel", "engine": "openalex",
                                                           "queries": ["q"], "papers": [{"title": "t"}],
                                                           "reason": "none found"}}), "full idea")


REPLY_IDEA = {"Name": "x", "Title": "T", "Interestingness": 3}


@pytest.mark.parametrize("reply", [
    "THOUGHT: a {rough} idea [1].\n\nNEW IDEA JSON:\n```json\n" + json.dumps(REPLY_IDEA, indent=2) + "\n```\nDone.",
    "```\n" + json.dumps(REPLY_IDEA) + "\n```",
    "Here is my idea, after [some] thought {honestly}: " + json.dumps(REPLY_IDEA) + " I hope it helps {really}.",
    json.dumps(REPLY_IDEA) + "\n\nI am done",
], ids=["fence after prose", "bare fence", "prose with brackets around", "trailing text"])
def test_extract_json_finds_the_idea(reply):
    assert extract_json(reply) == REPLY_IDEA


def test_extract_json_reads_lists():
    assert extract_json("Ideas: [1, 2] then more") == [1, 2]


@pytest.mark.parametrize("reply, problem", [
    ("", "the reply is empty"),
    ("I could not think of an idea.", "no JSON object found"),
    ('```json\n{"Name": "x",\n "Title": }\n```', "not valid: line 3, column 11"),
    # The inner object must not be taken for the idea when the outer one is broken.
    ('{"Name": "x" "provenance": {"source": "generated"}}', "not valid: line 1, column 14: Expecting ','"),
    ('Sure! {"Name": "x", "Title": "unfinished', "not valid"),
])
def test_extract_json_says_what_is_wrong(reply, problem):
    with pytest.raises(ValueError, match=problem):
        extract_json(reply)


def test_deduplicate_by_name():
    kept, dropped = deduplicate([IDEA, idea(Title="A different title altogether")])
    assert kept == [IDEA]
    assert len(dropped) == 1 and 'same Name as the earlier idea "Sweeping k in a TopK SAE"' in dropped[0]


def test_deduplicate_by_near_identical_title_against_existing():
    near = idea(Name="topk_sweep_2", Title="sweeping K in a Top-K SAE!")
    kept, dropped = deduplicate([near, OTHER], existing=[IDEA])
    assert kept == [OTHER]
    assert dropped == ['"topk_sweep_2" dropped: its Title is near-identical (similarity 0.98) to that of '
                       '"topk_sweep": "Sweeping k in a TopK SAE"']


def test_deduplicate_keeps_distinct_ideas_and_leaves_inputs_alone():
    ideas = [IDEA, OTHER, idea(Name="batchtopk_auxk", Title="An AuxK loss for BatchTopK SAEs"),
             idea(Name="batchtopk_sweep", Title="Sweeping k in a BatchTopK SAE")]
    existing = [idea(Name="jumprelu", Title="JumpReLU with a target L0")]
    kept, dropped = deduplicate(ideas, existing)
    assert kept == ideas and dropped == []
    assert len(existing) == 1


def test_skeleton_parses_but_fails_until_filled(tmp_path):
    text = skeleton()
    assert all(line.startswith("//") for line in text.split("{")[0].splitlines())
    filled = json.loads(strip_comments(text))
    for field in ("Name", "Title", "Experiment", "Interestingness", "novel", "provenance"):
        assert f"//   {field}" in text
    with pytest.raises(IdeaError, match="still holds the placeholder"):
        validate_idea(filled, "skeleton")
    scores = {"Interestingness": 4, "Feasibility": 8, "Novelty": 3}
    for field, value in filled.items():
        if isinstance(value, str) and value.startswith("FILL IN"):
            filled[field] = scores.get(field, f"A real {field}")
    validate_idea(filled, "filled skeleton")
