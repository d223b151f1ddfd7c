#!/bin/sh
# Rouse beside Prometheus Alertmanager in every shape issue #18 names, each
# shape RUNS times (default 3), Alertmanager restarted empty before each run:
#   - single alerts from the bench's own load generator, 64 connections,
#     new and duplicates;
#   - Alertmanager webhook groups of 100 alerts (Rouse) against
#     `POST /api/v2/alerts` arrays of 100 (Alertmanager), 4 and 64
#     connections, new and duplicates;
#   - wrk (-t1), single new alerts, 16 and 64 connections;
#   - Rouse on PostgreSQL against Rouse on SQLite, new alerts, 64 connections.
# Prints every `intake_summary` line as it comes (JSON, with
# `rouse_per_alertmanager`), then one table row per shape: min–max of the runs.
#
#   benches/compare.sh                       # RUNS=3 SECONDS_PER_RUN=5
#   RUNS=1 SECONDS_PER_RUN=3 benches/compare.sh  # a quick ratio check
#   PG_URL=postgres://postgres@127.0.0.1:5432/postgres (the bench makes its own database there)
set -eu
runs=${RUNS:-3}
secs=${SECONDS_PER_RUN:-5}
pg=${PG_URL:-postgres://postgres@127.0.0.1:5432/postgres}
am_bin=${ALERTMANAGER:-prometheus-alertmanager}
am=127.0.0.1:9093
for tool in "$am_bin" wrk jq curl; do
    command -v "$tool" >/dev/null || { echo "compare.sh needs $tool" >&2; exit 1; }
done
# BIN=path runs an already built intake bench binary instead of building one.
bin=${BIN:-$(cargo bench --bench intake --no-run 2>&1 | sed -n 's/.*Executable .*(\(.*\))/\1/p' | tail -1)}
work=$(mktemp -d)
am_pid=
serve_pid=
cleanup() {
    [ -n "$am_pid" ] && kill "$am_pid" 2>/dev/null || true
    [ -n "$serve_pid" ] && kill "$serve_pid" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT INT TERM
printf 'route: {receiver: "null"}\nreceivers: [{name: "null"}]\n' > "$work/am.yml"

start_am() {
    rm -rf "$work/am-data"
    "$am_bin" --config.file="$work/am.yml" --storage.path="$work/am-data" \
        --web.listen-address="$am" --cluster.listen-address= >"$work/am.log" 2>&1 &
    am_pid=$!
    i=0
    until curl -fs "http://$am/-/ready" >/dev/null; do
        i=$((i + 1)); [ $i -lt 100 ] || { cat "$work/am.log" >&2; exit 1; }
        sleep 0.1
    done
}
stop_am() {
    kill "$am_pid"; wait "$am_pid" 2>/dev/null || true; am_pid=
}
summaries() { grep '"intake_summary"' | jq -c --argjson run "$1" '. + {run: $run}' | tee -a "$work/all"; }

# wrk against Rouse and Alertmanager; prints a summary line like the bench's.
wrk_shape() { # connections run
    start_am
    rm -f "$work/serve"
    "$bin" --serve >"$work/serve" 2>/dev/null &
    serve_pid=$!
    until grep -q '"rouse"' "$work/serve" 2>/dev/null; do sleep 0.1; done
    rouse=$(jq -r .rouse "$work/serve")
    r=$(wrk -t1 -c"$1" -d"${secs}s" -s benches/wrk/intake.lua "http://$rouse" -- rouse new | grep '^{')
    a=$(wrk -t1 -c"$1" -d"${secs}s" -s benches/wrk/intake.lua "http://$am" -- alertmanager new | grep '^{')
    kill "$serve_pid"; wait "$serve_pid" 2>/dev/null || true; serve_pid=
    stop_am
    jq -nc --argjson r "$r" --argjson a "$a" --argjson c "$1" --argjson run "$2" '{bench: "intake_summary",
        shape: "wrk_single_c\($c)_new", store: "sqlite", connections: $c, alerts_per_request: 1,
        rouse_alerts_per_second: $r.requests_per_second, rouse_p99_us: $r.p99_us,
        rouse_errors: ($r.non_2xx + $r.socket_errors),
        alertmanager_alerts_per_second: $a.requests_per_second, alertmanager_p99_us: $a.p99_us,
        rouse_per_alertmanager: (($r.requests_per_second / $a.requests_per_second * 1000 | round) / 1000),
        run: $run}' | tee -a "$work/all"
}

for run in $(seq "$runs"); do
    start_am
    "$bin" --seconds "$secs" --connections 64 --alertmanager "$am" --alertmanager-pid "$am_pid" | summaries "$run"
    stop_am
    for c in 4 64; do
        start_am
        "$bin" --seconds "$secs" --connections "$c" --alerts-per-request 100 \
            --alertmanager "$am" --alertmanager-pid "$am_pid" | summaries "$run"
        stop_am
    done
    wrk_shape 16 "$run"
    wrk_shape 64 "$run"
    # PostgreSQL beside SQLite in the same round (the target is a ratio of the two).
    p=$("$bin" --seconds "$secs" --connections 64 --only new --store "$pg" | grep '"intake_summary"')
    s=$("$bin" --seconds "$secs" --connections 64 --only new | grep '"intake_summary"')
    jq -nc --argjson p "$p" --argjson s "$s" --argjson run "$run" '{bench: "intake_summary",
        shape: "postgres_single_c64_new", store: "postgres", connections: 64, alerts_per_request: 1,
        rouse_alerts_per_second: $p.rouse_alerts_per_second, rouse_p99_us: $p.rouse_p99_us,
        sqlite_alerts_per_second: $s.rouse_alerts_per_second,
        postgres_per_sqlite: (($p.rouse_alerts_per_second / $s.rouse_alerts_per_second * 1000 | round) / 1000),
        run: $run}' | tee -a "$work/all"
done

echo
echo "| shape | Rouse alerts/s | Alertmanager alerts/s | Rouse ÷ AM | Rouse p99 ms | AM p99 ms |"
echo "|---|---|---|---|---|---|"
jq -rs 'def ms: if . == null then null else (. / 100 | round / 10) end;
    group_by(.shape)[] |
    def span(f): (map(f) | map(select(. != null))) as $v
        | if ($v | length) == 0 then "—" else "\($v | min)–\($v | max)" end;
    "| \(.[0].shape) (\(length) runs) | \(span(.rouse_alerts_per_second)) | \(span(.alertmanager_alerts_per_second)) | \(span(.rouse_per_alertmanager // .postgres_per_sqlite))\(if .[0].postgres_per_sqlite then " (÷ SQLite: \(span(.sqlite_alerts_per_second))/s)" else "" end) | \(span(.rouse_p99_us | ms)) | \(span(.alertmanager_p99_us | ms)) |"' "$work/all"
