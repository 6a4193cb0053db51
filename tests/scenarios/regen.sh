#!/bin/sh
# Regenerates the golden scenarios: the capture pairs (from gen_scenarios.cpp) and the baselines
# expected/report.json + expected/exit_code (from the real `tandem analyze`). Review its diff like
# code: a changed baseline is a changed report. A baseline is only rewritten when tandem's report
# agrees with the generator's truth.json (the independent oracle, tests/scenarios/oracle.hpp): on any
# disagreement regen.sh lists it and writes no baseline at all.
#
#   tests/scenarios/regen.sh [BUILD_DIR]      (default: build-report at the repository top)
#   NO_BUILD=1 tests/scenarios/regen.sh DIR   (use DIR/bin/tandem{,-gen-scenarios} as they are)
#
# "version" is written as "IGNORED" in baselines: the test ignores it (docs/report-format.md).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
build=${1:-$top/build-report}

if [ -z "${NO_BUILD:-}" ]; then
  cmake -S "$top" -B "$build" >/dev/null
  cmake --build "$build" -j2 --target tandem tandem-gen-scenarios >/dev/null
fi

"$build/bin/tandem-gen-scenarios" "$here"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# Pass 1: analyze every pair and check it against its truth; nothing is written yet.
disagree=0
for dir in "$here"/*/; do
  name=$(basename "$dir")
  [ -f "$dir/client.pcap" ] || continue
  manifest=""
  [ -f "$dir/manifest.json" ] && manifest="--manifest $dir/manifest.json"
  rc=0
  # shellcheck disable=SC2086  # $manifest is two words or none
  "$build/bin/tandem" analyze --client-pcap "$dir/client.pcap" --server-pcap "$dir/server.pcap" \
    $manifest --out "$tmp/$name" --json-only -q || rc=$?
  if [ "$rc" -ne 0 ] && [ "$rc" -ne 4 ]; then
    echo "regen: tandem analyze failed on $name (exit $rc)" >&2
    exit 1
  fi
  echo "$rc" > "$tmp/$name/exit_code"
  if [ ! -f "$dir/truth.json" ]; then
    echo "regen: $name has no truth.json (the generator writes one per scenario)" >&2
    disagree=1
  elif ! "$build/bin/tandem-gen-scenarios" --check "$dir/truth.json" "$tmp/$name/report.json"; then
    echo "regen: $name: tandem disagrees with the generator's truth (above)" >&2
    disagree=1
  fi
done
if [ "$disagree" -ne 0 ]; then
  echo "regen: no baseline rewritten: fix tandem or the generator's truth first" >&2
  exit 1
fi

# Pass 2: every report agrees with its oracle; write the baselines.
for dir in "$here"/*/; do
  name=$(basename "$dir")
  [ -f "$dir/client.pcap" ] || continue
  rc=$(cat "$tmp/$name/exit_code")
  mkdir -p "$dir/expected"
  # Byte-for-byte what tandem wrote, except the version line.
  sed '0,/^  "version": ".*",$/s//  "version": "IGNORED",/' "$tmp/$name/report.json" > "$dir/expected/report.json"
  echo "$rc" > "$dir/expected/exit_code"
  echo "regen: $name (exit $rc)"
done
