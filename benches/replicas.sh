#!/usr/bin/env bash
# Intake throughput on PostgreSQL with one replica and with several, in the
# same run: REPLICAS `rouse serve` processes (default 2) on one fresh
# database; wrk first drives one of them with all connections, then all of
# them at once (an equal share of the connections each, summed). Prints one
# JSON line per round. The machine is shared, so the ratio of the two
# figures in one round is what to compare.
#
#   benches/replicas.sh            # REPLICAS=2 ROUNDS=3 SECONDS_EACH=5 CONNS=48 STEP_DELAY=0m ROUSE_BIN=target/release/rouse
set -euo pipefail
cd "$(dirname "$0")/.."
ADMIN=${ROUSE_TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/test}
BIN=${ROUSE_BIN:-target/release/rouse}
ROUNDS=${ROUNDS:-3}
SECONDS_EACH=${SECONDS_EACH:-5}
CONNS=${CONNS:-48}
REPLICAS=${REPLICAS:-2}
# The first step's delay: 0m pages every alert at once, so the engines'
# claims, pages and their records share the database with intake; 1h
# leaves intake alone, as the in-process intake bench does.
STEP_DELAY=${STEP_DELAY:-0m}
command -v wrk >/dev/null || { echo "SKIPPED: wrk is not installed (apt-get install wrk)" >&2; exit 1; }
[ -x "$BIN" ] || { echo "no $BIN: cargo build --release (or set ROUSE_BIN)" >&2; exit 1; }

work=$(mktemp -d)
pids=()
stop() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; pids=(); }
trap 'stop; rm -rf "$work"' EXIT
mkdir -p "$work/rotations"
cat > "$work/rotations/oncall.yaml" <<YAML
people:
  - { id: alice, name: Alice, timezone: UTC }
policies:
  - id: room
    steps:
      - { delay: $STEP_DELAY, targets: [{ chat: "#ops" }], channels: [chat] }
services:
  - id: bench
    policy: room
    integrations: [{ name: wrk, key: bench-key-0123456789abcdef }]
YAML

rps() { sed -n 's/.*"requests_per_second":\([0-9]*\).*/\1/p' "$1"; }
base=${ADMIN%/*}
for round in $(seq 1 "$ROUNDS"); do
  db="rouse_replicas_$$_$round"
  psql "$ADMIN" -qc "CREATE DATABASE $db"
  ports=()
  for i in $(seq 0 $((REPLICAS - 1))); do
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    ports+=("$port")
    ROUSE_LISTEN=127.0.0.1:$port ROUSE_PUBLIC_URL=http://127.0.0.1:$port \
      ROUSE_DATABASE_URL="$base/$db" ROUSE_ROTATIONS_DIR="$work/rotations" \
      ROUSE_INTAKE_STORM_THRESHOLD=100000000 ROUSE_INTAKE_RATE_PER_KEY=1000000 \
      ROUSE_INTAKE_BURST_PER_KEY=1000000 ROUSE_SIGNING_KEY=replicas-bench-signing-key-0123456789 \
      RUST_LOG=warn "$BIN" serve 2>"$work/rouse-$i.log" &
    pids+=($!)
    # One at a time: they migrate the fresh database on start.
    for _ in $(seq 1 200); do curl -fs "http://127.0.0.1:$port/readyz" >/dev/null && break; sleep 0.1; done
  done
  wrk -t1 -c"$CONNS" -d"${SECONDS_EACH}s" -s benches/wrk/intake.lua "http://127.0.0.1:${ports[0]}" -- rouse new "one-$round" > "$work/one.json"
  per=$((CONNS / REPLICAS))
  loads=()
  for i in $(seq 0 $((REPLICAS - 1))); do
    wrk -t1 -c"$per" -d"${SECONDS_EACH}s" -s benches/wrk/intake.lua "http://127.0.0.1:${ports[$i]}" -- rouse new "all-$round-$i" > "$work/all-$i.json" &
    loads+=($!)
  done
  wait "${loads[@]}"
  one=$(rps "$work/one.json")
  all=0
  for i in $(seq 0 $((REPLICAS - 1))); do all=$((all + $(rps "$work/all-$i.json"))); done
  printf '{"bench":"replicas_intake_postgres","round":%d,"replicas":%d,"connections":%d,"one_replica_events_per_second":%d,"all_replicas_events_per_second":%d,"all_over_one":%s}\n' \
    "$round" "$REPLICAS" "$CONNS" "$one" "$all" "$(python3 -c "print(round($all / max($one, 1), 2))")"
  stop
  psql "$ADMIN" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)"
done
