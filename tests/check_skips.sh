#!/usr/bin/env bash
# tests/check_skips.sh JUNIT.xml... — the skip policy of tests/run.sh (docs/testing.md "Skips"):
# prints "skipped: N" and one line per skipped test with the reason its GTEST_SKIP gave, then
#   - as root: exits 1 when any test skipped for a reason other than an opt-in ("set TANDEM_..."):
#     root has every capability the lab needs, so a skip there means a lost oracle (a missing
#     tool, a failed namespace) and a green run would be a lie;
#   - not as root: exits 0, but says loudly that the skipped tests proved nothing.
# The files are ctest's --output-junit output; a file that is missing is an error (no silent green).
set -euo pipefail
(($#)) || { echo "usage: $0 JUNIT.xml..." >&2; exit 1; }
for f in "$@"; do
  [[ -s "$f" ]] || { echo "check_skips: no ctest JUnit output at $f" >&2; exit 1; }
done

# "NAME<TAB>REASON" per skipped test: a testcase with status="notrun" whose gtest output has
# "<file>:<line>: Skipped" followed by the reason line.
list=$(awk '
  /<testcase / {
    name = $0; sub(/.*<testcase name="/, "", name); sub(/".*/, "", name)
    notrun = ($0 ~ /status="notrun"/); reason = ""; want = 0; next
  }
  notrun && want { reason = $0; want = 0; next }
  notrun && /: Skipped$/ { want = 1; next }
  /<\/testcase>/ {
    if (notrun) {
      gsub(/&lt;/, "<", reason); gsub(/&gt;/, ">", reason); gsub(/&quot;/, "\"", reason); gsub(/&amp;/, "\\&", reason)
      if (reason == "") reason = "(no reason given)"
      print name "\t" reason
    }
    notrun = 0
  }' "$@")

n=0
[[ -n "$list" ]] && n=$(printf '%s\n' "$list" | wc -l)
echo "skipped: $n"
[[ -n "$list" ]] && printf '%s\n' "$list" | sed 's/^/  skipped: /'

if [[ $(id -u) -eq 0 ]]; then
  bad=$(printf '%s\n' "$list" | awk -F'\t' 'NF && $2 !~ /^set TANDEM_/' | wc -l)
  if ((bad > 0)); then
    echo "check_skips: $bad test(s) skipped while running as root: each needs its tool or capability here" >&2
    exit 1
  fi
elif ((n > 0)); then
  echo "check_skips: not root: the $n skipped test(s) above proved nothing (the lab needs root)" >&2
fi
