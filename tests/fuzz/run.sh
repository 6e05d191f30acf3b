#!/usr/bin/env bash
# Runs each libFuzzer target for SECONDS on its seed corpus (tests/fuzz/corpus/
# NAME, read-only) plus a working corpus in build/fuzz/corpus/NAME. A target
# passes when it ran the whole time without a finding. Prints the exec counts
# and ends with "N passed, N failed".
# usage: tests/fuzz/run.sh SECONDS NAME...
set -u
cd "$(dirname "$0")/../.."
secs=$1; shift
out=${FUZZ_OUT:-build/fuzz}     # logs, findings and the working corpus
pass=0; fail=0
for t in "$@"; do
  mkdir -p "$out/corpus/$t"
  log="$out/$t.log"
  if "build/fuzz/fuzz_$t" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 \
       -artifact_prefix="$out/$t-" -print_final_stats=1 \
       "$out/corpus/$t" "tests/fuzz/corpus/$t" >"$log" 2>&1; then
    execs=$(grep -ao 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$')
    echo "ok fuzz_$t: ${execs:-?} execs in ${secs}s, no finding"
    pass=$((pass + 1))
  else
    echo "FAIL fuzz_$t: finding, see $log and $out/$t-*"
    grep -a -m5 -E 'ERROR|SUMMARY|runtime error' "$log"
    fail=$((fail + 1))
  fi
done
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
