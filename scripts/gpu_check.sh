#!/usr/bin/env bash
# One command on a machine with one NVIDIA GPU, after `make setup`: each cell trains at bf16
# on the synthetic source, then on shards, then against a plain loop; the last line of the
# output is one JSON line (clips/s, GPU busy %, peak memory, plain-loop ratio).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
[ -x "$PY" ] || PY=python
if ! command -v nvidia-smi > /dev/null; then
  echo "gpu_check: nvidia-smi not found: run this on a machine with an NVIDIA GPU and driver" >&2
  exit 2
fi
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
exec timeout 300 "$PY" scripts/bench_gpu.py
