# Shared by the test scripts that start real tools (browser-test.sh, email-test.sh); sourced,
# not run. Set TEST_NAME first ("browser test", "email test").
#
# Installing tools is the one step that depends on the machine (apt sources, sudo, PyPI): when
# it fails, the script exits 3 (tools_missing) so infra/test.sh reports the test as skipped,
# loudly. Once the tools are there, every failure of the test itself is fatal.
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/avatar/target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
START=$(date +%s)
SUDO=""
[ "$(id -u)" = 0 ] || SUDO="sudo"
MODELS="${AVATAR_MODELS:-$HOME/.cache/avatar/models}"

# The tests answer with the base model; CI installs it, so its absence is an error, not a skip.
require_base_model() {
  if [ ! -d "$MODELS/SmolLM2-135M-Instruct" ]; then
    echo "error: no base model at $MODELS/SmolLM2-135M-Instruct; run infra/fetch-models.sh smollm2" >&2
    exit 1
  fi
}

tools_missing() {
  echo "$TEST_NAME SKIPPED: $1" >&2
  exit 3
}

apt_install() {
  echo "apt-get install $*"
  export DEBIAN_FRONTEND=noninteractive
  if [ -z "${APT_UPDATED:-}" ]; then
    $SUDO apt-get update -qq || return 1
    APT_UPDATED=1
  fi
  $SUDO apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}
