#!/bin/sh
# Regenerates the golden scenarios: the capture pairs (from gen_scenarios.cpp) and the baselines
# expected/report.json + expected/exit_code (from the real `tandem analyze`). Review its diff like
# code: a changed baseline is a changed report.
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
  mkdir -p "$dir/expected"
  # Byte-for-byte what tandem wrote, except the version line.
  sed '0,/^  "version": ".*",$/s//  "version": "IGNORED",/' "$tmp/$name/report.json" > "$dir/expected/report.json"
  echo "$rc" > "$dir/expected/exit_code"
  echo "regen: $name (exit $rc)"
done
