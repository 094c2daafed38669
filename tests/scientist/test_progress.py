"""The live view's line: a run's tries are shown while the run is coded and run, and nowhere else."""

import io

from scientist.launch.progress import ProgressView
from scientist.llm.ledger import Ledger
from scientist.store.state import IdeaState


def line(tmp_path, **state) -> str:
    out = io.StringIO()
    ProgressView(Ledger(tmp_path / "cost_ledger.json"), max_runs=5, max_iters=4, stream=out).show(
        IdeaState(idea="topk", status="running", **state), activity="Training: 45% 263/585")
    return out.getvalue()


def test_tries_are_shown_only_for_a_run_being_coded_or_run(tmp_path):
    running = line(tmp_path, stage="running", run=2, tries=1)
    assert " | running run 2/5 | try 1/4 | $0.0000 | " in running and running.endswith("| Training: 45% 263/585\n")
    for stage in ("plotting", "tree search", "writing paper"):
        shown = line(tmp_path, stage=stage, run=3, tries=0)
        assert f" | {stage} | $0.0000 | " in shown and "try" not in shown, stage
