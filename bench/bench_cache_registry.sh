#!/usr/bin/env bash
# bench_cache_registry.sh - the build cache through a registry (Debian's docker-registry on
# loopback) on examples/hello-go: A's first export (bytes pushed), B's all-cached build from an
# empty root and its export of the image (bytes B downloaded: the registry's access log), the
# one-line-change cycle (bytes A pushes). Medians of RUNS runs, each on a fresh repository.
#   CSTORE (default build/cstore), CSTORE_BASES (default out/bases), RUNS (default 3)
set -euo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)
C=${CSTORE:-$src/build/cstore}
BASES=${CSTORE_BASES:-$src/out/bases}
RUNS=${RUNS:-3}
W=$(mktemp -d /var/tmp/cstore-bench-creg.XXXXXX)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
cat >"$W/config.yml" <<EOT
version: 0.1
log: {level: info, formatter: text}
storage: {filesystem: {rootdirectory: $W/data}}
http: {addr: 127.0.0.1:$port, secret: bench-$RANDOM}
EOT
docker-registry serve "$W/config.yml" >"$W/access.log" 2>"$W/registry.log" &
rpid=$!
trap 'kill $rpid 2>/dev/null; wait $rpid 2>/dev/null; rm -rf "$W"' EXIT
for _ in $(seq 50); do curl -s -o /dev/null "http://127.0.0.1:$port/v2/" && break; sleep 0.1; done
cp -r "$src/examples/hello-go" "$W/ctx"

median() { sort -n | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
now() { date +%s.%N; }
secs() { echo "$2 - $1" | bc; }
pushed_bytes() { grep -oE 'pushed [0-9]+ blobs, [0-9]+ bytes' <<<"$1" | awk '{print $4}'; }
# get_bytes REPO FROM_LINE: response bytes of the GETs of REPO's blobs after line FROM_LINE
get_bytes() {
    tail -n +"$(($2 + 1))" "$W/access.log" | grep -E "\"GET /v2/$1/blobs/" |
        awk '{s += $10} END {print s + 0}'
}
lines() { wc -l <"$W/access.log"; }

"$C" --root "$W/a" load "$BASES/busybox.docker.tar" >/dev/null
"$C" --root "$W/a" load "$BASES/golang.docker.tar" >/dev/null
"$C" --root "$W/a" build -q -t hello "$W/ctx" >/dev/null

declare -a t_exp p_exp t_b g_b t_bexp g_bexp f_bexp t_one p_one t_bone
for i in $(seq "$RUNS"); do
    repo=bench/run$i ref=127.0.0.1:$port/bench/run$i:cache
    rm -rf "$W/b" "$W/a/rcache"
    t0=$(now)
    out=$("$C" --root "$W/a" build -q -t hello --cache-to "type=registry,ref=$ref,mode=max" "$W/ctx" 2>&1)
    t_exp+=("$(secs "$t0" "$(now)")")
    p_exp+=("$(pushed_bytes "$out")")
    l0=$(lines)
    t0=$(now)
    "$C" --root "$W/b" build -q -t hello --cache-from "type=registry,ref=$ref" "$W/ctx" >/dev/null 2>&1
    t_b+=("$(secs "$t0" "$(now)")")
    g_b+=("$(get_bytes "$repo" "$l0")")
    l0=$(lines)
    t0=$(now)
    out=$("$C" --root "$W/b" export hello -o "$W/b.tar" 2>&1)
    t_bexp+=("$(secs "$t0" "$(now)")")
    g_bexp+=("$(get_bytes "$repo" "$l0")")
    f_bexp+=("$(grep -oE 'chunks, [0-9]+ bytes' <<<"$out" | awk '{print $2}')")
    sed -i "s/fmt.Println(.*)/fmt.Println(\"Hello, run $i\")/" "$W/ctx/app.go"
    t0=$(now)
    out=$("$C" --root "$W/a" build -q -t hello --cache-to "type=registry,ref=$ref,mode=max" "$W/ctx" 2>&1)
    t_one+=("$(secs "$t0" "$(now)")")
    p_one+=("$(pushed_bytes "$out")")
    t0=$(now)
    "$C" --root "$W/b" build -q -t hello --cache-from "type=registry,ref=$ref" "$W/ctx" >/dev/null 2>&1
    t_bone+=("$(secs "$t0" "$(now)")")
done
m() { printf '%s\n' "$@" | median; }
echo "runs: $RUNS; machine: $(nproc) cores, $(uname -r); load $(cut -d' ' -f1-3 /proc/loadavg); $(date -u +%FT%RZ)"
echo "A first export (all-cached build + push): $(m "${t_exp[@]}") s, $(m "${p_exp[@]}") bytes pushed"
echo "B all-cached build, empty root: $(m "${t_b[@]}") s, $(m "${g_b[@]}") bytes downloaded (manifest + index blobs)"
echo "B export of hello: $(m "${t_bexp[@]}") s, $(m "${g_bexp[@]}") bytes downloaded ($(m "${f_bexp[@]}") bytes of chunks used)"
echo "one-line change, A build + push: $(m "${t_one[@]}") s, $(m "${p_one[@]}") bytes pushed"
echo "one-line change, B import + build: $(m "${t_bone[@]}") s"
