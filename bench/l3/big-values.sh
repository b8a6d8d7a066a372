#!/usr/bin/env bash
# Large values and other clients (issue 10): while 10 values of 64 MiB are
# written with redis-cli (L3 and L4 on, the node's defaults), a concurrent
# `redis-benchmark -t get -n 300000 -r 10000 -c 20` measures how long other
# clients wait; the same GET benchmark alone (-n 100000) first, for reference.
# Then a GET of one big value is compared with the file written (cmp).
# Each build in NODES (space-separated kura-node paths; default this build's)
# runs in turn, ROUNDS times, interleaved: a fresh node and data directory each
# time. Prints one line per run: alone and during p99/max (ms) and rps, and the
# seconds the 10 SETs took.
#   bench/l3/big-values.sh
#   NODES="/tmp/base/kura-node build/bin/kura-node" ROUNDS=2 bench/l3/big-values.sh
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
BUILD_DIR="${BUILD_DIR:-$root/build}"
NODES="${NODES:-$BUILD_DIR/bin/kura-node}"
ROUNDS="${ROUNDS:-1}"
MB="${MB:-64}"
dir="$(mktemp -d /tmp/kura-big.XXXXXX)"
pid=""
cleanup() {
  [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true
  rm -rf "$dir"
}
trap cleanup EXIT
head -c $((MB * 1048576)) /dev/urandom >"$dir/big"
csv_col() { tail -1 | tr -d '"' | cut -d, -f"$1"; } # 2 rps, 7 p99, 8 max
for round in $(seq 1 "$ROUNDS"); do
  for node in $NODES; do
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()')
    rm -rf "$dir/data"
    "$node" --port="$port" --metrics-port=0 --cluster-port=0 --data-dir="$dir/data" 2>"$dir/node.log" &
    pid=$!
    for _ in $(seq 1 200); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.05; done
    alone=$(redis-benchmark -p "$port" -t get -n 100000 -r 10000 -c 20 --csv)
    redis-benchmark -p "$port" -t get -n 300000 -r 10000 -c 20 --csv >"$dir/during.csv" &
    bench=$!
    sleep 0.5
    t0=$(date +%s.%N)
    for i in $(seq 0 9); do redis-cli -p "$port" -x set "big$i" <"$dir/big" >/dev/null; done
    t1=$(date +%s.%N)
    wait "$bench"
    redis-cli -p "$port" get big7 >"$dir/got" # the value and a newline
    truncate -s $((MB * 1048576)) "$dir/got"
    same=$(cmp -s "$dir/big" "$dir/got" && echo identical || echo DIFFERENT)
    during=$(cat "$dir/during.csv")
    printf '%s round %s: alone p99 %s max %s ms (%s rps); during 10 SETs of %s MiB: p99 %s max %s ms (%s rps); SETs %.1f s; GET big7 %s\n' \
      "$node" "$round" "$(csv_col 7 <<<"$alone")" "$(csv_col 8 <<<"$alone")" "$(csv_col 2 <<<"$alone")" "$MB" \
      "$(csv_col 7 <<<"$during")" "$(csv_col 8 <<<"$during")" "$(csv_col 2 <<<"$during")" \
      "$(echo "$t1 - $t0" | bc)" "$same"
    kill "$pid"
    wait "$pid" 2>/dev/null || true
    pid=""
  done
done
