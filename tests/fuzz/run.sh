#!/usr/bin/env bash
# tests/fuzz/run.sh - builds the libFuzzer targets into build-fuzz/ (clang,
# -DCSTORE_FUZZ=ON) and runs each for N seconds from its seed corpus
# (tests/fuzz/corpus/<target>/). Fails on any crash, leak or timeout.
#
#   tests/fuzz/run.sh [-t SECONDS] [TARGET...]   (default: 30 s, every target)
#   CSTORE_FUZZ_SEED=N   libFuzzer's seed (default 1, so a CI run reproduces)
#
# New inputs go to build-fuzz/corpus/<target>/ (the committed seeds stay as
# they are); crash reproducers to build-fuzz/artifacts/<target>/. The last
# line of each target's log (build-fuzz/<target>.log) has execs and cov.
set -euo pipefail

cd "$(dirname "$0")/../.."
secs=30
if [ "${1:-}" = -t ]; then
    secs=$2
    shift 2
fi
targets=("$@")
[ "${#targets[@]}" -gt 0 ] || targets=(dockerfile ignore ingest load)
jobs=${CSTORE_CI_JOBS:-$(nproc)}

CC=clang cmake -S . -B build-fuzz -DCSTORE_FUZZ=ON -DCMAKE_C_COMPILER=clang \
    -DCMAKE_BUILD_TYPE=Debug >/dev/null
cmake --build build-fuzz -j "$jobs" >/dev/null

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
status=0
for t in "${targets[@]}"; do
    work=build-fuzz/corpus/$t
    art=build-fuzz/artifacts/$t
    mkdir -p "$work" "$art"
    log=build-fuzz/$t.log
    printf '=== fuzz_%s for %ss\n' "$t" "$secs"
    if build-fuzz/tests/fuzz/fuzz_"$t" -max_total_time="$secs" -timeout=10 -seed="${CSTORE_FUZZ_SEED:-1}" \
        -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix="$art/" \
        "$work" "tests/fuzz/corpus/$t" >"$log" 2>&1; then
        grep -E '^#[0-9]+.*DONE|stat::number_of_executed_units|stat::average_exec_per_sec' "$log" \
            | tr '\n' ' '
        echo
    else
        status=1
        echo "fuzz_$t FAILED (log: $log, reproducer in $art/):"
        grep -E 'ERROR|SUMMARY|Test unit written' "$log" | head -20
    fi
done
exit $status
