#!/usr/bin/env bash
# Starts a Qdrant server for the server vector-store suite, then prints the QDRANT_URL to
# export (the suite in services/adapters/src/vector_qdrant.rs runs only when it is set):
#
#   eval "$(infra/qdrant.sh)"
#   cargo test -p avatar-adapters --features qdrant-server vector_qdrant
#
# Qdrant ships as a release binary or a Docker image, neither on a package registry (crates.io
# has only the client and qdrant-edge), so this script uses what it finds: $QDRANT_BIN or
# `qdrant` on PATH, else Docker with a reachable daemon. Without either it says so and exits 2;
# the embedded store's suite does not need a server. A binary can also be built from Qdrant's
# source (github.com/qdrant/qdrant): `cargo build --release --bin qdrant` (needs protoc).
set -euo pipefail
GRPC_PORT="${QDRANT_GRPC_PORT:-6334}"
HTTP_PORT="${QDRANT_HTTP_PORT:-6333}"
DATA="${QDRANT_DATA:-${TMPDIR:-/tmp}/avatar-qdrant}"
URL="http://127.0.0.1:${GRPC_PORT}"

ready() { (exec 3<>"/dev/tcp/127.0.0.1/${GRPC_PORT}") 2>/dev/null; }

if ready; then
  echo "export QDRANT_URL=${URL}"
  exit 0
fi

BIN="${QDRANT_BIN:-$(command -v qdrant || true)}"
if [ -n "$BIN" ]; then
  mkdir -p "$DATA"
  DATA="$(cd "$DATA" && pwd)"
  BIN="$(realpath "$BIN")"
  # Qdrant writes a marker file (.qdrant-initialized) into its working directory.
  cd "$DATA"
  QDRANT__STORAGE__STORAGE_PATH="$DATA/storage" \
  QDRANT__STORAGE__SNAPSHOTS_PATH="$DATA/snapshots" \
  QDRANT__SERVICE__GRPC_PORT="$GRPC_PORT" \
  QDRANT__SERVICE__HTTP_PORT="$HTTP_PORT" \
  QDRANT__TELEMETRY_DISABLED=true \
    nohup "$BIN" >"$DATA/qdrant.log" 2>&1 &
  echo "# qdrant pid $! (log: $DATA/qdrant.log)" >&2
elif command -v docker >/dev/null && docker info >/dev/null 2>&1; then
  docker run -d --rm --name avatar-qdrant -p "${HTTP_PORT}:6333" -p "${GRPC_PORT}:6334" \
    qdrant/qdrant >&2
else
  echo "qdrant.sh: no Qdrant server available: set QDRANT_BIN to a qdrant binary" \
       "(a Qdrant release binary) or start a Docker daemon;" \
       "the server suite skips without QDRANT_URL" >&2
  exit 2
fi

for _ in $(seq 1 60); do
  if ready; then
    echo "export QDRANT_URL=${URL}"
    exit 0
  fi
  sleep 0.5
done
echo "qdrant.sh: server did not open port ${GRPC_PORT} within 30 s" >&2
exit 1
