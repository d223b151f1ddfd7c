#!/usr/bin/env bash
# A throw-away Synapse for the Matrix tests (adapted from shared/peers/matrix/synapse.sh):
# SQLite in DIR, listening on 127.0.0.1:PORT, run in the background while this
# script stays in the foreground as its watchdog: when WATCH_PID (the test
# process) is gone, or this script is killed, Synapse is stopped and DIR removed,
# so no homeserver outlives the test run.
# usage: synapse.sh DIR PORT WATCH_PID   (env ROUSE_PEERS_VENV, default /tmp/rouse-peers-venv)
set -euo pipefail
DIR=$1 PORT=$2 WATCH=$3
VENV=${ROUSE_PEERS_VENV:-/tmp/rouse-peers-venv}
mkdir -p "$DIR"
cat > "$DIR/homeserver.yaml" <<YAML
server_name: "localhost"
pid_file: $DIR/homeserver.pid
listeners:
  - port: $PORT
    bind_addresses: ['127.0.0.1']
    type: http
    tls: false
    x_forwarded: false
    resources: [{names: [client], compress: false}]
database: {name: sqlite3, args: {database: $DIR/homeserver.db}}
media_store_path: $DIR/media_store
signing_key_path: $DIR/localhost.signing.key
log_config: $DIR/log.yaml
registration_shared_secret: "test-shared-secret"
macaroon_secret_key: "test-macaroon-secret"
form_secret: "test-form-secret"
report_stats: false
enable_registration: false
trusted_key_servers: []
suppress_key_server_warning: true
presence: {enabled: false}
url_preview_enabled: false
federation_domain_whitelist: []
rc_message: {per_second: 1000, burst_count: 1000}
rc_registration: {per_second: 1000, burst_count: 1000}
rc_login:
  address: {per_second: 1000, burst_count: 1000}
  account: {per_second: 1000, burst_count: 1000}
  failed_attempts: {per_second: 1000, burst_count: 1000}
rc_joins: {local: {per_second: 1000, burst_count: 1000}}
YAML
cat > "$DIR/log.yaml" <<YAML
version: 1
formatters: {f: {format: '%(asctime)s %(levelname)s %(name)s %(message)s'}}
handlers: {file: {class: logging.FileHandler, filename: $DIR/synapse.log, formatter: f}}
root: {level: WARNING, handlers: [file]}
disable_existing_loggers: false
YAML
"$VENV/bin/python" -m synapse.app.homeserver -c "$DIR/homeserver.yaml" --generate-keys >/dev/null 2>&1
"$VENV/bin/python" -m synapse.app.homeserver -c "$DIR/homeserver.yaml" >"$DIR/stdout.log" 2>&1 &
SYN=$!
cleanup() { kill "$SYN" 2>/dev/null || true; wait "$SYN" 2>/dev/null || true; rm -rf "$DIR"; }
trap cleanup EXIT
trap 'exit 0' TERM INT
while kill -0 "$WATCH" 2>/dev/null && kill -0 "$SYN" 2>/dev/null; do sleep 0.5; done
