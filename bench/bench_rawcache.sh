#!/usr/bin/env bash
# bench_rawcache.sh - the final layer's diff id with and without the raw chunk cache (rawcache.c):
# a one-line change of examples/hello-go (its RUN go-builds the binary, the final stage COPY
# --from's it onto busybox), for a baseline cstore and this tree's, interleaved, 0.3 s apart.
# Per build, from one perf record of it: the time in cs_tree_write_tar (uprobes on copies of the
# two binaries, in groups of their own: rcbase, rcnew; entry to return, summed over the build's
# calls; "main" when the commit's thread made the call, "bg" when the background thread did), and
# the whole build (cstore's exec to its exit_group, kernel tracepoints). Medians.
#
#   BASELINE=/path/to/main/cstore bash bench/bench_rawcache.sh [RUNS]
#
# Needs root, perf with uprobes and tracepoints, runc, a Release build in build/ and the bases.
. "$(dirname "$0")/lib.sh"
runs=${1:-9}
baseline=${BASELINE:?BASELINE=path of the baseline cstore binary}
command -v perf >/dev/null || { echo "bench: perf is needed" >&2; exit 1; }
bench_stop() { perf probe -q -d 'rcbase:*' -d 'rcnew:*' 2>/dev/null || true; }
bench_init rawcache
bench_bases
cp "$baseline" "$work/cs-base"
cp "$cstore" "$work/cs-new"
for b in base new; do
    perf probe -q -x "$work/cs-$b" --add "rc$b:wt$b=cs_tree_write_tar" \
        --add "rc$b:wtr$b=cs_tree_write_tar%return" --add "rc$b:sd$b=cs_snapshot_diff" \
        --add "rc$b:sdr$b=cs_snapshot_diff%return" --add "rc$b:ic$b=cs_ingest_commit" \
        --add "rc$b:icr$b=cs_ingest_commit%return"
done
bench_hello_roots base new

# one BIN: one build under perf; prints "write_tar_ms build_ms where ingest_ms"
one() {
    sed -i "s/fmt.Println(.*)/fmt.Println(\"change $RANDOM\")/" "$proj/app.go"
    perf record -q -e "rc$1:*" -e sched:sched_process_exec -e syscalls:sys_enter_exit_group \
        -o "$work/p.data" -- "$work/cs-$1" --root "$work/root-$1" build --network none \
        -t hello "$proj" >/dev/null 2>&1
    perf script -i "$work/p.data" -F comm,pid,tid,time,event 2>/dev/null | awk '
        { split($2, pt, "/"); pid = pt[1]; tid = pt[2]; t = $3 + 0; ev = $4 }
        ev ~ /sched_process_exec/ && t0 == "" { t0 = t; cspid = pid }
        ev ~ /:wt(base|new):$/ { start[tid] = t }
        ev ~ /:wtr/ && (tid in start) { wt += t - start[tid]; n++
            where = where (where == "" ? "" : "+") (tid == cspid ? "main" : "bg"); delete start[tid] }
        ev ~ /:(sd|ic)(base|new):$/ { istart[tid] = t }
        ev ~ /:(sdr|icr)/ && (tid in istart) { ing += t - istart[tid]; delete istart[tid] }
        ev ~ /exit_group/ && pid == cspid && tid == cspid { last = t }
        END { if (t0 == "" || last == "" || n == 0) exit 1
              printf "%.3f %.2f %s %.3f\n", wt * 1000, (last - t0) * 1000, where, ing * 1000 }'
}

bench_ab "$runs" one comm,pid,tid,time,event
col() { awk -v c="$2" '{print $c}' "$work/$1.txt" | median; }
where() { awk '{print $3}' "$work/$1.txt" | sort | uniq -c | awk '{printf "%s%s x%s", s, $2, $1; s=", "}'; }
load=$(cut -d" " -f1-3 /proc/loadavg)
cat <<EOF
## The final layer's diff id from the raw chunk cache: one-line change of hello-go ($(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores, LOADED)

\`BASELINE=$baseline bash bench/bench_rawcache.sh $runs\`: medians of $runs, interleaved; load at
the end: $load. write_tar = time in cs_tree_write_tar per build (uprobes, entry to return, all
calls), ingests = time in cs_snapshot_diff (the RUN's upper dir chunked) and cs_ingest_commit (the
rest drained, the commit; every ingest of the build), build = cstore's exec to its exit_group
(kernel tracepoints).

| binary | write_tar | ingests | build | thread of the write_tar |
|---|---|---|---|---|
| baseline | $(col base 1) ms | $(col base 4) ms | $(col base 2) ms | $(where base) |
| new ($(git -C "$src" rev-parse --short HEAD)) | $(col new 1) ms | $(col new 4) ms | $(col new 2) ms | $(where new) |
EOF
echo "raw (write_tar/ingests/build): base: $(awk '{printf "%s/%s/%s ", $1, $4, $2}' "$work/base.txt")" >&2
echo "raw (write_tar/ingests/build): new:  $(awk '{printf "%s/%s/%s ", $1, $4, $2}' "$work/new.txt")" >&2
