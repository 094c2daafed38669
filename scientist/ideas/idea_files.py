"""Research-idea files: reading, checking against ideas/schema.json, and the helpers idea generation needs.

An idea file holds one idea object or a list of them; lines starting with // are comments. Every problem
surfaces as an IdeaError whose message reads "<file>: <JSON path>: <rule broken>; <how to fix>", so a person
(or an LLM asked to retry) can fix it without reading a traceback.

    python launch_scientist.py --new-idea ideas/my_idea.json     write a commented idea to fill in
    python launch_scientist.py --check-ideas ideas/my_idea.json  check idea files
"""

import difflib
import functools
import json
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import jsonschema

from scientist import REPO

IDEAS_DIR = REPO / "ideas"
SCHEMA_PATH = IDEAS_DIR / "schema.json"
PLACEHOLDER = "FILL IN"
# Titles this similar (after normalising case and punctuation) count as the same idea. At 0.9, "Sweeping k in a
# TopK SAE" and "Sweeping k in a BatchTopK SAE" would already be one idea.
TITLE_SIMILARITY = 0.95
COMMENT_LINE = re.compile(r"^[ \t]*//.*$", re.MULTILINE)
OPENING_BRACKET = re.compile(r"[{\[]")
IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class IdeaError(Exception):
    """An idea file or idea breaks a rule; the message names the file, the JSON path, the rule and the fix."""


@functools.cache
def _schema() -> dict:
    return json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))


@functools.cache
def _validator() -> jsonschema.Draft202012Validator:
    cls = jsonschema.Draft202012Validator
    return cls(_schema(), format_checker=cls.FORMAT_CHECKER)


# Reading files

def load_idea_files(paths: Iterable[Path]) -> list[dict]:
    """The ideas of all files, in order; the first problem (including a Name used twice) raises IdeaError."""
    ideas, first_place_of = [], {}
    for path in paths:
        for json_path, idea in _read_ideas(Path(path)):
            place = f"{path}: {json_path}"
            if idea["Name"] in first_place_of:
                raise IdeaError(f"{place}.Name: the Name \"{idea['Name']}\" is already used by the idea at "
                                f"{first_place_of[idea['Name']]}; give each idea its own Name (it names the "
                                "idea's results folder)")
            first_place_of[idea["Name"]] = place
            ideas.append(idea)
    return ideas


def load_idea_file(path: Path) -> list[dict]:
    """The ideas in one file (one idea object or a list of them), each checked against the schema."""
    return [idea for _, idea in _read_ideas(Path(path))]


def _read_ideas(path: Path) -> list[tuple[str, dict]]:
    """(JSON path, idea) for each idea of the file, checked."""
    data = _parse_file(path)
    if isinstance(data, dict):
        located = [("$", data)]
    elif isinstance(data, list):
        if not data:
            raise IdeaError(f"{path}: $: the list is empty, so the file holds no ideas; add at least one idea "
                            "object to it")
        located = [(f"$[{i}]", idea) for i, idea in enumerate(data)]
    else:
        raise IdeaError(f"{path}: $: the top level is {_kind(data)}, not an idea object or a list of ideas; "
                        "write one idea as {...} or several as [{...}, {...}]")
    for json_path, idea in located:
        validate_idea(idea, str(path), json_path)
    return located


def _parse_file(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise IdeaError(f"{path}: no such idea file; check the path") from None
    except (OSError, UnicodeDecodeError) as err:
        raise IdeaError(f"{path}: cannot be read ({err}); give a UTF-8 text file") from None
    # Blanked rather than deleted, so the line numbers of JSON errors stay right.
    text = strip_comments(text)
    if not text.strip():
        raise IdeaError(f"{path}: the file is empty (or holds only comments); write an idea object in it, e.g. "
                        "from `python launch_scientist.py --new-idea FILE`")
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise IdeaError(f"{path}: line {err.lineno}, column {err.colno}: not valid JSON ({err.msg}); fix the "
                        "syntax there (often a missing comma or quote, a trailing comma, or a // comment that "
                        "does not start its line)") from None


def strip_comments(text: str) -> str:
    """Blank every line whose first non-space characters are //."""
    return COMMENT_LINE.sub("", text)


# Checking one idea

def validate_idea(idea: Any, where: str, json_path: str = "$") -> None:
    """Raise IdeaError for the most useful of the idea's schema violations.

    `where` names the idea's file (or its origin, e.g. "idea draw 3") and json_path its place there.
    """
    errors = sorted(_validator().iter_errors(idea), key=_error_priority)
    if errors:
        error = errors[0]
        field_path, rule, fix = _explain(error)
        raise IdeaError(f"{where}: {_format_path(json_path, field_path)}: {rule}; {fix}")


def _error_priority(error: jsonschema.ValidationError) -> int:
    """Placeholders first (a skeleton's real problem); then unknown fields, since a typo also makes a field
    missing and the typo is the better clue; then missing fields; then the rest in schema order."""
    if _is_placeholder(error.instance):
        return 0
    return {"additionalProperties": 1, "required": 2}.get(error.validator, 3)


def _explain(error: jsonschema.ValidationError) -> tuple[list, str, str]:
    """(path of the faulty field, rule broken, how to fix) in plain words."""
    path = list(error.absolute_path)
    if _is_placeholder(error.instance):
        return path, f'still holds the placeholder "{error.instance}"', f"fill it in with {_describe(path)}"
    explain = EXPLAINERS.get(error.validator)
    if explain is None:
        return path, error.message, f"see {SCHEMA_PATH}"
    return explain(error, path)


def _missing(error, path):
    missing = [field for field in error.validator_value if field not in error.instance]
    others = [f'"{m}"' for m in missing[1:]]
    also = f" (also missing: {', '.join(others)})" if others else ""
    field = missing[0]
    return path + [field], f'missing required field "{field}"{also}', f'add "{field}": {_describe(path + [field])}'


def _unknown(error, path):
    known = list(error.schema.get("properties", {}))
    field = next(f for f in error.instance if f not in known)
    close = difflib.get_close_matches(field, known, n=1, cutoff=0.6)
    fix = f'did you mean "{close[0]}"?' if close else f"the allowed fields are {', '.join(known)}"
    return path + [field], f'unknown field "{field}"', fix


def _wrong_type(error, path):
    expected = error.validator_value if isinstance(error.validator_value, list) else [error.validator_value]
    value = error.instance
    rule = f"must be {' or '.join(TYPE_WORDS[t] for t in expected)}, not {_kind(value)}"
    if isinstance(value, str) and "integer" in expected and value.strip().lstrip("-").isdigit():
        return path, rule, f"write {value.strip()} without quotes"
    if isinstance(value, str) and "boolean" in expected:
        return path, rule, "write true, false or null without quotes"
    return path, rule, f"give {_describe(path)}"


def _out_of_range(error, path):
    low, high = error.schema["minimum"], error.schema["maximum"]
    return path, f"{error.instance} is out of range {low} to {high}", f"use an integer from {low} to {high}"


def _bad_pattern(error, path):
    if error.validator_value == _schema()["$defs"]["slug"]["pattern"]:
        suggestion = re.sub(r"[^a-z0-9]+", "_", error.instance.lower()).strip("_")
        if not re.match(r"^[a-z]", suggestion):
            suggestion = f"idea_{suggestion}" if suggestion else "my_idea_name"
        return (path, f'"{error.instance}" is not a slug (lowercase letters, digits and underscores, starting '
                      "with a letter)", f'use e.g. "{suggestion}"')
    return path, "is empty", f"write {_describe(path)}"


def _too_long(error, path):
    return (path, f"is {len(error.instance)} characters long, over the limit of {error.validator_value}",
            "shorten it")


def _not_in_enum(error, path):
    choices = [str(c) for c in error.validator_value]
    close = difflib.get_close_matches(str(error.instance), choices, n=1, cutoff=0.6)
    fix = f'did you mean "{close[0]}"?' if close else "pick one of them"
    return path, f"{json.dumps(error.instance)} is not one of {', '.join(choices)}", fix


def _bad_format(error, path):
    return path, f"{json.dumps(error.instance)} is not an ISO {error.validator_value}", "write it as YYYY-MM-DD"


EXPLAINERS = {
    "required": _missing,
    "additionalProperties": _unknown,
    "type": _wrong_type,
    "minimum": _out_of_range,
    "maximum": _out_of_range,
    "pattern": _bad_pattern,
    "maxLength": _too_long,
    "enum": _not_in_enum,
    "format": _bad_format,
}
TYPE_WORDS = {"object": "an object", "array": "a list", "string": "a string", "integer": "an integer",
              "number": "a number", "boolean": "a boolean", "null": "null"}


def _is_placeholder(value: Any) -> bool:
    return isinstance(value, str) and value.lstrip().startswith(PLACEHOLDER)


def _describe(path: list) -> str:
    """The schema's description of the field at `path`, for the fix part of a message."""
    if not path:
        return 'an idea object: {"Name": ..., "Title": ..., "Experiment": ..., and the three scores}'
    field = _schema()
    for part in path:
        field = field.get("properties", {}).get(part, {}) if isinstance(part, str) else field.get("items", {})
    if field.get("$ref") == "#/$defs/score":
        return f"an integer from 1 to 10: {field['description']}"
    return field.get("description", "a valid value (see ideas/schema.json)")


def _format_path(root: str, parts: list) -> str:
    """$[1].provenance.source from "$[1]" and ["provenance", "source"]."""
    steps = [f"[{p}]" if isinstance(p, int) else f".{p}" if IDENTIFIER.match(p) else f"[{json.dumps(p)}]"
             for p in parts]
    return root + "".join(steps)


def _kind(value: Any) -> str:
    """How a JSON value is named in messages, with a short excerpt of scalars."""
    if isinstance(value, bool):
        return f"a boolean ({json.dumps(value)})"
    for python_type, word in ((dict, "an object"), (list, "a list"), (type(None), "null")):
        if isinstance(value, python_type):
            return word
    word = {str: "a string", int: "an integer"}.get(type(value), "a number")
    excerpt = json.dumps(value)
    return f"{word} ({excerpt if len(excerpt) <= 40 else excerpt[:37] + '...'})"


# Helpers for idea generation

def extract_json(text: str) -> Any:
    """The first JSON object or list in an LLM reply: inside a ```json fence when there is one, after any prose,
    ignoring whatever follows it. Raises ValueError saying what was wrong."""
    if not text.strip():
        raise ValueError("the reply is empty; it should hold a JSON object")
    fence = re.search(r"```json[^\n]*\n", text, re.IGNORECASE) or re.search(r"```[^\n]*\n", text)
    start = fence.end() if fence else 0
    decoder = json.JSONDecoder()
    furthest: json.JSONDecodeError | None = None
    position = start
    while match := OPENING_BRACKET.search(text, position):
        try:
            return decoder.raw_decode(text, match.start())[0]
        except json.JSONDecodeError as err:
            furthest = err if furthest is None or err.pos > furthest.pos else furthest
            # Brackets nested in a broken value belong to it: an inner object of broken JSON is not the answer.
            position = _end_of_brackets(text, match.start())
    if furthest is None:
        raise ValueError("no JSON object found in the reply; write it as a JSON object in a ```json block")
    raise ValueError(f"the JSON in the reply is not valid: line {furthest.lineno}, column {furthest.colno}: "
                     f"{furthest.msg}")


def _end_of_brackets(text: str, begin: int) -> int:
    """Where the bracket opened at `begin` closes (or the end of the text), skipping brackets inside strings."""
    depth, in_string, escaped = 0, False, False
    for i in range(begin, len(text)):
        char = text[i]
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "{[":
            depth += 1
        elif char in "}]":
            depth -= 1
            if depth == 0:
                return i + 1
    return len(text)


def deduplicate(ideas: Iterable[dict], existing: Iterable[dict] = ()) -> tuple[list[dict], list[str]]:
    """Drop the ideas that repeat an earlier one or one of `existing`: the same Name, or a near-identical Title.

    Returns (the ideas kept, in order; one reason for each idea dropped).
    """
    seen, kept, reasons = list(existing), [], []
    for idea in ideas:
        reason = _repeat_of(idea, seen)
        if reason:
            reasons.append(f'"{idea.get("Name")}" dropped: {reason}')
        else:
            kept.append(idea)
            seen.append(idea)
    return kept, reasons


def _repeat_of(idea: dict, seen: list[dict]) -> str | None:
    title = _normalise_title(idea.get("Title", ""))
    for other in seen:
        if other.get("Name") == idea.get("Name"):
            return f'same Name as the earlier idea "{other.get("Title", "")}"'
        other_title = _normalise_title(other.get("Title", ""))
        similarity = difflib.SequenceMatcher(None, title, other_title).ratio() if title and other_title else 0
        if similarity >= TITLE_SIMILARITY:
            return (f'its Title is near-identical (similarity {similarity:.2f}) to that of "{other.get("Name")}": '
                    f'"{other.get("Title")}"')
    return None


def _normalise_title(title: str) -> str:
    return " ".join(re.sub(r"[^a-z0-9]+", " ", str(title).lower()).split())


def skeleton() -> str:
    """A commented idea file to fill in; its FILL IN placeholders fail validation until they are replaced."""
    schema = _schema()
    header = [
        "// One research idea for a template under templates/ (see ideas/README.md).",
        "// Lines starting with // are comments. Replace every FILL IN value; delete optional fields you leave out.",
        "// Check it with: python launch_scientist.py --check-ideas FILE   (the rules are in ideas/schema.json)",
        "// Scores are integers from 1 to 10; be realistic: 10 means exceptional.",
    ]
    fields = [f"//   {name}{' (required)' if name in schema['required'] else ''}: {field['description']}"
              for name, field in schema["properties"].items()]
    placeholders = {"#/$defs/slug": "your_idea_name", "#/$defs/score": f"{PLACEHOLDER}: an integer from 1 to 10"}
    idea = {name: placeholders.get(field.get("$ref"), f"{PLACEHOLDER}: {field['description']}")
            for name, field in schema["properties"].items() if "$ref" in field}
    idea["provenance"] = {"source": "hand-written"}
    return "\n".join(header + fields) + "\n" + json.dumps(idea, indent=2) + "\n"
