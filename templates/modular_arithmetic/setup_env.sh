#!/usr/bin/env bash
# Create or update the experiment environment of this template in .venv beside this script.
# On a machine without an NVIDIA GPU, torch is held to the local CPU wheel so that nothing CUDA is pulled.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
python="${PYTHON:-python3}"
venv="$here/.venv"

constraints=()
if ! command -v nvidia-smi >/dev/null 2>&1 || ! nvidia-smi >/dev/null 2>&1; then
  constraints=(-c "$here/constraints-cpu.txt")
fi

[ -x "$venv/bin/python" ] || "$python" -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --upgrade pip
"$venv/bin/python" -m pip install --quiet -r "$here/requirements.txt" "${constraints[@]}"
"$venv/bin/python" -c "import torch, numpy, matplotlib" \
  || { echo "setup_env.sh: the experiment environment in $venv does not import; see the pip output above." >&2; exit 1; }
touch "$venv/.installed"
echo "Experiment environment ready: $venv"
