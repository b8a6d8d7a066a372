#!/usr/bin/env bash
# Erasure benchmark (issue 13): erase rate (keys/s, from the receipts) and the
# GET throughput of redis-benchmark while erasures run, against the same node
# without them, interleaved (3 rounds each). Usage: bench/erase/run.sh [build-dir]
set -euo pipefail
B=${1:-build}
PORT=${PORT:-17480}
DIR=$(mktemp -d /tmp/kura-bench-erase.XXXXXX)
"$B/bin/kura-node" --port=$PORT --metrics-port=0 --cluster-port=0 --data-dir="$DIR" \
  --memory-bytes=16777216 >"$DIR.log" 2>&1 &
NODE=$!
trap 'kill $NODE 2>/dev/null; wait $NODE 2>/dev/null; rm -rf "$DIR" "$DIR.log"' EXIT
for _ in $(seq 100); do redis-cli -p $PORT ping >/dev/null 2>&1 && break; sleep 0.1; done
# 200k keys of 100 bytes: memory holds about half, L3 all of them
redis-benchmark -p $PORT -t set -r 200000 -n 400000 -d 100 -P 32 -q >/dev/null
get_rps() { redis-benchmark -p $PORT -t get -r 200000 -n 400000 -c 20 -P 16 --csv | tail -1 | cut -d, -f2 | tr -d '"'; }
erase_loop() { # erase 1000-key prefixes one after another until killed
  local i=0
  while :; do
    redis-cli -p $PORT KURA.ERASE PREFIX "key:00000010$(printf %02d $i)" >/dev/null
    i=$(( (i + 1) % 100 ))
    sleep 0.05
  done
}
echo "round,baseline_get_rps,during_erase_get_rps"
for r in 1 2 3; do
  base=$(get_rps)
  erase_loop & EL=$!
  during=$(get_rps)
  kill $EL; wait $EL 2>/dev/null || true
  echo "$r,$base,$during"
done
# erase rate: one 10000-key KEY erasure, from its receipt
KEYS=$(for i in $(seq 0 9999); do printf 'key:%012d ' $((i * 17 % 200000)); done)
ID=$(redis-cli -p $PORT KURA.ERASE KEY $KEYS | sed -n 2p)
while [ "$(redis-cli -p $PORT KURA.ERASE STATUS $ID | sed -n 4p)" != done ]; do sleep 0.1; done
redis-cli -p $PORT KURA.ERASE STATUS $ID | paste - - | tr '\t' '=' | tr '\n' ' '; echo
