"""Compare the ways of reviving dead features (resample, ghost gradients, none) on the same activations.

    .venv/bin/python dead_features.py --out_dir deadcmp
    .venv/bin/python dead_features.py --out_dir deadcmp --methods resample,ghost --force_dead 0.5

The SAE is experiment.py's (build_sae() with its run_settings(), dead_feature_method replaced by each method),
trained by experiment.py's train(). Writes out_dir/dead_features.json and out_dir/dead_fraction.png. The comparison
itself is sae_harness/dead_features.py.
"""

import sys

import experiment
from sae_harness.dead_features import main

if __name__ == "__main__":
    sys.exit(main(settings_for=experiment.run_settings, build=experiment.build_sae, train=experiment.train))
