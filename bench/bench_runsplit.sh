#!/usr/bin/env bash
# bench_runsplit.sh - issue 11 item 5, cstore's own share of a one-line change of
# examples/hello-go, apart from runc's: kernel timestamps (perf's sched_process_exec and exit_group
# tracepoints) split each build into
#   pre:  cstore's exec -> runc's exec      (process start, COPY, lower dirs, bundle, reaper)
#   runc: runc's exec -> /bin/sh's exec     (the runtime's start, the floor under any RUN)
#   post: the command's exit -> cstore's exit (runc's exit, teardown, ingest, final stage, image;
#         not the process cstore leaves to drop a kept overlay)
# for a baseline cstore and this tree's, interleaved, 0.3 s apart (what a build leaves to finish
# in the background does not fall on the next one). Medians.
#
#   BASELINE=/path/to/main/cstore bash bench/bench_runsplit.sh [RUNS]
#
# Needs root, perf (linux-perf) with tracepoints, runc, a Release build in build/ and the bases
# of tests/mkbase.sh.
. "$(dirname "$0")/lib.sh"
runs=${1:-9}
baseline=${BASELINE:?BASELINE=path of the baseline cstore binary}
command -v perf >/dev/null || { echo "bench: perf is needed" >&2; exit 1; }
bench_init runsplit
bench_bases
cp "$baseline" "$work/cs-base"
cp "$cstore" "$work/cs-new"
bench_hello_roots base new

# split BIN: one build under perf; prints "pre runc post" in ms
split() {
    sed -i "s/fmt.Println(.*)/fmt.Println(\"change $RANDOM\")/" "$proj/app.go"
    perf record -q -e sched:sched_process_exec -e syscalls:sys_enter_exit_group -o "$work/p.data" \
        -- "$work/cs-$1" --root "$work/root-$1" build --progress plain --network none -t hello \
        "$proj" >/dev/null 2>&1
    perf script -i "$work/p.data" -F comm,pid,time,event,trace 2>/dev/null | awk '
        { t = $3 + 0 }
        /sched_process_exec/ && t0 == "" { t0 = t; cspid = $2 }
        /sched_process_exec/ && /filename=[^ ]*runc/ && rx == "" { rx = t }
        /sched_process_exec/ && /filename=\/bin\/sh/ && sx == "" { sx = t; shpid = $2 }
        /exit_group/ && $2 == shpid { se = t } # sh, or the program it became
        /exit_group/ && $2 == cspid { last = t } # cstore itself, not what it leaves behind
        END { if (rx == "" || sx == "" || se == "") exit 1
              printf "%.2f %.2f %.2f\n", (rx - t0) * 1000, (sx - rx) * 1000, (last - se) * 1000 }'
}

bench_ab "$runs" split comm,pid,time,event,trace
col() { awk -v c="$2" '{print $c}' "$work/$1.txt" | median; }
load=$(cut -d" " -f1-3 /proc/loadavg)
cat <<EOF
## cstore's own time around a RUN: one-line change of hello-go ($(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores)

\`BASELINE=$baseline bash bench/bench_runsplit.sh $runs\`: medians of $runs, interleaved; load at the
end: $load. pre = cstore's exec to runc's exec, runc = runc's exec to the command's (/bin/sh),
post = the command's exit to cstore's exit (kernel tracepoints).

| binary | pre | runc | post | pre + post |
|---|---|---|---|---|
| baseline | $(col base 1) ms | $(col base 2) ms | $(col base 3) ms | $(echo "$(col base 1) + $(col base 3)" | bc -l) ms |
| new ($(git -C "$src" rev-parse --short HEAD)) | $(col new 1) ms | $(col new 2) ms | $(col new 3) ms | $(echo "$(col new 1) + $(col new 3)" | bc -l) ms |
EOF
