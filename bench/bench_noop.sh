#!/usr/bin/env bash
# bench_noop.sh - issue 11 item 4: the no-op rebuild, a baseline binary against this tree's in
# the same run (alternated, so a loaded machine slows both alike).
#
#   BASE=/path/to/main/cstore bash bench/bench_noop.sh [RUNS]     (default 21; medians)
#
# Two scenarios on one store: examples/hello-go (golang + busybox, built once) and the 3-stage
# Dockerfile over a 10,000-file context of bench_build.sh (busybox, built once). Reports per binary
# the median wall time, the median CPU time (user+sys of the child: steadier than wall time
# when other work shares the cores) and the system calls and ld.so startup cycles of one run;
# then the median wall time by bash's $EPOCHREALTIME around the command, the timer of
# bench_compare.sh (the issue's figures), again alternated.
# Needs a Release build in build/ and the base images of tests/mkbase.sh ($CSTORE_BASES).
#
#   FIFO=1 BASE=... bash bench/bench_noop.sh [RUNS]   (root: the timed runs under chrt -f 10)
#
# On a loaded machine the wall time of a change that uses the second core is lost in the load
# (the helper thread waits for a core): FIFO=1 runs the python table's runs as SCHED_FIFO, ahead of
# every normal task, so both cores are the build's as on a quiet machine (each run is ~20 ms).
. "$(dirname "$0")/lib.sh"
runs=${1:-21}
fifo=()
[ "${FIFO:-0}" = 1 ] && fifo=(chrt -f 10)
base=${BASE:?BASE=path of the baseline cstore binary (e.g. main build/cstore)}
bench_init noop
bench_bases

ctx=$work/ctx # the 10,000 files of bench_build.sh's context: 100 packages of 100 Go files
python3 - "$ctx" <<'PY'
import os, sys
for d in range(100):
    os.makedirs("%s/pkg/p%02d" % (sys.argv[1], d))
    for f in range(100):
        with open("%s/pkg/p%02d/f%02d.go" % (sys.argv[1], d, f), "w") as o:
            o.write("package p%02d\n// file %02d\nconst X%02d = %02d%02d\n" % (d, f, f, d, f))
with open(sys.argv[1] + "/go.mod", "w") as o:
    o.write("module example.com/app\n\ngo 1.19\n")
with open(sys.argv[1] + "/main.go", "w") as o:
    o.write("package main\nfunc main() {}\n")
PY
cat > "$ctx/Dockerfile" <<'DF'
FROM busybox AS deps
WORKDIR /src
COPY go.mod ./
COPY pkg/p00/ ./pkg/p00/
FROM busybox AS build
WORKDIR /src
COPY --from=deps /src/go.mod ./
COPY . .
COPY main.go ./cmd/app/main.go
FROM scratch
COPY --from=build /src/cmd/app/main.go /app/main.go
COPY --from=build /src/go.mod /app/go.mod
ENTRYPOINT ["/app/app"]
DF

R=$work/cs
"$cstore" --root "$R" load "$bases/golang.oci.tar" >/dev/null
"$cstore" --root "$R" load "$bases/busybox.oci.tar" >/dev/null
"$cstore" --root "$R" build -q "$src/examples/hello-go" >/dev/null
"$cstore" --root "$R" build -q "$ctx" >/dev/null

echo "# no-op rebuild, $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores, load average $(cut -d' ' -f1 /proc/loadavg)${fifo:+, table under ${fifo[*]}}"
for scen in "hello-go:$src/examples/hello-go" "10k-file context:$ctx"; do
    name=${scen%%:*} dir=${scen#*:}
    echo
    echo "## $name ($runs alternated runs each)"
    echo
    echo "| binary | wall median | wall min | CPU median | syscalls | ld.so startup cycles (min of 5) |"
    echo "|---|---|---|---|---|---|"
    "${fifo[@]}" python3 - "$runs" "$R" "$dir" "$base" "$cstore" <<'PY'
import os, statistics, subprocess, sys, time
runs, root, ctx, bins = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4:]
wall = {b: [] for b in bins}; cpu = {b: [] for b in bins}
for _ in range(runs):
    for b in bins:
        t = time.perf_counter()
        p = subprocess.Popen([b, "--root", root, "build", "-q", ctx], stdout=subprocess.DEVNULL)
        _, st, ru = os.wait4(p.pid, 0)
        wall[b].append((time.perf_counter() - t) * 1000)
        cpu[b].append((ru.ru_utime + ru.ru_stime) * 1000)
        assert st == 0, b
def syscalls(b):
    out = subprocess.run(["strace", "-f", "-c", "-o", "/dev/stdout", b, "--root", root, "build",
                          "-q", ctx], capture_output=True, text=True).stdout
    return [l.split()[3] for l in out.splitlines() if l.rstrip().endswith("total")][0]
def ldso(b):
    env = dict(os.environ, LD_DEBUG="statistics")
    c = []
    for _ in range(5):
        e = subprocess.run([b, "--help"], env=env, capture_output=True, text=True).stderr
        c += [int(l.split()[-2]) for l in e.splitlines() if "total startup time" in l]
    return min(c)
for b in bins:
    print("| %s | %.1f ms | %.1f ms | %.1f ms | %s | %d |" % (b, statistics.median(wall[b]),
          min(wall[b]), statistics.median(cpu[b]), syscalls(b), ldso(b)))
PY
    echo
    bins=("$base" "$cstore")
    : >"$work/bash.0"
    : >"$work/bash.1"
    for ((i = 0; i < runs; i++)); do
        for k in 0 1; do
            t0=$EPOCHREALTIME
            "${bins[$k]}" --root "$R" build -q "$dir" >/dev/null
            t1=$EPOCHREALTIME
            echo "($t1 - $t0) * 1000" | bc -l >>"$work/bash.$k"
        done
    done
    for k in 0 1; do
        printf 'bash timer (as bench_compare.sh): %s: median %.1f ms\n' "${bins[$k]}" "$(median <"$work/bash.$k")"
    done
done
