"""Wall time of an offline demo (`make demo`), split by stage, read from an idea folder after the fact.

    python bench/demo_time.py                                   # the newest idea folder under results/
    python bench/demo_time.py results/sae_variants/<idea>       # a given one

Nothing is rerun. Three records in the folder give the timeline:
- log.txt: one timestamped line per event the launcher logs (idea start, each run's end, failures);
- cost_ledger.json: one timestamped entry per LLM call, tagged with its stage (run_1, run_2, plot, plot_notes,
  writeup sections, review...), so the first entry of a stage is when that stage began;
- file times of what each stage writes: run_i/final_info.json, the plots, notes.txt, paper.pdf, review.json.
Each run is split further with its own final_info.json: set-up (model load and activations), training,
evaluation, and the rest (process start, imports, export). The stages found are printed as a table; the last
line is one JSON object. Times are to the second (log.txt's resolution); the ledger's calls come from the
scripted coder in the demo, so they cost no time of their own.
"""

import argparse
import datetime
import json
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
ARTIFACTS = {
    "plots": ("metrics_comparison.png", "feature_density.png", "activation_frequency_rank.png", "training_curves.png"),
    "paper": ("paper.pdf", "latex/paper.pdf", "latex/template.pdf"),
    "review": ("review.json", "review.txt"),
}


@dataclass(frozen=True)
class Event:
    at: datetime.datetime
    source: str
    what: str


def read_log(folder: Path) -> list[Event]:
    events = []
    path = folder / "log.txt"
    if not path.exists():
        return events
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            at = datetime.datetime.strptime(line[:19], "%Y-%m-%d %H:%M:%S").astimezone()
        except ValueError:
            continue
        events.append(Event(at, "log.txt", line[20:]))
    return events


def read_ledger(folder: Path) -> list[Event]:
    path = folder / "cost_ledger.json"
    if not path.exists():
        return []
    entries = json.loads(path.read_text()).get("entries", [])
    return [Event(datetime.datetime.fromisoformat(e["timestamp"]).astimezone(), "ledger", e["stage"]) for e in entries]


def file_time(path: Path) -> datetime.datetime | None:
    return datetime.datetime.fromtimestamp(path.stat().st_mtime).astimezone() if path.exists() else None


def stage_starts(ledger: list[Event]) -> dict[str, datetime.datetime]:
    """The first LLM call of each ledger stage, in the order the stages began."""
    starts: dict[str, datetime.datetime] = {}
    for event in sorted(ledger, key=lambda e: e.at):
        starts.setdefault(event.what, event.at)
    return starts


def run_parts(folder: Path) -> list[dict]:
    """Each run's own split, from its final_info.json."""
    parts = []
    for info_path in sorted(folder.glob("run_[1-9]*/final_info.json"), key=lambda p: int(p.parent.name[4:])):
        info = json.loads(info_path.read_text())
        means = info.get("training", {}).get("means", {})
        core = info.get("core", {}).get("means", {})
        wall = means.get("wall_seconds", float("nan"))
        setup, train, evaluate = (means.get("setup_seconds", 0.0), means.get("training_seconds", 0.0),
                                  core.get("eval_seconds", 0.0))
        parts.append({
            "run": info_path.parent.name,
            "wall_s": round(wall, 1),
            "setup_s": round(setup, 1),
            "training_s": round(train, 1),
            "eval_s": round(evaluate, 1),
            "other_in_process_s": round(wall - setup - train - evaluate, 1),
            "training_tokens": means.get("training_tokens"),
            "saebench": "run" if "saebench" in info.get("core", {}) else "skipped",
        })
    return parts


def stages(folder: Path) -> tuple[list[dict], datetime.datetime, datetime.datetime]:
    """Consecutive stages: each lasts from its start until the next stage starts (the last until the last file)."""
    log, ledger = read_log(folder), read_ledger(folder)
    marks: dict[str, datetime.datetime] = {}
    if log:
        marks["idea set-up"] = log[0].at
    marks.update(stage_starts(ledger))
    ends = [e.at for e in log + ledger]
    for name, candidates in ARTIFACTS.items():
        times = [t for t in (file_time(folder / c) for c in candidates) if t and t >= min(marks.values(), default=t)]
        if times:
            ends.append(max(times))
            marks.setdefault(f"{name} (file written)", max(times))
    for info in folder.glob("run_[1-9]*/final_info.json"):
        ends.append(file_time(info))
    ordered = sorted(marks.items(), key=lambda kv: kv[1])
    start, end = ordered[0][1], max(ends)
    rows = []
    for (name, at), nxt in zip(ordered, [*ordered[1:], ("end", end)]):
        rows.append({"stage": name, "start": at.strftime("%H:%M:%S"), "seconds": round((nxt[1] - at).total_seconds())})
    return rows, start, end


def newest_idea_folder() -> Path:
    folders = [p.parent for p in (REPO / "results").glob("*/*/log.txt")]
    if not folders:
        raise SystemExit("no idea folder with a log.txt under results/; run `make demo` first or pass a folder")
    return max(folders, key=lambda p: (p / "log.txt").stat().st_mtime)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", nargs="?", type=Path, help="an idea folder (default: the newest under results/)")
    args = parser.parse_args(argv)
    folder = (args.folder or newest_idea_folder()).resolve()
    rows, start, end = stages(folder)
    runs = run_parts(folder)
    state = json.loads((folder / "state.json").read_text()) if (folder / "state.json").exists() else {}

    print(f"Idea folder {folder}")
    print(f"From {start:%Y-%m-%d %H:%M:%S} to {end:%H:%M:%S}: {(end - start).total_seconds():.0f} s; "
          f"final state: stage {state.get('stage')!r}, status {state.get('status')!r}")
    print(f"\n  {'stage':28} {'start':>8} {'seconds':>8}")
    for row in rows:
        print(f"  {row['stage']:28} {row['start']:>8} {row['seconds']:8d}")
    if runs:
        print(f"\n  {'run':6} {'wall':>7} {'set-up':>7} {'train':>7} {'eval':>7} {'other':>6}  SAEBench")
        for r in runs:
            print(f"  {r['run']:6} {r['wall_s']:7.1f} {r['setup_s']:7.1f} {r['training_s']:7.1f} {r['eval_s']:7.1f} "
                  f"{r['other_in_process_s']:6.1f}  {r['saebench']}")
    summary = {
        "folder": str(folder),
        "total_seconds": round((end - start).total_seconds()),
        "stages": rows,
        "runs": runs,
        "final_stage": state.get("stage"),
        "final_status": state.get("status"),
        "events": [asdict(e) | {"at": e.at.isoformat()} for e in read_log(folder)],
    }
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
