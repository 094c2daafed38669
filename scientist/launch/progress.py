"""The live view of an idea: one line whenever its stage changes, and a heartbeat while an experiment runs.

A line reads
    [12:03:41] topk_activation | running run 2/5 | try 1/4 | $0.0123 | 6m02s | Training CustomSAE: 45% 263/585
The last field is the latest progress line the experiment printed (its tqdm bar), so a long run shows it is alive.
The same state is in the idea folder's state.json, for tools that watch from outside.
"""

import re
import sys
import time
from typing import TextIO

from scientist.llm.ledger import Ledger

# The stages that belong to one run; the others (plotting, describing plots, done) belong to the whole idea.
RUN_STAGES = ("coding", "running")


class ProgressView:
    def __init__(self, ledger: Ledger, max_runs: int, max_iters: int, stream: TextIO | None = None):
        self.ledger, self.max_runs, self.max_iters = ledger, max_runs, max_iters
        self.stream = stream or sys.stdout
        self.started = time.monotonic()

    def show(self, progress, activity: str = ""):
        """progress is the loop's IdeaProgress; activity, what the running experiment last printed."""
        elapsed = int(time.monotonic() - self.started)
        # A run's tries mean something only while it is coded and run; the other stages (plots, the paper, a tree
        # search's nodes) have their own retries or none.
        run_fields = ([f"{progress.stage} run {progress.run}/{self.max_runs}", f"try {progress.tries}/{self.max_iters}"]
                      if progress.stage in RUN_STAGES else [progress.stage])
        fields = [progress.idea, *run_fields, f"${self.ledger.total_usd:.4f}", f"{elapsed // 60}m{elapsed % 60:02d}s"]
        if progress.status != "running":
            fields.append(progress.status)
        if activity:
            fields.append(activity)
        print(f"[{time.strftime('%H:%M:%S')}] " + " | ".join(fields), file=self.stream, flush=True)


def last_progress_line(log_text: str) -> str:
    """The newest line of a log that tqdm writes with carriage returns, without its bar."""
    for line in reversed(log_text.replace("\r", "\n").splitlines()):
        line = " ".join(re.sub(r"\|[^|]*\|", " ", line).split())
        if line:
            return line[:120]
    return ""
