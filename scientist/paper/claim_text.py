"""Finding numeric claims in prose: the notes' text and the paper's LaTeX, read sentence by sentence for a metric
the template's registry knows, a number or a direction word, and the run they are about. scientist/paper/claims.py
checks what is found against the result files."""

from __future__ import annotations

import functools
import re
from bisect import bisect_right
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from scientist.experiment.manifest import GROUP_RULE, MetricRegistry

# How far a direction word may stand from its metric: "higher EV", "MSE of run 1 fell".
WORDS_BEFORE_METRIC = 2
WORDS_AFTER_METRIC = 5

# Direction words: "better"/"worse" are judged by the registry's direction, "higher"/"lower" by the raw sign.
SENSE_WORDS = {
    "better": r"improv(?:e|es|ed|ing|ements?)|better|enhanc(?:e|es|ed|ing|ement)",
    "worse": r"worse(?:ned|ns)?|degrad(?:e|es|ed|ing|ation)|deteriorat(?:e|es|ed|ing|ion)",
    "higher": r"increas(?:e|es|ed|ing)|higher|r(?:ose|ise|ises|ising)|gain(?:s|ed)?|gr(?:ew|ow|ows|owing)",
    "lower": r"decreas(?:e|es|ed|ing)|lower|f(?:ell|all|alls|alling)|drop(?:s|ped)?|reduc(?:e|es|ed|ing|tion)"
             r"|declin(?:e|es|ed|ing)|fewer",
}
# Sentences about what may happen rather than what happened.
HYPOTHETICAL = re.compile(r"\b(?:expect\w*|hypothes\w*|predict\w*|should|would|could|might|may|will|if|whether"
                          r"|hope\w*|aim\w*|plan\w*)\b", re.I)
NEGATION = re.compile(r"\b(?:not|no|never|without|neither|nor)\b|n't\b", re.I)
# "(higher is better)" describes a metric; it claims nothing about a run.
IS_BETTER = re.compile(r"\b(?:higher|lower|larger|smaller|closer to [\d.]+)[\s-]+is[\s-]+better\b"
                       r"|\bthe (?:higher|lower) the better\b", re.I)

_NUMBER_BODY = r"(?<![\w.])(?<!run )-?\d+(?:,\d{3})*(?:\.\d+)?(?:e[-+]?\d+)?(?![.,]?\d|[A-Za-z])"
# Between a number and the next, "(baseline)" or "in run 1": "from 0.897 (baseline) to 0.937 (run 1)".
_ATTRIBUTION = r"(?:\s*\([^()]{0,40}\)|\s+(?:in|for|of|on|at)\s+(?:the\s+)?(?:run[ _]?\d+|[\w+-]*\s*baseline)(?:'s)?)?"
# Words between a metric and its value: "explained variance of run 2 is 0.952", "MSE fell to 175.0".
_FILLERS = (r"of|is|was|were|are|at|to|reaches|reached|reaching|hits|hit|equals|equal to|becomes|became|stands at"
            r"|stood at|about|approximately|around|roughly|nearly|almost|only|just|a|an|the|value"
            r"|(?:rose|rises|fell|falls|dropped|drops|increased|increases|decreased|decreases|improved|improves|grew"
            r"|climbed|declined|went up|went down|moved|reduced|raised) to"
            r"|(?:in|for|of|on) (?:the )?(?:run[ _]?\d+|baseline)")


def _number(name: str) -> str:
    return rf"(?P<{name}>{_NUMBER_BODY})(?P<{name}_pct>\s*(?:%|percent\b))?"


FROM_TO = re.compile(rf"\bfrom\s+{_number('a')}{_ATTRIBUTION}\s+to\s+{_number('b')}", re.I)
ARROW = re.compile(rf"{_number('a')}{_ATTRIBUTION}\s*(?:->|→|⟶|=>)\s*{_number('b')}", re.I)
VALUE = re.compile(rf"(?:\s*(?:(?:{_FILLERS})\b|[:=~≈(])){{0,8}}\s*{_number('v')}", re.I)
ANY_NUMBER = re.compile(_NUMBER_BODY, re.I)
# A number followed by these is a relative change ("38.6% lower", "2 times"), not a value.
RELATIVE_AFTER = re.compile(r"\s*(?:×|times\b|-?fold\b|(?:lower|higher|more|less|fewer|better|worse|smaller|larger"
                            r"|greater|bigger|reduction|increase|decrease|improvement|drop|gain|relative|above"
                            r"|below)\b)", re.I)
RUN_MENTION = re.compile(r"\brun[ _-]?(\d+)\b|\bbaseline\b", re.I)
# Text just before a run mention that makes it the thing compared with: "than run 1", "over the ReLU baseline".
REFERENCE_BEFORE = re.compile(r"\b(?:than|over|vs\.?|versus|compared (?:to|with)|relative to|against"
                              r"|(?:improv\w*|gains?) (?:up)?on)\s+"
                              r"(?:(?:that|those) (?:of|in)\s+|in\s+|for\s+|on\s+)?(?:the\s+)?(?:[\w+-]+\s+)?$", re.I)
CLAUSE_BREAK = re.compile(r"[;,](?!\d)|\b(?:while|whereas|but|although|though)\b", re.I)
# Between a change and the metric named after it: "from 0.897 to 0.937 in explained variance".
CHANGE_THEN_METRIC = re.compile(r"\s*(?:in|of|for|on)(?:\s+the)?\s+", re.I)
LIST_GAP = re.compile(r"(?:[\s,&]|\band\b|\bor\b|\bas well as\b)*", re.I)
WORD = re.compile(r"[A-Za-z]+")
SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z(])")
PARAGRAPH_START = re.compile(r"\s*(?:[-*+•]\s|\d+[.)]\s|#)")
# notes.txt structure: code writes "## Run N: ..." blocks ending in "Summary: ..." and "skipped: group (...)".
RESULTS_HEADER = re.compile(r"## Run (\d+):")
INTERPRETATION_HEADER = re.compile(r"Interpretation of run (\d+)\b.*:\s*$", re.I)
STATUS_LINE = re.compile(r"\w+(?: in \w+)?: \S+ \(")
# LaTeX to plain text, line by line so that line numbers stay right. Order matters: comments go first.
LATEX_TO_TEXT = (
    (re.compile(r"(?<!\\)%.*"), ""),
    (re.compile(r"^\s*\\item\b"), "- "),
    (re.compile(r"^\s*\\(?:(?:sub)*section|paragraph|caption|begin|end)\b"), "# "),
    (re.compile(r"\\%|\\percent\b"), "%"),
    (re.compile(r"\\_"), "_"),
    (re.compile(r"\\(?:to|rightarrow|longrightarrow)(?![A-Za-z])"), " -> "),
    (re.compile(r"\\(?:approx|sim)(?![A-Za-z])"), " ≈ "),
    (re.compile(r"([A-Za-z])_\{?(\d)\}?"), r"\1\2"),
    (re.compile(r"\\\\|\\[A-Za-z]+\*?|[{}$~]"), " "),
)


@dataclass(frozen=True)
class Claim:
    """One statement about a metric's number or direction, where it was written."""

    path: Path  # relative to the idea folder when check_idea found it
    line: int
    text: str  # the sentence, on one line
    metric: str  # registry key, e.g. "core.mse"
    run: int | None  # the run the claim is about (0 is the baseline); None: any run may bear it out
    values: tuple[float, ...]  # as written, percentages as fractions: (before, after) or (value,) or ()
    kind: str  # "change", "direction", "value"; "baseline" for a problem with run_0 itself
    sense: str | None = None  # "better", "worse", "higher" or "lower" when a direction word goes with it
    reference: int = 0  # the run a direction claim compares with ("than run 1"); the baseline by default
    places: tuple[int | None, ...] = ()  # decimal places written of each value; None: a whole number like 70


class _Written(NamedTuple):
    value: float  # a percentage as a fraction
    places: int | None  # decimal places written; None for a whole number ending in zeros (70, 2000)
    percent: bool


@dataclass(frozen=True)
class _Mention:
    start: int
    end: int
    run: int  # 0 for "baseline"
    is_reference: bool


@dataclass(frozen=True)
class _Sentence:
    text: str  # newlines kept, so that an offset gives a line
    first_line: int
    context_run: int | None  # the run whose notes section the sentence is in

    def line_at(self, offset: int) -> int:
        return self.first_line + self.text.count("\n", 0, offset)


def _normal(alias: str) -> str:
    return " ".join(re.split(r"[\s-]+", alias.lower()))


class _Vocabulary:
    """How prose names the registry's metrics: each key ("core.mse"), each name with underscores as they are or as
    spaces ("dead_fraction", "dead fraction"), and the manifest's aliases."""

    def __init__(self, registry: MetricRegistry):
        self.registry = registry
        table = {}
        for metric in registry.metrics:
            if metric.name == GROUP_RULE:
                continue  # a group's rule names no metric that prose could
            table[_normal(metric.key)] = metric.key
            if "_" in metric.name:
                table[_normal(metric.name)] = table[_normal(metric.name.replace("_", " "))] = metric.key
        for metric in registry.metrics:
            table.update({_normal(alias): metric.key for alias in metric.aliases})
        self.metric_of_alias = table
        self.pattern = re.compile(
            r"(?<![\w.])(?:" + "|".join(r"[\s-]+".join(map(re.escape, alias.split()))
                                        for alias in sorted(table, key=len, reverse=True)) + r")(?!\w)", re.I)

    def lookup(self, key: str):
        return self.registry.lookup(*key.split(".", 1))


@functools.cache
def _vocabulary(registry: MetricRegistry) -> _Vocabulary:
    return _Vocabulary(registry)


SENSE = re.compile(r"\b(?:" + "|".join(f"(?P<{sense}>{words})" for sense, words in SENSE_WORDS.items()) + r")\b",
                   re.I)


def _parse_number(match: re.Match, name: str, percent: bool = False) -> _Written:
    """The number in group `name`; a percentage becomes a fraction with two more decimal places."""
    mantissa, _, exponent = match[name].replace(",", "").lower().partition("e")
    shift = int(exponent or 0)
    value, places = float(mantissa) * 10.0 ** shift, len(mantissa.partition(".")[2]) - shift
    if percent or match[f"{name}_pct"]:
        return _Written(round(value / 100, places + 2), places + 2, True)
    unsure = not exponent and "." not in mantissa and mantissa.endswith("0") and mantissa.strip("-") != "0"
    return _Written(value, None if unsure else places, False)


# ---------------------------------------------------------------------------------------------- finding claims


def _plain_latex(line: str) -> str:
    for pattern, replacement in LATEX_TO_TEXT:
        line = pattern.sub(replacement, line)
    return line


def _notes_lines(text: str) -> list[tuple[str, int | None]]:
    """Each line with the run whose section it is in; lines code wrote are blanked, so line numbers stay right."""
    lines, context, block = [], None, None  # block: None, "table" (until Summary:), "summary" (until prose)
    for line in text.splitlines():
        header = RESULTS_HEADER.match(line) or INTERPRETATION_HEADER.match(line)
        if header:
            context, block = int(header[1]), "table" if line.startswith("#") else None
            line = ""
        elif line.startswith("#"):
            context, block = None, None
        elif block == "table":
            block = "summary" if line.startswith("Summary:") else "table"
            line = ""
        elif block == "summary":
            if not line.strip() or line[:1].isspace() or STATUS_LINE.match(line):
                line = ""
            else:
                block = None
        lines.append((line, context))
    return lines


def _sentences(lines: list[tuple[str, int | None]]) -> Iterator[_Sentence]:
    """Sentences of each paragraph: a blank line, a bullet or a heading starts a new paragraph."""
    paragraphs, current = [], []
    for number, (line, context) in enumerate(lines, 1):
        if current and (not line.strip() or PARAGRAPH_START.match(line)):
            paragraphs.append(current)
            current = []
        if line.strip():
            current.append((number, line, context))
    paragraphs += [current] if current else []
    for paragraph in paragraphs:
        first_line, _, context = paragraph[0]
        text = "\n".join(line for _, line, _ in paragraph)
        starts = [0] + [m.end() for m in SENTENCE_END.finditer(text)]
        for start, end in zip(starts, starts[1:] + [len(text)]):
            yield _Sentence(text[start:end], first_line + text.count("\n", 0, start), context)


def find_claims(text: str, path: Path, registry: MetricRegistry) -> list[Claim]:
    """The claims in one file's text about the registry's metrics: LaTeX for a .tex path, notes.txt's format
    otherwise."""
    if path.suffix == ".tex":
        lines = [(_plain_latex(line), None) for line in text.splitlines()]
    else:
        lines = _notes_lines(text)
    vocabulary = _vocabulary(registry)
    return [claim for sentence in _sentences(lines) for claim in _SentenceReader(sentence, path, vocabulary).claims()]


class _SentenceReader:
    """Finds metric names, numbers, direction words and run names in one sentence, and ties them together."""

    def __init__(self, sentence: _Sentence, path: Path, vocabulary: _Vocabulary):
        self.sentence, self.path, self.vocabulary = sentence, path, vocabulary
        self.text = IS_BETTER.sub(lambda m: " " * len(m[0]), sentence.text)
        self.breaks = [m.start() for m in CLAUSE_BREAK.finditer(self.text)]
        self.metrics = [(m.start(), m.end(), vocabulary.metric_of_alias[_normal(m[0])])
                        for m in vocabulary.pattern.finditer(self.text)]
        self.runs = [_Mention(m.start(), m.end(), int(m[1]) if m[1] else 0,
                              bool(REFERENCE_BEFORE.search(self.text, 0, m.start())))
                     for m in RUN_MENTION.finditer(self.text)]

    def claims(self) -> list[Claim]:
        if not self.metrics or HYPOTHETICAL.search(self.text):
            return []
        changes, senses = self._changes(), self._senses()
        found = []
        for index, (start, end, metric) in enumerate(self.metrics):
            found += [self._change_claim(metric, match, senses[index]) for match in changes[index]]
            if not changes[index]:  # a change's direction word is checked with the change
                found += [self._direction_claim(metric, start, end, sense) for sense in dict.fromkeys(senses[index])]
            found.append(self._value_claim(metric, end, changes))
        return [claim for claim in found if claim is not None]

    def _clause(self, offset: int) -> int:
        return bisect_right(self.breaks, offset)

    def _clause_text(self, clause: int) -> str:
        bounds = [0, *self.breaks, len(self.text)]
        return self.text[bounds[clause]:bounds[clause + 1]]

    def _words(self, start: int, end: int) -> int:
        return len(WORD.findall(self.text, start, end))

    def _changes(self) -> list[list[re.Match]]:
        """Each "a -> b" or "from a to b", under the metric named before it in its clause ("MSE fell from a to b"),
        or right after it ("from a to b in explained variance")."""
        owned = [[] for _ in self.metrics]
        for match in sorted([*FROM_TO.finditer(self.text), *ARROW.finditer(self.text)], key=lambda m: m.start()):
            if any(m.start() < match.end() and match.start() < m.end() for found in owned for m in found):
                continue
            clause = self._clause(match.start())
            before = [i for i, (_, end, _) in enumerate(self.metrics)
                      if end <= match.start() and self._clause(end) == clause]
            after = [i for i, (start, _, _) in enumerate(self.metrics)
                     if start >= match.end() and CHANGE_THEN_METRIC.fullmatch(self.text, match.end(), start)]
            if before or after:
                owned[before[-1] if before else after[0]].append(match)
        return owned

    def _senses(self) -> list[list[str]]:
        """Each direction word, under the nearest metric in its clause within reach; metrics listed together
        ("explained variance and cosine similarity improved") share the words of the last one."""
        senses = [[] for _ in self.metrics]
        for word in SENSE.finditer(self.text):
            clause = self._clause(word.start())
            if NEGATION.search(self._clause_text(clause)):
                continue  # "MSE did not improve": left unchecked rather than read backwards
            reach = []
            for index, (start, end, _) in enumerate(self.metrics):
                if self._clause(start) != clause:
                    continue
                if end <= word.start() and self._words(end, word.start()) <= WORDS_AFTER_METRIC:
                    reach.append((self._words(end, word.start()), index))
                elif start >= word.end() and self._words(word.end(), start) <= WORDS_BEFORE_METRIC:
                    reach.append((self._words(word.end(), start), index))
            if reach:
                senses[min(reach)[1]].append(word.lastgroup)
        for index in reversed(range(len(self.metrics) - 1)):
            if not senses[index] and LIST_GAP.fullmatch(self.text, self.metrics[index][1], self.metrics[index + 1][0]):
                senses[index] = senses[index + 1]
        return senses

    def _run_near(self, start: int, end: int, for_number: bool) -> int | None:
        """The run named nearest before the span in its clause, else just after it in its clause, else before it in
        the sentence, else the notes section's run. A number's run is never named after another number: in "EV of
        0.937 vs 0.897 for the baseline", the baseline goes with 0.897."""
        own = [m for m in self.runs if not m.is_reference]
        clause = [m for m in own if self._clause(m.start) == self._clause(start)]
        before_in_clause = [m for m in clause if m.end <= start]
        after_in_clause = [m for m in clause if m.start >= end
                           and not (for_number and ANY_NUMBER.search(self.text, end, m.start))]
        before_in_sentence = [m for m in own if m.end <= start]
        for mentions, nearest in ((before_in_clause, -1), (after_in_clause, 0), (before_in_sentence, -1)):
            if mentions:
                return mentions[nearest].run
        return self.sentence.context_run

    def _claim(self, metric: str, offset: int, kind: str, run: int | None, numbers: tuple[_Written, ...] = (),
               **extra) -> Claim | None:
        if self.vocabulary.lookup(metric).fraction and any(not n.percent and n.value > 1 for n in numbers):
            return None  # "247 dead features" is a count
        return Claim(self.path, self.sentence.line_at(offset), " ".join(self.sentence.text.split()), metric, run,
                     tuple(n.value for n in numbers), kind, places=tuple(n.places for n in numbers), **extra)

    def _change_claim(self, metric: str, match: re.Match, senses: list[str]) -> Claim | None:
        percent = bool(match["a_pct"] or match["b_pct"])  # "from 0 to 12%": the sign goes with both
        before, after = _parse_number(match, "a", percent), _parse_number(match, "b", percent)
        named = {m.run for m in self.runs if m.run and not m.is_reference}
        run = named.pop() if len(named) == 1 else (None if named else self.sentence.context_run)
        return self._claim(metric, match.start(), "change", run, (before, after), sense=senses[0] if senses else None)

    def _direction_claim(self, metric: str, start: int, end: int, sense: str) -> Claim | None:
        references = sorted((self._clause(m.start) != self._clause(start), m.start, m.run)
                            for m in self.runs if m.is_reference)
        reference = references[0][2] if references else 0  # the one in the metric's clause first
        run = self._run_near(start, end, for_number=False)
        if run == reference:
            return None  # "the baseline's MSE is higher": nothing to compare it with
        return self._claim(metric, start, "direction", run, sense=sense, reference=reference)

    def _value_claim(self, metric: str, end: int, changes: list[list[re.Match]]) -> Claim | None:
        match = VALUE.match(self.text, end)
        if not match or RELATIVE_AFTER.match(self.text, match.end()):
            return None  # no number, or a relative one: "MSE is 38.6% lower"
        if any(m.start() <= match.start("v") < m.end() for found in changes for m in found):
            return None  # the number is part of a change
        run = self._run_near(match.start("v"), match.end("v"), for_number=True)
        return self._claim(metric, match.start("v"), "value", run, (_parse_number(match, "v"),))
