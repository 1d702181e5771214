#!/usr/bin/env bash
# A real S3 server for the object-storage blob store's tests: moto's server (PyPI `moto[server]`,
# an S3 implementation in Python, in memory), installed once into a venv outside the clone.
#
#   eval "$(infra/s3.sh start)"   start it on a free port with the bucket `avatar-test`;
#                                 exports AVATAR_TEST_S3 (the endpoint) and S3_PID
#   infra/s3.sh stop PID          stop it
#
# moto keeps objects in memory and accepts any credentials; the tests pass `test`/`test`.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${S3_VENV:-$HOME/.cache/avatar/s3-venv}"
MOTO_VERSION=5.2.5

# The moto command: the venv's, or (no venv module on this Python) a user install's.
MOTO=("$VENV/bin/moto_server")
PYTHON_FOR_MOTO="$VENV/bin/python"

install() {
  if [ -x "$VENV/bin/moto_server" ]; then
    return
  fi
  echo "installing moto[server] $MOTO_VERSION into $VENV (once)" >&2
  if python3 -m venv "$VENV" >&2 && "$VENV/bin/pip" install -q "moto[server]==$MOTO_VERSION" >&2; then
    return
  fi
  rm -rf "$VENV"
  echo "no venv here; installing moto[server] for this user instead" >&2
  python3 -m pip install -q --user "moto[server]==$MOTO_VERSION" >&2 ||
    python3 -m pip install -q --user --break-system-packages "moto[server]==$MOTO_VERSION" >&2
  MOTO=(python3 -m moto.server)
  PYTHON_FOR_MOTO=python3
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

start() {
  install
  local port log pid
  port="${S3_PORT:-$(free_port)}"
  log="$(mktemp "${TMPDIR:-/tmp}/avatar-s3.XXXXXX.log")"
  "${MOTO[@]}" -H 127.0.0.1 -p "$port" >"$log" 2>&1 &
  pid=$!
  for _ in $(seq 1 150); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      # boto3 comes with moto: create the tests' bucket.
      AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test "$PYTHON_FOR_MOTO" -c '
import sys, boto3
boto3.client("s3", endpoint_url=sys.argv[1], region_name="us-east-1").create_bucket(Bucket="avatar-test")
' "http://127.0.0.1:$port" >&2
      echo "export AVATAR_TEST_S3=http://127.0.0.1:$port S3_PID=$pid"
      return
    fi
    if ! kill -0 "$pid" 2>/dev/null; then
      echo "moto_server exited; its log:" >&2
      cat "$log" >&2
      exit 1
    fi
    sleep 0.1
  done
  echo "moto_server did not listen on $port within 15 s" >&2
  kill "$pid" 2>/dev/null || true
  exit 1
}

case "${1:-}" in
  install) install ;;
  start) start ;;
  stop) kill "${2:?usage: infra/s3.sh stop PID}" 2>/dev/null || true ;;
  *)
    echo "usage: infra/s3.sh install|start|stop PID" >&2
    exit 2
    ;;
esac
