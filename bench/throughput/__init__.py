"""The training-throughput benchmark against SAELens (bench/train_throughput.py is its command line).

Importing the package makes the template snapshot (snapshot.py) and puts it first on sys.path, before any module
here imports the template's experiment.py and sae_harness: so every module can import them at its top.
"""

from . import snapshot  # noqa: F401
