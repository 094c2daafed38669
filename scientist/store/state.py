"""The typed records an idea folder keeps in state.json: where the idea is, each run it finished, its paper.

state.json is read by the live view, the report, the write-up and resume; these classes are its one definition,
and `IdeaState.from_json` reads what earlier versions wrote (missing fields take their defaults).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields


@dataclass
class RunRecord:
    """A successful run: what the coder said it does, the commit of its code and results, how long it took."""

    description: str | None
    commit: str = ""
    seconds: float = 0.0


@dataclass
class PaperOutcome:
    """What the write-up made: the PDF's name, or why there is none, and what it could not make right."""

    pdf: str = ""
    reverted_sections: list[str] = field(default_factory=list)
    """Sections put back to their last compiling version."""
    contradictions: list[str] = field(default_factory=list)
    """Claims in the paper that the result files contradict, after the coder's one chance to fix them."""
    error: str = ""


@dataclass
class IdeaState:
    """What state.json holds, and what the live view shows."""

    idea: str
    stage: str = "queued"
    status: str = "queued"
    run: int = 0
    tries: int = 0
    runs: dict[int, RunRecord] = field(default_factory=dict)
    ran_code: list[str] = field(default_factory=list)
    """Digests of experiment code already run: the same code is never run twice."""
    main_run: int | None = None
    """The run the coder named as its main result (MAIN_RUN: in its last reply), repeated on --seeds seeds."""
    paper: PaperOutcome | None = None
    notes_contradictions: list[str] = field(default_factory=list)
    reason: str = ""
    """Why the idea ended early (out of tries), from the last failed try."""
    error: str = ""
    """Why the idea failed (an exception), when it did."""

    @property
    def done(self) -> bool:
        return self.stage == "done"

    def to_json(self) -> dict:
        data = asdict(self)
        data["runs"] = {str(number): record for number, record in sorted(data["runs"].items())}
        return data

    @classmethod
    def from_json(cls, data: dict) -> IdeaState:
        known = {f.name for f in fields(cls)}
        values = {key: value for key, value in data.items() if key in known}
        values["runs"] = {int(number): RunRecord(**record) for number, record in (data.get("runs") or {}).items()}
        if data.get("paper"):
            values["paper"] = PaperOutcome(**data["paper"])
        return cls(**values)
