"""The baseline on several seeds and along its sparsity-fidelity frontier: what the research loop judges a run by.

    cd templates/sae_variants
    .venv/bin/python baseline.py --out_dir=run_0

baseline.py, beside experiment.py, passes experiment.py's run_settings() and run() to main() here: the harness never
imports experiment.py. The configuration is a run's (config.toml, its preset table, SAE_* variables). The Workspace is
prepared once (one model load, activations from the cache), and each unit of work is then a run that experiment.py's
run() builds, trains, evaluates and writes, exactly as `python experiment.py --out_dir=...` does:

- out_dir itself: seed config.seed, what `python experiment.py --out_dir=run_0` writes;
- out_dir/seeds/seed_<s>/: the seeds config.seed + 1 ... config.seed + baseline_seeds - 1, each what
  `SAE_SEED=s python experiment.py` writes (Workspace.for_seed), with every evaluation. The spread of the seeds is
  the noise floor a run's difference must beat.
- out_dir/frontier/<knob>_<value>/: the baseline's settings with its sparsity knob moved by each factor of
  frontier_scales (FRONTIER_KNOBS), seed config.seed, with the core evaluation only (run_interp_evals off, to save
  time). Its final_info.json's training.frontier records the knob, the factor and both values. These points trace
  the trade-off between sparsity (core.l0) and fidelity (EV, CE loss score) a run is placed against.

A unit whose final_info.json exists is done (write_run writes that file last, atomically), so running the command
again after a kill trains only what is missing. Seed config.seed is done when out_dir/final_info.json exists or, once
the research loop has aggregated the seeds into out_dir/final_info.json, when its own file, copied to
out_dir/seeds/seed_<config.seed>/final_info.json, does.
"""

import argparse
import dataclasses
import logging
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .config import ConfigError, ExperimentConfig, load_config
from .layer_sweep import TEMPLATE_DIR, RunLayer, SettingsFor
from .workspace import Workspace

FRONTIER_KNOBS: dict[str, tuple[str, Callable[[float, float], float]]] = {
    # variant: (the Settings field moved, (baseline value, factor) -> the point's value). A factor above 1 always
    # means sparser: a larger penalty, a smaller k or target L0.
    "relu": ("sparsity_penalty", lambda value, factor: value * factor),
    "jumprelu": ("target_l0", lambda value, factor: value / factor),
    "topk": ("k", lambda value, factor: max(1, round(value / factor))),
    "batchtopk": ("k", lambda value, factor: max(1, round(value / factor))),
}


@dataclass(frozen=True)
class Unit:
    """One run of the baseline: a seed or a frontier point."""

    label: str
    out_dir: Path
    settings: object
    seed: int
    frontier: dict | None
    """training.frontier of the point's final_info.json: knob, scale (the factor), baseline_value, value; None for
    a seed."""
    done_files: tuple[Path, ...]
    """Any of these existing means the unit is done."""

    def finished(self) -> Path | None:
        return next((path for path in self.done_files if path.exists()), None)


def seed_units(config: ExperimentConfig, settings, out_dir: Path) -> list[Unit]:
    """Seed config.seed into out_dir, the others into out_dir/seeds/seed_<s>/. Each is done when its folder has a
    final_info.json, seed config.seed also when its own file was copied to seeds/seed_<s>/ by the aggregation."""
    units = []
    for seed in range(config.seed, config.seed + config.baseline_seeds):
        own = out_dir / "seeds" / f"seed_{seed}"
        run_dir = out_dir if seed == config.seed else own
        units.append(Unit(f"seed {seed}", run_dir, dataclasses.replace(settings, seed=seed), seed, None,
                          tuple(dict.fromkeys((run_dir / "final_info.json", own / "final_info.json")))))
    return units


def frontier_units(config: ExperimentConfig, settings, out_dir: Path) -> tuple[list[Unit], list[str]]:
    """The frontier points of frontier_scales, and a note for each factor that gives no point of its own (its value is
    the baseline's or an earlier factor's, as rounding k can make it). Every point's settings are made, and so
    checked by experiment.py, before any training."""
    factors = config.frontier_scale_values()
    source = f"{config.sources.get('frontier_scales', 'default')}: frontier_scales = {config.frontier_scales!r}"
    if not factors:
        return [], []
    if settings.variant not in FRONTIER_KNOBS:
        raise ConfigError(f"{source}, but variant {settings.variant!r} has no frontier knob; add it to FRONTIER_KNOBS "
                          "in sae_harness/baseline_sweep.py, or set frontier_scales = \"\" to turn the frontier off.")
    knob, move = FRONTIER_KNOBS[settings.variant]
    base = getattr(settings, knob)
    units, notes, taken = [], [], {base}
    for factor in factors:
        value = move(base, factor)
        value = value if isinstance(value, int) else float(f"{value:.6g}")  # 0.24, not 0.24000000000000002
        if value in taken:
            notes.append(f"frontier x{factor:g}: {knob} = {value:g} is already a point; no run of its own")
            continue
        taken.add(value)
        try:
            point = dataclasses.replace(settings, **{knob: value})
        except ConfigError as err:
            raise ConfigError(f"{source}: the factor {factor:g} sets {knob} = {value:g}, which experiment.py "
                              f"refuses ({err}); drop that factor.") from None
        run_dir = out_dir / "frontier" / f"{knob}_{value:g}"
        units.append(Unit(f"frontier {knob} = {value:g} (x{factor:g})", run_dir, point, config.seed,
                          {"knob": knob, "scale": factor, "baseline_value": base, "value": value},
                          (run_dir / "final_info.json",)))
    return units, notes


def run_unit(unit: Unit, workspace: Workspace, run: RunLayer, started: float) -> dict:
    """Train, evaluate and write one unit with experiment.py's run(); return its final_info."""
    unit_workspace = workspace.for_seed(unit.seed)
    if unit.frontier is not None:
        unit_workspace = dataclasses.replace(
            unit_workspace, config=dataclasses.replace(unit_workspace.config, run_interp_evals=False),
            training_notes={"frontier": unit.frontier})
    return run(unit_workspace, unit.settings, unit.out_dir, started)


def summary(info: dict) -> str:
    """A unit's headline numbers, for its printed line."""
    core = info["core"]["means"]
    shown = {"L0": core.get("l0"), "EV": core.get("explained_variance"), "CE loss score": core.get("ce_loss_score")}
    return ", ".join(f"{name} {'n/a' if value is None else f'{value:.3g}'}" for name, value in shown.items())


def main(argv: list[str] | None = None, *, settings_for: SettingsFor, run: RunLayer) -> int:
    """The command line of baseline.py, which passes experiment.run_settings and experiment.run. Prints one line per
    unit of work."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out_dir", required=True, type=Path, help="Folder of the baseline, e.g. run_0.")
    out_dir = parser.parse_args(argv).out_dir
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    started = time.perf_counter()
    try:
        config = load_config(TEMPLATE_DIR / "config.toml")
        settings = settings_for(config)
        points, notes = frontier_units(config, settings, out_dir)
        units = seed_units(config, settings, out_dir) + points
        workspace = None
        for note in notes:
            print(note, flush=True)
        for unit in units:
            done = unit.finished()
            if done is not None:
                print(f"{unit.label} -> {unit.out_dir}: skipped, {done} exists", flush=True)
                continue
            if workspace is None:
                workspace = Workspace.prepare(config)
                workspace.loaded_model = workspace.model  # loaded once: each unit's workspace copy shares it
            unit_started = started if unit is units[0] else time.perf_counter()
            info = run_unit(unit, workspace, run, unit_started)
            print(f"{unit.label} -> {unit.out_dir}: trained in {time.perf_counter() - unit_started:.0f} s "
                  f"({summary(info)})", flush=True)
    except ConfigError as err:
        print(f"Configuration error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit("The baseline trains experiment.py's SAE, which this harness module does not import: run "
             "`python baseline.py --out_dir=run_0` in the template folder instead.")
