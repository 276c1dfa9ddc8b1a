#!/usr/bin/env bash
# Load benchmark of `c3 serve` (issue 19): starts the server on a free port, then runs
# `c3 serve-bench` with 1 client and with CLIENTS concurrent clients, REPEATS times each,
# alternating (so that a busy machine slows both alike), over bench/data/serve-passages.jsonl
# (32 valid-set passages of 500-1000 characters, 145-366 c3-small tokens, mean 249: one chunk
# each at the model's 416-token chunks). Prints every run and the ratio of the median throughputs;
# stops the server with SIGTERM, which must exit 0.
#   bash bench/serve_load.sh [C3_BINARY] [MODEL]
#   env: DEVICE=cpu DTYPE=auto CLIENTS=16 SINGLE_REQUESTS=16 REQUESTS=4 (per client) REPEATS=3
#        ROUTE=roundtrip (compress | decompress | roundtrip) SERVE_ARGS="" (more `c3 serve` flags)
set -euo pipefail
cd "$(dirname "$0")/.."
C3="${1:-build/c3}"; MODEL="${2:-models/c3-small}"
DEVICE="${DEVICE:-cpu}"; DTYPE="${DTYPE:-auto}"; CLIENTS="${CLIENTS:-16}"; ROUTE="${ROUTE:-roundtrip}"
SINGLE_REQUESTS="${SINGLE_REQUESTS:-16}"; REQUESTS="${REQUESTS:-4}"; REPEATS="${REPEATS:-3}"
TEXTS="${TEXTS:-bench/data/serve-passages.jsonl}"
log=$(mktemp); trap 'rm -f "$log"' EXIT
# shellcheck disable=SC2086
"$C3" serve --model "$MODEL" --device "$DEVICE" --dtype "$DTYPE" --port 0 --access-log ${SERVE_ARGS:-} >"$log" 2>&1 &
pid=$!
port=""
for _ in $(seq 600); do
  port=$(grep -o 'listening on http://[^ ]*' "$log" | sed 's/.*://' || true)
  [ -n "$port" ] && break
  kill -0 "$pid" 2>/dev/null || { cat "$log"; exit 1; }
  sleep 0.1
done
[ -n "$port" ] || { echo "the server did not start"; cat "$log"; kill "$pid"; exit 1; }
head -1 "$log"
echo "machine: $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
bench() {  # CLIENTS REQUESTS: shows serve-bench's report on stderr, prints its req/s
  local out
  out=$("$C3" serve-bench --port "$port" --route "$ROUTE" --texts "$TEXTS" --clients "$1" \
        --requests "$2" --json -) || {
    echo "$out" >&2; echo "server log (non-200 lines, then the end):" >&2
    grep -v ' 200 ' "$log" | tail -20 >&2; kill "$pid"; exit 1; }
  grep -v '^{' <<<"$out" >&2
  grep -o '"req_per_s":[0-9.e+-]*' <<<"$out" | cut -d: -f2
}
one=(); many=()
bench 1 2 >/dev/null 2>&1  # warm-up
for i in $(seq "$REPEATS"); do
  one+=("$(bench 1 "$SINGLE_REQUESTS")")
  many+=("$(bench "$CLIENTS" "$REQUESTS")")
done
if command -v curl >/dev/null; then  # how full the batches ran, over the whole run
  curl -s "http://127.0.0.1:$port/metrics" | awk '
    /^c3_decode_batch_rows_sum/ {rs=$2} /^c3_decode_batch_rows_count/ {rc=$2}
    /^c3_encode_batch_chunks_sum/ {es=$2} /^c3_encode_batch_chunks_count/ {ec=$2}
    END {printf "decode steps: %d, mean rows %.2f; encoder passes: %d, mean chunks %.2f\n", rc, rs/rc, ec, es/ec}'
fi
kill -TERM "$pid"
rc=0; wait "$pid" || rc=$?
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
m1=$(median "${one[@]}"); mn=$(median "${many[@]}")
echo "1 client:   ${one[*]} req/s (median $m1)"
echo "$CLIENTS clients: ${many[*]} req/s (median $mn)"
awk -v a="$m1" -v b="$mn" -v c="$CLIENTS" 'BEGIN {printf "throughput %s clients / 1 client: %.2fx\n", c, b / a}'
echo "server exit status after SIGTERM: $rc"
[ "$rc" -eq 0 ]
