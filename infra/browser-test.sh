#!/usr/bin/env bash
# Browser test of the web UI: Debian's Chromium driven by playwright-core against the real
# `avatar up` on the demo data (tests/browser/ui.test.mjs says what it checks). Installs
# Chromium and playwright-core only when missing; needs the base model (infra/fetch-models.sh).
# Usage: infra/browser-test.sh   (CHROMIUM=/path/to/chromium to use another browser binary)
# Screenshots land in $CARGO_TARGET_DIR/browser-screenshots.
set -euo pipefail
TEST_NAME="browser test"
source "$(dirname "$0")/lib.sh"
require_base_model

echo "== browser test: tools (only when missing)"
# One package at a time: nodesource's nodejs already carries npm and conflicts with Debian's.
command -v node >/dev/null || apt_install nodejs || tools_missing "could not install nodejs"
command -v npm >/dev/null || apt_install npm || tools_missing "could not install npm"
if [ -z "${CHROMIUM:-}" ] && ! command -v chromium >/dev/null; then
  apt_install chromium || tools_missing "could not install chromium"
fi
node -e 'process.exit(parseInt(process.versions.node) >= 18 ? 0 : 1)' ||
  tools_missing "node $(node --version) is too old for playwright-core"
CHROMIUM="${CHROMIUM:-$(command -v chromium)}"
NODE_PREFIX="$HOME/.cache/avatar/node"
PLAYWRIGHT="$NODE_PREFIX/node_modules/playwright-core"
if [ ! -f "$PLAYWRIGHT/package.json" ]; then
  # playwright-core 1.5x+ wants node >= 20; Debian bookworm's own nodejs is 18: take the last
  # release that supports it there.
  if node -e 'process.exit(parseInt(process.versions.node) >= 20 ? 0 : 1)'; then PW=playwright-core@1; else PW=playwright-core@1.49; fi
  npm install --silent --no-audit --no-fund --prefix "$NODE_PREFIX" "$PW" ||
    tools_missing "could not install $PW from npm"
fi
echo "chromium: $("$CHROMIUM" --version 2>/dev/null || echo "$CHROMIUM")"
echo "playwright-core: $(node -p "require('$PLAYWRIGHT/package.json').version")"

echo "== browser test: build avatar"
cargo build --locked --bin avatar
AVATAR="$CARGO_TARGET_DIR/debug/avatar"

WORK="$(mktemp -d)"
SERVER_PID=""
cleanup() {
  if [ -n "$SERVER_PID" ]; then
    kill "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT

echo "== browser test: demo data"
"$AVATAR" --quiet demo --keep "$WORK/demo" --train-steps 0 >"$WORK/demo.log" 2>&1 ||
  { cat "$WORK/demo.log"; exit 1; }
DATA="$WORK/demo/data"
AVATAR_ID=ada-lovelace
TOKEN="$("$AVATAR" --data "$DATA" --avatar "$AVATAR_ID" token create --role editor 2>/dev/null)"

# A free port: node binds :0 and lets it go; the server binds it a moment later.
PORT="$(node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})')"
URL="http://127.0.0.1:$PORT"
"$AVATAR" --data "$DATA" up --addr "127.0.0.1:$PORT" >"$WORK/server.log" 2>&1 &
SERVER_PID=$!
if ! node -e '
  const url = process.argv[1] + "/healthz", end = Date.now() + 120000;
  (async () => {
    for (;;) {
      try { if ((await fetch(url)).ok) return; } catch (_) { /* not up yet */ }
      if (Date.now() > end) { console.error("no /healthz after 120 s"); process.exit(1); }
      await new Promise((r) => setTimeout(r, 200));
    }
  })();' "$URL"; then
  tail -n 50 "$WORK/server.log"
  exit 1
fi

echo "== browser test: tests/browser/ui.test.mjs against $URL"
SCREENSHOTS="$CARGO_TARGET_DIR/browser-screenshots"
rm -rf "$SCREENSHOTS"
if ! AVATAR_URL="$URL" AVATAR_TOKEN="$TOKEN" AVATAR_ID="$AVATAR_ID" CHROMIUM="$CHROMIUM" \
  SCREENSHOTS="$SCREENSHOTS" PLAYWRIGHT="$PLAYWRIGHT" node tests/browser/ui.test.mjs; then
  echo "-- server log (last 50 lines):"
  tail -n 50 "$WORK/server.log"
  exit 1
fi
echo "== browser test passed in $(($(date +%s) - START)) s; screenshots:"
ls "$SCREENSHOTS"
