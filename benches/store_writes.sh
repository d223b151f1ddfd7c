#!/bin/sh
# Instructions per event of the store's write path (benches/store_writes.rs),
# counted by callgrind: repeatable on a busy machine, unlike wall time.
# Two runs per scenario, N and 2N events; (I(2N) - I(N)) / N cancels start-up,
# migrations and opening the duplicates' alerts.
#   benches/store_writes.sh [N] [BATCH]     (default 2000 events, batches of 100)
# BIN=path runs an already built bench binary (an older build, to compare).
set -eu
n=${1:-2000}
batch=${2:-100}
bin=${BIN:-$(cargo bench --bench store_writes --no-run 2>&1 | sed -n 's/.*Executable .*(\(.*\))/\1/p' | tail -1)}
out=$(mktemp -d)
total() {
    valgrind --tool=callgrind --callgrind-out-file="$out/cg.%p" "$bin" --only "$1" --events "$2" --batch "$batch" >/dev/null 2>"$out/log"
    sed -n 's/^==[0-9]*== Collected : \([0-9]*\).*/\1/p' "$out/log"
}
for scenario in new new_no_timer duplicate; do
    small=$(total "$scenario" "$n")
    large=$(total "$scenario" $((2 * n)))
    echo "{\"bench\":\"store_writes_callgrind\",\"scenario\":\"$scenario\",\"batch\":$batch,\"instructions_per_event\":$(( (large - small) / n ))}"
done
rm -rf "$out"
