#!/usr/bin/env bash
# Range fetches and concurrent exports of a registry build cache (issue 9; Debian's
# docker-registry on loopback, tests/integration/fault_proxy.py in front of it to see the Range
# headers): B's export of an image asks for bounded ranges only and downloads at most 1.3x the
# bytes of the chunks it needed; a registry that ignores Range (200, the whole blob) still
# works; a corrupted pack byte is detected, nothing bad is stored; four machines exporting to
# one ref at the same time (registry, then a shared dir) lose no entry: a fifth root importing
# it gets each of the four builds CACHED.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/registry_lib.sh"
. "$(dirname "$0")/cache_lib.sh"
need root overlayfs runc jq python3
bases
registry_start plain

# blob_get_bytes FROM REPO: bytes of the 200/206 answers to GETs of REPO's blobs in the access log
# after line FROM.
blob_get_bytes() {
    tail -n +"$(($1 + 1))" "$REG_LOG" |
        grep -oE "\"GET /v2/$2/blobs/sha256:[0-9a-f]+ HTTP/[0-9.]+\" 20[06] [0-9]+" |
        awk '{s += $NF} END {print s + 0}'
}

lctx=$T/light
light_project "$lctx"
ref=cache/light:buildcache
ROOT=$T/a
must cs load "$BASES/busybox.docker.tar"
out=$(build_plain -t app --cache-to "type=registry,ref=$REG_ADDR/$ref,mode=max" "$lctx")
check "A builds and pushes its cache" grep -q '^cache: pushed' <<<"$out"
must cs export app -o "$T/a.tar"

# B reads through the proxy, which logs each request's Range header.
proxy_start --log-range
ROOT=$T/b
out=$(build_plain -t app --cache-from "type=registry,ref=$PROXY_ADDR/$ref" "$lctx")
check_eq "B (empty root) has every step CACHED" "$(cached_steps "$out")" "$(layer_steps "$out")"
from=$(wc -l <"$REG_LOG")
: >"$PROXY_LOG"
out=$(cs export app -o "$T/b.tar" 2>&1)
check "B's export is byte-identical to A's" cmp "$T/a.tar" "$T/b.tar"
need_bytes=$(fetched_bytes "$out")
got_bytes=$(blob_get_bytes "$from" cache/light)
echo "# B's export: $got_bytes bytes downloaded for ${need_bytes:-0} bytes of chunks"
check_cmp "B's export fetched chunks" "${need_bytes:-0}" -gt 0
check_cmp "B downloads at most 1.3x the bytes of the chunks it needed ($got_bytes for $need_bytes)" \
    "$((got_bytes * 10))" -le "$((${need_bytes:-0} * 13))"
gets=$(grep -cE '^main GET /v2/cache/light/blobs/sha256:' "$PROXY_LOG")
bounded=$(grep -cE '^main GET /v2/cache/light/blobs/sha256:[0-9a-f]+ auth=no -> 206 range=bytes=[0-9]+-[0-9]+$' "$PROXY_LOG")
check_cmp "B's export read packs" "$gets" -gt 0
check_eq "every pack GET has a Range with an end, answered 206" "$bounded" "$gets"
check "B is fsck-clean after the fetch" cs fsck
proxy_stop

# A registry (or its storage) that ignores Range: 200 and the whole blob; the bytes before the
# range are skipped, the transfer stopped after it.
proxy_start --log-range --ignore-range
ROOT=$T/c
must cs build --progress quiet -t app --cache-from "type=registry,ref=$PROXY_ADDR/$ref" "$lctx"
from=$(wc -l <"$REG_LOG")
check "a registry answering 200 to Range: the export succeeds" cs export app -o "$T/c.tar"
check "... byte-identical to A's" cmp "$T/a.tar" "$T/c.tar"
check_cmp "... and the registry answered its pack GETs 200 (access log)" \
    "$(tail -n +"$((from + 1))" "$REG_LOG" | grep -cE '"GET /v2/cache/light/blobs/sha256:[0-9a-f]+ HTTP/[0-9.]+" 200 ')" -gt 0
check "... fsck-clean" cs fsck
proxy_stop

# A corrupted byte in the registry's copy of a pack: read again once, then the export fails in
# one line naming the pack; no bad chunk stored.
ROOT=$T/d
must cs build --progress quiet -t app --cache-from "type=registry,ref=$REG_ADDR/$ref" "$lctx"
pack=$(python3 - "$REG_DIR/data/docker/registry/v2/blobs" <<'PY'
import glob, hashlib, struct, sys
want = hashlib.sha256(b"built line 1\n").digest()
for p in glob.glob(sys.argv[1] + "/sha256/*/*/data"):
    b = bytearray(open(p, "rb").read())
    if b[-8:] != b"CSPACK1\0":
        continue
    n = struct.unpack(">I", b[-12:-8])[0]
    toc = len(b) - 12 - n * 44
    for i in range(n):
        e = b[toc + i * 44 : toc + i * 44 + 44]
        if e[:32] == want:
            off, ln = struct.unpack(">QI", e[32:44])
            open(p + ".orig", "wb").write(b)
            b[off + ln - 1] ^= 0xFF
            open(p, "wb").write(b)
            print(p)
            sys.exit(0)
sys.exit("chunk of out.txt in no pack")
PY
)
out=$(cs export app -o "$T/d.tar" 2>&1)
rc=$?
check_cmp "corrupted pack byte: the export fails" "$rc" -ne 0
check_eq "corrupted pack byte: one error line naming the pack" \
    "$(wc -l <<<"$out") $(grep -c 'cache pack' <<<"$out")" "1 1"
check "corrupted pack byte: fsck-clean (no bad chunk stored)" cs fsck
[ -n "$pack" ] && mv "$pack.orig" "$pack"
check "repaired pack: the export succeeds" cs export app -o "$T/d.tar"

# Four machines export to one ref at the same time. Their builds first, then four all-cached
# rebuilds with --cache-to started together, so the exports overlap.
fleet_ctx() {
    mkdir -p "$T/fleet$1"
    printf 'FROM busybox\nRUN echo "machine %s" >/m.txt\n' "$1" >"$T/fleet$1/Dockerfile"
}
for i in 1 2 3 4; do
    fleet_ctx "$i"
    ROOT=$T/m$i
    must cs load "$BASES/busybox.docker.tar"
    must cs build --progress quiet -t app "$T/fleet$i"
done
fleet() { # KIND SPEC: the four exports in parallel; their outputs in $T/m$i.out
    local pids=() i
    for i in 1 2 3 4; do
        ROOT=$T/m$i
        cs build --progress plain -t app --cache-to "$2" "$T/fleet$i" >"$T/m$i.out" 2>&1 &
        pids+=($!)
    done
    local rc=0
    for i in 1 2 3 4; do
        wait "${pids[$((i - 1))]}" || rc=1
    done
    check_eq "$1: the four exports succeed" "$rc" 0
    echo "# $1: $(grep -ho 'merged again [0-9]* times' "$T"/m?.out | awk '{s += $3} END {print s + 0}') merges again"
}
all_cached() { # KIND SPEC: a fifth root imports and builds each machine's context
    local i out
    ROOT=$T/five-$1
    must cs load "$BASES/busybox.docker.tar"
    for i in 1 2 3 4; do
        out=$(build_plain -t app --cache-from "$2" "$T/fleet$i")
        check_eq "$1: a fifth root gets machine $i's build CACHED" \
            "$(cached_steps "$out")" "$(layer_steps "$out")"
    done
}
fleet registry "type=registry,ref=$REG_ADDR/cache/fleet:c,mode=max"
all_cached registry "type=registry,ref=$REG_ADDR/cache/fleet:c"
fleet local "type=local,dest=$T/shared,mode=max"
all_cached local "type=local,src=$T/shared"

finish
