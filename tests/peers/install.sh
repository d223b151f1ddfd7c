#!/usr/bin/env bash
# Installs the real peers the integration tests drive; idempotent, run from anywhere.
#   - a Python venv ($ROUSE_PEERS_VENV, default /tmp/rouse-peers-venv) with Slack's
#     slack_sdk (Block Kit validation), aiosmtpd (SMTP server) and Synapse (Matrix);
#   - Prism (npm @stoplight/prism-cli), which validates every Twilio request
#     against Twilio's published OpenAPI description;
#   - playwright-core (npm), which drives Debian's Chromium for the ack page test.
# Tests that need a missing peer say SKIPPED, or fail when CI is set.
set -euo pipefail
cd "$(dirname "$0")"

VENV=${ROUSE_PEERS_VENV:-/tmp/rouse-peers-venv}
SYNAPSE_VERSION=${SYNAPSE_VERSION:-1.163.2}
have_python() {
  "$VENV/bin/python" -c 'import slack_sdk, aiosmtpd, synapse' 2>/dev/null &&
    [ "$("$VENV/bin/python" -c 'import synapse; print(synapse.__version__)')" = "$SYNAPSE_VERSION" ]
}
if ! { [ -x "$VENV/bin/python" ] && have_python; }; then
  python3 -m venv "$VENV"
  timeout 900 "$VENV/bin/pip" install -q --disable-pip-version-check \
    slack_sdk aiosmtpd "matrix-synapse==$SYNAPSE_VERSION"
  have_python || { echo "peers venv incomplete: $VENV" >&2; exit 1; }
fi
echo "python peers ready: $VENV"

PRISM_VERSION=5.14.2
if [ ! -x node_modules/.bin/prism ] || [ "$(node_modules/.bin/prism --version 2>/dev/null)" != "$PRISM_VERSION" ] ||
  [ ! -f node_modules/playwright-core/package.json ]; then
  npm ci --no-audit --no-fund --loglevel=error
fi
echo "prism ready: $(node_modules/.bin/prism --version)"
echo "playwright-core ready: $(node -p 'require("./node_modules/playwright-core/package.json").version')"
# The browser itself is Debian's package (playwright-core downloads none).
if [ -x /usr/bin/chromium ]; then
  echo "chromium ready: $(/usr/bin/chromium --version 2>/dev/null)"
else
  echo "chromium missing: install the Debian package chromium (the browser test skips, or fails under CI)"
fi

# --- calendar feeds (tests/it/feeds.rs) ---------------------------------------
# Python's icalendar parses the .ics feeds the way calendar tooling does.
if ! "$VENV/bin/python" -c 'import icalendar' 2>/dev/null; then
  timeout 300 "$VENV/bin/pip" install -q --disable-pip-version-check icalendar
fi
echo "icalendar ready: $("$VENV/bin/python" -c 'import icalendar; print(icalendar.__version__)')"

# --- web UI single sign-on (tests/it/web_oidc.rs) -----------------------------
# npm oidc-provider: a real OpenID Connect provider (tests/peers/oidc_provider.js).
if [ ! -f node_modules/oidc-provider/package.json ]; then
  npm ci --no-audit --no-fund --loglevel=error
fi
echo "oidc-provider ready: $(node -p 'require("./node_modules/oidc-provider/package.json").version')"
