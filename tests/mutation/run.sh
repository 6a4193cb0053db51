#!/usr/bin/env bash
# tests/mutation/run.sh [-b BUILD_DIR] [-k] [-n] [NAME_PATTERN] — the mutation check (docs/testing.md).
# Not part of tests/run.sh: run it by hand (as root: some mutants are killed only by lab tests).
#
# For every mutant of tests/mutation/mutants.txt (or those whose name matches NAME_PATTERN, a grep
# -E pattern): put the one-line change into the source, rebuild only the mutant's targets in
# BUILD_DIR (default: build, configured like tests/run.sh), run its ctest selection, and put the
# original file back. Reports each mutant as killed (a selected test failed), survived (all
# passed: a test is missing, or docs/testing.md says why not) or stillborn (did not compile),
# then "N of M killed". Exit 0 only when every mutant was killed.
#
# The source is restored from a copy on every exit path (EXIT/INT/TERM/HUP trap) and checked
# byte for byte; the restored file gets a fresh mtime so the next build recompiles it. Before any
# mutant, every selection must pass on the unmutated tree (else "killed" would mean nothing), and
# a selection that matches no test is an error (ctest --no-tests=error). -k keeps going after a
# baseline failure (do not). -n only checks that every fragment occurs exactly once (no build).
set -euo pipefail
cd "$(dirname "$0")/../.."
top=$PWD
build=build
keep_going=0
check_only=0
while getopts "b:kn" o; do
  case $o in
    b) build=$OPTARG ;;
    k) keep_going=1 ;;
    n) check_only=1 ;;
    *) echo "usage: $0 [-b BUILD_DIR] [-k] [-n] [NAME_PATTERN]" >&2; exit 1 ;;
  esac
done
shift $((OPTIND - 1))
pattern=${1:-.}
list=tests/mutation/mutants.txt
[[ -d $build ]] || { echo "mutation: no build directory $build (configure it like tests/run.sh)" >&2; exit 1; }
command -v perl >/dev/null || { echo "mutation: perl is needed to apply mutants" >&2; exit 1; }

scratch=$(mktemp -d)
mutated=""  # the file currently mutated, relative to $top
restore() {
  if [[ -n $mutated ]]; then
    cp "$scratch/original" "$top/$mutated"
    touch "$top/$mutated"
    cmp -s "$scratch/original" "$top/$mutated" || echo "mutation: FAILED to restore $mutated (copy in $scratch/original)" >&2
    mutated=""
  fi
}
cleanup() { restore; rm -rf "$scratch"; }
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

sep=' @@ '
names=() files=() froms=() tos=() targets=() selections=()
while IFS= read -r line; do
  [[ -z $line || $line == \#* ]] && continue
  IFS=$'\x1f' read -r n f a b t s <<<"${line//$sep/$'\x1f'}"
  [[ -n ${s:-} ]] || { echo "mutation: malformed line in $list: $line" >&2; exit 1; }
  [[ $n =~ $pattern ]] || continue
  names+=("$n") files+=("$f") froms+=("$a") tos+=("$b") targets+=("$t") selections+=("$s")
done <"$list"
total=${#names[@]}
((total > 0)) || { echo "mutation: no mutant matches '$pattern'" >&2; exit 1; }

# Applies mutant $1 to its file, or to the copy $2 (the caller has saved the original); fails
# naming the mutant.
apply_mutant() {
  FROM=${froms[$1]} TO=${tos[$1]} perl -0777 -i -pe '
        BEGIN { ($from, $to) = ($ENV{FROM}, $ENV{TO}); s/\\n/\n/g for $from, $to; }
        $n = () = /\Q$from\E/g;
        die "fragment occurs $n times (must be once)\n" unless $n == 1;
        s/\Q$from\E/$to/;' "${2:-${files[$1]}}" 2>"$scratch/perl.err" && return 0
  echo "mutation: ${names[$1]}: $(cat "$scratch/perl.err") in ${files[$1]}" >&2
  return 1
}

if ((check_only)); then
  bad=0
  for ((i = 0; i < total; i++)); do
    cp "${files[i]}" "$scratch/check"
    apply_mutant "$i" "$scratch/check" || bad=1
  done
  ((bad == 0)) && echo "mutation: all $total fragments occur exactly once"
  exit $bad
fi

build_targets() {  # targets... ; output in $scratch/build.log
  nice cmake --build "$build" -j2 --target "$@" >"$scratch/build.log" 2>&1
}
run_selection() {  # "selection" ; 0 = all passed, 1 = a test failed, 2 = matched no test
  # shellcheck disable=SC2086  # the selection is ctest arguments
  if (cd "$build" && ctest --no-tests=error --timeout 300 $1 >"$scratch/ctest.log" 2>&1); then return 0; fi
  grep -q "No tests were found" "$scratch/ctest.log" && return 2
  return 1
}

start=$(date +%s)
echo "== baseline: every selection passes on the unmutated tree"
declare -A seen=()
for ((i = 0; i < total; i++)); do
  key="${targets[i]}|${selections[i]}"
  [[ -n ${seen[$key]:-} ]] && continue
  seen[$key]=1
  build_targets ${targets[i]} || { cat "$scratch/build.log" >&2; echo "mutation: the unmutated tree does not build" >&2; exit 1; }
  rc=0; run_selection "${selections[i]}" || rc=$?
  case $rc in
    0) echo "  pass: ctest ${selections[i]} ($(grep -Eo 'out of [0-9]+' "$scratch/ctest.log" | tail -1))" ;;
    2) echo "mutation: ctest ${selections[i]} matches no test" >&2; exit 1 ;;
    *) tail -20 "$scratch/ctest.log" >&2
       echo "mutation: ctest ${selections[i]} fails without any mutant" >&2
       ((keep_going)) || exit 1 ;;
  esac
done

echo "== mutants"
killed=0 survived=0 stillborn=0
survivors=()
for ((i = 0; i < total; i++)); do
  f=${files[i]}
  [[ -f $f ]] || { echo "mutation: ${names[i]}: no file $f" >&2; exit 1; }
  cp "$f" "$scratch/original"
  mutated=$f
  apply_mutant "$i" || exit 1
  t0=$(date +%s)
  if ! build_targets ${targets[i]}; then
    result="stillborn (does not compile)"; stillborn=$((stillborn + 1))
  else
    rc=0; run_selection "${selections[i]}" || rc=$?
    case $rc in
      0) result="SURVIVED"; survived=$((survived + 1)); survivors+=("${names[i]}") ;;
      1) failed=$(grep -Eo '[0-9]+ tests? failed out of [0-9]+' "$scratch/ctest.log" || echo "tests failed")
         result="killed ($failed)"; killed=$((killed + 1)) ;;
      *) echo "mutation: ${names[i]}: ctest ${selections[i]} matches no test" >&2; exit 1 ;;
    esac
  fi
  restore
  printf '  %-34s %s  [%ss]\n' "${names[i]}" "$result" $(($(date +%s) - t0))
done

echo "== rebuilding the unmutated targets"
all_targets=$(printf '%s\n' "${targets[@]}" | tr ' ' '\n' | sort -u | tr '\n' ' ')
# shellcheck disable=SC2086
build_targets $all_targets || { cat "$scratch/build.log" >&2; exit 1; }
echo "$killed of $total killed ($survived survived, $stillborn stillborn) in $(($(date +%s) - start)) s"
((survived)) && printf '  survivor: %s\n' "${survivors[@]}"
((killed == total))
