#!/usr/bin/env bash
# Runs every parser fuzz target for N seconds (default 60), seeded with the shipped samples.
# cargo-fuzz needs nightly flags; RUSTC_BOOTSTRAP=1 enables them on the stable toolchain.
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_EACH="${1:-60}"
export RUSTC_BOOTSTRAP=1
export CARGO_TARGET_DIR="${FUZZ_TARGET_DIR:-$HOME/.cache/avatar/fuzz-target}"
if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "installing cargo-fuzz"
  cargo install cargo-fuzz --locked --quiet
fi
cd pipelines/formats
seeds="$(mktemp -d)"
trap 'rm -rf "$seeds"' EXIT
find ../../samples -type f -exec cp {} "$seeds/" \;
# Short recordings for the `recording` target (the samples hold none): a tone and a silence.
python3 - "$seeds" <<'PY'
import math, struct, sys, wave
for name, amp in (("tone.wav", 0.4), ("quiet.wav", 0.0)):
    with wave.open(f"{sys.argv[1]}/{name}", "wb") as w:
        w.setnchannels(1); w.setsampwidth(2); w.setframerate(8000)
        w.writeframes(b"".join(struct.pack("<h", int(amp * 32767 * math.sin(i / 8))) for i in range(4000)))
PY
# An Ogg Opus voice note for the Opus path, when libopus's encoder is installed.
if command -v opusenc >/dev/null 2>&1; then
  opusenc --quiet "$seeds/tone.wav" "$seeds/tone.opus" || true
fi
# A real faiss index for the `rvc_index` target.
cp ../rvc/testdata/features.index "$seeds/" 2>/dev/null || true
# A small torch .pth (a pretrained-base layout) for the `rvc_pth` target.
cp ../rvc/testdata/tiny_state.pth "$seeds/" 2>/dev/null || true
targets=$(cargo fuzz list)
# Sanitizer off: the parsers are safe Rust, so what we hunt is panics, hangs and runaway
# memory; that also halves the build time.
cargo fuzz build -s none
log="$(mktemp)"
for t in $targets; do
  mkdir -p "fuzz/corpus/$t"
  if cargo fuzz run -s none "$t" "fuzz/corpus/$t" "$seeds" -- \
      -max_total_time="$SECONDS_EACH" -rss_limit_mb=2048 -max_len=65536 -timeout=10 >"$log" 2>&1; then
    echo "fuzz $t: $(grep -Eo 'Done [0-9]+ runs in [0-9]+ second\(s\)' "$log" | tail -1)"
  else
    tail -40 "$log"
    echo "fuzz target $t failed: the crashing input is under pipelines/formats/fuzz/artifacts/$t"
    exit 1
  fi
done
