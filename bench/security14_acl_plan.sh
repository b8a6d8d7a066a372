#!/usr/bin/env bash
# bench/security14_acl_plan.sh: interleaved main (/work/main) vs this tree, single nodes on ports 23001/23002;
# kura-node CPU ticks (utime+stime from /proc/PID/stat) per request for SET/GET at -P 1 and 16 (bench/RESULTS.md, security14)
set -u
here=$(cd "$(dirname "$0")" && pwd)
MAIN_BIN=${MAIN_BIN:-/work/main/build/bin/kura-node}
WORK=${WORK:-/tmp/kura-security14-bench}
mkdir -p "$WORK" && cd "$WORK"
rm -rf d-main d-new
"$MAIN_BIN" --port=23001 --metrics-port=0 --cluster-port=0 --data-dir=$WORK/d-main > main.log 2>&1 &
PM=$!
"$here/../build/bin/kura-node" --port=23002 --metrics-port=0 --cluster-port=0 --data-dir=$WORK/d-new > new.log 2>&1 &
PN=$!
sleep 2
ticks() { awk '{print $14+$15}' /proc/$1/stat; }
N=300000
for round in 1 2 3; do
  for side in main new; do
    if [ $side = main ]; then P=23001; PID=$PM; else P=23002; PID=$PN; fi
    for t in set get; do
      for pl in 1 16; do
        a=$(ticks $PID)
        rps=$(redis-benchmark -p $P -t $t -n $N -r 100000 -c 50 -P $pl -q 2>/dev/null | tr '\r' '\n' | grep -i "requests per second" | tail -1 | awk '{print $2}')
        b=$(ticks $PID)
        echo "$round $side $t P$pl rps=$rps ticks=$((b-a)) us_per_req=$(awk -v d=$((b-a)) -v n=$N 'BEGIN{printf "%.3f", d*10000/n}')"
      done
    done
  done
done
kill $PM $PN
wait $PM $PN 2>/dev/null
