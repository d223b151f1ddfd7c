#!/usr/bin/env bash
# Fuzzes a running `rouse serve` (loopback, SQLite in a temp dir, the example
# rotations, an admin token) against its own OpenAPI document with
# Schemathesis: any 5xx, undocumented status or content type, or a body that
# violates its schema fails. Run from anywhere; needs target/debug/rouse.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
VENV=${ROUSE_SCHEMATHESIS_VENV:-/tmp/rouse-schemathesis-venv}
SCHEMATHESIS_VERSION=4.32.5
if [ "$("$VENV/bin/schemathesis" --version 2>/dev/null)" != "schemathesis, version $SCHEMATHESIS_VERSION" ]; then
  python3 -m venv "$VENV"
  timeout 900 "$VENV/bin/pip" install -q --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION"
fi

command -v curl >/dev/null 2>&1 || {
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq curl >/dev/null
}

work=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
export ROUSE_FUZZ_KEY=dev-key-change-me   # the example rotations' integration key
admin=$(python3 -c 'import secrets; print(secrets.token_hex(16))')
(
  cd "$work"
  ROUSE_LISTEN="127.0.0.1:$port" ROUSE_DATABASE_URL="sqlite://$work/rouse.db" \
    ROUSE_ROTATIONS_DIR="$root/rotations" ROUSE_ADMIN_TOKEN="$admin" \
    ROUSE_PUBLIC_URL="http://127.0.0.1:$port" ROUSE_INTAKE_BURST_PER_KEY=100000 \
    ROUSE_INTAKE_RATE_PER_KEY=100000 \
    exec "$root/target/debug/rouse" serve 2>"$work/rouse.log"
) &
server=$!
trap 'kill "$server" 2>/dev/null; wait "$server" 2>/dev/null; rm -rf "$work"' EXIT
for _ in $(seq 1 100); do
  curl -fs "http://127.0.0.1:$port/readyz" >/dev/null && break
  sleep 0.2
done
curl -fs "http://127.0.0.1:$port/readyz" >/dev/null || { cat "$work/rouse.log" >&2; exit 1; }

status=0
"$VENV/bin/schemathesis" --config-file "$here/schemathesis.toml" run \
  "http://127.0.0.1:$port/api/openapi.json" \
  -H "Authorization: Bearer $admin" \
  --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance \
  --phases examples,coverage,fuzzing --max-examples "${ROUSE_FUZZ_EXAMPLES:-50}" \
  --generation-database none --no-color || status=$?
if [ "$status" -ne 0 ]; then
  echo "--- rouse.log (last 50 lines)" >&2
  tail -n 50 "$work/rouse.log" >&2
fi
# A 5xx must also be visible in the server's log as a panic or an internal error.
if grep -q 'panicked' "$work/rouse.log"; then
  echo "rouse panicked during the fuzz run" >&2
  grep -m5 -A3 'panicked' "$work/rouse.log" >&2
  status=1
fi
exit "$status"
