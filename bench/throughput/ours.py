"""Our side: the template run as the research loop runs it, one `python experiment.py --out_dir=run_i` process per
configuration, each from its own copy of the template whose run_settings() holds the configuration."""

import compileall
import dataclasses
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import experiment
from sae_harness.workspace import default_cache_dir

from .config import KNOB, BenchConfig
from .snapshot import SNAPSHOT_IGNORE, TEMPLATE_DIR


def settings_fields(bench: BenchConfig, value, tokens: int, epochs: int, variant: str | None = None) -> dict:
    """The fields of experiment.py's Settings that the benchmark fixes for one configuration: the variant, its knob
    (L1 coefficient or k) and the sizes and schedule; run_settings() gives the rest (dead_feature_method, ...)."""
    variant = variant or bench.variant
    warmup, _ = bench.schedule(tokens * epochs // bench.batch_size)
    return {"variant": variant, KNOB[variant]: value, "dict_size": bench.d_sae, "batch_size": bench.batch_size,
            "epochs": epochs, "lr": bench.lr, "warmup_steps": warmup, "seed": bench.seed}


def template_env(bench: BenchConfig, cache_dir: Path, tokens: int, epochs: int) -> dict:
    """SAE_* overrides of config.toml for the benchmark's sizes: the harness's fields, and the training sizes that
    run_settings() reads from the configuration. The variant and its knob go into run_settings() itself
    (configured_template(), or dataclasses.replace in process)."""
    warmup, _ = bench.schedule(tokens * epochs // bench.batch_size)
    env = {
        "SAE_PRESET": bench.preset,
        "SAE_DEVICE": bench.device,
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


def bench_settings(bench: BenchConfig, variant: str, value, tokens: int, epochs: int, config):
    """experiment.py's Settings for one in-process run: its run_settings(config) with the benchmark's fields."""
    return dataclasses.replace(experiment.run_settings(config),
                               **settings_fields(bench, value, tokens, epochs, variant))


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
    edits experiment.py for a run, byte-compiled here, untimed."""
    copy = root / "template"
    shutil.copytree(TEMPLATE_DIR, copy, ignore=SNAPSHOT_IGNORE)
    script = copy / "experiment.py"
    script.write_text(set_run_settings(script.read_text(), {"variant": bench.variant, KNOB[bench.variant]: value}))
    if not compileall.compile_dir(copy, quiet=1):
        raise SystemExit(f"bench: the configured template in {copy} does not compile")
    return copy


def fresh_cache_dir(root: Path) -> Path:
    """An empty activation cache that shares only the dequantised fp32 model with the user's cache: making it is a
    one-off install step that SAELens's side does not pay either."""
    cache = root / "cache"
    user_models = default_cache_dir() / "models"
    cache.mkdir(parents=True)
    if (user_models / "gemma-3-270m-fp32" / "config.json").exists():
        (cache / "models").symlink_to(user_models, target_is_directory=True)
    return cache


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


def ours_activation_file(cache_dir: Path, split: str, tokens: int | None = None) -> Path:
    """The template's cached activations of one split (of `tokens` tokens, when given)."""
    for meta in (cache_dir / "activations").glob("*.json"):
        key = json.loads(meta.read_text())
        if key["split"] == split and tokens in (None, key["n_tokens"]):
            return meta.with_suffix(".npy")
    raise FileNotFoundError(f"no cached {split} activations of {tokens or 'any number of'} tokens in {cache_dir}")
