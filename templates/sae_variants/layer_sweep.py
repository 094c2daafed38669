"""Train experiment.py's SAE at many residual layers of one preset, from one language-model pass per batch.

    .venv/bin/python layer_sweep.py --out_dir sweep --layers 0,3,6,9
    .venv/bin/python layer_sweep.py --out_dir sweep --layers all

Each layer is built, trained and written by experiment.py's run(), with its run_settings(), exactly as a run:
out_dir/layer_<L>/ holds a run's files, out_dir/sweep.json the per-layer metrics, and by_layer.png and
feature_density_by_layer.png chart them. The sweep itself is sae_harness/layer_sweep.py.
"""

import sys

import experiment
from sae_harness.layer_sweep import main

if __name__ == "__main__":
    sys.exit(main(settings_for=experiment.run_settings, run=experiment.run))
