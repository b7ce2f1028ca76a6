#!/usr/bin/env bash
# bench_cache_ranges.sh - B's export of hello-go from a registry build cache (the bytes an empty
# machine downloads for the image's chunks), with a baseline binary and this tree's, alternated in
# the same run on the same registry and cache: bytes downloaded (the registry's access log: 200
# and 206 answers to blob GETs), bytes of the chunks used, requests, wall time. Medians of RUNS.
#   CSTORE (default build/cstore), BASE_CSTORE (the baseline, default /work/main/build/cstore),
#   CSTORE_BASES (default out/bases), RUNS (default 5)
# One command: CSTORE_BASES=/work/main/out/bases bash bench/bench_cache_ranges.sh
set -euo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)
C=${CSTORE:-$src/build/cstore}
BASE=${BASE_CSTORE:-/work/main/build/cstore}
BASES=${CSTORE_BASES:-$src/out/bases}
RUNS=${RUNS:-5}
W=$(mktemp -d /var/tmp/cstore-bench-ranges.XXXXXX)
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
lines() { wc -l <"$W/access.log"; }
# gets FROM: "bytes requests" of the blob GETs answered 200/206 after line FROM
gets() {
    tail -n +"$(($1 + 1))" "$W/access.log" |
        grep -oE '"GET /v2/bench/ranges/blobs/sha256:[0-9a-f]+ HTTP/[0-9.]+" 20[06] [0-9]+' |
        awk '{s += $NF; n++} END {print s + 0, n + 0}'
}

ref=127.0.0.1:$port/bench/ranges:cache
"$C" --root "$W/a" load "$BASES/busybox.docker.tar" >/dev/null
"$C" --root "$W/a" load "$BASES/golang.docker.tar" >/dev/null
"$C" --root "$W/a" build -q -t hello --cache-to "type=registry,ref=$ref,mode=max" "$W/ctx" >/dev/null 2>&1

declare -A t g n f
for i in $(seq "$RUNS"); do
    for which in base new; do
        bin=$C
        [ "$which" = base ] && bin=$BASE
        rm -rf "$W/b"
        "$bin" --root "$W/b" build -q -t hello --cache-from "type=registry,ref=$ref" "$W/ctx" >/dev/null 2>&1
        l0=$(lines)
        t0=$(now)
        out=$("$bin" --root "$W/b" export hello -o "$W/b.tar" 2>&1)
        t[$which]+="$(echo "$(now) - $t0" | bc) "
        read -r bytes reqs <<<"$(gets "$l0")"
        g[$which]+="$bytes "
        n[$which]+="$reqs "
        f[$which]+="$(grep -oE 'chunks, [0-9]+ bytes' <<<"$out" | awk '{print $2}') "
    done
done
m() { printf '%s\n' $1 | median; }
echo "runs: $RUNS; machine: $(nproc) cores, $(uname -r); load $(cut -d' ' -f1-3 /proc/loadavg); $(date -u +%FT%RZ)"
for which in base new; do
    echo "$which: B export of hello: $(m "${t[$which]}") s, $(m "${g[$which]}") bytes downloaded in $(m "${n[$which]}") GETs, $(m "${f[$which]}") bytes of chunks used"
done
