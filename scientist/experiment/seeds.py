"""One result from several seeds: the mean, spread and per-seed values of every number a run reports.

The baseline run_0 is trained on several seeds (its template's baseline command), and an idea's main run is repeated
on more seeds after its last run (scientist/pipeline/seeds.py). Both are summarised here, in AI-Scientist's
means/stderrs form extended with the spread and the seeds, so that the verdicts can tell an effect from seed noise:

    {"seeds": {"status": "ok", "means": {"count": 3}, "seeds": [0, 1, 2], "runs": ["seeds/seed_0", ...]},
     "core": {"status": "ok", "means": {...mean...}, "stds": {...}, "stderrs": {...}, "per_seed": {...}, ...}, ...}

Each run folder holds its seeds under seeds/seed_<s>/ (the run's own first seed too, as a copy of its
final_info.json), so that the summary can be rebuilt from the files at any time.
"""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Mapping, Sequence
from pathlib import Path

from scientist.experiment.runner import final_info_problem
from scientist.store.files import atomic_write_text
from scientist.store.folder import FINAL_INFO_FILE, SEEDS_DIR, read_result_file

SEEDS_GROUP = "seeds"


class SeedsError(Exception):
    """A run's seeds cannot be summarised; the message names the file and why."""


def seed_folder(seed: int) -> str:
    """Where a run's result on one seed lives, relative to the run folder."""
    return f"{SEEDS_DIR}/seed_{seed}"


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return value


def _spread(values: list[float | None]) -> tuple[float | None, float | None, float | None]:
    """(mean, sample standard deviation, standard error) of the finite values; no spread from fewer than two."""
    finite = [v for v in values if v is not None]
    if not finite:
        return None, None, None
    mean = statistics.fmean(finite)
    # Equal values keep their exact value: a constant (a size, a setting) must read as itself, not 63.99999999.
    if all(v == finite[0] for v in finite):
        mean = finite[0]
    if len(finite) < 2:
        return mean, None, None
    std = statistics.stdev(finite)
    return mean, std, std / math.sqrt(len(finite))


def _group(bodies: list[Mapping], keep: Mapping[str, object]) -> dict:
    """One group over the seeds: the first seed's group with means averaged and spreads added. Settings that
    name the seed itself keep the first seed's value in means (`keep`), with every seed's under per_seed."""
    first = bodies[0]
    names = list(dict.fromkeys(name for body in bodies for name in (body.get("means") or {})))
    means, stds, stderrs, per_seed = {}, {}, {}, {}
    for name in names:
        values = [_number((body.get("means") or {}).get(name)) for body in bodies]
        mean, std, stderr = _spread(values)
        means[name] = keep.get(name, mean)
        stds[name], stderrs[name], per_seed[name] = std, stderr, values
    return {**first, "means": means, "stds": stds, "stderrs": stderrs, "per_seed": per_seed}


def aggregate(infos: Sequence[Mapping], seeds: Sequence[int], seed_setting: str = "") -> dict:
    """The summary of one run's results on `seeds` (infos[i] is the final_info.json of seeds[i]; the first is the
    run as it was first made). A group is averaged over the seeds where it ran (status ok); a group that failed
    or was skipped on every seed keeps the first seed's reason. seed_setting ("group.name") is where a result
    records its seed: its mean would be no seed at all, so the first seed's value stays."""
    if not infos or len(infos) != len(seeds):
        raise ValueError("aggregate needs one result per seed")
    seed_group, seed_name = seed_setting.split(".", 1) if seed_setting else ("", "")
    summary: dict = {SEEDS_GROUP: {"status": "ok", "means": {"count": len(seeds)}, "seeds": list(seeds),
                                   "runs": [seed_folder(seed) for seed in seeds]}}
    groups = dict.fromkeys(key for info in infos for key, body in info.items() if isinstance(body, Mapping))
    for name in groups:
        ran = [info[name] for info in infos if isinstance(info.get(name), Mapping) and info[name].get("status") == "ok"]
        if not ran:
            summary[name] = next(info[name] for info in infos if name in info)
            continue
        keep = {seed_name: (ran[0].get("means") or {}).get(seed_name)} if name == seed_group else {}
        summary[name] = _group(ran, keep)
        if len(ran) < len(infos):
            summary[name]["seeds_ran"] = len(ran)
    return summary


def seed_count(info: Mapping) -> int:
    """How many seeds a result summarises (1 for a single run)."""
    group = info.get(SEEDS_GROUP)
    count = (group.get("means") or {}).get("count") if isinstance(group, Mapping) else None
    return int(count) if isinstance(count, int) and count > 0 else 1


def summarise_seeds(run: Path, seed_setting: str, schema: Path, into: Path) -> list[int]:
    """Summarise a run folder's seeds into `into` and return the seeds, the run's own first. The run's own
    final_info.json is first kept as seeds/seed_<its seed>/final_info.json (once: the baseline's final_info.json
    is then replaced by the summary), and every seeds/seed_<s>/ result is checked against the schema."""
    info = read_result_file(run / FINAL_INFO_FILE)
    if SEEDS_GROUP in info:
        first_seed = info[SEEDS_GROUP]["seeds"][0]
    else:
        group, name = seed_setting.split(".", 1)
        first_seed = ((info.get(group) or {}).get("means") or {}).get(name)
        if isinstance(first_seed, bool) or not isinstance(first_seed, int):
            raise SeedsError(f"{run / FINAL_INFO_FILE}: no seed recorded at {seed_setting}; the template's manifest "
                             "([baseline] seed_setting) must name where its runs record their seed.")
        own = run / seed_folder(first_seed) / FINAL_INFO_FILE
        if not own.exists():
            atomic_write_text(own, json.dumps(info, indent=2))
    found = sorted(int(path.parent.name.removeprefix("seed_"))
                   for path in (run / SEEDS_DIR).glob(f"seed_*/{FINAL_INFO_FILE}"))
    order = [first_seed] + [seed for seed in found if seed != first_seed]
    infos = []
    for seed in order:
        path = run / seed_folder(seed) / FINAL_INFO_FILE
        problem = final_info_problem(path, schema)
        if problem:
            raise SeedsError(f"{path}: the result of seed {seed} cannot be summarised: {problem}")
        infos.append(read_result_file(path))
    atomic_write_text(into, json.dumps(aggregate(infos, order, seed_setting), indent=2))
    return order
