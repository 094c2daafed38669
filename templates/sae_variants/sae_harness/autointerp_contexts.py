"""Held-out contexts for automated interpretability, written by each run for the research loop to score.

A run has no network and no API key, so it does not call an LLM: it writes run_i/autointerp_contexts.json, and
the research loop's autointerp stage (scientist/pipeline/autointerp.py) asks the launch's LLM to explain each
feature from its top contexts and then to pick, from the feature's scoring contexts, those where it fires.

For a seeded sample of live features, each feature gets:
- N_EXPLAIN explanation contexts: its highest held-out activations, the max token marked with MARK_OPEN/MARK_CLOSE;
- N_SCORE_ACTIVATING activating scoring contexts, one from each of as many equal-count bins of its remaining
  activations (ordered by activation), so that weak activations are scored as well as strong ones;
- N_SCORE_QUIET non-activating scoring contexts: random windows where the feature is 0 at every token shown.
No two windows of a feature share a token, so no scoring context repeats the explanation's text. Scoring contexts
carry no marks. Only held-out text is used, as in sae_harness/dashboard.py, whose window and piece functions these
are. templates/README.md describes the file's format, which is the contract with the research loop.
"""

import json
import os
import tempfile
from pathlib import Path

import numpy as np
import torch

from .dashboard import (
    MARK_CLOSE,
    MARK_OPEN,
    TOKENS_AFTER,
    TOKENS_BEFORE,
    Context,
    Heldout,
    activation_grid,
    context_window,
    encode,
    fires_and_activations,
    heldout_with_tokens,
    overlaps,
    top_positions,
)

CONTEXTS_FILE = "autointerp_contexts.json"
FORMAT_VERSION = 1
N_FEATURES = {"cpu": 16, "cuda": 64}   # features sampled per run, by device type
N_EXPLAIN = 5                # top contexts shown to the LLM for its explanation
N_SCORE_ACTIVATING = 5       # held-out contexts where the feature fires, for scoring the explanation
N_SCORE_QUIET = 5            # held-out contexts where it does not fire at all
QUIET_TRIES = 50             # random windows tried per non-activating context before a feature is passed over
CANDIDATE_FACTOR = 2         # candidates per feature wanted: some lack enough windows and are passed over
POOL_FACTOR = 8              # features whose activations the counting pass keeps, per feature wanted
SAMPLE_SEED_OFFSET = 4321    # features and contexts are drawn with config.seed + this


class Incomplete(Exception):
    """A feature has too few windows of one kind; the next candidate is taken instead."""


def write_autointerp_contexts(sae, workspace, out_dir: Path) -> Path:
    """Write out_dir/autointerp_contexts.json for the run's trained sae (on the raw activation scale, as a run
    saves it) and return its path. workspace: the run's Workspace (its held-out activations, tokenizer and config)."""
    config, preset = workspace.config, workspace.preset
    heldout = heldout_with_tokens(workspace.tokenizer, preset.corpus,
                                  config.preset_value("context_length", workspace.device), workspace.heldout,
                                  workspace.cache_dir)
    seed = config.seed + SAMPLE_SEED_OFFSET
    n_wanted = preset.for_device(N_FEATURES, workspace.device)
    features, fires = sampled_features(sae, workspace.tokenizer, heldout, n_wanted, np.random.default_rng(seed))
    summary = {
        "format": FORMAT_VERSION,
        "run": Path(out_dir).resolve().name,
        "model_name": preset.model_name,
        "hook_name": preset.hook_name,
        "d_sae": int(len(fires)),
        "heldout_tokens": int(len(heldout.acts)),
        "alive_features": int((fires > 0).sum()),
        "sample_seed": seed,
        "max_token_marker": [MARK_OPEN, MARK_CLOSE],
        "context_window": {"before": TOKENS_BEFORE, "after": TOKENS_AFTER},
        "features": features,
    }
    return _atomic_write_json(Path(out_dir) / CONTEXTS_FILE, summary)


def sampled_features(sae, tokenizer, heldout: Heldout, n_wanted: int,
                     rng: np.random.Generator) -> tuple[list[dict], np.ndarray]:
    """(up to n_wanted features with their contexts, every feature's firing count). Features are taken in a seeded
    random order among those that fire often enough to fill every kind of context; a candidate that still lacks
    windows (its firings crowd together) is passed over.

    Encoding the held-out tokens is the costly part, so one pass counts every feature's firings and keeps the
    activations of a pool of features early in the random order; only when too few of those qualify (an SAE with
    many dead features) does a second pass encode the rest of the candidates.
    """
    n_tokens = len(heldout.acts)
    order = rng.permutation(sae.W_dec.shape[0])
    pool = order[:POOL_FACTOR * n_wanted]
    fires, pool_acts = fires_and_activations(sae, heldout.acts, torch.from_numpy(pool))
    fires = fires.numpy()
    eligible = (fires >= N_EXPLAIN + N_SCORE_ACTIVATING) & (fires < n_tokens)
    candidates = order[eligible[order]][:CANDIDATE_FACTOR * n_wanted]
    columns = {int(feature_id): pool_acts[:, i] for i, feature_id in enumerate(pool)}
    outside_pool = [int(feature_id) for feature_id in candidates if int(feature_id) not in columns]
    if outside_pool:
        columns.update(zip(outside_pool, encode(sae, heldout.acts, torch.tensor(outside_pool)).T))
    features = []
    for feature_id in candidates.tolist():
        try:
            features.append(feature_contexts(tokenizer, heldout, feature_id, columns[feature_id].float(), fires, rng))
        except Incomplete:
            continue
        if len(features) == n_wanted:
            break
    return features, fires


def feature_contexts(tokenizer, heldout: Heldout, feature_id: int, acts_f: torch.Tensor, fires: np.ndarray,
                     rng: np.random.Generator) -> dict:
    grid = activation_grid(heldout, acts_f)
    positions = heldout.valid.nonzero()
    picked = top_positions(heldout, acts_f, N_EXPLAIN)
    if len(picked) < N_EXPLAIN:
        raise Incomplete
    explaining = [context_window(tokenizer, heldout, grid, row, pos) for row, pos in picked]
    activating = activating_positions(positions, acts_f, picked, rng)
    quiet = quiet_positions(heldout, grid, positions, acts_f, picked, rng)
    scoring = ([_scoring(context_window(tokenizer, heldout, grid, row, pos), True) for row, pos in activating]
               + [_scoring(context_window(tokenizer, heldout, grid, row, pos), False) for row, pos in quiet])
    return {"id": feature_id, "density": float(fires[feature_id]) / len(acts_f),
            "max_activation": float(acts_f.max()),
            "explanation_contexts": [{"text": c.marked_text, "activation": c.activation} for c in explaining],
            "scoring_contexts": scoring}


def activating_positions(positions: torch.Tensor, acts_f: torch.Tensor, picked: list[tuple[int, int]],
                         rng: np.random.Generator) -> list[tuple[int, int]]:
    """One position from each of N_SCORE_ACTIVATING equal-count bins of the firings no picked window covers,
    ordered by activation; added to picked."""
    free = [(activation, row, pos) for (row, pos), activation in
            zip(positions[acts_f > 0].tolist(), acts_f[acts_f > 0].tolist()) if not overlaps(picked, row, pos)]
    if len(free) < N_SCORE_ACTIVATING:
        raise Incomplete
    free.sort()
    chosen = []
    for bin_ in np.array_split(np.arange(len(free)), N_SCORE_ACTIVATING):
        spot = next(((row, pos) for _, row, pos in (free[i] for i in rng.permutation(bin_))
                     if not overlaps(picked, row, pos)), None)
        if spot is None:
            raise Incomplete
        picked.append(spot)
        chosen.append(spot)
    return chosen


def quiet_positions(heldout: Heldout, grid: torch.Tensor, positions: torch.Tensor, acts_f: torch.Tensor,
                    picked: list[tuple[int, int]], rng: np.random.Generator) -> list[tuple[int, int]]:
    """N_SCORE_QUIET random positions whose whole window has the feature at 0; added to picked."""
    silent = np.flatnonzero(acts_f.numpy() <= 0)
    chosen = []
    for flat in rng.choice(silent, size=min(len(silent), QUIET_TRIES * N_SCORE_QUIET), replace=False).tolist():
        row, pos = positions[flat].tolist()
        window = grid[row, max(0, pos - TOKENS_BEFORE):pos + TOKENS_AFTER + 1]
        if window.max() <= 0 and not overlaps(picked, row, pos):
            picked.append((row, pos))
            chosen.append((row, pos))
            if len(chosen) == N_SCORE_QUIET:
                return chosen
    raise Incomplete


def _scoring(context: Context, activating: bool) -> dict:
    return {"text": context.text, "activating": activating, "activation": context.activation}


def _atomic_write_json(path: Path, data: dict) -> Path:
    """Written beside the target and renamed over it: a killed run never leaves half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", dir=path.parent, prefix=f".{path.name}-", delete=False,
                                     encoding="utf-8") as tmp:
        json.dump(data, tmp, indent=2, ensure_ascii=False)
        tmp.flush()
        os.fsync(tmp.fileno())
    os.replace(tmp.name, path)
    return path
