#!/usr/bin/env bash
# The GPU check (docs/benchmarks.md, "GPU"): on one NVIDIA GPU, in a few minutes, SFT MFU at
# GODEL_LARGE's shapes, greedy and beam-4 generation against transformers' generate, and one
# PPO iteration against PyTorch; one JSON line per figure (benchmarks/gpu_check.py).
#
#   bash benchmarks/gpu_check.sh [--out figures.jsonl] [--only env,sft_mfu,...]
#   bash benchmarks/gpu_check.sh --dry_run     # tiny shapes on the CPU: the suite runs this
#   bash benchmarks/gpu_check.sh --wheels DIR  # an offline machine: install DIR/*.whl first
#
# Installs what is missing: JAX with CUDA (jax[cuda12]), PyTorch with CUDA, and this project's
# pure-Python requirements. A --wheels folder is installed without the network (--no-index).
set -euo pipefail
here=$PWD
cd "$(dirname "$0")/.."
dry_run=0
wheels=""
args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --dry_run) dry_run=1; args+=("$1") ;;
    --wheels) [ $# -ge 2 ] || { echo "error: --wheels: needs a folder"; exit 1; }
              wheels="$2"; shift ;;
    --out) [ $# -ge 2 ] || { echo "error: --out: needs a file"; exit 1; }
           case "$2" in /*) args+=(--out "$2") ;; *) args+=(--out "$here/$2") ;; esac; shift ;;
    *) args+=("$1") ;;
  esac
  shift
done
python=${PYTHON:-python3}
if [ -n "$wheels" ]; then
  ls "$wheels"/*.whl >/dev/null 2>&1 || { echo "error: --wheels: $wheels: no .whl files"; exit 1; }
  site=$(mktemp -d)
  "$python" -m pip install -q --no-index --no-deps --no-compile --target "$site" "$wheels"/*.whl
  export PYTHONPATH="$site${PYTHONPATH:+:$PYTHONPATH}"
fi
if [ "$dry_run" = 0 ] && ! command -v nvidia-smi >/dev/null; then
  # Before any install: on a machine without an NVIDIA GPU, installing CUDA builds would only
  # replace the user's jax and torch.
  echo "error: no NVIDIA GPU (nvidia-smi not found); --dry_run checks the script on a CPU"
  exit 1
fi
if [ "$dry_run" = 0 ]; then
  "$python" -c "import jax; assert jax.default_backend() == 'gpu'" 2>/dev/null \
    || "$python" -m pip install -q "jax[cuda12]"
  "$python" -c "import torch; assert torch.cuda.is_available()" 2>/dev/null \
    || "$python" -m pip install -q torch
  # The project's other requirements (not `pip install -e .`: its exact CPU pins of jax would
  # replace the CUDA build).
  "$python" -c "import flax, optax, orbax.checkpoint, transformers, datasets, ml_collections, \
tensorboardX, nltk, sentencepiece" 2>/dev/null || "$python" -m pip install -q flax optax \
    orbax-checkpoint transformers datasets tokenizers sentencepiece safetensors ml-collections \
    tensorboardX nltk
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
# JAX and PyTorch share the GPU: JAX takes what it needs rather than 75% up front.
export XLA_PYTHON_CLIENT_PREALLOCATE=false
exec "$python" -m benchmarks.gpu_check "${args[@]}"
