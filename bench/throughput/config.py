"""What one benchmark run measures: sizes, preset, device and dtype (BenchConfig), and its command line."""

import argparse
from dataclasses import dataclass, field
from pathlib import Path

import torch

import experiment  # the template snapshot's experiment.py (run_settings)
from sae_harness.config import load_config
from sae_harness.presets import PRESETS, Preset

from .snapshot import TEMPLATE_DIR

DEFAULT_CONFIGS = {"relu": "0.3,0.6,1,2,4", "topk": "16,32,48,64,96"}
KNOB = {"relu": "sparsity_penalty", "topk": "k"}
"""The Settings field (experiment.py) that a sweep configuration sets, per variant."""
WARMUP_STEPS = 100  # the template's default warmup; capped at a quarter of a short run on both sides
PRESET_SIZES = {
    # The offline default, sized for the 2-core CPU (a default-size run takes about 70 minutes there).
    "gemma-3-270m": dict(tokens=81_920, d_sae=2048, batch_size=2048),
    # The GPU configuration: Pythia-70M layer 3 with 16k latents (config.toml's [presets."pythia-70m-deduped"]
    # dict_size), model and corpus from the Hugging Face hub.
    "pythia-70m-deduped": dict(tokens=1_048_576, d_sae=16_384, batch_size=4096),
}
DTYPES = ("float32", "bfloat16")
SETUPS = ("streaming", "cached", "multi")
"""SAELens's sweep set-ups, as named in the JSON: sweep_ratio_vs_<set-up>."""


@dataclass
class BenchConfig:
    preset: str = "gemma-3-270m"
    """The template's preset (model, layer, corpus): gemma-3-270m offline, pythia-70m-deduped from the hub."""
    device: str = "cpu"
    """cpu or cuda (cuda:N): both sides' language model and SAEs."""
    dtype: str = "float32"
    """SAE training precision on both sides: float32, or bfloat16 autocast (mixed precision, float32 weights)."""
    tokens: int = 81_920
    """Language-model tokens per run (rounded down to a multiple of batch_size); ours computes them once per sweep."""
    epochs: int = 3
    """Passes over each run's activations (the template's default): ours reads its cache `epochs` times; SAELens
    streams epochs * tokens fresh tokens, or passes `epochs` times over its own cache."""
    d_sae: int = 2048
    """SAE width."""
    batch_size: int = 2048
    """Activations per SAE step."""
    variant: str = "relu"
    """The sweep's SAE: relu (CustomSAE against StandardSAE) or topk (TopKSAE against TopKSAE)."""
    configs: str = ""
    """Comma-separated sweep values: L1 coefficients for relu, k for topk. Empty: the variant's five defaults."""
    lr: float = 2e-3
    """Adam learning rate on both sides (the template's default)."""
    heldout_tokens: int = 0
    """Held-out tokens for ours' own metrics; 0 keeps the template's default (32,768)."""
    step_steps: int = 0
    """SAE updates per timed step-benchmark run; 0: one run of the template at its default sizes (config.toml's
    training_tokens * epochs / batch_size), warmup and decay included."""
    step_l1: float = 0.0
    """Ours' L1 coefficient in the ReLU step pair; 0: experiment.py's run_settings() value."""
    step_k: int = 32
    """k of both sides in the TopK step pair."""
    l1_search_runs: int = 6
    """Most untimed SAELens runs spent choosing its L1 coefficient so that its final L0 is within 20% of ours."""
    step_repeats: int = 2
    """Timed repetitions per side and pair, alternating ours and SAELens; the best one counts."""
    profile_steps: int = 3
    """Steps profiled with torch.profiler per side, after a whole run of training (0 turns profiling off)."""
    peak_tflops: float = 0.0
    """The device's dense bf16 peak in TFLOPS for the share-of-peak figure; 0: looked up by GPU name (report.py)."""
    skip_sweep: bool = False
    skip_steps: bool = False
    skip_streaming: bool = False
    """Leave SAELens streaming out of the sweep: the weakest set-up, and the longest (about 22 of the default size's
    70 minutes on the 2-core CPU). Its figures are then absent from the JSON; the headline is unchanged, being
    against the fastest set-up, which streaming has never been."""
    keep: bool = False
    """Keep the temporary folder (runs, caches, logs) and print its path."""
    seed: int = 0
    json_out: Path | None = None
    sweep_values: list = field(default_factory=list)

    def __post_init__(self):
        if self.preset not in PRESET_SIZES:
            raise SystemExit(f"--preset {self.preset}: not benchmarked; use one of {', '.join(PRESET_SIZES)}")
        if self.variant not in DEFAULT_CONFIGS:
            raise SystemExit(f"--variant must be one of {', '.join(DEFAULT_CONFIGS)}")
        if self.dtype not in DTYPES:
            raise SystemExit(f"--dtype {self.dtype}: use one of {', '.join(DTYPES)}")
        if self.device != "cpu" and not self.device.startswith("cuda"):
            raise SystemExit(f"--device {self.device}: use cpu or cuda (cuda:N)")
        if self.device.startswith("cuda") and not torch.cuda.is_available():
            raise SystemExit(f"--device {self.device}: torch sees no GPU here (torch {torch.__version__}); run on a "
                             "machine with one, or leave --device out for the CPU")
        if self.dtype == "bfloat16" and self.device_type == "cpu":
            raise SystemExit("--dtype bfloat16 needs --device cuda: the template's sparse kernels "
                             "(sae_harness/sparse.py) multiply through torch's sparse CSR products, which have no "
                             "bfloat16 CPU implementation (addmm_out_sparse_csr_impl_mkl); use --dtype float32 on "
                             "the CPU")
        for name in ("tokens", "epochs", "d_sae", "batch_size", "step_repeats", "step_k", "l1_search_runs"):
            if getattr(self, name) < 1:
                raise SystemExit(f"--{name.replace('_', '-')} must be at least 1")
        for name in ("step_steps", "step_l1", "peak_tflops", "heldout_tokens", "profile_steps"):
            if getattr(self, name) < 0:
                raise SystemExit(f"--{name.replace('_', '-')} must not be negative")
        self.tokens = self.tokens // self.batch_size * self.batch_size
        if self.tokens < self.batch_size:
            raise SystemExit("--tokens must be at least --batch-size")
        text = self.configs or DEFAULT_CONFIGS[self.variant]
        cast = int if self.variant == "topk" else float
        try:
            self.sweep_values = [cast(v) for v in text.split(",") if v.strip()]
        except ValueError:
            raise SystemExit(f"--configs {text!r}: comma-separated {cast.__name__} values for --variant "
                             f"{self.variant}") from None

    @property
    def setups(self) -> tuple[str, ...]:
        """The SAELens set-ups this run's sweep races."""
        return tuple(setup for setup in SETUPS if not (self.skip_streaming and setup == "streaming"))

    @property
    def preset_info(self) -> Preset:
        return PRESETS[self.preset]

    @property
    def device_type(self) -> str:
        return "cuda" if self.device.startswith("cuda") else "cpu"

    @property
    def step_run(self) -> tuple[int, float]:
        """(steps, ours' ReLU L1 coefficient) of the step benchmark's training runs."""
        defaults = load_config(TEMPLATE_DIR / "config.toml", environ={"SAE_PRESET": self.preset})
        settings = experiment.run_settings(defaults)
        steps = self.step_steps or defaults.training_tokens // self.batch_size * settings.epochs
        return steps, float(self.step_l1 or settings.sparsity_penalty)

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


FLAG_HELP = {
    "preset": "the template's preset: gemma-3-270m (offline, default) or pythia-70m-deduped (the GPU "
              "configuration: Pythia-70M layer 3, 16k latents, model and corpus from the Hugging Face hub)",
    "device": "cpu (default) or cuda",
    "dtype": "SAE training precision on both sides: float32 (default) or bfloat16 (autocast)",
    "tokens": "language-model tokens per run (default per preset: 81,920 on gemma-3-270m)",
    "epochs": "passes over each run's activations (default 3, the template's)",
    "d_sae": "SAE width (default per preset: 2048, 16,384 on pythia-70m-deduped)",
    "batch_size": "activations per SAE step (default per preset: 2048, 4096 on pythia-70m-deduped)",
    "variant": "the sweep's SAE: relu (default) or topk",
    "configs": "the sweep's comma-separated L1 coefficients (relu) or k values (topk)",
    "lr": "Adam learning rate on both sides (default 2e-3)",
    "heldout_tokens": "ours' held-out tokens in the sweep (default: the template's 32,768)",
    "step_steps": "SAE updates per step-benchmark run (default: one template run at its default sizes)",
    "step_l1": "ours' L1 coefficient in the ReLU step pair (default: run_settings()'s)",
    "step_k": "k on both sides in the TopK step pair (default 32)",
    "l1_search_runs": "most untimed SAELens runs spent matching its ReLU L0 to ours (default 6)",
    "step_repeats": "timed repetitions per side and pair (default 2)",
    "profile_steps": "steps profiled per side (default 3, 0 = off)",
    "peak_tflops": "the device's dense bf16 peak in TFLOPS (default: looked up by GPU name)",
}
QUICK = dict(tokens=4096, d_sae=512, batch_size=1024, heldout_tokens=1024, step_steps=8, step_repeats=1,
             profile_steps=2, epochs=1, l1_search_runs=2)
"""--quick: tiny sizes, a smoke test of every code path, not a benchmark."""


def parse_args(argv=None) -> BenchConfig:
    parser = argparse.ArgumentParser(description="Training throughput of the sae_variants template against "
                                     "SAELens 6: the sweep against three SAELens set-ups, and SAE steps at matched "
                                     "sparsity.")
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a smoke test, not a benchmark")
    types = {"preset": str, "device": str, "dtype": str, "tokens": int, "epochs": int, "d_sae": int,
             "batch_size": int, "variant": str, "configs": str, "lr": float, "heldout_tokens": int, "step_steps": int,
             "step_l1": float, "step_k": int, "l1_search_runs": int, "step_repeats": int, "profile_steps": int,
             "peak_tflops": float}
    for name, kind in types.items():
        parser.add_argument("--" + name.replace("_", "-"), type=kind, help=FLAG_HELP[name])
    parser.add_argument("--skip-sweep", action="store_true", help="only the step benchmark")
    parser.add_argument("--skip-steps", action="store_true", help="only the sweep")
    parser.add_argument("--skip-streaming", action="store_true", help="leave SAELens streaming, the weakest and "
                        "longest set-up, out of the sweep")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder with runs, caches and logs")
    parser.add_argument("--template-ref", help="benchmark the template at this git ref (e.g. HEAD) instead of a copy "
                        "of the working tree")
    parser.add_argument("--json-out", type=Path, help="also write the final JSON object to this file")
    args = parser.parse_args(argv)
    preset = args.preset or BenchConfig.preset
    values = dict(PRESET_SIZES.get(preset, {}))
    if args.quick:
        values.update(QUICK, configs="16,64" if args.variant == "topk" else "0.3,1")
    values.update({name: getattr(args, name) for name in types if getattr(args, name) is not None})
    return BenchConfig(**values, skip_sweep=args.skip_sweep, skip_steps=args.skip_steps,
                       skip_streaming=args.skip_streaming, keep=args.keep,
                       json_out=args.json_out)
