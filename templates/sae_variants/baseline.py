"""Train the baseline on several seeds and along its sparsity-fidelity frontier, from one prepared workspace.

    .venv/bin/python baseline.py --out_dir=run_0

Each unit is built, trained and written by experiment.py's run(), with its run_settings(), exactly as a run:
out_dir/ holds seed config.seed (what `experiment.py --out_dir=run_0` writes), out_dir/seeds/seed_<s>/ the other
baseline_seeds - 1 seeds, and out_dir/frontier/<knob>_<value>/ the baseline at each factor of frontier_scales on its
sparsity knob (config.toml). A unit already finished is skipped. The machinery is sae_harness/baseline_sweep.py.
"""

import sys

import experiment
from sae_harness.baseline_sweep import main

if __name__ == "__main__":
    sys.exit(main(settings_for=experiment.run_settings, run=experiment.run))
