"""Training throughput of the sae_variants template against SAELens 6.x (issue 7, CPU part).

    templates/sae_variants/.venv/bin/python bench/train_throughput.py            # default sizes
    templates/sae_variants/.venv/bin/python bench/train_throughput.py --quick    # tiny sizes, a smoke test

Two figures, both measured in this one process and run, on the same model (the template's default preset,
offline Gemma 3 270M, loaded with sae_harness/lm.py), the same hook, SAE width, batch size, token count and
dtype (float32 on the CPU):

1. step_ratio: SAE updates per second on one shared tensor of precomputed, normalised activations, over a whole
   training run from a fresh SAE (one sweep run's epochs * tokens / batch_size steps and its schedule): a ReLU
   SAE is dense for its first few dozen steps and sparse after, and ours exploits the sparse part.
   Ours is experiment.py's own build_sae() and train() loop (CustomSAE, ReLU + decoder-norm-weighted L1, or
   TopKSAE with --variant topk) with CustomTrainer, on dataclasses.replace(run_settings(config), ...) with the
   benchmark's variant, knob and sizes; SAELens's is SAETrainer.fit() on StandardTrainingSAE (or
   TopKTrainingSAE), Adam at the same lr, warmup and final linear decay. Both consume the very same batches
   in the same order: one CachedActivations.epoch() stream per side, from the same tensor and seed.
2. sweep_ratio: the research loop's workload end to end. Five configurations of one preset (L1 coefficients,
   or TopK k) trained one after another, activation generation included.
   Each run steps on epochs * tokens activations on both sides: ours computes `tokens` of them once for the
   whole sweep and passes over them `epochs` times per run (3, the template's default); SAELens, which has no
   epochs, streams epochs * tokens fresh ones per run. --epochs 1 compares the cache across runs alone.
   - Ours: five `python experiment.py --out_dir=run_i` subprocesses, exactly as the launcher runs them, and a
     fresh, empty SAE_CACHE_DIR: the first run computes the activations (and the held-out ones) and the other
     four read them from the on-disk cache. The SAE variant and its knob (L1 coefficient or k) are set where
     an idea sets them, in run_settings() of experiment.py: each configuration runs from its own copy of the
     template snapshot whose run_settings() says variant=... and sparsity_penalty=... (or k=...), as a coder's
     edit would, made and byte-compiled before the timing starts. The sizes (dict_size, batch_size,
     training_tokens, epochs, lr, warmup_steps, seed) and the harness's fields go in as SAE_* overrides of
     config.toml, which run_settings() reads; every run's final_info.json "settings" group is checked against
     what the benchmark asked for. Only the dequantised fp32 copy of the model is shared with the user's cache
     (a link), because making it is a one-off install step that SAELens's side does not pay either.
   - SAELens: LanguageModelSAETrainingRunner once per configuration in this process, each run generating
     its own activations with the same HookedTransformer (loaded once, passed as override_model).
   - SAEBench is skipped on both sides (SAE_RUN_SAEBENCH=false and SAE_RUN_INTERP_EVALS=false; SAELens's
     runner only evaluates when it logs to wandb, which is off). Ours still computes its held-out metrics,
     writes its autointerp contexts and writes and verifies its SAELens export, because that is the real path;
     SAELens's side only saves its SAE. So ours does more.
   - The runs are interleaved (ours 1, SAELens 1, ours 2, ...) so that load from other processes on the
     machine falls on both sides alike.

Equality of inputs: both sides read the same token rows. SAELens's side is given a pretokenized in-memory
datasets.Dataset (a 'tokens' column) built by sae_harness.corpus.token_rows, the function the template's own
activation cache calls; the template asks for the first `tokens` text tokens of the same rows, and the script
checks that those rows are a prefix of SAELens's. SAELens is told to leave out BOS and padding
(exclude_special_tokens), as the template does, so both train on the same kind of positions; after the sweep
the script compares SAELens's activations of the first rows with the template's cache. SAELens spends its
first ceil(20,000 / batch) batches on its norm estimate (the template's estimate also uses 20,000 tokens),
so it trains on the tokens that follow them.

The last line printed is one JSON object with all figures.
"""

import argparse
import atexit
import compileall
import dataclasses
import datetime
import io
import json
import math
import os
import platform
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import traceback
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import SimpleNamespace

IMPORT_STARTED = time.perf_counter()

REPO = Path(__file__).resolve().parent.parent
SOURCE_TEMPLATE = REPO / "templates" / "sae_variants"
# What the launcher leaves out when it copies the template into an idea folder, and the baseline and sweep runs.
SNAPSHOT_IGNORE = shutil.ignore_patterns(".venv", "__pycache__", "*.pyc", ".pytest_cache", "*.png", "run_*", "sweep_*")


def snapshot_template(work: Path, ref: str | None) -> Path:
    """Copy the template, as the launcher copies it into an idea folder, from the working tree or a git ref.

    Both sides then run one fixed version of the template, however the working tree changes during the benchmark.
    """
    source = SOURCE_TEMPLATE
    if ref:
        archive = subprocess.run(["git", "-C", str(REPO), "archive", "--format=tar", ref, "templates/sae_variants"],
                                 check=True, capture_output=True).stdout
        with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
            tar.extractall(work / "git", filter="data")
        source = work / "git" / "templates" / "sae_variants"
    shutil.copytree(source, work / "template", ignore=SNAPSHOT_IGNORE)
    return work / "template"


def template_source(ref: str | None) -> dict:
    def git(*args) -> str:
        done = subprocess.run(["git", "-C", str(REPO), *args], capture_output=True, text=True)
        return done.stdout.rstrip() if done.returncode == 0 else "unknown"

    if ref:
        return {"ref": ref, "commit": git("rev-parse", ref)}
    changed = git("status", "--porcelain", "--", "templates/sae_variants").splitlines()
    return {"ref": "working tree", "commit": git("rev-parse", "HEAD"), "uncommitted": [line[3:] for line in changed]}


_pre = argparse.ArgumentParser(add_help=False)
_pre.add_argument("--template-ref")
_pre.add_argument("--keep", action="store_true")
PRE_ARGS, _ = _pre.parse_known_args()
WORK = Path(tempfile.mkdtemp(prefix="sae_bench_"))
if not PRE_ARGS.keep:
    atexit.register(shutil.rmtree, WORK, ignore_errors=True)
TEMPLATE_DIR = snapshot_template(WORK, PRE_ARGS.template_ref)
sys.path.insert(0, str(TEMPLATE_DIR))

import numpy as np  # noqa: E402
import sae_lens  # noqa: E402
import torch  # noqa: E402
from datasets import Dataset  # noqa: E402
from sae_lens import (  # noqa: E402
    LanguageModelSAERunnerConfig,
    LanguageModelSAETrainingRunner,
    LoggingConfig,
    MultiSAETrainingRunner,
    MultiSAETrainingRunnerConfig,
)
from sae_lens.config import SAETrainerConfig  # noqa: E402
from sae_lens.saes.standard_sae import StandardTrainingSAE, StandardTrainingSAEConfig  # noqa: E402
from sae_lens.saes.topk_sae import TopKTrainingSAE, TopKTrainingSAEConfig  # noqa: E402
from sae_lens.training.activations_store import ActivationsStore  # noqa: E402
from sae_lens.training.sae_trainer import SAETrainer  # noqa: E402

import experiment  # noqa: E402  (the template's experiment.py: run_settings, build_sae, CustomTrainer, train)
from sae_harness.activations import CachedActivations  # noqa: E402
from sae_harness.config import load_config  # noqa: E402
from sae_harness.corpus import _pad_id, token_rows  # noqa: E402
from sae_harness.lm import load_model  # noqa: E402
from sae_harness.presets import PRESETS  # noqa: E402
from sae_harness.sae_base import HookSpec  # noqa: E402
from sae_harness.workspace import NORM_SAMPLE_TOKENS, default_cache_dir  # noqa: E402
from sae_topk import DEAD_AFTER_TOKENS  # noqa: E402

IMPORT_SECONDS = time.perf_counter() - IMPORT_STARTED
PRESET = PRESETS["gemma-3-270m"]
HOOK = HookSpec(PRESET.model_name, PRESET.layer, PRESET.hook_name)
DEFAULT_CONFIGS = {"relu": "0.3,0.6,1,2,4", "topk": "16,32,48,64,96"}
KNOB = {"relu": "sparsity_penalty", "topk": "k"}
"""The Settings field (experiment.py) that a sweep configuration sets, per variant."""
WARMUP_STEPS = 100  # the template's default warmup; capped at a quarter of a short run on both sides


@dataclass
class BenchConfig:
    tokens: int = 81_920
    """Language-model tokens per run (rounded down to a multiple of batch_size); the sweep computes them once."""
    epochs: int = 3
    """Ours passes over each run's activations this many times (the template's default). SAELens has no epochs: it
    streams epochs * tokens fresh tokens, so both sides take the same number of SAE steps on the same batch."""
    d_sae: int = 2048
    """SAE width (the template's default dict_size)."""
    batch_size: int = 2048
    """Activations per SAE step (the template's default)."""
    variant: str = "relu"
    """relu (CustomSAE against SAELens StandardSAE) or topk (TopKSAE against SAELens TopKSAE)."""
    configs: str = ""
    """Comma-separated sweep values: L1 coefficients for relu, k for topk. Empty: the variant's five defaults."""
    lr: float = 2e-3
    """Adam learning rate on both sides (the template's default)."""
    heldout_tokens: int = 0
    """Held-out tokens for ours' own metrics; 0 keeps the template's default (32,768)."""
    step_steps: int = 0
    """SAE updates per timed step-benchmark repetition; 0: as many as one run of the template at its default sizes
    (config.toml's training_tokens * run_settings()'s epochs / batch_size), warmup and decay included. A ReLU SAE
    fires densely for its first few dozen steps and sparsely after; the figure covers a whole run, not its start."""
    step_value: str = ""
    """The step benchmark's L1 coefficient (relu) or k (topk); empty: experiment.py's run_settings() value."""
    step_repeats: int = 3
    """Timed repetitions per side in the step benchmark, alternating ours and SAELens; the best one counts."""
    profile_steps: int = 3
    """Steps profiled with torch.profiler per side, after a whole run of training (0 turns profiling off)."""
    with_multi: bool = False
    """Also time SAELens's MultiSAETrainingRunner (all configurations from one LM pass) after the sweep."""
    skip_sweep: bool = False
    skip_steps: bool = False
    keep: bool = False
    """Keep the temporary folder (runs, caches, logs) and print its path."""
    seed: int = 0
    sweep_values: list = field(default_factory=list)

    def __post_init__(self):
        if self.variant not in DEFAULT_CONFIGS:
            raise SystemExit(f"--variant must be one of {', '.join(DEFAULT_CONFIGS)}")
        self.tokens = self.tokens // self.batch_size * self.batch_size
        if self.tokens < self.batch_size:
            raise SystemExit("--tokens must be at least --batch-size")
        text = self.configs or DEFAULT_CONFIGS[self.variant]
        cast = int if self.variant == "topk" else float
        self.sweep_values = [cast(v) for v in text.split(",") if v.strip()]

    @property
    def step_run(self) -> tuple[int, float]:
        """(steps, L1 coefficient or k) of the step benchmark's training run."""
        defaults = load_config(TEMPLATE_DIR / "config.toml", environ={"SAE_PRESET": PRESET.name})
        settings = experiment.run_settings(defaults)
        steps = self.step_steps or defaults.training_tokens // self.batch_size * settings.epochs
        if self.variant == "topk":
            return steps, int(self.step_value or settings.k)
        return steps, float(self.step_value or settings.sparsity_penalty)

    @property
    def sae_tokens(self) -> int:
        """SAE training tokens (activations stepped on) per run, on both sides."""
        return self.tokens * self.epochs

    @property
    def steps(self) -> int:
        return self.sae_tokens // self.batch_size

    def schedule(self, steps: int) -> tuple[int, int]:
        """(warmup steps, final decay steps): the template's 100-step warmup and 20% linear decay."""
        return min(WARMUP_STEPS, steps // 4), int(0.2 * steps)


# --------------------------------------------------------------------------------------------- machine


def machine_info() -> dict:
    cpu = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    mem_kb = next(int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines()
                  if line.startswith("MemTotal"))
    return {
        "cpu": cpu,
        "cores": len(os.sched_getaffinity(0)),
        "memory_gib": round(mem_kb / 2**20, 1),
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "sae_lens": sae_lens.__version__,
    }


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


# --------------------------------------------------------------------------------------------- inputs


def settings_fields(bench: BenchConfig, value, tokens: int, epochs: int) -> dict:
    """The fields of experiment.py's Settings that the benchmark fixes for one configuration: the variant, its knob
    (L1 coefficient or k) and the sizes and schedule; run_settings() gives the rest (dead_feature_method, ...)."""
    warmup, _ = bench.schedule(tokens * epochs // bench.batch_size)
    return {"variant": bench.variant, KNOB[bench.variant]: value, "dict_size": bench.d_sae,
            "batch_size": bench.batch_size, "epochs": epochs, "lr": bench.lr, "warmup_steps": warmup,
            "seed": bench.seed}


def template_env(bench: BenchConfig, cache_dir: Path, tokens: int, epochs: int) -> dict:
    """SAE_* overrides of config.toml for the benchmark's sizes: the harness's fields, and the training sizes that
    run_settings() reads from the configuration. The variant and its knob are not configuration any more; they go
    into run_settings() (configured_template(), or dataclasses.replace in process)."""
    warmup, _ = bench.schedule(tokens * epochs // bench.batch_size)
    env = {
        "SAE_PRESET": PRESET.name,
        "SAE_DEVICE": "cpu",
        "SAE_CACHE_DIR": str(cache_dir),
        "SAE_RUN_SAEBENCH": "false",
        "SAE_RUN_INTERP_EVALS": "false",
        "SAE_DICT_SIZE": str(bench.d_sae),
        "SAE_BATCH_SIZE": str(bench.batch_size),
        "SAE_TRAINING_TOKENS": str(tokens),
        "SAE_EPOCHS": str(epochs),
        "SAE_LR": str(bench.lr),
        "SAE_WARMUP_STEPS": str(warmup),
        "SAE_SEED": str(bench.seed),
    }
    if bench.heldout_tokens:
        env["SAE_HELDOUT_TOKENS"] = str(bench.heldout_tokens)
    return env


def bench_settings(bench: BenchConfig, value, tokens: int, epochs: int, config):
    """experiment.py's Settings for one in-process run: its run_settings(config) with the benchmark's fields."""
    return dataclasses.replace(experiment.run_settings(config), **settings_fields(bench, value, tokens, epochs))


def set_run_settings(text: str, values: dict) -> str:
    """experiment.py's text with each `name=...,` line of run_settings() set to `name=<value>,` (a trailing comment
    is kept). Stops the benchmark when run_settings() is not found or a name does not match exactly one line."""
    start = text.find("\ndef run_settings(")
    end = text.find("\n\n\n", start)
    if start < 0 or end < 0:
        raise SystemExit("bench: experiment.py has no top-level run_settings() to write the configuration into")
    body = text[start:end]
    for name, value in values.items():
        found = list(re.finditer(rf"^(?P<indent>[ \t]+){name}=[^,\n]*,", body, re.MULTILINE))
        if len(found) != 1:
            raise SystemExit(f"bench: {len(found)} lines of experiment.py's run_settings() set {name}= (one "
                             f"expected); update set_run_settings() in {Path(__file__).name} to the template")
        line = found[0]
        body = f"{body[:line.start()]}{line['indent']}{name}={value!r},{body[line.end():]}"
    return text[:start] + body + text[end:]


def configured_template(bench: BenchConfig, value, root: Path) -> Path:
    """A copy of the template snapshot whose run_settings() sets this configuration's variant and knob, as a coder
    edits experiment.py for a run. Its modules are byte-compiled here, untimed, as the in-process import of the
    snapshot had left them when all runs shared one copy."""
    copy = root / "template"
    shutil.copytree(TEMPLATE_DIR, copy, ignore=SNAPSHOT_IGNORE)
    script = copy / "experiment.py"
    script.write_text(set_run_settings(script.read_text(), {"variant": bench.variant, KNOB[bench.variant]: value}))
    if not compileall.compile_dir(copy, quiet=1):
        raise SystemExit(f"bench: the configured template in {copy} does not compile")
    return copy


def fresh_cache_dir(root: Path) -> Path:
    """An empty activation cache that shares only the dequantised fp32 model with the user's cache."""
    cache = root / "cache"
    user_models = default_cache_dir() / "models"
    cache.mkdir()
    if (user_models / "gemma-3-270m-fp32" / "config.json").exists():
        (cache / "models").symlink_to(user_models, target_is_directory=True)
    return cache


def norm_batches(bench: BenchConfig) -> int:
    """SAELens's norm-estimate batches: as many tokens as the template's own estimate, min(20,000, tokens)."""
    return math.ceil(min(NORM_SAMPLE_TOKENS, bench.tokens) / bench.batch_size)


def saelens_token_rows(bench: BenchConfig, tokenizer, context: int) -> torch.Tensor:
    """The template's token rows, long enough for SAELens's norm estimate, its training tokens and its buffer."""
    slack = 4 * PRESET.lm_batch_prompts["cpu"] * context
    wanted = bench.sae_tokens + norm_batches(bench) * bench.batch_size + slack
    try:
        return token_rows(PRESET.corpus, "train", tokenizer, context, wanted)
    except ValueError:  # ConfigError: the corpus is shorter; SAELens then starts a second pass, with a warning
        return token_rows(PRESET.corpus, "train", tokenizer, context, bench.sae_tokens)


def check_token_prefix(bench: BenchConfig, tokenizer, context: int, rows: torch.Tensor) -> bool:
    """True when the rows the template computes for `tokens` are the first rows SAELens reads."""
    ours = token_rows(PRESET.corpus, "train", tokenizer, context, bench.tokens)
    full = len(ours) - 1  # the template's last row may be padded where SAELens's row goes on
    return bool(torch.equal(ours[:full], rows[:full]))


# --------------------------------------------------------------------------------------------- SAELens side


def saelens_sae_config(bench: BenchConfig, value, normalize: str):
    common = dict(d_in=PRESET.d_model, d_sae=bench.d_sae, dtype="float32", device="cpu",
                  normalize_activations=normalize)
    if bench.variant == "topk":
        return TopKTrainingSAEConfig(k=int(value), **common)
    return StandardTrainingSAEConfig(l1_coefficient=float(value), **common)


def runner_settings(bench: BenchConfig, tokenizer, out_dir: Path) -> dict:
    """What SAELens's single and multi-SAE runner configs share: sizes, schedule, special tokens, no logging."""
    warmup, decay = bench.schedule(bench.steps)
    return dict(
        training_tokens=bench.sae_tokens,
        train_batch_size_tokens=bench.batch_size,
        store_batch_size_prompts=PRESET.lm_batch_prompts["cpu"],
        exclude_special_tokens=sorted({tokenizer.bos_token_id, _pad_id(tokenizer)}),
        n_batches_for_norm_estimate=norm_batches(bench),
        lr=bench.lr,
        lr_warm_up_steps=warmup,
        lr_decay_steps=decay,
        device="cpu",
        dtype="float32",
        seed=bench.seed,
        logger=LoggingConfig(log_to_wandb=False),
        n_eval_batches=0,
        checkpoint_path=None,
        output_path=str(out_dir),
    )


def saelens_runner_config(bench: BenchConfig, value, out_dir: Path, tokenizer, context: int):
    return LanguageModelSAERunnerConfig(
        sae=saelens_sae_config(bench, value, normalize="expected_average_only_in"),
        model_name=PRESET.model_name,
        hook_name=PRESET.hook_name,
        dataset_path="",
        is_dataset_tokenized=True,
        streaming=False,
        context_size=context,
        **runner_settings(bench, tokenizer, out_dir),
        verbose=False,
    )


def run_saelens(bench: BenchConfig, value, model, dataset, out_dir: Path, context: int) -> dict:
    """One LanguageModelSAETrainingRunner run; the language-model time is read with a timer around the store."""
    cfg = saelens_runner_config(bench, value, out_dir, model.tokenizer, context)
    started = time.perf_counter()
    runner = LanguageModelSAETrainingRunner(cfg, override_dataset=dataset, override_model=model)
    lm = {"seconds": 0.0, "batches": 0}
    get_activations = runner.activations_store.get_activations

    def timed_get_activations(batch_tokens):
        t0 = time.perf_counter()
        out = get_activations(batch_tokens)
        lm["seconds"] += time.perf_counter() - t0
        lm["batches"] += 1
        return out

    runner.activations_store.get_activations = timed_get_activations
    runner.run()
    wall = time.perf_counter() - started
    return {"value": value, "wall_s": wall, "lm_s": lm["seconds"], "lm_batches": lm["batches"],
            "sae_and_other_s": wall - lm["seconds"]}


def run_saelens_multi(bench: BenchConfig, model, dataset, out_dir: Path, context: int) -> dict:
    """SAELens's MultiSAETrainingRunner: all configurations trained side by side from one LM pass (--with-multi)."""
    saes = {f"sae_{i}": saelens_sae_config(bench, v, normalize="expected_average_only_in")
            for i, v in enumerate(bench.sweep_values, start=1)}
    cfg = MultiSAETrainingRunnerConfig(
        saes=saes,
        hook_names=PRESET.hook_name,
        model_name=PRESET.model_name,
        dataset_path="",
        streaming=False,
        context_size=context,
        **runner_settings(bench, model.tokenizer, out_dir),
    )
    started = time.perf_counter()
    MultiSAETrainingRunner(cfg, override_dataset=dataset, override_model=model).run()
    return {"wall_s": time.perf_counter() - started}


# --------------------------------------------------------------------------------------------- our side


def run_ours(bench: BenchConfig, value, template: Path, cache_dir: Path, out_dir: Path, log_dir: Path) -> dict:
    """One `python experiment.py --out_dir=...` subprocess in `template` (configured_template() for this value), as
    the research loop launches it. Stops the benchmark unless final_info.json records the settings asked for."""
    env = {**os.environ, **template_env(bench, cache_dir, bench.tokens, bench.epochs)}
    log = log_dir / f"{out_dir.name}.log"
    started = time.perf_counter()
    with open(log, "w") as handle:
        done = subprocess.run([sys.executable, "experiment.py", f"--out_dir={out_dir}"], cwd=template,
                              env=env, stdout=handle, stderr=subprocess.STDOUT, timeout=3600)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        tail = log.read_text()[-3000:]
        raise SystemExit(f"experiment.py failed for {value} (exit {done.returncode}); log {log}:\n{tail}")
    info = json.loads((out_dir / "final_info.json").read_text())
    recorded = {**info["settings"]["means"], **info["settings"]["choices"]}
    wanted = settings_fields(bench, value, bench.tokens, bench.epochs)
    differ = {name: (recorded.get(name), want) for name, want in wanted.items() if recorded.get(name) != want}
    if differ:
        raise SystemExit(f"experiment.py ran other settings than the benchmark's for {value} "
                         f"(name: (recorded, wanted)): {differ}")
    means = info["training"]["means"]
    return {
        "value": value,
        "settings": {name: recorded[name] for name in wanted},
        "wall_s": wall,
        "in_process_s": means["wall_seconds"],
        "setup_s": means["setup_seconds"],
        "train_s": means["training_seconds"],
        "eval_s": info["core"]["means"].get("eval_seconds", float("nan")),
        "training_tokens": means["training_tokens"],
    }


def ours_train_file(cache_dir: Path, tokens: int) -> Path:
    for meta in (cache_dir / "activations").glob("*.json"):
        key = json.loads(meta.read_text())
        if key["split"] == "train" and key["n_tokens"] == tokens:
            return meta.with_suffix(".npy")
    raise FileNotFoundError(f"no cached training activations of {tokens} tokens in {cache_dir}")


# --------------------------------------------------------------------------------------------- sweep


def sweep(bench: BenchConfig, root: Path) -> tuple[dict, Path]:
    root.mkdir()
    cache_dir = fresh_cache_dir(root)
    (root / "ours").mkdir()
    (root / "saelens").mkdir()
    (root / "logs").mkdir()
    context = PRESET.context_length

    t0 = time.perf_counter()
    model = load_model(PRESET, "cpu", cache_dir)
    model_load_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    rows = saelens_token_rows(bench, model.tokenizer, context)
    dataset = Dataset.from_dict({"tokens": rows.tolist()})
    dataset_s = time.perf_counter() - t0
    print(f"SAELens side: model loaded in {model_load_s:.1f} s, {len(rows)} token rows built in {dataset_s:.1f} s")

    templates = [configured_template(bench, value, root / "templates" / f"run_{i}")
                 for i, value in enumerate(bench.sweep_values, start=1)]
    ours_runs, saelens_runs = [], []
    for i, (value, template) in enumerate(zip(bench.sweep_values, templates), start=1):
        ours_runs.append(run_ours(bench, value, template, cache_dir, root / "ours" / f"run_{i}", root / "logs"))
        print(f"  ours    run_{i} ({value}): {ours_runs[-1]['wall_s']:.1f} s")
        saelens_runs.append(run_saelens(bench, value, model, dataset, root / "saelens" / f"run_{i}", context))
        print(f"  SAELens run_{i} ({value}): {saelens_runs[-1]['wall_s']:.1f} s")

    ours_total = sum(r["wall_s"] for r in ours_runs)
    saelens_total = IMPORT_SECONDS + model_load_s + dataset_s + sum(r["wall_s"] for r in saelens_runs)
    sae_tokens = bench.sae_tokens * len(bench.sweep_values)
    checks = {
        "ours_tokens_per_run": [r["training_tokens"] for r in ours_runs],
        # What each of ours' runs recorded as its KNOB (run_ours() has already checked every field it sets).
        "ours_recorded_values": [r["settings"][KNOB[bench.variant]] for r in ours_runs],
        "token_rows_prefix_equal": check_token_prefix(bench, model.tokenizer, context, rows),
        "activation_max_abs_diff": compare_first_activations(bench, model, dataset, cache_dir, context),
    }
    result = {
        "ours_runs": ours_runs,
        "saelens_runs": saelens_runs,
        "saelens_fixed_s": {"imports": IMPORT_SECONDS, "model_load": model_load_s, "token_rows": dataset_s},
        "ours_sweep_seconds": ours_total,
        "saelens_sweep_seconds": saelens_total,
        "ours_sweep_tokens_per_s": sae_tokens / ours_total,
        "saelens_sweep_tokens_per_s": sae_tokens / saelens_total,
        "sweep_ratio": saelens_total / ours_total,
        "checks": checks,
    }
    if bench.with_multi:
        multi = run_saelens_multi(bench, model, dataset, root / "saelens" / "multi", context)
        multi_total = IMPORT_SECONDS + model_load_s + dataset_s + multi["wall_s"]
        print(f"  SAELens MultiSAETrainingRunner, all {len(bench.sweep_values)} at once: {multi['wall_s']:.1f} s")
        result.update(saelens_multi_sweep_seconds=multi_total,
                      saelens_multi_sweep_tokens_per_s=sae_tokens / multi_total,
                      sweep_ratio_vs_multi=multi_total / ours_total)
    del model
    return result, cache_dir


@torch.no_grad()
def compare_first_activations(bench, model, dataset, cache_dir: Path, context: int) -> float:
    """Largest difference between SAELens's activations of the first LM batch and the template's cache."""
    cfg = saelens_runner_config(bench, bench.sweep_values[0], cache_dir / "unused", model.tokenizer, context)
    store = ActivationsStore.from_config(model, cfg, override_dataset=dataset)
    theirs = store.get_filtered_llm_batch()
    ours = torch.from_numpy(np.load(ours_train_file(cache_dir, bench.tokens), mmap_mode="r")[:len(theirs)].copy())
    return float((theirs - ours).abs().max())


# --------------------------------------------------------------------------------------------- step benchmark


def step_activations(bench: BenchConfig, cache_dir: Path | None, steps: int) -> torch.Tensor:
    """steps * batch_size normalised activations (the template's scale: mean norm sqrt(d_model))."""
    if cache_dir is not None:
        data = torch.from_numpy(np.load(ours_train_file(cache_dir, bench.tokens)))
    else:  # --skip-sweep: compute them through the template's own activation cache, in a temporary folder
        root = WORK / "step_activations"
        root.mkdir()
        cache = fresh_cache_dir(root)
        model = load_model(PRESET, "cpu", cache)
        from sae_harness.activations import ActivationKey, ActivationSource, cached_or_streamed

        key = ActivationKey(PRESET.model_name, PRESET.hook_name, PRESET.corpus, "train", bench.tokens,
                            PRESET.context_length, str(PRESET.torch_dtype("cpu")))
        source = ActivationSource(model, key, PRESET.layer, PRESET.lm_batch_prompts["cpu"])
        data = cached_or_streamed(source, cache, float("inf"), PRESET.d_model).all()
        shutil.rmtree(root, ignore_errors=True)
    data = data.float()
    sample = data[torch.randperm(len(data), generator=torch.Generator().manual_seed(bench.seed))[:NORM_SAMPLE_TOKENS]]
    scale = PRESET.d_model ** 0.5 / sample.norm(dim=-1).mean()
    need = steps * bench.batch_size
    reps = math.ceil(need / len(data))
    return (data.repeat(reps, 1)[:need] * scale).contiguous()


def as_cached_activations(acts: torch.Tensor) -> CachedActivations:
    """The template's CachedActivations over an in-memory tensor, so its own epoch() shuffler feeds both sides."""
    cached = CachedActivations.__new__(CachedActivations)
    cached.path, cached.key, cached.data = None, None, acts
    return cached


def ours_step_run(bench: BenchConfig, acts: torch.Tensor) -> tuple[float, float]:
    """Seconds for experiment.train() over acts (one epoch: len(acts) / batch_size steps), and the trained SAE's
    L0 on the first batch."""
    steps = len(acts) // bench.batch_size
    config, settings = step_settings(bench, acts)
    sae = experiment.build_sae(settings, PRESET.d_model, HOOK, "cpu")
    # The parts of the template's Workspace that train() reads (log_every comes from workspace.config).
    workspace = SimpleNamespace(train=as_cached_activations(acts), device="cpu", scale=1.0, config=config)
    started = time.perf_counter()
    facts = experiment.train(sae, workspace, settings)
    seconds = time.perf_counter() - started
    assert facts["training_steps"] == steps, facts["training_steps"]
    return seconds, l0(sae.encode, acts[:bench.batch_size])


def step_settings(bench: BenchConfig, acts: torch.Tensor):
    """(configuration, Settings) of the step benchmark's run over acts: one epoch, the step value, the template's
    schedule shortened to the run as SAELens's is (bench.schedule)."""
    env = template_env(bench, Path(tempfile.gettempdir()), len(acts), 1)
    config = load_config(TEMPLATE_DIR / "config.toml", environ=env)
    return config, bench_settings(bench, bench.step_run[1], len(acts), 1, config)


def l0(encode, x: torch.Tensor) -> float:
    with torch.no_grad():
        return (encode(x) > 0).float().sum(dim=-1).mean().item()


def saelens_trainer(bench: BenchConfig, acts: torch.Tensor) -> SAETrainer:
    steps = len(acts) // bench.batch_size
    warmup, decay = bench.schedule(steps)
    cfg = saelens_sae_config(bench, bench.step_run[1], normalize="none")
    torch.manual_seed(bench.seed)
    sae = TopKTrainingSAE(cfg) if bench.variant == "topk" else StandardTrainingSAE(cfg)
    provider = as_cached_activations(acts).epoch(bench.batch_size, torch.Generator().manual_seed(bench.seed))
    trainer_cfg = SAETrainerConfig(
        total_training_samples=len(acts) // bench.batch_size * bench.batch_size,
        train_batch_size_samples=bench.batch_size,
        lr=bench.lr, lr_end=bench.lr, lr_warm_up_steps=warmup, lr_decay_steps=decay,
        device="cpu", logger=LoggingConfig(log_to_wandb=False),
        # SAELens counts a feature dead after this many steps without firing; ours after DEAD_AFTER_TOKENS tokens.
        # The same window makes both start their AuxK loss at the same step.
        dead_feature_window=math.ceil(DEAD_AFTER_TOKENS / bench.batch_size),
    )
    return SAETrainer(cfg=trainer_cfg, sae=sae, data_provider=provider)


def saelens_step_run(bench: BenchConfig, acts: torch.Tensor) -> tuple[float, float]:
    """Seconds for SAETrainer.fit() over the same batches (constructing the trainer included, as for ours), and
    the trained SAE's L0 on the first batch."""
    started = time.perf_counter()
    trainer = saelens_trainer(bench, acts)
    trainer.fit()
    seconds = time.perf_counter() - started
    assert trainer.n_training_steps == len(acts) // bench.batch_size, trainer.n_training_steps
    return seconds, l0(trainer.sae.encode, acts[:bench.batch_size])


def paired_trainers(bench: BenchConfig, acts: torch.Tensor, total_steps: int):
    """Our CustomTrainer and SAELens's SAETrainer, each with a fresh SAE of the benchmark's variant and sizes."""
    _, settings = step_settings(bench, acts)
    ours_sae = experiment.build_sae(settings, PRESET.d_model, HOOK, "cpu")
    return experiment.CustomTrainer(ours_sae, settings, total_steps), saelens_trainer(bench, acts)


def interleaved_steps(bench: BenchConfig, acts: torch.Tensor) -> tuple[dict, tuple]:
    """One trainer step of each side in turn on the same batch, each timed alone: the median per-step time is
    robust to load from other processes, which a whole loop of one side and then the other is not. Returns
    the figures and the two trainers, trained."""
    ours, theirs = paired_trainers(bench, acts, total_steps=len(acts) // bench.batch_size)
    ours_s, theirs_s = [], []
    for i in range(len(acts) // bench.batch_size):
        x = acts[i * bench.batch_size:(i + 1) * bench.batch_size]
        for step, times in ((ours.step, ours_s), (theirs.step, theirs_s)):
            started = time.perf_counter()
            step(x)
            times.append(time.perf_counter() - started)
    ours_median, theirs_median = float(np.median(ours_s)), float(np.median(theirs_s))
    return {"ours_step_median_s": ours_median, "saelens_step_median_s": theirs_median,
            "step_ratio_interleaved": theirs_median / ours_median}, (ours, theirs)


def profile_steps(bench: BenchConfig, acts: torch.Tensor, trainers: tuple) -> dict:
    """Where one SAE update's CPU time goes on each side, once trained: GEMM share and calls, and the top
    operators."""
    from torch.profiler import ProfilerActivity, profile

    n = bench.profile_steps
    batches = [acts[i * bench.batch_size:(i + 1) * bench.batch_size] for i in range(n)]
    out = {}
    for name, trainer in zip(("ours", "saelens"), trainers):
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            for x in batches:
                trainer.step(x)
        events = prof.key_averages()
        total = sum(e.self_cpu_time_total for e in events)
        gemm = [e for e in events if e.key in ("aten::mm", "aten::addmm", "aten::bmm")]
        top = sorted(events, key=lambda e: e.self_cpu_time_total, reverse=True)[:8]
        out[name] = {
            "ms_per_step": total / 1000 / n,
            "gemm_fraction": sum(e.self_cpu_time_total for e in gemm) / total,
            "gemm_calls_per_step": sum(e.count for e in gemm) / n,
            "top_ops_ms_per_step": {e.key: round(e.self_cpu_time_total / 1000 / n, 1) for e in top},
        }
    return out


def step_benchmark(bench: BenchConfig, cache_dir: Path | None) -> dict:
    steps, value = bench.step_run
    acts = step_activations(bench, cache_dir, steps)
    warm = acts[:min(len(acts), 3 * bench.batch_size)]
    ours_step_run(bench, warm)
    saelens_step_run(bench, warm)
    ours_s, saelens_s = [], []
    for _ in range(bench.step_repeats):
        seconds, ours_l0 = ours_step_run(bench, acts)
        ours_s.append(seconds)
        seconds, saelens_l0 = saelens_step_run(bench, acts)
        saelens_s.append(seconds)
        print(f"  step benchmark, {steps} steps at {value}: ours {steps / ours_s[-1]:.3f} steps/s "
              f"(L0 {ours_l0:.1f} at the end), SAELens {steps / saelens_s[-1]:.3f} steps/s (L0 {saelens_l0:.1f})")
    ours_rate, saelens_rate = steps / min(ours_s), steps / min(saelens_s)
    result = {
        "steps": steps,
        "value": value,
        "ours_step_seconds": ours_s,
        "saelens_step_seconds": saelens_s,
        "ours_steps_per_s": ours_rate,
        "saelens_steps_per_s": saelens_rate,
        "ours_step_tokens_per_s": ours_rate * bench.batch_size,
        "saelens_step_tokens_per_s": saelens_rate * bench.batch_size,
        "step_ratio": ours_rate / saelens_rate,
        "ours_final_l0": ours_l0,
        "saelens_final_l0": saelens_l0,
    }
    interleaved, trainers = interleaved_steps(bench, acts)
    result.update(interleaved)
    print(f"  interleaved single steps: median ours {result['ours_step_median_s']:.3f} s, "
          f"SAELens {result['saelens_step_median_s']:.3f} s")
    if bench.profile_steps:
        result["profile"] = profile_steps(bench, acts, trainers)
    return result


# --------------------------------------------------------------------------------------------- report


def print_report(bench: BenchConfig, sweep_result: dict | None, step_result: dict | None):
    print()
    print(f"Model {PRESET.model_name}, hook {PRESET.hook_name}, d_sae {bench.d_sae}, batch {bench.batch_size}, "
          f"{bench.tokens} tokens per run, float32 on the CPU, variant {bench.variant}")
    if step_result:
        print(f"\nWhole training runs of {step_result['steps']} SAE updates at {step_result['value']} on one shared "
              f"tensor of activations (best of the repetitions); L0 after training: ours "
              f"{step_result['ours_final_l0']:.1f}, "
              f"SAELens {step_result['saelens_final_l0']:.1f}")
        print(f"  {'side':10} {'steps/s':>9} {'tokens/s':>10}")
        for side in ("ours", "saelens"):
            print(f"  {side:10} {step_result[f'{side}_steps_per_s']:9.3f} "
                  f"{step_result[f'{side}_step_tokens_per_s']:10.0f}")
        print(f"  step_ratio (ours / SAELens) = {step_result['step_ratio']:.2f}; with single steps interleaved "
              f"(median): {step_result['step_ratio_interleaved']:.2f}")
        for side, prof in step_result.get("profile", {}).items():
            print(f"  profile {side}: {prof['ms_per_step']:.0f} ms/step, GEMM {100 * prof['gemm_fraction']:.0f}% "
                  f"({prof['gemm_calls_per_step']:.0f} calls/step); top: "
                  + ", ".join(f"{k} {v}" for k, v in list(prof["top_ops_ms_per_step"].items())[:5]))
    if sweep_result:
        print(f"\nSweep of {len(bench.sweep_values)} configurations {bench.sweep_values}, cold activation cache:")
        print(f"  {'run':5} {'value':>6} {'ours wall':>10} {'other':>6} {'setup':>7} {'train':>7} {'eval':>6} "
              f"{'SAELens wall':>13} {'its LM':>7}")
        for i, (o, s) in enumerate(zip(sweep_result["ours_runs"], sweep_result["saelens_runs"]), start=1):
            print(f"  {i:<5} {o['value']:>6} {o['wall_s']:10.1f} {o['wall_s'] - o['in_process_s']:6.1f} "
                  f"{o['setup_s']:7.1f} {o['train_s']:7.1f} "
                  f"{o['eval_s']:6.1f} {s['wall_s']:13.1f} {s['lm_s']:7.1f}")
        fixed = sweep_result["saelens_fixed_s"]
        print(f"  SAELens once per sweep: imports {fixed['imports']:.1f} s, model load {fixed['model_load']:.1f} s, "
              f"token rows {fixed['token_rows']:.1f} s")
        print(f"  total: ours {sweep_result['ours_sweep_seconds']:.1f} s "
              f"({sweep_result['ours_sweep_tokens_per_s']:.0f} SAE tokens/s), SAELens "
              f"{sweep_result['saelens_sweep_seconds']:.1f} s "
              f"({sweep_result['saelens_sweep_tokens_per_s']:.0f} SAE tokens/s)")
        print(f"  sweep_ratio (ours / SAELens, tokens/s) = {sweep_result['sweep_ratio']:.2f}")
        if "sweep_ratio_vs_multi" in sweep_result:
            print(f"  against SAELens's MultiSAETrainingRunner: {sweep_result['saelens_multi_sweep_seconds']:.1f} s, "
                  f"ratio {sweep_result['sweep_ratio_vs_multi']:.2f}")
        print(f"  checks: {sweep_result['checks']}")


def sweep_parts(sweep_result: dict) -> dict:
    """Where the sweep's seconds went, per side (means over runs; ours' first run computes the activations)."""
    ours, theirs = sweep_result["ours_runs"], sweep_result["saelens_runs"]

    def mean(values: list) -> float:
        return round(float(np.mean(values or [0])), 1)

    return {
        "ours_first_run_s": round(ours[0]["wall_s"], 1),
        "ours_later_runs_mean_s": mean([r["wall_s"] for r in ours[1:]]),
        "ours_outside_main_mean_s": mean([r["wall_s"] - r["in_process_s"] for r in ours]),
        "ours_setup_later_runs_mean_s": mean([r["setup_s"] for r in ours[1:]]),
        "ours_train_mean_s": mean([r["train_s"] for r in ours]),
        "saelens_run_mean_s": mean([r["wall_s"] for r in theirs]),
        "saelens_lm_mean_s": mean([r["lm_s"] for r in theirs]),
        "saelens_once_s": round(sum(sweep_result["saelens_fixed_s"].values()), 1),
    }


def summary_json(bench: BenchConfig, machine: dict, loads: dict, sweep_result, step_result) -> dict:
    out = {
        "step_ratio": step_result and round(step_result["step_ratio"], 3),
        "step_ratio_interleaved": step_result and round(step_result["step_ratio_interleaved"], 3),
        "sweep_ratio": sweep_result and round(sweep_result["sweep_ratio"], 3),
        "ours_steps_per_s": step_result and round(step_result["ours_steps_per_s"], 4),
        "saelens_steps_per_s": step_result and round(step_result["saelens_steps_per_s"], 4),
        "ours_step_tokens_per_s": step_result and round(step_result["ours_step_tokens_per_s"], 1),
        "saelens_step_tokens_per_s": step_result and round(step_result["saelens_step_tokens_per_s"], 1),
        "ours_sweep_tokens_per_s": sweep_result and round(sweep_result["ours_sweep_tokens_per_s"], 1),
        "saelens_sweep_tokens_per_s": sweep_result and round(sweep_result["saelens_sweep_tokens_per_s"], 1),
        "ours_sweep_seconds": sweep_result and round(sweep_result["ours_sweep_seconds"], 1),
        "saelens_sweep_seconds": sweep_result and round(sweep_result["saelens_sweep_seconds"], 1),
        "sweep_parts": sweep_result and sweep_parts(sweep_result),
        "device": "cpu",
        "model": PRESET.model_name,
        "layer": PRESET.layer,
        "hook": PRESET.hook_name,
        "variant": bench.variant,
        "step_trainers": ("experiment.CustomTrainer + " + ("TopKSAE" if bench.variant == "topk" else "CustomSAE")
                          + " vs sae_lens SAETrainer + "
                          + ("TopKTrainingSAE" if bench.variant == "topk" else "StandardTrainingSAE")),
        "configs": bench.sweep_values,
        "d_sae": bench.d_sae,
        "batch_size": bench.batch_size,
        "tokens": bench.tokens,
        "epochs": bench.epochs,
        "sae_tokens_per_run": bench.sae_tokens,
        "step_steps": step_result and step_result["steps"],
        "step_value": step_result and step_result["value"],
        "step_final_l0": step_result and {"ours": round(step_result["ours_final_l0"], 1),
                                          "saelens": round(step_result["saelens_final_l0"], 1)},
        "dtype": "float32",
        "lr": bench.lr,
        "saebench": "skipped on both sides",
        "date": datetime.date.today().isoformat(),
        "machine": machine,
        "loadavg": loads,
    }
    if sweep_result:
        out["checks"] = sweep_result["checks"]
        if "sweep_ratio_vs_multi" in sweep_result:
            out["sweep_ratio_vs_saelens_multi"] = round(sweep_result["sweep_ratio_vs_multi"], 3)
            out["saelens_multi_sweep_tokens_per_s"] = round(sweep_result["saelens_multi_sweep_tokens_per_s"], 1)
    if step_result and "profile" in step_result:
        out["profile"] = {side: {k: round(v, 3) if isinstance(v, float) else v for k, v in p.items()}
                          for side, p in step_result["profile"].items()}
    return out


def parse_args(argv=None) -> BenchConfig:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="tiny sizes (2 configurations, 4 steps per run, d_sae 512): a smoke test, not a benchmark")
    parser.add_argument("--tokens", type=int, help="language-model tokens per run (default 81,920)")
    parser.add_argument("--epochs", type=int, help="ours' passes over them; SAELens streams epochs * tokens "
                        "(default 3, the template's)")
    parser.add_argument("--d-sae", type=int, help="SAE width (default 2048)")
    parser.add_argument("--batch-size", type=int, help="activations per SAE step (default 2048)")
    parser.add_argument("--variant", choices=sorted(DEFAULT_CONFIGS), help="relu (default) or topk")
    parser.add_argument("--configs", help="comma-separated L1 coefficients (relu) or k values (topk)")
    parser.add_argument("--lr", type=float, help="Adam learning rate on both sides (default 2e-3)")
    parser.add_argument("--heldout-tokens", type=int, help="ours' held-out tokens (default: the template's 32,768)")
    parser.add_argument("--step-steps", type=int, help="SAE updates per timed step-benchmark repetition (default: "
                        "one run of the template at its default sizes, 438 steps)")
    parser.add_argument("--step-value", help="the step benchmark's L1 coefficient or k (default: run_settings()'s)")
    parser.add_argument("--step-repeats", type=int, help="timed repetitions per side (default 3)")
    parser.add_argument("--profile-steps", type=int, help="steps profiled per side (default 3, 0 = off)")
    parser.add_argument("--with-multi", action="store_true",
                        help="also time SAELens's MultiSAETrainingRunner on the same configurations")
    parser.add_argument("--skip-sweep", action="store_true", help="only the step benchmark")
    parser.add_argument("--skip-steps", action="store_true", help="only the sweep")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder with runs, caches and logs")
    parser.add_argument("--template-ref", help="benchmark the template at this git ref (e.g. HEAD) instead of a copy "
                        "of the working tree")
    parser.add_argument("--json-out", type=Path, help="also write the final JSON object to this file")
    args = parser.parse_args(argv)
    values = {}
    if args.quick:
        values = dict(tokens=4096, d_sae=512, batch_size=1024, heldout_tokens=1024, step_steps=8, step_repeats=1,
                      profile_steps=2, epochs=1, configs="0.3,1" if args.variant != "topk" else "16,64")
    for name in ("tokens", "epochs", "d_sae", "batch_size", "variant", "configs", "lr", "heldout_tokens", "step_steps",
                 "step_value", "step_repeats", "profile_steps"):
        if getattr(args, name) is not None:
            values[name] = getattr(args, name)
    bench = BenchConfig(**values, with_multi=args.with_multi, skip_sweep=args.skip_sweep, skip_steps=args.skip_steps,
                        keep=args.keep)
    bench.json_out = args.json_out
    return bench


def main(argv=None) -> int:
    bench = parse_args(argv)
    machine = machine_info()
    source = template_source(PRE_ARGS.template_ref)
    loads = {"start": load_average()}
    print(f"Machine: {machine}; load average before starting {loads['start']} "
          f"(above 0, other processes share the {machine['cores']} cores)")
    print(f"Template: {source}, copied to {TEMPLATE_DIR}")
    sweep_result = cache_dir = step_result = None
    status = 0

    def save():
        summary = summary_json(bench, machine, loads, sweep_result, step_result)
        summary["template"] = source
        if bench.json_out:
            bench.json_out.write_text(json.dumps({"bench": asdict(bench), "summary": summary, "sweep": sweep_result,
                                                  "steps": step_result}, indent=2, default=str))
        return summary

    if not bench.skip_sweep:
        sweep_result, cache_dir = sweep(bench, WORK / "sweep")
        loads["after_sweep"] = load_average()
        print_report(bench, sweep_result, None)
        save()  # kept even if the step benchmark fails
    if not bench.skip_steps:
        try:
            step_result = step_benchmark(bench, cache_dir)
        except Exception:  # report what was measured, and fail the command
            traceback.print_exc()
            status = 1
    loads["end"] = load_average()
    if bench.keep:
        print(f"Kept {WORK}")
    print_report(bench, None, step_result)
    print(json.dumps(save()))
    return status


if __name__ == "__main__":
    sys.exit(main())
