"""SAEBench's feature-absorption eval (the first-letter spelling task) on the loaded model, offline.

SAEBench 0.6.0's `absorption.main.run_eval` cannot be called here as it stands, so this module drives the pieces it
is made of (`common.train_and_save_probes`, `k_sparse_probing.run_k_sparse_probing_experiment`,
`feature_absorption.run_feature_absortion_experiment`, `main._aggregate_results_df`) and works around, at the edge:
- run_eval reloads the model from the hub (`HookedTransformer.from_pretrained_no_processing`): its experiments get
  the workspace's model instead;
- it writes its letter probe and every SAE's results under site-packages (`sae_bench/artifacts/absorption`), and a
  JSON into the working directory, keyed by SAE name alone, so a second SAE of the same name gets the first one's
  scores: the probe goes to our cache, keyed by model, hook, vocabulary sample and seed; each SAE's results go to a
  fresh temporary folder, under a name unique to its run and weights, always with force=True;
- it builds the task from the whole alphabetic vocabulary (139,585 Gemma 3 tokens, prompts of 88 tokens: about
  12M tokens of forward pass): the model it sees has its tokenizer's vocabulary narrowed to a seeded sample;
- it reads one residual stream but runs every layer and the 262k-way unembedding: the model it sees stops after the
  hook layer;
- it assumes every prompt has the same token length: words that do not stay one token in the prompt (three of
  Gemma 3's: ' YYYY', ' yyyy', ' diffformul') are left out of the sample;
- it draws from python's and torch's global generators: they are seeded for the eval and restored afterwards.
"""

import contextlib
import dataclasses
import hashlib
import json
import logging
import os
import random
import shutil
import statistics
import tempfile
import time
import warnings
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import torch
from sklearn.exceptions import UndefinedMetricWarning

from .evaluation import EvalGroup
from .sae_base import SAEBase

log = logging.getLogger(__name__)


EVAL_SEED = 0
"""The seed of the vocabulary sample, the letter probe and SAEBench's draws, whatever seed the SAE trained with: the
eval is one instrument for every run, so that the baseline's spread over its seeds is the SAEs' and not the
probe's (with the training seed, seeds 1 and 2 of the offline baseline drew vocabularies on which fewer than 20
letters had a usable probe, and got no score). 0 keeps the probe cached for the offline default."""

@dataclass(frozen=True)
class AbsorptionSizes:
    vocab_sample: int
    """Alphabetic tokens drawn (seeded) for the task; SAEBench trains its probes on 80% and scores the other 20%."""
    llm_batch_size: int
    """Prompts per forward pass when scoring absorption."""
    k_sparse_probe_epochs: int
    """Epochs of the L1 probe on SAE latents that picks each letter's candidate features (SAEBench: 50)."""
    max_k_value: int
    """Most latents a letter may be split across; SAEBench fits 26 x max_k_value sparse probes per SAE (its
    default: 10)."""
    min_letters: int
    """Letters whose ground-truth probe must reach F1 0.6 for a score (SAEBench's min_feats_for_eval: 20)."""


SIZES = {
    # Measured on 2 shared CPU cores (Gemma 3 270M, layer 6): 2,000 words leave 19 letters with a usable probe, short
    # of SAEBench's 20; 3,000 give 23. The probe costs about 15 minutes once (per model, hook and seed), the first
    # SAE about 4 more (its scored prompts' forward passes, then kept), each later SAE of 2,048 latents about 22 s.
    "cpu": AbsorptionSizes(vocab_sample=3_000, llm_batch_size=32, k_sparse_probe_epochs=50, max_k_value=10,
                           min_letters=20),
    # SAEBench's default is the whole alphabetic vocabulary; 20,000 keeps its per-SAE Python loops to minutes.
    "cuda": AbsorptionSizes(vocab_sample=20_000, llm_batch_size=128, k_sparse_probe_epochs=50, max_k_value=10,
                            min_letters=20),
}
PROBES_SUBDIR = Path("saebench") / "absorption_probes"
VOCAB_FILE = "vocab.json"
ACTIVATIONS_SUBDIR = "scored_prompt_activations"
MIN_WORDS_PER_LETTER = 5


def absorption_group(sae: SAEBase, workspace, run_name: str, sizes: AbsorptionSizes | None = None) -> EvalGroup:
    """SAEBench's absorption metrics for one SAE: means flattened as mean.<name>, its full output in details.
    `sizes` defaults to SIZES for the workspace's device."""
    from sae_bench.evals.absorption.feature_absorption import run_feature_absortion_experiment
    from sae_bench.evals.absorption.k_sparse_probing import run_k_sparse_probing_experiment
    from sae_bench.sae_bench_utils.general_utils import load_and_format_sae

    started = time.perf_counter()
    preset, device = workspace.preset, workspace.device
    sizes = sizes or sizes_for(workspace)
    config = eval_config(workspace, sizes)
    probes_dir = letter_probe_dir(workspace, sizes, config)
    model = TaskModel(workspace.model, preset.layer, json.loads((probes_dir / VOCAB_FILE).read_text()),
                      activation_store=probes_dir / ACTIVATIONS_SUBDIR, read_positions=-config.prompt_token_pos)
    _, sae, _ = load_and_format_sae("custom", sae, device)
    sae_name = f"{run_name.replace('/', '_')}_{weights_digest(sae)}"
    shared = dict(model=model, sae=sae, layer=preset.layer, sae_name=sae_name, max_k_value=config.max_k_value,
                  prompt_template=config.prompt_template, prompt_token_pos=config.prompt_token_pos, device=device,
                  probes_dir=probes_dir, force=True)
    with (tempfile.TemporaryDirectory() as results, seeded_generators(config.random_seed), torch.enable_grad(),
          warnings.catch_warnings()):
        # A letter that a k-sparse probe never predicts gets precision 0, as SAEBench intends; sklearn warns each time.
        warnings.simplefilter("ignore", UndefinedMetricWarning)
        k_sparse_dir = Path(results) / "k_sparse_probing"
        k_sparse = run_k_sparse_probing_experiment(
            **shared, experiment_dir=k_sparse_dir, f1_jump_threshold=config.f1_jump_threshold,
            k_sparse_probe_l1_decay=config.k_sparse_probe_l1_decay,
            k_sparse_probe_batch_size=config.k_sparse_probe_batch_size,
            k_sparse_probe_num_epochs=config.k_sparse_probe_num_epochs,
            eval_batch_size=config.eval_k_sparse_probe_batch_size,
            precalc_k_sparse_probe_sae_acts=config.precalc_k_sparse_probe_sae_acts,
        )
        probe_f1 = {row.letter: float(row.f1_probe) for row in k_sparse.itertuples()}
        usable = sum(f1 > config.min_GT_probe_f1 for f1 in probe_f1.values())
        if usable < config.min_feats_for_eval:
            # SAEBench stops here without a result: the letter probe itself is too weak to judge absorption.
            return EvalGroup("skipped", reason=(
                f"only {usable} letters have a ground-truth probe F1 above {config.min_GT_probe_f1} (SAEBench needs "
                f"{config.min_feats_for_eval}); raise the vocabulary sample ({sizes.vocab_sample} words)"),
                details={"probe_f1_by_letter": probe_f1})
        absorbed = run_feature_absortion_experiment(
            **shared, experiment_dir=Path(results) / "feature_absorption",
            sparse_probing_experiment_dir=k_sparse_dir,
            feature_split_f1_jump_threshold=config.f1_jump_threshold, batch_size=config.llm_batch_size,
        )
    output = json.loads(saebench_output(config, sae, sae_name, probe_f1, absorbed).to_json())
    means = {f"mean.{name}": value for name, value in output["eval_result_metrics"]["mean"].items()}
    return EvalGroup("ok", means, details={
        "saebench": output, "probe_f1_by_letter": probe_f1, "vocab_sample": sizes.vocab_sample,
        "eval_seconds": time.perf_counter() - started,
    })


def sizes_for(workspace) -> AbsorptionSizes:
    """SIZES for the workspace's device, with the configuration's absorption_words and absorption_min_letters where
    set (the tests' small sizes; below SAEBench's 20 letters a score is not SAEBench's standard)."""
    sizes, config = SIZES["cuda" if workspace.device.startswith("cuda") else "cpu"], workspace.config
    return dataclasses.replace(sizes, vocab_sample=config.absorption_words or sizes.vocab_sample,
                               min_letters=config.absorption_min_letters or sizes.min_letters)


def eval_config(workspace, sizes: AbsorptionSizes):
    from sae_bench.evals.absorption.eval_config import AbsorptionEvalConfig

    return AbsorptionEvalConfig(
        model_name=workspace.preset.model_name,
        random_seed=EVAL_SEED,
        llm_batch_size=sizes.llm_batch_size,
        llm_dtype=str(workspace.preset.torch_dtype(workspace.device)).removeprefix("torch."),
        k_sparse_probe_num_epochs=sizes.k_sparse_probe_epochs,
        max_k_value=sizes.max_k_value,
        min_feats_for_eval=sizes.min_letters,
        # SAEBench recommends it for small SAEs: the latents of a few thousand words fit in memory easily.
        precalc_k_sparse_probe_sae_acts=True,
    )


class TaskModel:
    """The workspace's model as SAEBench's absorption code sees it: forward passes stop after the hook layer, and
    its tokenizer's vocabulary (which SAEBench turns into the task's words) is narrowed to `task_tokens`.

    With an `activation_store`, each batch's hook activations are kept on disk by prompt text: the prompts SAEBench
    scores absorption on depend on the probe and the seed, not on the SAE, so only the first SAE pays for their
    forward passes. Only the last `read_positions` positions are kept: SAEBench reads `[:, prompt_token_pos]`
    with a negative position, which finds the same row in the kept tail."""

    def __init__(self, model, layer: int, task_tokens: list[str], activation_store: Path | None = None,
                 read_positions: int = 0):
        self._model = model
        self._stop_at_layer = layer + 1
        self._store = activation_store
        self._read_positions = read_positions
        self.tokenizer = NarrowedVocabulary(model.tokenizer, task_tokens)

    def run_with_cache(self, prompts, names_filter, **kwargs):
        if self._store is None:
            return self._model.run_with_cache(prompts, names_filter=names_filter, stop_at_layer=self._stop_at_layer,
                                              **kwargs)
        key = hashlib.sha256(json.dumps([list(names_filter), list(prompts), self._read_positions]).encode())
        path = self._store / f"{key.hexdigest()[:32]}.pt"
        if path.exists():
            return None, torch.load(path, map_location=self._model.cfg.device)
        _, cache = self._model.run_with_cache(prompts, names_filter=names_filter, stop_at_layer=self._stop_at_layer,
                                              **kwargs)
        kept = {name: cache[name][:, -self._read_positions:].clone() for name in names_filter}
        atomic_save(kept, path)
        return None, kept

    def __getattr__(self, name):
        return getattr(self._model, name)


class NarrowedVocabulary:
    """A tokenizer whose `vocab` holds only some tokens; tokenising and decoding are the full tokenizer's."""

    def __init__(self, tokenizer, tokens: list[str]):
        self._tokenizer = tokenizer
        self.vocab = dict(zip(tokens, tokenizer.convert_tokens_to_ids(tokens)))

    def __getattr__(self, name):
        return getattr(self._tokenizer, name)


def letter_probe_dir(workspace, sizes: AbsorptionSizes, config) -> Path:
    """The folder of SAEBench's letter probe and its train/test activations for this model, hook, vocabulary sample
    and seed, trained on first use and written atomically. It also holds the sampled tokens (vocab.json)."""
    from sae_bench.evals.absorption.common import train_and_save_probes

    preset = workspace.preset
    model_key = preset.model_name.replace("/", "_")
    key = f"{model_key}__{preset.hook_name}__vocab{sizes.vocab_sample}__seed{config.random_seed}"
    target = workspace.cache_dir / PROBES_SUBDIR / key
    if target.exists():
        return target
    started = time.perf_counter()
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{key}.", dir=target.parent))
    try:
        model = workspace.model
        tokens = task_tokens(model.tokenizer, sizes.vocab_sample, config.random_seed, config.prompt_template)
        with seeded_generators(config.random_seed), torch.enable_grad():
            train_and_save_probes(TaskModel(model, preset.layer, tokens), layers=[preset.layer],
                                  base_template=config.prompt_template, pos_idx=config.prompt_token_pos,
                                  probes_dir=staging, device=workspace.device)
        (staging / VOCAB_FILE).write_text(json.dumps(tokens))
        try:
            os.replace(staging, target)
        except OSError:
            if not target.exists():
                raise
            # Another process finished the same probe first: keep theirs.
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    log.info("Trained SAEBench's letter probe on %d words in %.0f s", len(tokens), time.perf_counter() - started)
    return target


def task_tokens(tokenizer, n: int, seed: int, template: str) -> list[str]:
    """A seeded sample of n alphabetic tokens (SAEBench's `get_alpha_tokens`), topped up to MIN_WORDS_PER_LETTER
    words for each first letter (SAEBench fits a probe per letter from the train split and fails on a letter it
    lacks), less the tokens that are not one token inside the prompt (SAEBench reads every prompt at one position)."""
    from sae_bench.evals.absorption.prompting import first_letter_formatter
    from sae_bench.evals.absorption.vocab import convert_tokens_to_string, get_alpha_tokens

    answer = first_letter_formatter()
    alphabetic = sorted(get_alpha_tokens(tokenizer, replace_special_chars=False))
    words = {token: convert_tokens_to_string(token, tokenizer) for token in alphabetic}
    generator = random.Random(seed)
    sample = generator.sample(alphabetic, min(n, len(alphabetic)))
    per_letter = Counter(answer(words[token]) for token in sample)
    chosen = set(sample)
    for token in generator.sample(alphabetic, len(alphabetic)):
        letter = answer(words[token])
        if token not in chosen and per_letter[letter] < MIN_WORDS_PER_LETTER:
            sample.append(token)
            per_letter[letter] += 1
    lengths = {token: len(tokenizer("\n" + template.format(word=words[token]) + answer(words[token]),
                                    add_special_tokens=False)["input_ids"]) for token in sample}
    usual = Counter(lengths.values()).most_common(1)[0][0]
    return [token for token in sample if lengths[token] == usual]


def atomic_save(obj, path: Path):
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = path.with_name(f".{path.name}.{os.getpid()}")
    torch.save(obj, staging)
    os.replace(staging, path)


def weights_digest(sae: SAEBase) -> str:
    digest = hashlib.sha256()
    for name, tensor in sorted(sae.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().float().cpu().numpy().tobytes())
    return digest.hexdigest()[:12]


@contextlib.contextmanager
def seeded_generators(seed: int):
    """Python's and torch's global generators seeded for the block, and the caller's states put back after."""
    python_state = random.getstate()
    random.seed(seed)
    try:
        with torch.random.fork_rng(devices=[torch.cuda.current_device()] if torch.cuda.is_available() else []):
            torch.manual_seed(seed)
            yield
    finally:
        random.setstate(python_state)


def saebench_output(config, sae: SAEBase, sae_name: str, probe_f1: dict[str, float], absorbed):
    """SAEBench's AbsorptionEvalOutput, aggregated as `main.run_eval` does (its loop body, which cannot be called on
    its own): per-letter scores for the letters whose ground-truth probe reaches min_GT_probe_f1, then their mean
    and standard deviation."""
    from sae_bench.evals.absorption.eval_output import (
        EVAL_TYPE_ID_ABSORPTION,
        AbsorptionEvalOutput,
        AbsorptionMeanMetrics,
        AbsorptionMetricCategories,
        AbsorptionResultDetail,
    )
    from sae_bench.evals.absorption.main import _aggregate_results_df
    from sae_bench.sae_bench_utils import get_eval_uuid, get_sae_bench_version, get_sae_lens_version

    letters = [row for _, row in _aggregate_results_df(absorbed).iterrows()
               if probe_f1[row["letter"]] > config.min_GT_probe_f1]
    details = [AbsorptionResultDetail(
        first_letter=row["letter"], mean_absorption_fraction=row["mean_absorption_fraction"],
        full_absorption_rate=row["full_absorption_rate"], num_full_absorption=row["num_full_absorption"],
        num_probe_true_positives=row["num_probe_true_positives"], num_split_features=row["num_split_feats"],
    ) for row in letters]
    fractions = [d.mean_absorption_fraction for d in details]
    full_rates = [d.full_absorption_rate for d in details]
    splits = [d.num_split_features for d in details]
    return AbsorptionEvalOutput(
        eval_type_id=EVAL_TYPE_ID_ABSORPTION,
        eval_config=config,
        eval_id=get_eval_uuid(),
        datetime_epoch_millis=int(datetime.now().timestamp() * 1000),
        eval_result_metrics=AbsorptionMetricCategories(mean=AbsorptionMeanMetrics(
            mean_absorption_fraction_score=statistics.mean(fractions),
            mean_full_absorption_score=statistics.mean(full_rates),
            mean_num_split_features=statistics.mean(splits),
            std_dev_absorption_fraction_score=statistics.stdev(fractions),
            std_dev_full_absorption_score=statistics.stdev(full_rates),
            std_dev_num_split_features=statistics.stdev(splits),
        )),
        eval_result_details=details,
        sae_bench_commit_hash=get_sae_bench_version(),
        sae_lens_id=sae_name,
        sae_lens_release_id="custom",
        sae_lens_version=get_sae_lens_version(),
        sae_cfg_dict=sae.cfg.to_dict(),
    )
