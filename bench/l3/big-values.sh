#!/usr/bin/env bash
# Large values and other clients (issue 10): how long do other clients wait
# while 10 values of 64 MiB are written with redis-cli (L3 and L4 on: the
# node's defaults)? In one run, per node: a GET benchmark alone, then the same
# GET benchmark while the 10 SETs run (it runs in pieces of CHUNK requests
# until the last SET has returned, so it covers the writes and little else),
# then `GET big7` compared with the file written (cmp).
#   GET benchmark: redis-benchmark -t get -c 20 -r 10000 -n CHUNK (keys never
#   written: each GET is a memory miss that the L3 presence filter answers).
# p50 / p99 / max come from redis-benchmark's percentile lines of every piece,
# merged (each piece's counts at its listed latencies: exact to its printed
# resolution). Each build in NODES (space-separated kura-node paths; default
# this build's) runs in turn, ROUNDS times, interleaved (the order flips every
# round): a fresh node and data directory each time, on port PORT.
# For scale it also prints how long one 64 MiB copy into fresh memory takes
# here (python3, bytearray of the file: page faults included).
#   bench/l3/big-values.sh
#   NODES="/tmp/base/kura-node build/bin/kura-node" ROUNDS=3 bench/l3/big-values.sh
#   PORT=22040 MB=64 COUNT=10 CHUNK=20000 ALONE=100000 EXTRA="--kura.l4.enabled=false" ...
# Output: one line per run, then a table of medians per build (markdown).
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
BUILD_DIR="${BUILD_DIR:-$root/build}"
NODES="${NODES:-$BUILD_DIR/bin/kura-node}"
ROUNDS="${ROUNDS:-1}"
MB="${MB:-64}"
COUNT="${COUNT:-10}"
CHUNK="${CHUNK:-20000}"
ALONE="${ALONE:-100000}"
PORT="${PORT:-22040}"
EXTRA="${EXTRA:-}"
for t in redis-benchmark redis-cli python3 cmp; do
  command -v "$t" >/dev/null || { echo "big-values: $t missing (run scripts/setup)" >&2; exit 1; }
done
dir="$(mktemp -d /tmp/kura-big.XXXXXX)"
pid=""
setter=""
cleanup() {
  [ -n "$setter" ] && kill "$setter" 2>/dev/null
  [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
  rm -rf "$dir"
}
trap cleanup EXIT
head -c $((MB * 1048576)) /dev/urandom >"$dir/big"
copy_ms=$(python3 - "$dir/big" <<'PY'
import sys, time
data = open(sys.argv[1], "rb").read()
best = None
for _ in range(3):
    t = time.perf_counter()
    b = bytearray(data)  # a copy into freshly allocated memory
    dt = (time.perf_counter() - t) * 1000
    del b
    best = dt if best is None else min(best, dt)
print(f"{best:.1f}")
PY
)
echo "# $(date -u +%FT%TZ) load $(cut -d' ' -f1-3 /proc/loadavg); one ${MB} MiB copy into fresh memory: ${copy_ms} ms"

# get_piece N OUT: one piece of the GET benchmark, its full output kept
get_piece() {
  redis-benchmark -p "$PORT" -t get -n "$1" -r 10000 -c 20 --precision 3 2>/dev/null |
    tr '\r' '\n' >>"$2"
}
# merged OUT: "p50 p99 max rps" over every piece in OUT
merged() {
  python3 - "$1" <<'PY'
import re, sys
pts, total, secs = [], 0, 0.0
section = False
prev = 0
for line in open(sys.argv[1]):
    if line.startswith("Latency by percentile distribution"):
        section, prev = True, 0
        continue
    if line.startswith("Cumulative distribution"):
        section = False
        continue
    m = re.match(r"\s*([\d.]+)% <= ([\d.]+) milliseconds \(cumulative count (\d+)\)", line)
    if section and m:
        lat, cum = float(m.group(2)), int(m.group(3))
        if cum > prev:
            pts.append((lat, cum - prev))
            prev = cum
        continue
    m = re.match(r"\s*(\d+) requests completed in ([\d.]+) seconds", line)
    if m:
        total += int(m.group(1))
        secs += float(m.group(2))
pts.sort()
n = sum(c for _, c in pts)
def pct(p):
    want, acc = p * n, 0
    for lat, c in pts:
        acc += c
        if acc >= want:
            return lat
    return pts[-1][0] if pts else float("nan")
rps = total / secs if secs else 0
print(f"{pct(0.5):.3f} {pct(0.99):.3f} {pct(1.0):.3f} {rps:.0f}")
PY
}

rows="$dir/rows"
: >"$rows"
for round in $(seq 1 "$ROUNDS"); do
  order=($NODES)
  if [ $((round % 2)) = 0 ]; then
    order=()
    for n in $NODES; do order=("$n" "${order[@]}"); done
  fi
  for node in "${order[@]}"; do
    rm -rf "$dir/data" "$dir/alone" "$dir/during" "$dir/sets"
    # shellcheck disable=SC2086
    "$node" --port="$PORT" --metrics-port=0 --cluster-port=0 --data-dir="$dir/data" $EXTRA \
      2>"$dir/node.log" &
    pid=$!
    for _ in $(seq 1 200); do redis-cli -p "$PORT" ping >/dev/null 2>&1 && break; sleep 0.05; done
    load0=$(cut -d' ' -f1 /proc/loadavg)
    for ((done_n = 0; done_n < ALONE; done_n += CHUNK)); do get_piece "$CHUNK" "$dir/alone"; done
    (
      for i in $(seq 0 $((COUNT - 1))); do
        s=$(date +%s.%N)
        redis-cli -p "$PORT" -x set "big$i" <"$dir/big" >/dev/null
        echo "$s $(date +%s.%N)" >>"$dir/sets"
      done
    ) &
    setter=$!
    t0=$(date +%s.%N)
    get_piece "$CHUNK" "$dir/during"
    while kill -0 "$setter" 2>/dev/null; do get_piece "$CHUNK" "$dir/during"; done
    wait "$setter"
    setter=""
    t1=$(date +%s.%N)
    redis-cli -p "$PORT" get big7 >"$dir/got" # the value and a newline
    truncate -s $((MB * 1048576)) "$dir/got"
    same=$(cmp -s "$dir/big" "$dir/got" && echo identical || echo DIFFERENT)
    read -r a50 a99 amax arps <<<"$(merged "$dir/alone")"
    read -r d50 d99 dmax drps <<<"$(merged "$dir/during")"
    sets_s=$(awk 'NR==1{a=$1} {b=$2} END{printf "%.2f", b-a}' "$dir/sets")
    set_med=$(awk '{print ($2-$1)*1000}' "$dir/sets" | sort -n | awk '{v[NR]=$1} END{printf "%.0f", v[int((NR+1)/2)]}')
    printf '%s round %s (load %s): alone p50 %s p99 %s max %s ms (%s rps); during %s SETs of %s MiB: p50 %s p99 %s max %s ms (%s rps, %.1f s); SETs %s s (median %s ms each); GET big7 %s\n' \
      "$node" "$round" "$load0" "$a50" "$a99" "$amax" "$arps" "$COUNT" "$MB" "$d50" "$d99" "$dmax" \
      "$drps" "$(echo "$t1 - $t0" | bc)" "$sets_s" "$set_med" "$same"
    echo "$node,$a50,$a99,$amax,$arps,$d50,$d99,$dmax,$drps,$sets_s,$set_med,$same" >>"$rows"
    kill "$pid"
    wait "$pid" 2>/dev/null || true
    pid=""
  done
done
python3 - "$rows" "$copy_ms" <<'PY'
import statistics as s, sys
rows = [l.strip().split(",") for l in open(sys.argv[1]) if l.strip()]
nodes = []
for r in rows:
    if r[0] not in nodes:
        nodes.append(r[0])
print()
print(f"medians over rounds (one {sys.argv[2]} ms copy of the value for scale); ms:")
print("| build | alone p50 / p99 / max | during SETs p50 / p99 / max | rps alone / during | SETs s (median per SET ms) | GET big7 |")
print("|---|---|---|---|---|---|")
for n in nodes:
    rs = [r for r in rows if r[0] == n]
    m = lambda i: s.median(float(r[i]) for r in rs)
    same = "identical" if all(r[11] == "identical" for r in rs) else "DIFFERENT"
    print(f"| {n} | {m(1):.2f} / {m(2):.2f} / {m(3):.1f} | {m(5):.2f} / {m(6):.2f} / {m(7):.1f} | "
          f"{m(4):.0f} / {m(8):.0f} | {m(9):.2f} ({m(10):.0f}) | {same} ({len(rs)} runs) |")
PY
