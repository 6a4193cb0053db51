#!/bin/bash
# Send rate and pacing: `tandem ping` vs nping, hping3 and synblast (the physical-limit sender),
# measured by a capture on the receiving end of a veth pair between two namespaces this script
# creates. An extra row, "tandem-netio", is tandem-sendbench: the same SYNs from the same
# netio SendLoop without ping's capture thread and per-probe outcome table.
#
# usage: bench/pacing/run.sh                  (root; ~2-3 minutes)
# env:   TANDEM_BIN       the tandem binary (default: build/bin/tandem in the repository)
#        TANDEM_SEND_CMD  tandem's sender; called as: $TANDEM_SEND_CMD TARGET -p PORT -c N --rate PPS
#                         --tcp-options mss=1460,sack,ts,nop,ws=7 $TANDEM_SEND_ARGS
#                         (default: "$TANDEM_BIN ping", TANDEM_SEND_ARGS "-q --timeout 0.2")
#        BUILD_DIR        build tree with bench/pacing/tandem-gapstat and tandem-sendbench
#                         (default: build-netio in the repository)
#        NETIO=0          skip the tandem-netio rows (tandem-sendbench ... --quiet)
#        MAX_RATE         the --rate given to tandem for the max-rate test (default 100000000:
#                         every packet is always due, so SendLoop sends back-to-back batches of 64)
#        RATES            pacing test rates (default "1000 10000 100000")
#        MAX_COUNT        packets in the max-rate test (default 200000)
#        KEEP=1           keep the captures and tools' output in /dev/shm/tdmbench-PID
# Results go to stdout and $OUT/results.txt (copied to $RESULTS_COPY, default
# /tmp/tandem-pacing-results.txt); docs/benchmarks.md quotes them.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
BUILD_DIR=${BUILD_DIR:-$ROOT/build-netio}
TANDEM_BIN=${TANDEM_BIN:-$ROOT/build/bin/tandem}
TANDEM_SEND_CMD=${TANDEM_SEND_CMD:-$TANDEM_BIN ping}
TANDEM_SEND_ARGS=${TANDEM_SEND_ARGS--q --timeout 0.2}
NETIO_CMD=${NETIO_CMD:-$BUILD_DIR/bench/pacing/tandem-sendbench}
NETIO=${NETIO:-1}
GAPSTAT=${GAPSTAT:-$BUILD_DIR/bench/pacing/tandem-gapstat}
SYNBLAST_SRC=${SYNBLAST_SRC:-$ROOT/../shared/reference/perf-lab/synblast.c}
MAX_RATE=${MAX_RATE:-100000000}
RATES=${RATES:-"1000 10000 100000"}
MAX_COUNT=${MAX_COUNT:-200000}
PORT=82
OPTS="mss=1460,sack,ts,nop,ws=7"

[ "$(id -u)" = 0 ] || { echo "run.sh: needs root (namespaces, raw sockets)" >&2; exit 2; }
[ -x "$GAPSTAT" ] || { echo "run.sh: $GAPSTAT missing: cmake --build $BUILD_DIR --target tandem-sendbench tandem-gapstat" >&2; exit 2; }
case $TANDEM_SEND_CMD in "$TANDEM_BIN ping") [ -x "$TANDEM_BIN" ] || { echo "run.sh: $TANDEM_BIN missing: cmake --build $ROOT/build -j2 --target tandem" >&2; exit 2; } ;; esac
if [ "$NETIO" = 1 ] && [ ! -x "$NETIO_CMD" ]; then echo "run.sh: $NETIO_CMD missing, skipping the tandem-netio rows" >&2; NETIO=0; fi
for t in nping hping3 tcpdump cc nft; do command -v $t >/dev/null || { echo "run.sh: $t not installed" >&2; exit 2; }; done

# Everything this run creates carries one unique prefix and is removed on every exit path.
P=tdmbench-$$
CNS=$P-c; SNS=$P-s; CIF=tbc$$; SIF=tbs$$
CIP=10.77.201.1; SIP=10.77.201.2
OUT=/dev/shm/$P
TMP=$(mktemp -d /tmp/$P.XXXX)
CAP_PID=
cleanup() {
  [ -n "$CAP_PID" ] && kill -INT "$CAP_PID" 2>/dev/null || true
  ip netns del "$CNS" 2>/dev/null || true
  ip netns del "$SNS" 2>/dev/null || true
  rm -rf "$TMP"
  [ "${KEEP:-0}" = 1 ] && echo "run.sh: captures kept in $OUT" >&2 || rm -rf "$OUT"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
mkdir -p "$OUT"

ip netns add "$CNS"; ip netns add "$SNS"
ip link add "$CIF" address 02:77:c9:00:00:01 netns "$CNS" type veth peer name "$SIF" address 02:77:c9:00:00:02 netns "$SNS"
ip -n "$CNS" link set lo up; ip -n "$SNS" link set lo up
ip -n "$CNS" addr add $CIP/24 dev "$CIF"; ip -n "$SNS" addr add $SIP/24 dev "$SIF"
ip -n "$CNS" link set "$CIF" up; ip -n "$SNS" link set "$SIF" up
ip -n "$CNS" neigh replace $SIP lladdr 02:77:c9:00:00:02 dev "$CIF" nud permanent
ip -n "$SNS" neigh replace $CIP lladdr 02:77:c9:00:00:01 dev "$SIF" nud permanent
ip netns exec "$CNS" ethtool -K "$CIF" tso off gso off gro off >/dev/null 2>&1 || true
ip netns exec "$SNS" ethtool -K "$SIF" tso off gso off gro off >/dev/null 2>&1 || true
# Drop the probes at the server's netdev ingress, after the capture tap: no RSTs come back, so the
# numbers are about sending alone (the anchors' "drop" scenario).
ip netns exec "$SNS" nft -f - <<NFT
table netdev tdmbench {
  chain in {
    type filter hook ingress device "$SIF" priority 0;
    tcp dport $PORT drop
  }
}
NFT

cc -O2 -o "$TMP/synblast" "$SYNBLAST_SRC"

# cap_start NAME: tcpdump in the server namespace, nanosecond host timestamps (veth has no
# adapter clock, so -j adapter_unsynced is not offered there).
cap_start() {
  : > "$OUT/$1.log"
  ip netns exec "$SNS" tcpdump -Z root -i "$SIF" -w "$OUT/$1.pcap" -B 262144 -s 96 --time-stamp-precision nano \
    -nn "tcp dst port $PORT" >/dev/null 2>"$OUT/$1.log" &
  CAP_PID=$!
  for _ in $(seq 1 100); do grep -q "listening on" "$OUT/$1.log" && break; sleep 0.05; done
}
cap_stop() {
  # libpcap's TPACKET_V3 ring hands a block to tcpdump when it is full or after tcpdump's 1 s
  # timeout, and a block still open at SIGINT is not written: wait past the timeout.
  sleep 1.2
  kill -INT "$CAP_PID" 2>/dev/null || true
  # Not in a $(...) subshell: only this shell can wait for tcpdump to finish writing the file.
  wait "$CAP_PID" 2>/dev/null || true
  CAP_PID=
  CAP_DROP=$(awk '/dropped by kernel/{print "capdrop=" $1}' "$OUT/$1.log")
}
# measure NAME REQUESTED -- CMD...: run CMD in the client namespace under a capture; print stats.
measure() {
  # REQUESTED may be RATE/N (N = packets asked for, checked against what tandem ping says it sent).
  local name=$1 req=${2%/*} req_n=${2#*/}; shift 3
  cap_start "$name"
  local t0 t1 cpu
  t0=$(date +%s.%N)
  local rc=0
  /usr/bin/time -o "$OUT/$name.time" -f "cpu_s=%U+%S" ip netns exec "$CNS" "$@" >"$OUT/$name.out" 2>"$OUT/$name.err" || rc=$?
  echo "$rc" >"$OUT/$name.rc"
  cpu=$(tail -1 "$OUT/$name.time")
  t1=$(date +%s.%N)
  cap_stop "$name"
  local drop=$CAP_DROP
  local stats; stats=$("$GAPSTAT" "$OUT/$name.pcap" "$req")
  local own=""
  case $name in
    *tandem-netio*|*synblast*) own="| $(head -1 "$OUT/$name.out")" ;;
    *tandem)
      # tandem ping's own summary: what it says it sent, its achieved rate, its capture; and the
      # check that it sent every packet asked for and that the wire saw them all.
      local said wire
      said=$(awk '/ probes sent,/{print $1}' "$OUT/$name.out"); said=${said:-0}
      wire=$(echo "$stats" | tr ' ' '\n' | awk -F= '$1=="n"{print $2}')
      own="| rc=$(cat "$OUT/$name.rc") said_sent=$said wire=$wire asked=$req_n"
      [ "$said" = "$req_n" ] && [ "$wire" = "$req_n" ] && own="$own sent_check=ok" || own="$own sent_check=MISMATCH"
      own="$own | $(grep -E '^rate |^capture:|not sent|probes sent' "$OUT/$name.out" | sed 's/ (some answers.*)//' | paste -sd';' -)"
      grep -v '^$' "$OUT/$name.err" | head -3 | sed 's/^/    stderr: /' >>"$OUT/$name.note" || true ;;
  esac
  printf '%-22s %s %s wall=%.2fs %s %s\n' "$name" "$stats" "$drop" "$(echo "$t1 - $t0" | bc)" "$cpu" "$own" | tee -a "$OUT/results.txt"
  [ -s "$OUT/$name.note" ] && cat "$OUT/$name.note" || true
}

tandem_cmd() { # N RATE
  # shellcheck disable=SC2086
  echo $TANDEM_SEND_CMD $SIP -p $PORT -c "$1" --rate "$2" --tcp-options $OPTS $TANDEM_SEND_ARGS
}
netio_cmd() { # N RATE
  echo "$NETIO_CMD" $SIP -p $PORT -c "$1" --rate "$2" --tcp-options $OPTS --quiet
}

echo "# load before: $(cut -d' ' -f1-3 /proc/loadavg)  kernel $(uname -r)  nproc $(nproc)" | tee "$OUT/results.txt"
echo "# tandem = $TANDEM_SEND_CMD ... $TANDEM_SEND_ARGS" | tee -a "$OUT/results.txt"
[ "$NETIO" = 1 ] && echo "# tandem-netio = $NETIO_CMD ... --quiet" | tee -a "$OUT/results.txt"

echo "## (a) max send rate, $MAX_COUNT SYNs (hping3 --flood ignores -c: 3 s time box)" | tee -a "$OUT/results.txt"
# shellcheck disable=SC2046
measure max-tandem "0/$MAX_COUNT" -- $(tandem_cmd "$MAX_COUNT" "$MAX_RATE")
# shellcheck disable=SC2046
[ "$NETIO" = 1 ] && measure max-tandem-netio 0 -- $(netio_cmd "$MAX_COUNT" "$MAX_RATE")
measure max-synblast-raw 0 -- "$TMP/synblast" -m raw -s $CIP -d $SIP -p $PORT -n "$MAX_COUNT"
measure max-nping 0 -- nping --tcp -p $PORT --rate 10000000 -c "$MAX_COUNT" -N -q $SIP
measure max-hping3 0 -- timeout -s INT 3 hping3 -S -p $PORT --flood -q $SIP

echo "## (b) pacing: achieved rate vs requested, inter-packet gaps at the receiver" | tee -a "$OUT/results.txt"
for R in $RATES; do
  N=$((R * 2)); [ $N -gt 100000 ] && N=100000; [ $N -lt 1000 ] && N=1000
  # shellcheck disable=SC2046
  measure "pace$R-tandem" "$R/$N" -- $(tandem_cmd "$N" "$R")
  # shellcheck disable=SC2046
  [ "$NETIO" = 1 ] && measure "pace$R-tandem-netio" "$R" -- $(netio_cmd "$N" "$R")
  measure "pace$R-synblast-raw" "$R" -- "$TMP/synblast" -m raw -s $CIP -d $SIP -p $PORT -n "$N" -r "$R"
  measure "pace$R-nping" "$R" -- nping --tcp -p $PORT --rate "$R" -c "$N" -N -q $SIP
  measure "pace$R-hping3" "$R" -- hping3 -S -p $PORT -i "u$((1000000 / R))" -c "$N" -q $SIP
done
echo "# load after: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$OUT/results.txt"

echo "## ratios tandem/peer" 
awk '
  /^#/ { next }
  { name=$1; for (i=2;i<=NF && $i!="|";i++){ split($i,kv,"="); v[name,kv[1]]=kv[2] } names[name]=1 }
  END {
    np=split("tandem-netio synblast-raw nping hping3", peers, " ")
    for (k=1;k<=np;k++) { p=peers[k]
      if (v["max-" p,"rate"] > 0) printf "max rate  tandem/%-13s %.2f  (%s vs %s pps)\n", p, v["max-tandem","rate"]/v["max-" p,"rate"], v["max-tandem","rate"], v["max-" p,"rate"] }
    for (n in names) if (n ~ /^pace[0-9]+-tandem$/ || n ~ /^max-/) if (v[n,"n"] > 0) printf "captured  %-22s %s packets\n", n, v[n,"n"]
    for (n in names) if (n ~ /^pace[0-9]+-tandem$/) { r=n; sub(/^pace/,"",r); sub(/-tandem$/,"",r)
      for (k=1;k<=np;k++) { p=peers[k]; q="pace" r "-" p
        if (v[q,"rate"] > 0) printf "pace %6s  tandem/%-13s rate %.3f  |err| %s%% vs %s%%  gap_sd %s vs %s us  dev_p99 %s vs %s us\n", r, p, v[n,"rate"]/v[q,"rate"], v[n,"err_pct"], v[q,"err_pct"], v[n,"gap_sd_us"], v[q,"gap_sd_us"], v[n,"dev_p99_us"], v[q,"dev_p99_us"] } }
  }' "$OUT/results.txt" | sort | tee -a "$OUT/results.txt"
cp "$OUT/results.txt" "${RESULTS_COPY:-/tmp/tandem-pacing-results.txt}"
