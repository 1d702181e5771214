#!/usr/bin/env bash
# A real Kafka-protocol broker for the distributed mode's tests and benchmarks: tansu (crates.io),
# built once with its SQLite storage engine (durable across restarts, which the fault test needs)
# into a cache outside the clone, and reused.
#
#   infra/kafka.sh install          build tansu if missing; print its path
#   eval "$(infra/kafka.sh start)"  start a broker on a free port; exports KAFKA_BROKERS,
#                                   TANSU_BIN, TANSU_PID and TANSU_DATA
#   infra/kafka.sh stop PID         stop it
#
# `cargo install tansu` takes about 17 CPU-minutes (more with the sqlite engine) the first time.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="${TANSU_ROOT:-$HOME/.cache/avatar/tansu-libsql}"
VERSION=0.6.0

install() {
  local bin="$ROOT/bin/tansu"
  if [ -x "$bin" ]; then
    echo "$bin"
    return
  fi
  echo "building tansu $VERSION with the sqlite engine into $ROOT (once; ~10 minutes on 2 cores)" >&2
  cargo install tansu --version "$VERSION" --locked --features libsql --root "$ROOT" \
    --target-dir "${TANSU_BUILD_DIR:-$HOME/.cache/avatar/tansu-build}" >&2
  echo "$bin"
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

start() {
  local bin port data
  bin="$(install)"
  port="${KAFKA_PORT:-$(free_port)}"
  data="${TANSU_DATA:-$(mktemp -d "${TMPDIR:-/tmp}/avatar-tansu.XXXXXX")}"
  mkdir -p "$data"
  # tansu reads sqlite://NAME relative to its working directory.
  (cd "$data" && exec "$bin" broker --listener-url "tcp://127.0.0.1:$port" \
    --advertised-listener-url "tcp://127.0.0.1:$port" \
    --storage-engine "sqlite://tansu.db" >"$data/broker.log" 2>&1) &
  local pid=$!
  for _ in $(seq 1 100); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      echo "export KAFKA_BROKERS=127.0.0.1:$port TANSU_BIN=$bin TANSU_PID=$pid TANSU_DATA=$data"
      return
    fi
    if ! kill -0 "$pid" 2>/dev/null; then
      echo "tansu exited; its log:" >&2
      cat "$data/broker.log" >&2
      exit 1
    fi
    sleep 0.1
  done
  echo "tansu did not listen on $port within 10 s" >&2
  kill "$pid" 2>/dev/null || true
  exit 1
}

case "${1:-}" in
  install) install ;;
  start) start ;;
  stop) kill "${2:?usage: infra/kafka.sh stop PID}" 2>/dev/null || true ;;
  *)
    echo "usage: infra/kafka.sh install|start|stop PID" >&2
    exit 2
    ;;
esac
