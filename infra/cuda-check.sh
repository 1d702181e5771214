#!/usr/bin/env bash
# Type-checks the CUDA build (`--features cuda`) on a machine without a GPU or a CUDA toolkit:
# nvcc comes from PyPI (NVIDIA's own wheels) into ~/.cache/avatar/cuda-venv, candle's kernels are
# compiled to PTX with it, and every crate is checked with CUDA on. It does not link (candle links
# libcuda/cuBLAS, which come with a driver) and does not run anything on a GPU.
#
# Usage: infra/cuda-check.sh            (CUDA_COMPUTE_CAP=90 by default: H100/H200)
# Not part of infra/test.sh: it builds a second copy of candle (~15 min on 2 cores).
set -euo pipefail
cd "$(dirname "$0")/.."

VENV="${AVATAR_CUDA_VENV:-$HOME/.cache/avatar/cuda-venv}"
PY="${PYTHON:-python3}"
if [ ! -x "$VENV/bin/python" ]; then
  "$PY" -m venv "$VENV"
fi
if ! ls "$VENV"/lib/python3*/site-packages/nvidia/cu13/bin/nvcc >/dev/null 2>&1; then
  echo "== nvcc from PyPI (once)"
  "$VENV/bin/pip" install -q nvidia-cuda-nvcc nvidia-cuda-runtime nvidia-cuda-cccl
fi
CUDA="$(ls -d "$VENV"/lib/python3*/site-packages/nvidia/cu13 | head -n1)"
chmod +x "$CUDA"/bin/* 2>/dev/null || true
export PATH="$CUDA/bin:$PATH" CUDA_ROOT="$CUDA" CUDA_PATH="$CUDA" CUDA_HOME="$CUDA"
export CUDA_COMPUTE_CAP="${CUDA_COMPUTE_CAP:-90}"
# cudarc 0.19 knows toolkits up to 13.4 by name; PyPI's nvcc may be newer, so name the API level.
export CUDARC_CUDA_VERSION="${CUDARC_CUDA_VERSION:-13000}"
export CARGO_TARGET_DIR="${AVATAR_CUDA_TARGET:-$HOME/.cache/avatar/cuda-target}"
nvcc --version | tail -n 2

echo "== cargo check: the avatar binary, the voice trainer's tests and bench, with CUDA"
cargo check --locked --features cuda --bin avatar
cargo check --locked -p avatar-rvc-train --features avatar-rvc-train/cuda,avatar-rvc-train/testing --tests --benches
echo "== cargo check: the embedder and the LLM with CUDA"
cargo check --locked -p avatar-embed -p avatar-llm --features avatar-embed/cuda,avatar-llm/cuda
echo "== the CUDA build type-checks"
