#!/usr/bin/env bash
# Creates the Python environment that the parse benchmark's baselines run in
# (`cargo bench -p avatar-formats --bench parse`). Idempotent: does nothing when the venv
# already has whatstk, so the bench can call it on every run.
# `setup.sh whisper` adds ctranslate2 + faster-whisper for `cargo bench -p avatar-transcribe
# --bench transcribe`. `setup.sh embed` also installs torch + sentence-transformers for
# `cargo bench -p avatar-embed --bench embed` (CPU wheel when its index is reachable, else the
# PyPI wheel, a multi-GB CUDA build that also runs on the CPU). `setup.sh llm` adds peft + gguf
# for the LoRA training baseline (infra/bench/llm_train_baseline.py). `setup.sh llm-gen` builds
# llama-cpp-python for the generation baseline (infra/bench/llm_generate_baseline.py).
set -euo pipefail

VENV="${AVATAR_BENCH_VENV:-$HOME/.cache/avatar/bench-venv}"
PY="${PYTHON:-python3}"

if [ "${1:-}" = "llm-gen" ]; then
    # llama-cpp-python for the generation baseline (infra/bench/llm_generate_baseline.py).
    # pip compiles llama.cpp from source (~10 CPU-minutes): niced and on one core, because
    # this usually runs on a shared machine while others benchmark.
    "$0"
    if "$VENV/bin/python" -c 'import llama_cpp' >/dev/null 2>&1; then
        echo "bench venv ready for llm-gen: $VENV" >&2
        exit 0
    fi
    echo "building llama-cpp-python into $VENV (once, ~10 CPU-minutes)" >&2
    CMAKE_BUILD_PARALLEL_LEVEL="${CMAKE_BUILD_PARALLEL_LEVEL:-1}" nice -n 19 \
        "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
        'llama-cpp-python==0.3.36' >&2
    exit 0
fi

if [ "${1:-}" = "llm" ]; then
    "$0" embed
    if "$VENV/bin/python" -c 'import peft, gguf' >/dev/null 2>&1; then
        echo "bench venv ready for llm: $VENV" >&2
        exit 0
    fi
    echo "installing peft + gguf into $VENV (once)" >&2
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check peft gguf >&2
    exit 0
fi

if [ "${1:-}" = "whisper" ]; then
    # CTranslate2 + faster-whisper: the transcription baseline (same model.bin files).
    "$0"
    if "$VENV/bin/python" -c 'import faster_whisper' >/dev/null 2>&1; then
        echo "bench venv ready for whisper: $VENV" >&2
        exit 0
    fi
    echo "installing ctranslate2 + faster-whisper into $VENV (once)" >&2
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
        'ctranslate2==4.8.5' 'faster-whisper==1.2.1' >&2
    exit 0
fi

if [ "${1:-}" = "embed" ]; then
    "$0"
    if "$VENV/bin/python" -c 'import torch, sentence_transformers' >/dev/null 2>&1; then
        echo "bench venv ready for embed: $VENV" >&2
        exit 0
    fi
    echo "installing torch + sentence-transformers into $VENV (once)" >&2
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check torch \
        --index-url https://download.pytorch.org/whl/cpu >&2 2>/dev/null ||
        "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check torch >&2
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check 'sentence-transformers>=3' >&2
    exit 0
fi

if [ -x "$VENV/bin/python" ] && "$VENV/bin/python" -c 'import whatstk' >/dev/null 2>&1; then
    echo "bench venv ready: $VENV" >&2
    exit 0
fi

echo "creating bench venv at $VENV (once)" >&2
mkdir -p "$(dirname "$VENV")"
"$PY" -m venv "$VENV"
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check 'whatstk>=0.7,<1' >&2
"$VENV/bin/python" -c 'import whatstk, sys; print("whatstk", whatstk.__version__, file=sys.stderr)'
