#!/usr/bin/env bash
# bench_cache.sh - the build cache through a directory (issue 9, type=local) on examples/hello-go:
# A's first export, B's all-cached build from an empty root, B's export of the image (bytes read
# from packs), and the one-line-change cycle (bytes A writes, B's rebuild). Medians of RUNS runs.
#   CSTORE (default build/cstore), CSTORE_BASES (default out/bases), RUNS (default 5)
set -euo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)
C=${CSTORE:-$src/build/cstore}
BASES=${CSTORE_BASES:-$src/out/bases}
RUNS=${RUNS:-5}
W=$(mktemp -d /var/tmp/cstore-bench-cache.XXXXXX)
trap 'rm -rf "$W"' EXIT
cp -r "$src/examples/hello-go" "$W/ctx"

median() { sort -n | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
now() { date +%s.%N; }
secs() { echo "$2 - $1" | bc; }
num() { grep -oE "[0-9]+ $2" <<<"$1" | head -n 1 | cut -d' ' -f1; }

"$C" --root "$W/a" load "$BASES/busybox.docker.tar" >/dev/null
"$C" --root "$W/a" load "$BASES/golang.docker.tar" >/dev/null
"$C" --root "$W/a" build -q -t hello "$W/ctx" >/dev/null

declare -a t_exp b_exp t_b t_bexp f_bexp t_one b_one t_bone
for i in $(seq "$RUNS"); do
    rm -rf "$W/cache" "$W/b"
    t0=$(now)
    out=$("$C" --root "$W/a" build -q -t hello --cache-to "type=local,dest=$W/cache,mode=max" "$W/ctx" 2>&1)
    t1=$(now)
    t_exp+=("$(secs "$t0" "$t1")")
    b_exp+=("$(du -sb "$W/cache" | cut -f1)")
    t0=$(now)
    "$C" --root "$W/b" build -q -t hello --cache-from "type=local,src=$W/cache" "$W/ctx" >/dev/null 2>&1
    t1=$(now)
    t_b+=("$(secs "$t0" "$t1")")
    t0=$(now)
    out=$("$C" --root "$W/b" export hello -o "$W/b.tar" 2>&1)
    t1=$(now)
    t_bexp+=("$(secs "$t0" "$t1")")
    f_bexp+=("$(grep -oE 'chunks, [0-9]+ bytes' <<<"$out" | awk '{print $2}')")
    # One-line change: A rebuilds and exports (new packs + the index), B imports and builds.
    sed -i "s/fmt.Println(.*)/fmt.Println(\"Hello, run $i\")/" "$W/ctx/app.go"
    t0=$(now)
    out=$("$C" --root "$W/a" build -q -t hello --cache-to "type=local,dest=$W/cache,mode=max" "$W/ctx" 2>&1)
    t1=$(now)
    t_one+=("$(secs "$t0" "$t1")")
    b_one+=("$(($(num "$out" 'bytes;') + $(num "$out" 'bytes)')))")
    t0=$(now)
    "$C" --root "$W/b" build -q -t hello --cache-from "type=local,src=$W/cache" "$W/ctx" >/dev/null 2>&1
    t1=$(now)
    t_bone+=("$(secs "$t0" "$t1")")
done
m() { printf '%s\n' "$@" | median; }
echo "runs: $RUNS; machine: $(nproc) cores, $(uname -r); $(date -u +%FT%RZ)"
echo "A first export (all-cached build + export): $(m "${t_exp[@]}") s, $(m "${b_exp[@]}") bytes in the dir"
echo "B all-cached build, empty root: $(m "${t_b[@]}") s, 0 bytes of chunks read"
echo "B export of hello: $(m "${t_bexp[@]}") s, $(m "${f_bexp[@]}") bytes read from packs"
echo "one-line change, A build + export: $(m "${t_one[@]}") s, $(m "${b_one[@]}") bytes written (packs + index)"
echo "one-line change, B import + build: $(m "${t_bone[@]}") s"
