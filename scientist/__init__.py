"""The research loop's orchestrator. Its subpackages: launch (the command line, preflight, workers), pipeline
(the stages of an idea), experiment (a template's manifest, runs, sandbox, baseline, metrics), ideas, llm, paper
(write-up, LaTeX, claims, review, report) and store (the idea folder and its records)."""

from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
