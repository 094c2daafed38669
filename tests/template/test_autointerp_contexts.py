"""autointerp_contexts.json for an SAE trained on the tiny workspace: the real model, held-out text and SAE, with
every context checked against a recomputation of the feature's activations."""

import json
import time

import pytest
import torch

from sae_harness.autointerp_contexts import (
    CONTEXTS_FILE,
    N_EXPLAIN,
    N_SCORE_ACTIVATING,
    N_SCORE_QUIET,
    write_autointerp_contexts,
)
from sae_harness.corpus import heldout_texts
from sae_harness.dashboard import MARK_CLOSE, MARK_OPEN, encode

SECONDS_LIMIT = 10


@pytest.fixture(scope="module")
def written(tiny_trained_sae, tiny_workspace, tmp_path_factory):
    assert tiny_workspace.model is not None  # loaded before the clock starts: a run has it from SAEBench's eval
    out_dir = tmp_path_factory.mktemp("autointerp") / "run_3"
    started = time.perf_counter()
    path = write_autointerp_contexts(tiny_trained_sae, tiny_workspace, out_dir)
    return json.loads(path.read_text()), time.perf_counter() - started, path


def test_the_file_is_written_in_the_run_folder_quickly(written):
    summary, seconds, path = written
    assert path.name == CONTEXTS_FILE and path.parent.name == "run_3" == summary["run"]
    assert not [p for p in path.parent.iterdir() if p.name.startswith(".")], "no temporary file is left behind"
    assert seconds < SECONDS_LIMIT
    assert summary["max_token_marker"] == [MARK_OPEN, MARK_CLOSE]
    assert summary["features"], "a trained SAE has live features to sample"


def test_each_feature_has_its_contexts_and_the_labels_match_the_sae(written, tiny_trained_sae, tiny_workspace):
    summary, _, _ = written
    ids = [feature["id"] for feature in summary["features"]]
    assert len(set(ids)) == len(ids)
    acts = encode(tiny_trained_sae, tiny_workspace.heldout, torch.tensor(ids))
    for column, feature in enumerate(summary["features"]):
        explaining, scoring = feature["explanation_contexts"], feature["scoring_contexts"]
        assert len(explaining) == N_EXPLAIN
        assert [c["activating"] for c in scoring] == [True] * N_SCORE_ACTIVATING + [False] * N_SCORE_QUIET
        assert all(c["text"].count(MARK_OPEN) == 1 and c["text"].count(MARK_CLOSE) == 1 for c in explaining)
        assert not any(MARK_OPEN in c["text"] for c in scoring), "scoring contexts carry no marks"
        top = float(acts[:, column].max())
        assert explaining[0]["activation"] == pytest.approx(top, rel=1e-5) == feature["max_activation"]
        assert [c["activation"] for c in explaining] == sorted((c["activation"] for c in explaining), reverse=True)
        assert all(c["activation"] > 0 for c in scoring[:N_SCORE_ACTIVATING])
        assert all(c["activation"] == 0 for c in scoring[N_SCORE_ACTIVATING:])
        # Scoring contexts come from across the activation range, not only from the top.
        assert min(c["activation"] for c in scoring[:N_SCORE_ACTIVATING]) < explaining[-1]["activation"]
        unmarked = [c["text"].replace(MARK_OPEN, "").replace(MARK_CLOSE, "") for c in explaining]
        assert not set(unmarked) & {c["text"] for c in scoring}, "no scoring context repeats an explanation's"


def test_every_context_is_held_out_text(written, tiny_workspace):
    summary, _, _ = written
    corpus = "\n".join(heldout_texts(tiny_workspace.preset.corpus, n_docs=400, cache_dir=tiny_workspace.cache_dir))
    for feature in summary["features"]:
        for context in feature["explanation_contexts"] + feature["scoring_contexts"]:
            text = context["text"].replace(MARK_OPEN, "").replace(MARK_CLOSE, "")
            assert text.strip() in corpus


def test_the_sample_is_the_same_on_every_call(written, tiny_trained_sae, tiny_workspace, tmp_path):
    summary, _, _ = written
    again = json.loads(write_autointerp_contexts(tiny_trained_sae, tiny_workspace, tmp_path / "run_3").read_text())
    assert again == summary
