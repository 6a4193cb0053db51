#!/bin/sh
# Correlation throughput: tandem-corrbench on a generated 1,000,000-probe capture pair, against
# tshark and tcpdump merely reading the same files. Usage: bench/correlate/run.sh [BUILD_DIR] [PROBES]
# KEEP=1 keeps the generated files. SYNTH=0 skips the tandem-shaped pair; REAL=0 the real-shaped
# one; REAL_DIR=DIR reuses a real-shaped pair written earlier (tandem-corrgen DIR N --real);
# ROUNDS=N repeats the real-shaped CPU measurement N times (take the median: the machine is shared).
set -eu
BUILD=${1:-build-corr}
PROBES=${2:-1000000}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"
cmake --build "$BUILD" -j2 --target tandem-corrgen tandem-corrbench >/dev/null
DIR=$(mktemp -d /tmp/tandem-corrbench.XXXXXX)
[ "${KEEP:-0}" = 1 ] || trap 'rm -rf "$DIR"' EXIT
if [ "${SYNTH:-1}" = 1 ]; then
"$BUILD/bench/correlate/tandem-corrgen" "$DIR" "$PROBES"
ls -l "$DIR"
echo "load: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "== tandem-corrbench (manifest)"
"$BUILD/bench/correlate/tandem-corrbench" "$DIR"
echo "== tandem-corrbench (no manifest)"
"$BUILD/bench/correlate/tandem-corrbench" "$DIR" --no-manifest
now() { date +%s.%N; }
t0=$(now); tcpdump -nn -r "$DIR/client.pcap" >/dev/null 2>&1; tcpdump -nn -r "$DIR/server.pcap" >/dev/null 2>&1; t1=$(now)
tshark -n -r "$DIR/client.pcap" >/dev/null 2>&1; tshark -n -r "$DIR/server.pcap" >/dev/null 2>&1; t2=$(now)
"$BUILD/bench/correlate/tandem-corrbench" "$DIR" >/dev/null; t3=$(now)
echo "== wall clock for both files"
echo "$t0 $t1 $t2 $t3" | awk '{ td=$2-$1; ts=$3-$2; tt=$4-$3;
  printf "tcpdump -nn -r: %.2f s\ntshark -n -r:   %.2f s\ntandem-corrbench (read+correlate+diagnose, whole process): %.2f s\n", td, ts, tt;
  printf "ratio tcpdump/tandem: %.1fx   tshark/tandem: %.1fx\n", td/tt, ts/tt }'
echo "load: $(cut -d' ' -f1-3 /proc/loadavg)"
fi

[ "${REAL:-1}" = 1 ] || exit 0
echo "== real-shaped pair (tandem-corrgen --real), analyze's path without a manifest"
if [ -n "${REAL_DIR:-}" ]; then
  RDIR=$REAL_DIR
else
  RDIR=$(mktemp -d /tmp/tandem-corrbench-real.XXXXXX)
  [ "${KEEP:-0}" = 1 ] || trap 'rm -rf "$DIR" "$RDIR"' EXIT
  "$BUILD/bench/correlate/tandem-corrgen" "$RDIR" "$PROBES" --real
fi
cat "$RDIR/truth.txt"
echo "load: $(cut -d' ' -f1-3 /proc/loadavg)"
# CPU seconds (user+sys) and peak RSS of each whole process, from GNU time.
cpu() { /usr/bin/time -f "%U %S %M" -o "$RDIR/time.txt" "$@" >/dev/null 2>&1 || { echo "FAILED: $*"; cat "$RDIR/time.txt"; exit 3; }
        awk '{ printf "%.2f %d\n", $1+$2, $3 }' "$RDIR/time.txt"; }
for round in $(seq "${ROUNDS:-1}"); do
echo "== round $round, load: $(cut -d' ' -f1-3 /proc/loadavg)"
"$BUILD/bench/correlate/tandem-corrbench" "$RDIR" --no-manifest | grep -E "^correlate:|^memory:|truth|MISMATCH"
set -- $(cpu "$BUILD/bench/correlate/tandem-corrbench" "$RDIR" --no-manifest); tt=$1; trss=$2
set -- $(cpu tcpdump -nn -r "$RDIR/client.pcap"); td=$1; set -- $(cpu tcpdump -nn -r "$RDIR/server.pcap"); td=$(echo "$td $1" | awk '{print $1+$2}')
set -- $(cpu tshark -n -r "$RDIR/client.pcap"); ts=$1; set -- $(cpu tshark -n -r "$RDIR/server.pcap"); ts=$(echo "$ts $1" | awk '{print $1+$2}')
echo "== CPU seconds (user+sys) for both files, whole processes"
echo "$tt $td $ts $trss" | awk '{ printf "tandem-corrbench --no-manifest: %.2f s (peak RSS %d kB)\ntcpdump -nn -r: %.2f s\ntshark -n -r:   %.2f s\nratio tcpdump/tandem: %.1fx   tshark/tandem: %.1fx\n", $1, $4, $2, $3, $2/$1, $3/$1 }'
echo "load: $(cut -d' ' -f1-3 /proc/loadavg)"
done
