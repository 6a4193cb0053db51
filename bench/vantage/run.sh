#!/bin/bash
# A 4-vantage trace (one client agent sending from four source addresses, interleaved) at 1 kpps in
# total, 250 pps per vantage, in the built-in lab: per-vantage pacing error and capture drops.
# The rates are measured by tshark on the bundle's client capture (independent of tandem's own
# numbers), the drops come from the agents' libpcap counters in report.json. For scale, the same
# total rate from one vantage is measured in the same run, and the peer: four nping processes at
# once (one per source address, --source-ip, 250 pps each; nping has no multi-source mode and no
# far end), captured by tcpdump at the server and measured by the same tshark/python code.
#
# usage: bench/vantage/run.sh            (root; ~1 minute)
# env:   TANDEM_BIN   the tandem binary (default build/bin/tandem in the repository)
#        COUNT        probes per vantage (default 5000: 20 s at 250 pps)
#        KEEP=1       keep the bundles in /tmp/tdmvantage-PID
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
TANDEM_BIN=${TANDEM_BIN:-$ROOT/build/bin/tandem}
COUNT=${COUNT:-5000}
[ "$(id -u)" = 0 ] || { echo "run.sh: needs root (lab namespaces, raw sockets)" >&2; exit 2; }
[ -x "$TANDEM_BIN" ] || { echo "run.sh: $TANDEM_BIN missing: cmake --build build --target tandem tandem-agent" >&2; exit 2; }
for t in tshark nping tcpdump; do command -v $t >/dev/null || { echo "run.sh: $t not installed" >&2; exit 2; }; done
OUT=/tmp/tdmvantage-$$
mkdir -p "$OUT"
LAB=tdmvb$$
trap '"$TANDEM_BIN" lab down $LAB >/dev/null 2>&1 || true; [ "${KEEP:-0}" = 1 ] && echo "run.sh: bundles kept in $OUT" >&2 || rm -rf "$OUT"' EXIT

scenario() {  # scenario NAME RATE COUNT SOURCES...: a clean lab, trace mode, the client with extra addresses
  local name=$1 rate=$2 count=$3; shift 3
  local extra=""
  for a in "$@"; do extra="$extra\"$a\", "; done
  {
    echo "name = \"$name\""
    [ -n "$extra" ] && printf '[client]\naddresses = [%s]\n' "${extra%, }"
    cat <<TOML
[server]
listen = [21]
[run]
mode = "trace"
target = "10.77.2.2:21"
tcp_options = "mss=1460,sack,ts,nop,ws=7"
count = $count
rate = $rate
tail = 1
TOML
  } >"$OUT/$name.toml"
}

# stats NAME WANT SYNS [REPORT WALL]: per-source rate of the SYNs in SYNS (ip.src, epoch), pacing
# error against WANT per source, gap percentiles; with REPORT the capture drops and fates too.
stats() {
  python3 - "$@" <<'PY'
import json, sys, statistics
name, want, path = sys.argv[1], float(sys.argv[2]), sys.argv[3]
report = sys.argv[4] if len(sys.argv) > 4 else ""
by = {}
for line in open(path):
    f = line.split()
    if len(f) == 2:
        by.setdefault(f[0], []).append(float(f[1]))
worst = 0.0
for src in sorted(by):
    t = sorted(by[src])
    rate = (len(t) - 1) / (t[-1] - t[0]) if len(t) > 1 else 0.0
    gaps = sorted(b - a for a, b in zip(t, t[1:]))
    err = abs(rate - want) / want * 100
    worst = max(worst, err)
    print(f"{name:<12} src {src:<10} probes {len(t):>6} rate {rate:9.2f} pps (want {want:.0f})  "
          f"pacing error {err:5.2f} %  gap p50 {statistics.median(gaps)*1e3:6.3f} ms  "
          f"p99 {gaps[int(0.99*len(gaps))]*1e3:6.3f} ms")
line = f"{name:<12} vantages {len(by)}  worst pacing error {worst:.2f} %"
if report:
    r = json.load(open(report))
    cap = r["capture"]
    drops = (cap["client"].get("dropped") or 0) + (cap["server"].get("dropped") or 0)
    line += (f"  capture drops {drops}  answered {r['summary']['fates'].get('answered')} of "
             f"{r['summary']['probes']}  wall {float(sys.argv[5]):.1f} s  verdict {r['verdict']['code']}")
print(line)
PY
}

syns() {  # syns PCAP: "ip.src epoch" of every SYN to port 21
  tshark -r "$1" -T fields -e ip.src -e frame.time_epoch -Y "tcp.flags.syn==1 && tcp.flags.ack==0 && tcp.dstport==21" 2>/dev/null
}

# measure NAME WANT: `tandem lab run` of the scenario, then stats on its client capture.
measure() {
  local name=$1 want=$2
  local t0 t1 rc=0
  t0=$(date +%s.%N)
  "$TANDEM_BIN" lab run "$OUT/$name.toml" --out "$OUT/$name" >"$OUT/$name.out" 2>"$OUT/$name.err" || rc=$?
  t1=$(date +%s.%N)
  [ -f "$OUT/$name/report.json" ] || { echo "run.sh: $name: no report (exit $rc)"; cat "$OUT/$name.err" >&2; return 1; }
  syns "$OUT/$name/client.pcapng" >"$OUT/$name.syns"
  stats "$name" "$want" "$OUT/$name.syns" "$OUT/$name/report.json" "$(echo "$t1 - $t0" | bc)"
}

# nping_four: four nping processes at once in a lab of the same shape, one per source address.
nping_four() {
  "$TANDEM_BIN" lab up "$OUT/four.toml" --name $LAB >/dev/null
  ip netns exec $LAB-srv tcpdump -i eth0 -w "$OUT/nping.pcap" -s 96 --time-stamp-precision nano -nn \
    "tcp dst port 21" >/dev/null 2>"$OUT/nping.tcpdump" &
  local cap=$!
  sleep 1
  local pids=""
  for src in 10.77.1.2 10.77.1.3 10.77.1.4 10.77.1.5; do
    ip netns exec $LAB-cli nping --tcp -p 21 --flags syn --source-ip $src --rate 250 -c "$COUNT" -H -q \
      --send-ip 10.77.2.2 >"$OUT/nping-$src.out" 2>&1 &
    pids="$pids $!"
  done
  wait $pids
  sleep 1.2
  kill -INT $cap; wait $cap 2>/dev/null || true
  "$TANDEM_BIN" lab down $LAB >/dev/null
  syns "$OUT/nping.pcap" >"$OUT/nping.syns"
  stats "nping x4" 250 "$OUT/nping.syns"
  grep -h "dropped by kernel" "$OUT/nping.tcpdump" | sed 's/^/nping x4     tcpdump: /'
}

scenario four 250 "$COUNT" 10.77.1.3 10.77.1.4 10.77.1.5
scenario one 1000 $((4 * COUNT))
{
  echo "# bench/vantage/run.sh $(date -u +%FT%TZ) COUNT=$COUNT"
  measure four 250
  measure one 1000
  nping_four
} | tee "$OUT/results.txt"
cp "$OUT/results.txt" /tmp/tandem-vantage-results.txt
