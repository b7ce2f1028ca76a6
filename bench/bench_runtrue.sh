#!/usr/bin/env bash
# bench_runtrue.sh - the smallest RUN, start to end: `FROM busybox` + `RUN true` built with
# --no-cache --network none (run dir, reaper, overlay, bundle, runc, teardown, an empty layer, the
# image), for a baseline cstore and this tree's, in the same run.
#
#   BASELINE=/path/to/baseline/cstore bash bench/bench_runtrue.sh [RUNS]
#
# RUNS (default 60) builds per binary after 3 each to warm up, interleaved (the order of the pair
# alternates) so that the load of a shared machine falls on both; each on its own store root.
# Prints the medians, the ratio of the medians and the median of the per-pair ratios.
# Needs root, runc, overlayfs, a Release build in build/ and the bases of tests/mkbase.sh.
. "$(dirname "$0")/lib.sh"
bench_init runtrue
bench_bases
runs=${1:-60}
load_start=$(cut -d" " -f1-3 /proc/loadavg)
# each binary is copied so that a rebuild of the tree during the run changes nothing
cp "${BASELINE:?set BASELINE to the baseline cstore}" "$work/cs-base"
cp "$cstore" "$work/cs-new"
mkdir -p "$work/ctx"
printf 'FROM busybox\nRUN true\n' >"$work/ctx/Dockerfile"
for b in base new; do
    "$work/cs-$b" --root "$work/root-$b" load "$bases/busybox.docker.tar" >/dev/null
done
# one BIN: prints the wall time (ms) of one build
one() {
    local t0 t1
    t0=$EPOCHREALTIME
    "$work/cs-$1" --root "$work/root-$1" build -q --no-cache --network none "$work/ctx" \
        >/dev/null 2>"$work/last.log" || { tail -5 "$work/last.log" >&2; return 1; }
    t1=$EPOCHREALTIME
    awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f\n", (b - a) * 1000 }'
}
for _ in 1 2 3; do
    one base >/dev/null
    one new >/dev/null
done
: >"$work/base.txt"
: >"$work/new.txt"
: >"$work/ratio.txt"
for i in $(seq "$runs"); do
    if [ $((i % 2)) = 0 ]; then
        b=$(one base)
        n=$(one new)
    else
        n=$(one new)
        b=$(one base)
    fi
    echo "$b" >>"$work/base.txt"
    echo "$n" >>"$work/new.txt"
    awk -v a="$b" -v b="$n" 'BEGIN { printf "%.4f\n", b / a }' >>"$work/ratio.txt"
done
mb=$(median <"$work/base.txt")
mn=$(median <"$work/new.txt")
mr=$(median <"$work/ratio.txt")
cat <<EOF
| $(date -u +%Y-%m-%dT%H:%MZ) | $runs | $load_start / $(cut -d" " -f1-3 /proc/loadavg) | ${mb} ms | ${mn} ms | $(awk -v a="$mb" -v b="$mn" 'BEGIN { printf "%.3f", b / a }')x | ${mr}x |
EOF
