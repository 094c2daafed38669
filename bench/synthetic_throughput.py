"""Training on the synthetic preset against SAELens's SyntheticSAERunner: speed and ground-truth quality (issue 17).

    templates/sae_variants/.venv/bin/python bench/synthetic_throughput.py            # synth-cpu's sizes
    templates/sae_variants/.venv/bin/python bench/synthetic_throughput.py --quick    # tiny sizes, a smoke test

One process, one synthetic model (the synth-cpu preset's SyntheticModel, sae_harness/synthetic.py), one SAE on both
sides: TopK with the same k, width, batch size, Adam learning rate, warmup, final 20% linear decay and number of
steps, float32 on the CPU.

- Ours: experiment.py's own build_sae() and train() with dataclasses.replace(run_settings(config), variant="topk",
  k=K, sizes...) on Workspace.prepare(config) of the synth-cpu preset, as `SAE_PRESET=synth-cpu python
  experiment.py` runs them (decoder bias at the mean sample, then the scale folded back into the SAE afterwards,
  as experiment.run does). Ours keeps run_settings()'s dead_feature_method (resampling next to TopK's AuxK loss);
  the JSON records it.
- SAELens: SyntheticSAERunner(SyntheticSAERunnerConfig(...), override_synthetic_model=<the same SyntheticModel
  object ours trains on>). SAELens's own init and loss (decoder init norm 0.1, rescale by decoder norm, AuxK
  coefficient 1); its AuxK dead window is set to ours' (DEAD_AFTER_TOKENS samples), and it normalises the
  activations to mean norm sqrt(d_in) from as many samples as ours' scale estimate (expected_average_only_in),
  as ours does. No wandb, no periodic or final eval of its own, no checkpoints, no outputs.

The samples are not the same ones; the distribution is. SyntheticSAERunner takes no data: run() always draws
fresh batches from the synthetic model's activation generator through torch's global generator (seeded here), and
steps * batch_size of them (plus its norm-estimate batches). Ours trains epochs passes over the preset's cached
training split (training_tokens samples drawn once under the split's seed), so SAELens sees epochs times as many
distinct samples.

Timing, each side from a built SAE to a trained one, each on its real data path (step_ratio compares these):
- ours_steps_per_s: train() with initialise_decoder_bias() before it; the samples come from the activation cache
  (a shuffled read of the cached .npy per batch). Making that cache (drawing and writing the samples, once per
  preset and machine) happens in Workspace.prepare(), timed apart as ours_prepare_s; ours_steps_per_s_incl_prepare
  counts it in, as the first run of the preset on a machine pays it. By default the cache is a fresh temporary
  folder, so prepare is that cold start (cold_cache in the JSON; with --cache-dir it may find the samples there).
- saelens_steps_per_s: SyntheticSAERunner.run(), which draws every batch on the fly (its norm estimate included).
- *_data_s: the part of each loop spent getting batches, timed inside the same run: ours around each batch the
  cache yields, SAELens's from its activation generator's call to the end of its feature dictionary's (forward
  hooks on both modules, which SyntheticActivationIterator calls once per batch). *_steps_per_s_excl_data and
  step_ratio_excl_data take it out: the SAE steps alone.
Model build, imports and scoring are outside every figure. With --repeats N the two sides alternate (ours,
SAELens, ours, ...) so that load from other processes falls on both; the fastest run of each side counts.

Quality: both trained SAEs are scored by one function, sae_harness.synthetic.ground_truth_scores (SAELens's
eval_sae_on_synthetic_data on the preset's held-out split, the same samples for both), on raw (unscaled) vectors.
The true dictionary as an SAE (reference_scores, k = the generator's mean L0) is the ceiling. The default k is
that mean L0, so that an SAE can match the truth; --k changes it. The last repetition's SAEs are scored: every
repetition starts from the same seeds. The script exits 1 when any run took other steps or batch sizes.

The last line printed is one JSON object with all figures.
"""

import argparse
import atexit
import dataclasses
import datetime
import json
import math
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SOURCE_TEMPLATE = REPO / "templates" / "sae_variants"
PRESET_NAME = "synth-cpu"
WORK = Path(tempfile.mkdtemp(prefix="sae_bench_synth_"))
atexit.register(shutil.rmtree, WORK, ignore_errors=True)
# A snapshot of the template, as bench/train_throughput.py takes: the benchmark runs one fixed version of it however
# the working tree changes meanwhile.
TEMPLATE_DIR = WORK / "template"
shutil.copytree(SOURCE_TEMPLATE, TEMPLATE_DIR, ignore=shutil.ignore_patterns(
    ".venv", "__pycache__", "*.pyc", ".pytest_cache", "*.png", "run_*", "sweep_*", "logs"))
sys.path.insert(0, str(TEMPLATE_DIR))


def git(*args) -> str:
    done = subprocess.run(["git", "-C", str(REPO), *args], capture_output=True, text=True)
    return done.stdout.rstrip() if done.returncode == 0 else "unknown"


TEMPLATE_UNCOMMITTED = [line[3:] for line in git("status", "--porcelain", "--", "templates/sae_variants").splitlines()]
"""The template files whose snapshot differs from the commit benchmarked (the working tree's edits)."""

import sae_lens  # noqa: E402
import torch  # noqa: E402
from sae_lens import LoggingConfig  # noqa: E402
from sae_lens.saes.topk_sae import TopKTrainingSAEConfig  # noqa: E402
from sae_lens.synthetic.synthetic_sae_runner import SyntheticSAERunner, SyntheticSAERunnerConfig  # noqa: E402
from torch.optim.optimizer import register_optimizer_step_post_hook  # noqa: E402

import experiment  # noqa: E402  (the template's experiment.py: run_settings, build_sae, train)
from sae_harness.activations import cache_path  # noqa: E402
from sae_harness.config import load_config  # noqa: E402
from sae_harness.presets import PRESETS  # noqa: E402
from sae_harness.synthetic import (  # noqa: E402
    SAMPLE_BATCH,
    ground_truth_scores,
    load_synthetic_model,
    model_dir,
    reference_scores,
    split_key,
)
from sae_harness.workspace import NORM_SAMPLE_TOKENS, Workspace  # noqa: E402
from sae_topk import DEAD_AFTER_TOKENS  # noqa: E402

PRESET = PRESETS[PRESET_NAME]
QUICK = dict(samples=16_384, heldout=8192, epochs=2, batch_size=1024)
"""--quick: 32 steps per side, one 8,192-sample held-out batch (the ground-truth eval's batch)."""
SCORES = ("f1", "mcc", "precision", "recall", "sae_l0", "explained_variance", "dead_latents")


@dataclasses.dataclass
class Sizes:
    samples: int
    """Training samples of ours' cached split (config.toml's training_tokens)."""
    heldout: int
    """Held-out samples both SAEs are scored on (a multiple of the ground-truth eval's batch of 8,192)."""
    epochs: int
    batch_size: int
    d_sae: int
    lr: float
    warmup: int
    k: int
    seed: int

    @property
    def steps(self) -> int:
        return self.samples // self.batch_size * self.epochs

    @property
    def decay_steps(self) -> int:
        """Ours decays the rate linearly to zero over the last 20% of the steps (experiment.CustomTrainer)."""
        return int(0.2 * self.steps)

    @property
    def norm_batches(self) -> int:
        """SAELens's norm-estimate batches: as many samples as ours' scale estimate reads."""
        return math.ceil(min(NORM_SAMPLE_TOKENS, self.samples) / self.batch_size)


def template_env(sizes: Sizes, cache_dir: Path) -> dict:
    """SAE_* overrides of config.toml, as a run gets them: the preset, the CPU, the cache and the sizes."""
    return {"SAE_PRESET": PRESET_NAME, "SAE_DEVICE": "cpu", "SAE_CACHE_DIR": str(cache_dir),
            "SAE_TRAINING_TOKENS": str(sizes.samples), "SAE_HELDOUT_TOKENS": str(sizes.heldout),
            "SAE_EPOCHS": str(sizes.epochs), "SAE_BATCH_SIZE": str(sizes.batch_size),
            "SAE_DICT_SIZE": str(sizes.d_sae), "SAE_LR": str(sizes.lr), "SAE_WARMUP_STEPS": str(sizes.warmup),
            "SAE_SEED": str(sizes.seed)}


def ours_settings(sizes: Sizes, config):
    return dataclasses.replace(experiment.run_settings(config), variant="topk", k=sizes.k, dict_size=sizes.d_sae,
                               batch_size=sizes.batch_size, epochs=sizes.epochs, lr=sizes.lr,
                               warmup_steps=sizes.warmup, seed=sizes.seed)


class TimedSplit:
    """The workspace's training split, unchanged, with the seconds spent producing each batch of epoch() added up."""

    def __init__(self, split):
        self.split, self.seconds = split, 0.0

    def __len__(self) -> int:
        return len(self.split)

    def sample(self, n: int, generator: torch.Generator) -> torch.Tensor:
        return self.split.sample(n, generator)

    def epoch(self, batch_size: int, generator: torch.Generator):
        batches = self.split.epoch(batch_size, generator)
        while True:
            started = time.perf_counter()
            batch = next(batches, None)
            self.seconds += time.perf_counter() - started
            if batch is None:
                return
            yield batch


def run_ours(sizes: Sizes, workspace: Workspace) -> dict:
    settings = ours_settings(sizes, workspace.config)
    sae = experiment.build_sae(settings, PRESET.d_model, workspace.hook, "cpu")
    split = TimedSplit(workspace.train)
    workspace = dataclasses.replace(workspace, train=split)
    started = time.perf_counter()
    workspace.initialise_decoder_bias(sae)
    facts = experiment.train(sae, workspace, settings)
    seconds = time.perf_counter() - started
    sae.eval()
    sae.fold_activation_scale(workspace.scale)
    return {"sae": sae, "seconds": seconds, "data_seconds": split.seconds, "steps": facts["training_steps"],
            "batch_size": facts["training_tokens"] // facts["training_steps"],
            "dead_feature_method": settings.dead_feature_method}


def saelens_config(sizes: Sizes, model_path: Path) -> SyntheticSAERunnerConfig:
    sae = TopKTrainingSAEConfig(d_in=PRESET.d_model, d_sae=sizes.d_sae, k=sizes.k, dtype="float32", device="cpu",
                                normalize_activations="expected_average_only_in")
    return SyntheticSAERunnerConfig(
        # Required by the config; the runner is handed the loaded model itself (override_synthetic_model).
        synthetic_model=str(model_path),
        sae=sae,
        training_samples=sizes.steps * sizes.batch_size,
        batch_size=sizes.batch_size,
        lr=sizes.lr,
        lr_warm_up_steps=sizes.warmup,
        lr_decay_steps=sizes.decay_steps,
        device="cpu",
        n_checkpoints=0,
        checkpoint_path=None,
        output_path=None,
        eval_frequency=0,
        run_final_eval=False,
        # SAELens counts a latent dead after this many steps without firing, ours after DEAD_AFTER_TOKENS samples:
        # the same window starts both AuxK losses at the same step.
        dead_feature_window=math.ceil(DEAD_AFTER_TOKENS / sizes.batch_size),
        n_batches_for_norm_estimate=sizes.norm_batches,
        # SAELens's LoggingConfig logs to wandb by default, which would need a login and the network.
        logger=LoggingConfig(log_to_wandb=False),
    )


def run_saelens(sizes: Sizes, model, model_path: Path) -> dict:
    """One SyntheticSAERunner run. Its trainer is made inside run() and not returned, so the steps are counted
    with torch's global optimizer-step hook, and the batches it drew (and the time they took) with hooks on the
    two modules that make every batch: the activation generator (feature activations) and the feature dictionary
    (hidden vectors)."""
    # The runner draws its SAE's initialisation and every batch from torch's global generator.
    torch.manual_seed(sizes.seed)
    runner = SyntheticSAERunner(saelens_config(sizes, model_path), override_synthetic_model=model)
    counts = {"steps": 0, "batches": 0, "samples": 0, "data_seconds": 0.0, "batch_started": 0.0}

    def count_step(optimizer, args, kwargs):
        counts["steps"] += 1

    def start_batch(module, args):
        counts["batch_started"] = time.perf_counter()

    def count_batch(module, args, output):
        counts["data_seconds"] += time.perf_counter() - counts["batch_started"]
        counts["batches"] += 1
        counts["samples"] += len(output)

    hooks = [register_optimizer_step_post_hook(count_step),
             model.activation_generator.register_forward_pre_hook(start_batch),
             model.feature_dict.register_forward_hook(count_batch)]
    try:
        started = time.perf_counter()
        result = runner.run()
        seconds = time.perf_counter() - started
    finally:
        for hook in hooks:
            hook.remove()
    training_samples = counts["samples"] - sizes.norm_batches * sizes.batch_size
    return {"sae": result.sae.eval(), "seconds": seconds, "data_seconds": counts["data_seconds"],
            "steps": counts["steps"],
            "batch_size": training_samples // max(1, counts["steps"]), "batches_drawn": counts["batches"]}


def scores(sae, model, n_heldout: int) -> dict:
    out = ground_truth_scores(sae, model, n_heldout, "cpu")
    return {name: out[name] for name in SCORES}


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def parse_args(argv=None) -> tuple[argparse.Namespace, Sizes]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="tiny sizes (32 steps per side, 8,192 held-out samples): a smoke test, not a benchmark")
    parser.add_argument("--samples", type=int, help="ours' training samples (default: synth-cpu's training_tokens)")
    parser.add_argument("--heldout", type=int, help="held-out samples, a multiple of 8,192 (default: synth-cpu's)")
    parser.add_argument("--epochs", type=int, help="ours' passes over them (default: synth-cpu's)")
    parser.add_argument("--batch-size", type=int, help="samples per step (default: synth-cpu's)")
    parser.add_argument("--d-sae", type=int, help="SAE width (default: synth-cpu's dict_size)")
    parser.add_argument("--lr", type=float, help="Adam learning rate (default: synth-cpu's)")
    parser.add_argument("--k", type=int, help="TopK's k (default: the generator's mean L0, the reference SAE's k)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=1, help="alternating runs per side; the fastest counts")
    parser.add_argument("--cache-dir", type=Path, help="activation cache to use (default: a fresh temporary one, so "
                        "that the user's cache is not touched and ours_prepare_s is a cold start)")
    parser.add_argument("--json-out", type=Path, help="also write the final JSON object to this file")
    args = parser.parse_args(argv)
    defaults = load_config(TEMPLATE_DIR / "config.toml", environ={"SAE_PRESET": PRESET_NAME})
    values = dict(samples=defaults.training_tokens, heldout=defaults.heldout_tokens, epochs=defaults.epochs,
                  batch_size=defaults.batch_size, d_sae=defaults.dict_size, lr=defaults.lr)
    if args.quick:
        values.update(QUICK)
    for name in values:
        if getattr(args, name) is not None:
            values[name] = getattr(args, name)
    steps = values["samples"] // values["batch_size"] * values["epochs"]
    # The template's warmup, capped at a quarter of a short run (as bench/train_throughput.py does).
    sizes = Sizes(**values, warmup=min(defaults.warmup_steps, steps // 4), k=args.k or 0, seed=args.seed)
    if steps == 0:
        raise SystemExit("--samples must be at least --batch-size")
    if args.repeats < 1:
        raise SystemExit("--repeats must be 1 or more")
    if sizes.heldout % SAMPLE_BATCH:
        raise SystemExit(f"--heldout must be a multiple of {SAMPLE_BATCH}, the ground-truth eval's batch")
    return args, sizes


def main(argv=None) -> int:
    args, sizes = parse_args(argv)
    loads = {"start": load_average()}
    commit = git("rev-parse", "HEAD")
    print(f"Load average before starting {loads['start']} on {len(os.sched_getaffinity(0))} cores; "
          f"template copied to {TEMPLATE_DIR} from commit {commit[:7]}")
    cache_dir = args.cache_dir or WORK / "cache"
    cold_cache = not cache_path(cache_dir, split_key(PRESET, "train", sizes.samples, False)).exists()
    started = time.perf_counter()
    model = load_synthetic_model(PRESET, cache_dir, "cpu")
    model_build_s = time.perf_counter() - started
    reference = reference_scores(model, PRESET, cache_dir, sizes.heldout)
    sizes.k = sizes.k or reference["k"]

    config = load_config(TEMPLATE_DIR / "config.toml", environ=template_env(sizes, cache_dir))
    started = time.perf_counter()
    workspace = Workspace.prepare(config)
    ours_prepare_s = time.perf_counter() - started

    ours_runs, saelens_runs = [], []
    for repeat in range(args.repeats):
        ours_runs.append(run_ours(sizes, workspace))
        saelens_runs.append(run_saelens(sizes, model, model_dir(cache_dir, PRESET, False)))
        print(f"  run {repeat + 1}: ours {ours_runs[-1]['seconds']:.1f} s, SAELens {saelens_runs[-1]['seconds']:.1f} s"
              f" for {sizes.steps} steps")
    loads["after_training"] = load_average()
    ours, theirs = ours_runs[-1], saelens_runs[-1]
    ours_scores, saelens_scores = scores(ours["sae"], model, sizes.heldout), scores(theirs["sae"], model,
                                                                                    sizes.heldout)
    loads["end"] = load_average()

    ours_best = min(ours_runs, key=lambda r: r["seconds"])
    saelens_best = min(saelens_runs, key=lambda r: r["seconds"])
    ours_s, saelens_s = ours_best["seconds"], saelens_best["seconds"]
    ours_rate, saelens_rate = sizes.steps / ours_s, sizes.steps / saelens_s
    ours_rate_excl_data = sizes.steps / (ours_s - ours_best["data_seconds"])
    saelens_rate_excl_data = sizes.steps / (saelens_s - saelens_best["data_seconds"])
    summary = {
        "step_ratio": round(ours_rate / saelens_rate, 3),
        "ours_steps_per_s": round(ours_rate, 3),
        "saelens_steps_per_s": round(saelens_rate, 3),
        "ours_samples_per_s": round(ours_rate * sizes.batch_size, 1),
        "saelens_samples_per_s": round(saelens_rate * sizes.batch_size, 1),
        "ours_train_s": round(ours_s, 2),
        "saelens_train_s": round(saelens_s, 2),
        "ours_prepare_s": round(ours_prepare_s, 2),
        "ours_steps_per_s_incl_prepare": round(sizes.steps / (ours_s + ours_prepare_s), 3),
        "step_ratio_incl_prepare": round(sizes.steps / (ours_s + ours_prepare_s) / saelens_rate, 3),
        "ours_data_s": round(ours_best["data_seconds"], 2),
        "saelens_data_s": round(saelens_best["data_seconds"], 2),
        "ours_steps_per_s_excl_data": round(ours_rate_excl_data, 3),
        "saelens_steps_per_s_excl_data": round(saelens_rate_excl_data, 3),
        "step_ratio_excl_data": round(ours_rate_excl_data / saelens_rate_excl_data, 3),
        **{f"ours_{name}": round(value, 4) for name, value in ours_scores.items()},
        **{f"saelens_{name}": round(value, 4) for name, value in saelens_scores.items()},
        "ours_l0": round(ours_scores["sae_l0"], 2),
        "saelens_l0": round(saelens_scores["sae_l0"], 2),
        "ours_ev": round(ours_scores["explained_variance"], 4),
        "saelens_ev": round(saelens_scores["explained_variance"], 4),
        "reference_f1": round(reference["f1"], 4),
        "reference_mcc": round(reference["mcc"], 4),
        "true_l0": round(reference["true_l0"], 2),
        "k": sizes.k,
        "d_sae": sizes.d_sae,
        "d_in": PRESET.d_model,
        "batch_size": sizes.batch_size,
        "steps": sizes.steps,
        "ours_steps": ours["steps"],
        "saelens_steps": theirs["steps"],
        "ours_batch_size": ours["batch_size"],
        "saelens_batch_size": theirs["batch_size"],
        "saelens_batches_drawn": theirs["batches_drawn"],
        "saelens_norm_batches": sizes.norm_batches,
        "training_samples": sizes.samples,
        "epochs": sizes.epochs,
        "heldout_samples": sizes.heldout,
        "lr": sizes.lr,
        "warmup_steps": sizes.warmup,
        "decay_steps": sizes.decay_steps,
        "ours_dead_feature_method": ours["dead_feature_method"],
        "repeats": args.repeats,
        "ours_train_s_all": [round(r["seconds"], 2) for r in ours_runs],
        "saelens_train_s_all": [round(r["seconds"], 2) for r in saelens_runs],
        "model_build_s": round(model_build_s, 2),
        "cold_cache": cold_cache,
        "preset": PRESET_NAME,
        "seed": sizes.seed,
        "device": "cpu",
        "dtype": "float32",
        "cores": len(os.sched_getaffinity(0)),
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "sae_lens": sae_lens.__version__,
        "loadavg": loads,
        "commit": commit,
        "template_uncommitted": TEMPLATE_UNCOMMITTED,
        "date": datetime.date.today().isoformat(),
    }
    print(f"\n{sizes.steps} steps of TopK k={sizes.k}, d_sae {sizes.d_sae}, batch {sizes.batch_size} on {PRESET_NAME}:")
    print(f"  ours    {ours_rate:7.2f} steps/s  F1 {ours_scores['f1']:.3f}  MCC {ours_scores['mcc']:.3f}  "
          f"L0 {ours_scores['sae_l0']:.1f}  EV {ours_scores['explained_variance']:.3f}")
    print(f"  SAELens {saelens_rate:7.2f} steps/s  F1 {saelens_scores['f1']:.3f}  MCC {saelens_scores['mcc']:.3f}  "
          f"L0 {saelens_scores['sae_l0']:.1f}  EV {saelens_scores['explained_variance']:.3f}")
    print(f"  step_ratio (ours / SAELens) {summary['step_ratio']:.2f}; with ours' prepare "
          f"{summary['step_ratio_incl_prepare']:.2f}; SAE steps alone, without getting the batches "
          f"{summary['step_ratio_excl_data']:.2f}")
    if args.json_out:
        args.json_out.write_text(json.dumps(summary, indent=2))
    print(json.dumps(summary))
    taken = [(r["steps"], r["batch_size"]) for r in ours_runs + saelens_runs]
    if set(taken) != {(sizes.steps, sizes.batch_size)}:
        print(f"bench: not every run took {sizes.steps} steps of {sizes.batch_size} samples (steps, batch size), "
              f"ours then SAELens: {taken}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
