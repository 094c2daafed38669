"""SAE steps at matched sparsity: whole training runs of each side on one shared tensor of activations, in two pairs.

- TopK: k = step_k on both sides, with the same dead-feature window in tokens (ours' DEAD_AFTER_TOKENS), so both
  start their AuxK loss at the same step.
- ReLU: ours at its L1 coefficient; SAELens at the coefficient found by match_l1(), a short search of untimed runs
  that brings its final L0 within 20% of ours'. SAELens's StandardSAE weights its L1 term by decoder-row norms that
  start at 0.1 and are never renormalised, so the same nominal coefficient is a much weaker penalty there.

Both sides consume the very same batches in the same order (one CachedActivations.epoch() stream per side, from the
same tensor and seed), and each pair reports quality beside speed: explained variance, L0 and dead fraction on the
same evaluation tokens.
"""

import contextlib
import math
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch
from sae_lens import LoggingConfig
from sae_lens.config import SAETrainerConfig
from sae_lens.saes.standard_sae import StandardTrainingSAE
from sae_lens.saes.topk_sae import TopKTrainingSAE
from sae_lens.training.sae_trainer import SAETrainer

import experiment
from sae_harness.activations import ActivationKey, ActivationSource, CachedActivations, cached_or_streamed
from sae_harness.config import load_config
from sae_harness.sae_base import HookSpec
from sae_harness.workspace import NORM_SAMPLE_TOKENS
from sae_topk import DEAD_AFTER_TOKENS

from .config import BenchConfig
from .ours import bench_settings, fresh_cache_dir, ours_activation_file, template_env
from .saelens_runs import saelens_sae_config
from .snapshot import TEMPLATE_DIR, WORK
from .sweep import load_lm

EVAL_TOKENS = 16_384
"""Activations the quality figures are computed on: the first ones of the training tensor, the same for both sides
(each SAE has trained on them, so these are training-set figures)."""
L0_TOLERANCE = 0.2
"""SAELens's final ReLU L0 counts as matched within this fraction of ours'."""


def step_activations(bench: BenchConfig, cache_dir: Path | None, steps: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(steps * batch_size activations for training, the evaluation activations), normalised to the template's
    scale (mean norm sqrt(d_model)), on the benchmark's device."""
    preset = bench.preset_info
    if cache_dir is not None:
        data = torch.from_numpy(np.load(ours_activation_file(cache_dir, "train", bench.tokens)))
    else:  # --skip-sweep: compute them through the template's own activation cache, in a temporary folder
        root = WORK / "step_activations"
        cache = fresh_cache_dir(root)
        model = load_lm(bench, cache)
        key = ActivationKey(preset.model_name, preset.hook_name, preset.corpus, "train", bench.tokens,
                            preset.context_length, str(preset.torch_dtype(bench.device)))
        source = ActivationSource(model, key, preset.layer, preset.for_device(preset.lm_batch_prompts, bench.device))
        data = cached_or_streamed(source, cache, float("inf"), preset.d_model).all()
        del model
    data = data.float()
    sample = data[torch.randperm(len(data), generator=torch.Generator().manual_seed(bench.seed))[:NORM_SAMPLE_TOKENS]]
    data = data * (preset.d_model ** 0.5 / sample.norm(dim=-1).mean())
    need = steps * bench.batch_size
    acts = data.repeat(math.ceil(need / len(data)), 1)[:need].contiguous()
    return acts.to(bench.device), data[:EVAL_TOKENS].to(bench.device)


def as_cached_activations(acts: torch.Tensor) -> CachedActivations:
    """The template's CachedActivations over an in-memory tensor, so its own epoch() shuffler feeds both sides."""
    cached = CachedActivations.__new__(CachedActivations)
    cached.path, cached.key, cached.data = None, None, acts
    return cached


def precision(bench: BenchConfig):
    """bfloat16 autocast around ours' training (SAELens's trainer applies its own, cfg.autocast), else nothing."""
    if bench.dtype == "bfloat16":
        return torch.autocast(device_type=bench.device_type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def synchronize(bench: BenchConfig):
    """Wait for queued GPU work, so that a timer read after it counts it."""
    if bench.device_type == "cuda":
        torch.cuda.synchronize()


def step_settings(bench: BenchConfig, variant: str, value, acts: torch.Tensor):
    """(configuration, Settings) of one step-benchmark run over acts: one epoch, the pair's variant and value, the
    template's schedule shortened to the run as SAELens's is (bench.schedule)."""
    env = template_env(bench, WORK, len(acts), 1)
    config = load_config(TEMPLATE_DIR / "config.toml", environ=env)
    return config, bench_settings(bench, variant, value, len(acts), 1, config)


def ours_run(bench: BenchConfig, variant: str, value, acts: torch.Tensor):
    """Seconds for experiment.train() over acts (len(acts) / batch_size steps), and the trained SAE."""
    config, settings = step_settings(bench, variant, value, acts)
    hook = HookSpec(bench.preset_info.model_name, bench.preset_info.layer, bench.preset_info.hook_name)
    sae = experiment.build_sae(settings, bench.preset_info.d_model, hook, bench.device)
    # The parts of the template's Workspace that train() reads (log_every comes from workspace.config).
    workspace = SimpleNamespace(train=as_cached_activations(acts), device=bench.device, scale=1.0, config=config)
    synchronize(bench)
    started = time.perf_counter()
    with precision(bench):
        facts = experiment.train(sae, workspace, settings)
    synchronize(bench)
    seconds = time.perf_counter() - started
    assert facts["training_steps"] == len(acts) // bench.batch_size, facts["training_steps"]
    return seconds, sae


def saelens_trainer(bench: BenchConfig, variant: str, value, acts: torch.Tensor) -> SAETrainer:
    steps = len(acts) // bench.batch_size
    warmup, decay = bench.schedule(steps)
    cfg = saelens_sae_config(bench, variant, value, normalize="none")
    torch.manual_seed(bench.seed)
    sae = TopKTrainingSAE(cfg) if variant == "topk" else StandardTrainingSAE(cfg)
    provider = as_cached_activations(acts).epoch(bench.batch_size, torch.Generator().manual_seed(bench.seed))
    trainer_cfg = SAETrainerConfig(
        total_training_samples=steps * bench.batch_size,
        train_batch_size_samples=bench.batch_size,
        lr=bench.lr, lr_end=bench.lr, lr_warm_up_steps=warmup, lr_decay_steps=decay,
        device=bench.device, autocast=bench.dtype == "bfloat16", logger=LoggingConfig(log_to_wandb=False),
        # SAELens counts a feature dead after this many steps without firing; ours after DEAD_AFTER_TOKENS tokens.
        # The same window makes both start their AuxK loss at the same step.
        dead_feature_window=math.ceil(DEAD_AFTER_TOKENS / bench.batch_size),
    )
    return SAETrainer(cfg=trainer_cfg, sae=sae, data_provider=provider)


def saelens_run(bench: BenchConfig, variant: str, value, acts: torch.Tensor):
    """Seconds for SAETrainer.fit() over the same batches (constructing the trainer included, as for ours), and
    the trained SAE."""
    synchronize(bench)
    started = time.perf_counter()
    trainer = saelens_trainer(bench, variant, value, acts)
    trainer.fit()
    synchronize(bench)
    seconds = time.perf_counter() - started
    assert trainer.n_training_steps == len(acts) // bench.batch_size, trainer.n_training_steps
    return seconds, trainer.sae


@torch.no_grad()
def quality(sae, x: torch.Tensor) -> dict:
    """Explained variance around the mean, 1 - sum((x - x_hat)^2) / sum((x - mean(x))^2), L0, and the fraction
    of features that fire on none of the tokens x, in float32."""
    features = torch.cat([sae.encode(chunk) for chunk in x.split(4096)])
    x_hat = torch.cat([sae.decode(chunk) for chunk in features.split(4096)])
    ev = 1 - (x - x_hat).pow(2).sum() / (x - x.mean(dim=0)).pow(2).sum()
    fired = features > 0
    return {"explained_variance": ev.item(), "l0": fired.float().sum(dim=-1).mean().item(),
            "dead_fraction": (~fired.any(dim=0)).float().mean().item()}


def next_l1(probes: list[tuple[float, float]], target: float) -> float:
    """The next coefficient to try: log-log interpolation between the closest probes on either side of the target
    L0, or a factor of 4 towards it while all probes lie on one side (L0 falls as the coefficient grows)."""
    above = [(c, l0) for c, l0 in probes if l0 > target]
    below = [(c, l0) for c, l0 in probes if l0 <= target]
    if not below:
        return max(c for c, _ in above) * 4
    if not above:
        return min(c for c, _ in below) / 4
    (c_above, l_above), (c_below, l_below) = max(above), min(below)  # the tightest bracket of the target
    l_above, l_below, target = (math.log(max(v, 0.01)) for v in (l_above, l_below, target))
    t = (l_above - target) / (l_above - l_below) if l_above != l_below else 0.5
    return math.exp(math.log(c_above) + t * (math.log(c_below) - math.log(c_above)))


def match_l1(bench: BenchConfig, acts: torch.Tensor, eval_x: torch.Tensor, ours_l1: float, target_l0: float) -> dict:
    """SAELens's L1 coefficient whose final L0 (whole untimed runs on the same batches) is within L0_TOLERANCE of
    ours', found in at most l1_search_runs runs; the closest one tried when none is."""
    # Its decoder rows start at norm 0.1 (ours at 1), which scales its penalty by about 0.1 at the start.
    coefficient, probes = ours_l1 / 0.1, []
    for _ in range(bench.l1_search_runs):
        _, sae = saelens_run(bench, "relu", coefficient, acts)
        probes.append((coefficient, quality(sae, eval_x)["l0"]))
        print(f"  L1 search: SAELens at {coefficient:.4g} ends at L0 {probes[-1][1]:.1f} (ours {target_l0:.1f})")
        if abs(probes[-1][1] - target_l0) <= L0_TOLERANCE * target_l0:
            break
        coefficient = next_l1(probes, target_l0)
    best, best_l0 = min(probes, key=lambda p: abs(math.log(max(p[1], 0.01) / max(target_l0, 0.01))))
    return {"coefficient": best, "l0": best_l0, "matched": abs(best_l0 - target_l0) <= L0_TOLERANCE * target_l0,
            "probes": [{"coefficient": c, "l0": round(v, 2)} for c, v in probes]}


def timed_pair(bench: BenchConfig, variant: str, acts: torch.Tensor, eval_x: torch.Tensor, ours_value,
               theirs_value=None) -> dict:
    """Whole runs of each side, alternating, best of step_repeats; for ReLU without theirs_value, SAELens's
    coefficient comes from match_l1() after ours' first run."""
    ours_s, saelens_s, search = [], [], None
    for _ in range(bench.step_repeats):
        seconds, ours_sae = ours_run(bench, variant, ours_value, acts)
        ours_s.append(seconds)
        if theirs_value is None:
            search = match_l1(bench, acts, eval_x, ours_value, quality(ours_sae, eval_x)["l0"])
            theirs_value = search["coefficient"]
        seconds, saelens_sae = saelens_run(bench, variant, theirs_value, acts)
        saelens_s.append(seconds)
    steps = len(acts) // bench.batch_size
    result = {
        "steps": steps,
        "ours_value": ours_value,
        "saelens_value": theirs_value,
        "ours_step_seconds": ours_s,
        "saelens_step_seconds": saelens_s,
        "ours_steps_per_s": steps / min(ours_s),
        "saelens_steps_per_s": steps / min(saelens_s),
        "step_ratio": min(saelens_s) / min(ours_s),
        "quality": {"ours": quality(ours_sae, eval_x), "saelens": quality(saelens_sae, eval_x)},
    }
    if search:
        result["l1_search"] = search
    q = result["quality"]
    print(f"  {variant} pair, {steps} steps: ours {result['ours_steps_per_s']:.3f} steps/s at {ours_value} "
          f"(L0 {q['ours']['l0']:.1f}, EV {q['ours']['explained_variance']:.3f}), SAELens "
          f"{result['saelens_steps_per_s']:.3f} steps/s at {theirs_value:.4g} (L0 {q['saelens']['l0']:.1f}, "
          f"EV {q['saelens']['explained_variance']:.3f}): ratio {result['step_ratio']:.2f}")
    return result


def interleaved_steps(bench: BenchConfig, variant: str, acts: torch.Tensor, values: tuple) -> tuple[dict, tuple]:
    """One trainer step of each side in turn on the same batch, each timed alone: the median per-step time is
    robust to load from other processes, which a whole run of one side and then the other is not. Returns the
    figures and the two trainers, trained."""
    _, settings = step_settings(bench, variant, values[0], acts)
    hook = HookSpec(bench.preset_info.model_name, bench.preset_info.layer, bench.preset_info.hook_name)
    ours_sae = experiment.build_sae(settings, bench.preset_info.d_model, hook, bench.device)
    ours = experiment.CustomTrainer(ours_sae, settings, len(acts) // bench.batch_size)
    theirs = saelens_trainer(bench, variant, values[1], acts)
    ours_s, theirs_s = [], []
    for x in acts.split(bench.batch_size):
        for step, times in ((ours.step, ours_s), (theirs.step, theirs_s)):
            synchronize(bench)
            started = time.perf_counter()
            with precision(bench):
                step(x)
            synchronize(bench)
            times.append(time.perf_counter() - started)
    ours_median, theirs_median = float(np.median(ours_s)), float(np.median(theirs_s))
    return {"ours_step_median_s": ours_median, "saelens_step_median_s": theirs_median,
            "step_ratio_interleaved": theirs_median / ours_median}, (ours, theirs)


def profile_steps(bench: BenchConfig, acts: torch.Tensor, trainers: tuple) -> dict:
    """Where one SAE update's time goes on each side, once trained: GEMM share and calls, and the top operators."""
    from torch.profiler import ProfilerActivity, profile

    n = bench.profile_steps
    batches = acts[:n * bench.batch_size].split(bench.batch_size)
    out = {}
    for name, trainer in zip(("ours", "saelens"), trainers):
        with profile(activities=[ProfilerActivity.CPU]) as prof, precision(bench):
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
    from . import peer_dictionary_learning  # it imports this module

    steps, ours_l1 = bench.step_run
    acts, eval_x = step_activations(bench, cache_dir, steps)
    warm = acts[:min(len(acts), 3 * bench.batch_size)]
    for variant, value in (("relu", ours_l1), ("topk", bench.step_k)):
        ours_run(bench, variant, value, warm)
        saelens_run(bench, variant, value, warm)
    pairs = {"topk": timed_pair(bench, "topk", acts, eval_x, bench.step_k, bench.step_k),
             "relu": timed_pair(bench, "relu", acts, eval_x, ours_l1)}
    pairs["topk"]["dictionary_learning"] = peer_dictionary_learning.topk_side(
        bench, acts, eval_x, bench.step_k, min(pairs["topk"]["ours_step_seconds"]))
    for variant, pair in pairs.items():
        interleaved, trainers = interleaved_steps(bench, variant, acts, (pair["ours_value"], pair["saelens_value"]))
        pair.update(interleaved)
        if bench.profile_steps:
            pair["profile"] = profile_steps(bench, acts, trainers)
    return {"steps": steps, "batch_size": bench.batch_size, "eval_tokens": len(eval_x), **pairs}
