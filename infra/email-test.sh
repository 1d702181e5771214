#!/usr/bin/env bash
# End-to-end test of `avatar serve email` against real mail servers: Dovecot (IMAP + LMTP,
# Debian's packages) and an aiosmtpd SMTP server that delivers every message into Dovecot over
# LMTP, so replies land in the recipient's IMAP mailbox. Both run from a temporary directory
# on free loopback ports and are always stopped. Then runs `cargo test --test email`
# (tests/email.rs says what it checks). Installs the tools only when missing; needs the base
# model (infra/fetch-models.sh smollm2).
# Usage: infra/email-test.sh        Exit 3: the tools could not be installed (reported as skipped).
set -euo pipefail
TEST_NAME="email test"
source "$(dirname "$0")/lib.sh"
require_base_model

echo "== email test: tools (only when missing)"
if ! command -v dovecot >/dev/null || [ ! -e /usr/lib/dovecot/lmtp ]; then
  apt_install dovecot-imapd dovecot-lmtpd || tools_missing "could not install dovecot-imapd dovecot-lmtpd"
fi
DOVECOT="$(command -v dovecot || echo /usr/sbin/dovecot)"
command -v python3 >/dev/null || apt_install python3 python3-venv || tools_missing "could not install python3"
VENV="$HOME/.cache/avatar/mail-venv"
if ! "$VENV/bin/python" -c 'import aiosmtpd' 2>/dev/null; then
  rm -rf "$VENV"
  if ! python3 -m venv "$VENV" 2>/dev/null; then
    apt_install python3-venv || tools_missing "could not install python3-venv"
    python3 -m venv "$VENV" || tools_missing "could not create a Python venv"
  fi
  "$VENV/bin/pip" install --quiet --disable-pip-version-check aiosmtpd ||
    tools_missing "could not install aiosmtpd from PyPI"
fi
PY="$VENV/bin/python"
echo "dovecot: $("$DOVECOT" --version)"
echo "aiosmtpd: $("$PY" -c 'import aiosmtpd; print(aiosmtpd.__version__)')"

WORK="$(mktemp -d)"
chmod 755 "$WORK"
DOVECOT_PID=""
SMTP_PID=""
cleanup() {
  for pid in $SMTP_PID $DOVECOT_PID; do
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  rm -rf "$WORK"
}
trap cleanup EXIT

free_port() {
  "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}
wait_port() {
  "$PY" - "$1" "$2" <<'EOF'
import socket, sys, time
port, what = int(sys.argv[1]), sys.argv[2]
end = time.time() + 30
while True:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        break
    except OSError:
        if time.time() > end:
            sys.exit(f"{what} is not listening on 127.0.0.1:{port} after 30 s")
        time.sleep(0.2)
EOF
}
IMAP_PORT="$(free_port)"
LMTP_PORT="$(free_port)"
SMTP_PORT="$(free_port)"

echo "== email test: Dovecot on 127.0.0.1:$IMAP_PORT (IMAP), :$LMTP_PORT (LMTP)"
# Dovecot refuses to run mail as root: as root the services run as Debian's dovecot users,
# otherwise everything runs as the current user.
if [ "$(id -u)" = 0 ]; then
  LOGIN_USER=dovenull INTERNAL_USER=dovecot INTERNAL_GROUP=dovecot MAIL_USER=dovecot
else
  LOGIN_USER="$(id -un)" INTERNAL_USER="$(id -un)" INTERNAL_GROUP="$(id -gn)" MAIL_USER="$(id -un)"
fi
MAIL_UID="$(id -u "$MAIL_USER")"
MAIL_GID="$(id -g "$MAIL_USER")"
mkdir -p "$WORK/run" "$WORK/state" "$WORK/mail" "$WORK/home"
[ "$(id -u)" = 0 ] && chown "$MAIL_UID:$MAIL_GID" "$WORK/mail" "$WORK/home"
export AVATAR_TEST_PASSWORD_AVATAR="avatar-pw-$RANDOM"
export AVATAR_TEST_PASSWORD_ASKER="asker-pw-$RANDOM"
export AVATAR_TEST_PASSWORD_STRANGER="stranger-pw-$RANDOM"
cat >"$WORK/users" <<EOF
avatar:{PLAIN}$AVATAR_TEST_PASSWORD_AVATAR
asker:{PLAIN}$AVATAR_TEST_PASSWORD_ASKER
stranger:{PLAIN}$AVATAR_TEST_PASSWORD_STRANGER
EOF
chmod 644 "$WORK/users"
cat >"$WORK/dovecot.conf" <<EOF
base_dir = $WORK/run
state_dir = $WORK/state
log_path = $WORK/dovecot.log
protocols = imap lmtp
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
# ada@example.org and ada log in (and receive over LMTP) as the same user.
auth_username_format = %Ln
default_login_user = $LOGIN_USER
default_internal_user = $INTERNAL_USER
default_internal_group = $INTERNAL_GROUP
first_valid_uid = 1
mail_location = maildir:$WORK/mail/%n
passdb {
  driver = passwd-file
  args = scheme=PLAIN username_format=%n $WORK/users
}
userdb {
  driver = static
  args = uid=$MAIL_UID gid=$MAIL_GID home=$WORK/home/%n
}
service imap-login {
  chroot =
  inet_listener imap {
    address = 127.0.0.1
    port = $IMAP_PORT
  }
  inet_listener imaps {
    port = 0
  }
}
service lmtp {
  inet_listener lmtp {
    address = 127.0.0.1
    port = $LMTP_PORT
  }
}
service auth-worker {
  user = $INTERNAL_USER
}
service anvil {
  chroot =
}
EOF
"$DOVECOT" -F -c "$WORK/dovecot.conf" >"$WORK/dovecot.out" 2>&1 &
DOVECOT_PID=$!
if ! wait_port "$IMAP_PORT" Dovecot || ! wait_port "$LMTP_PORT" "Dovecot LMTP"; then
  cat "$WORK/dovecot.out" "$WORK/dovecot.log" 2>/dev/null | tail -n 40
  exit 1
fi

echo "== email test: SMTP (aiosmtpd → LMTP) on 127.0.0.1:$SMTP_PORT"
cat >"$WORK/smtp.py" <<'EOF'
"""An SMTP server (AUTH required, the Dovecot users' logins) that hands every message to
Dovecot over LMTP, so what is sent lands in the recipient's IMAP mailbox."""
import smtplib, sys, threading, warnings
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

smtp_port, lmtp_port = int(sys.argv[1]), int(sys.argv[2])
USERS = {}
for line in open(sys.argv[3]):
    user, _, pw = line.strip().partition(":{PLAIN}")
    USERS[user] = pw

class Deliver:
    async def handle_DATA(self, server, session, envelope):
        try:
            with smtplib.LMTP("127.0.0.1", lmtp_port) as lmtp:
                lmtp.sendmail(envelope.mail_from, envelope.rcpt_tos, envelope.original_content)
        except smtplib.SMTPRecipientsRefused as e:
            return f"550 recipient refused: {e}"
        except Exception as e:  # the sender sees a temporary failure and may retry
            return f"451 delivery failed: {e}"
        print(f"delivered {envelope.mail_from} -> {envelope.rcpt_tos}", flush=True)
        return "250 OK"

def check_login(server, session, envelope, mechanism, auth_data):
    """Logins are the Dovecot users' (users file), so the SMTP credentials path is tested."""
    if not isinstance(auth_data, LoginPassword):
        return AuthResult(success=False, handled=False)
    user = auth_data.login.decode().split("@")[0].lower()
    return AuthResult(success=USERS.get(user) == auth_data.password.decode())

# Plaintext AUTH is fine here: loopback only.
warnings.filterwarnings("ignore", message="Requiring AUTH while not requiring TLS")
controller = Controller(Deliver(), hostname="127.0.0.1", port=smtp_port,
                        authenticator=check_login, auth_required=True, auth_require_tls=False)
controller.start()
threading.Event().wait()
EOF
"$PY" "$WORK/smtp.py" "$SMTP_PORT" "$LMTP_PORT" "$WORK/users" >"$WORK/smtp.log" 2>&1 &
SMTP_PID=$!
if ! wait_port "$SMTP_PORT" aiosmtpd; then
  cat "$WORK/smtp.log"
  exit 1
fi

echo "== email test: cargo test --test email"
export AVATAR_TEST_IMAP="127.0.0.1:$IMAP_PORT"
export AVATAR_TEST_SMTP="127.0.0.1:$SMTP_PORT"
if ! cargo test --locked --test email -- --nocapture; then
  echo "-- dovecot log (last 40 lines):"
  tail -n 40 "$WORK/dovecot.log" 2>/dev/null || true
  echo "-- smtp log:"
  tail -n 40 "$WORK/smtp.log" || true
  exit 1
fi
echo "== email test passed in $(($(date +%s) - START)) s"
