#!/usr/bin/env bash
# Start to first L3 hit (issue 10): fills a kura-node's L3 with about MB
# megabytes of 1000-byte values (redis-benchmark SET, -r keys), stops it
# cleanly, then restarts it on that data and measures the time from the exec
# to the first PING reply and to the first GET of an L3-resident key that
# returns its value, for kura.l3.verify-on-open=lazy and =full, each with a
# warm page cache and with a cold one (the node's data files are dropped from
# the page cache with posix_fadvise(DONTNEED): only this node's files, not the
# machine's cache).
#   bench/l3/restart.sh            # MB=1024
#   MB=256 ROUNDS=3 bench/l3/restart.sh
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
BUILD_DIR="${BUILD_DIR:-$root/build}"
MB="${MB:-1024}"
ROUNDS="${ROUNDS:-1}"
node="$BUILD_DIR/bin/kura-node"
dir="$(mktemp -d /tmp/kura-restart.XXXXXX)"
pid=""
cleanup() {
  [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true
  rm -rf "$dir"
}
trap cleanup EXIT
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()')
args=(--port="$port" --metrics-port=0 --cluster-port=0 --data-dir="$dir/data" --memory-bytes=67108864
  --kura.archive.enabled=false --kura.l3.map-size=$((MB * 4 * 1048576 + 1073741824)))
keys=$((MB * 1024))
"$node" "${args[@]}" 2>"$dir/fill.log" &
pid=$!
for _ in $(seq 1 200); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.05; done
# -n keys random keys of 0..keys-1: about 63% of them (du shows the size reached)
echo "filling ~${MB} MB ($keys keys of 1000 bytes)" >&2
redis-benchmark -p "$port" -t set -n "$keys" -r "$keys" -d 1000 -P 16 -c 20 -q >/dev/null 2>&1
redis-cli -p "$port" set probe:key probe-value >/dev/null
kill -TERM "$pid"
wait "$pid" || true
pid=""
du -sh "$dir/data/l3" >&2
# the probe key is in L3 only after the restart (memory starts empty)
measure() { # verify mode, cache state -> "ping_ms hit_ms"
  local mode=$1 cache=$2
  if [ "$cache" = cold ]; then
    python3 - "$dir/data" <<'PY'
import os, sys
for base, _, files in os.walk(sys.argv[1]):
    for f in files:
        fd = os.open(os.path.join(base, f), os.O_RDONLY)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        os.close(fd)
PY
  fi
  python3 - "$node" "$port" "$mode" "${args[@]}" <<'PY'
import socket, subprocess, sys, time
node, port, mode, args = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4:]
t0 = time.monotonic()
p = subprocess.Popen([node] + args + ["--kura.l3.verify-on-open=" + mode],
                     stderr=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
def call(cmd):
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.sendall(cmd)
    r = s.recv(4096)
    s.close()
    return r
ping = hit = None
try:
    while hit is None and time.monotonic() - t0 < 120:
        try:
            if ping is None:
                if call(b"PING\r\n").startswith(b"+PONG"):
                    ping = time.monotonic() - t0
            if ping is not None and call(b"*2\r\n$3\r\nGET\r\n$9\r\nprobe:key\r\n") == b"$11\r\nprobe-value\r\n":
                hit = time.monotonic() - t0
        except OSError:
            time.sleep(0.002)
finally:
    p.terminate()
    p.wait()
print(f"{ping*1000:.0f} {hit*1000:.0f}" if hit else "timeout timeout")
PY
}
echo "| verify-on-open | page cache | round | start to PING ms | start to first L3 hit ms |"
echo "|---|---|---|---|---|"
for round in $(seq 1 "$ROUNDS"); do
  for mode in lazy full; do
    for cache in cold warm; do
      read -r p h <<<"$(measure "$mode" "$cache")"
      echo "| $mode | $cache | $round | $p | $h |"
    done
  done
done
