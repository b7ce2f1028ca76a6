#!/usr/bin/env bash
# `cstore cache prune` (issue 9) on a cache directory (type=local) and on a real registry
# (Debian's docker-registry on loopback, storage.delete enabled): machine A builds a busybox
# project three times, each a one-line change, and exports its cache at three times (t = 1e6,
# 2e6, 3e6 through CSTORE_TEST_NOW, the test-only clock of cstore/rcache.h) to two caches. Prune
# with --keep-duration 1h at t = 3e6 + 100 removes builds 1 and 2: build 3 still imports into an
# empty root all CACHED (same image id as A's), builds 1 and 2 do not; the pack only build 2 needed
# is deleted (dir: file gone; registry: blob GET 404), the pack with busybox and build 3's stay.
# --keep-storage of exactly those two packs does the same by least recent use. Bad input: one
# line, non-zero, the cache unchanged.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/registry_lib.sh"
. "$(dirname "$0")/cache_lib.sh"
need root overlayfs runc jq curl
bases
registry_start plain

PACK_TYPE=application/vnd.cstore.cache.pack.v1
ctx=$T/ctx
mkdir -p "$ctx"
cat >"$ctx/Dockerfile" <<'EOF'
FROM busybox
COPY msg.txt /msg.txt
RUN head -c 300000 /dev/urandom >/rand.bin && echo "built $(cat /msg.txt)" >/out.txt
EOF

# line I: the one-line change (the mtime fixed: COPY keeps it, so it is in the cache key).
line() {
    printf 'line %s\n' "$1" >"$ctx/msg.txt"
    touch -d @1000000000 "$ctx/msg.txt"
}

# manifest SPEC: the cache manifest JSON of a spec ("L" DIR or "R" REPO:TAG).
manifest() {
    local kind=${1:0:1} where=${1:1} m
    if [ "$kind" = L ]; then
        m=$(jq -r '.manifests[0].digest' "$where/index.json")
        cat "$where/blobs/sha256/${m#sha256:}"
    else
        curl -sf -H 'Accept: application/vnd.oci.image.manifest.v1+json' \
            "http://$REG_ADDR/v2/${where%:*}/manifests/${where##*:}"
    fi
}
# packs SPEC: "digest size" of each pack the cache names.
packs() { manifest "$1" | jq -r --arg t "$PACK_TYPE" '.layers[] | select(.mediaType == $t) | "\(.digest) \(.size)"' | sort; }
# blob_there SPEC DIGEST: the blob is in the dir / the registry answers GET 200.
blob_there() {
    local kind=${1:0:1} where=${1:1}
    if [ "$kind" = L ]; then
        test -e "$where/blobs/sha256/${2#sha256:}"
    else
        [ "$(curl -s -o /dev/null -w '%{http_code}' "http://$REG_ADDR/v2/${where%:*}/blobs/$2")" = 200 ]
    fi
}
blob_gone() { ! blob_there "$@"; }
# cache_arg SPEC: the --cache-to/--cache-from and --ref spelling.
cache_arg() {
    if [ "${1:0:1}" = L ]; then echo "type=local,src=${1:1}"; else echo "type=registry,ref=$REG_ADDR/${1:1}"; fi
}
cache_to() {
    if [ "${1:0:1}" = L ]; then echo "type=local,dest=${1:1}"; else echo "type=registry,ref=$REG_ADDR/${1:1}"; fi
}

# export_three NAME SPEC1 SPEC2: A builds line 1, 2, 3 and exports each to both caches at t = i*1e6;
# sets P1 P2 P3 (the pack each export added: "digest size") and IDS (A's image ids).
export_three() {
    local name=$1 s1=$2 s2=$3 i out before
    ROOT=$T/a-$name
    must cs load "$BASES/busybox.docker.tar"
    IDS=()
    for i in 1 2 3; do
        line "$i"
        before=$(packs "$s1" 2>/dev/null)
        export CSTORE_TEST_NOW=${i}000000
        out=$(build_plain -t app --cache-to "$(cache_to "$s1")" "$ctx")
        check "$name: A exports build $i" grep -q '^cache: exported' <<<"$out"
        IDS[$i]=$(tail -n 1 <<<"$out")
        out=$(build_plain -t app --cache-to "$(cache_to "$s2")" "$ctx")
        check_eq "$name: A's build $i again (for the second cache) is the same image" \
            "$(tail -n 1 <<<"$out")" "${IDS[$i]}"
        unset CSTORE_TEST_NOW
        printf -v "P$i" '%s' "$(comm -13 <(echo "$before") <(packs "$s1"))"
    done
    check_eq "$name: each export added one pack" "$(printf '%s\n' "$P1" "$P2" "$P3" | grep -c .)" 3
}

# imports NAME SPEC I: an empty root builds line I with --cache-from SPEC; prints
# "CACHED/STEPS ID".
imports() {
    local out
    ROOT=$T/b-$1-$3-$RANDOM
    line "$3"
    out=$(build_plain -t app --cache-from "$(cache_arg "$2")" "$ctx")
    echo "$(cached_steps "$out")/$(layer_steps "$out") $(tail -n 1 <<<"$out")"
}

# after_prune NAME SPEC OUT: what a prune that dropped builds 1 and 2 leaves.
after_prune() {
    local name=$1 spec=$2 out=$3
    check "$name: prune says what it removed in one line" \
        grep -qE '^cache prune: removed 4 entries, 0 base images, 1 packs \([0-9]+ bytes\), [0-9]+ index parts .*; kept 2 entries, 2 packs' <<<"$out"
    check_eq "$name: ... one line" "$(wc -l <<<"$out")" 1
    check_eq "$name: the cache names build 1's and build 3's packs" "$(packs "$spec")" \
        "$(printf '%s\n%s\n' "$P1" "$P3" | sort)"
    check "$name: the pack only build 2 needed is deleted" blob_gone "$spec" "${P2% *}"
    check "$name: the pack with busybox is kept" blob_there "$spec" "${P1% *}"
    check "$name: build 3's pack is kept" blob_there "$spec" "${P3% *}"
    check_eq "$name: build 3 imports into an empty root all CACHED, A's image" \
        "$(imports "$name" "$spec" 3)" "2/2 ${IDS[3]}"
    check_eq "$name: build 2 does not (its entries are gone)" "$(imports "$name" "$spec" 2 | cut -d' ' -f1)" 0/2
    check_eq "$name: build 1 does not (busybox still comes from the cache)" \
        "$(imports "$name" "$spec" 1 | cut -d' ' -f1)" 0/2
}

scenario() {
    local name=$1 s1=$2 s2=$3 out
    export_three "$name" "$s1" "$s2"
    [ "$name" = local ] && cp -a "${s1:1}" "$T/cache-before-prune"
    ROOT=$T/pruner-$name
    out=$(CSTORE_TEST_NOW=3000100 cs cache prune --ref "$(cache_arg "$s1")" --keep-duration 1h 2>&1)
    after_prune "$name, --keep-duration" "$s1" "$out"
    local budget=$((${P1#* } + ${P3#* }))
    out=$(cs cache prune --ref "$(cache_arg "$s2")" --keep-storage "$budget" 2>&1)
    after_prune "$name, --keep-storage" "$s2" "$out"
    out=$(cs cache prune --ref "$(cache_arg "$s2")" --keep-storage "$budget" 2>&1)
    check "$name: a second prune removes nothing" \
        grep -qE '^cache prune: removed 0 entries, 0 base images, 0 packs \(0 bytes\), 0 index parts' <<<"$out"
}

scenario local "L$T/cache1" "L$T/cache2"
# A killed prune leaves a cache that still imports (the root, manifest and index.json are written
# before any blob is deleted). Kills at a few points of prunes of the local cache as A left it.
for delay in 0.002 0.005 0.01 0.02; do
    rm -rf "$T/cache-kill"
    cp -a "$T/cache-before-prune" "$T/cache-kill"
    ROOT=$T/pruner-kill
    CSTORE_TEST_NOW=3000100 "$CSTORE" --root "$ROOT" cache prune --ref "type=local,src=$T/cache-kill" \
        --keep-duration 1h >/dev/null 2>&1 &
    pid=$!
    sleep "$delay"
    kill -9 "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    check_eq "prune killed after ${delay}s: build 3 still imports all CACHED" \
        "$(imports kill "L$T/cache-kill" 3)" "2/2 ${IDS[3]}"
done

scenario registry "Rcache/prune:one" "Rcache/prune2:two"
check_cmp "registry: the prunes sent DELETEs that the registry accepted" \
    "$(reg_count '"DELETE /v2/cache/prune2?/blobs/sha256:[0-9a-f]+ HTTP[^"]*" 202')" -ge 2

# A DELETE removes a blob from the whole repository: a blob another tag there names stays. A
# exports build 3 (t = 3e6: busybox and build 3 in one pack), then build 2 (t = 1e6: a pack of its
# own), then build 3 again (t = 3e6: nothing new; busybox's stamp is 3e6 again); tag b is a copy
# of the cache a.
ROOT=$T/a-registry
shared=Rcache/shared:a
shared_export() {
    local out
    line "$1"
    out=$(CSTORE_TEST_NOW=${1}000000 build_plain -t app --cache-to "$(cache_to "$shared")" "$ctx")
    check "shared: A exports build $1" grep -q '^cache: exported' <<<"$out"
}
shared_export 3
p3=$(packs "$shared")
shared_export 2
p2=$(comm -13 <(echo "$p3") <(packs "$shared"))
shared_export 3
manifest "$shared" | curl -sf -X PUT -H 'Content-Type: application/vnd.oci.image.manifest.v1+json' \
    --data-binary @- "http://$REG_ADDR/v2/cache/shared/manifests/b" >/dev/null
ROOT=$T/pruner-shared
out=$(CSTORE_TEST_NOW=3000100 cs cache prune --ref "$REG_ADDR/cache/shared:a" --keep-duration 1h 2>&1)
check "shared: the prune removes build 2's entries and pack from cache a" \
    grep -qE '^cache prune: removed 2 entries, 0 base images, 1 packs' <<<"$out"
check_eq "shared: cache a no longer names build 2's pack" "$(packs "$shared")" "$p3"
check "shared: the registry keeps the pack, which tag b names" blob_there "$shared" "${p2% *}"
check_eq "shared: build 2 still imports from tag b all CACHED" \
    "$(imports shared Rcache/shared:b 2 | cut -d' ' -f1)" 2/2

# A registry that refuses DELETE (distribution without storage.delete: 405 UNSUPPORTED): the
# prune still drops build 2 from the cache, says once that the blobs are left to the registry's
# garbage collector, and build 3 still imports all CACHED.
nodel_dir=$T/registry-nodel
mkdir -p "$nodel_dir/data"
nodel_addr=127.0.0.1:$(_reg_free_port)
cat >"$nodel_dir/config.yml" <<EOT
version: 0.1
log:
  level: info
storage:
  filesystem:
    rootdirectory: $nodel_dir/data
http:
  addr: $nodel_addr
  secret: cstore-test-$RANDOM$RANDOM
EOT
docker-registry serve "$nodel_dir/config.yml" >"$nodel_dir/access.log" 2>"$nodel_dir/registry.log" &
NODEL_PID=$!
trap 'kill "$NODEL_PID" 2>/dev/null; wait "$NODEL_PID" 2>/dev/null; _reg_exit' EXIT
_reg_wait "http://$nodel_addr/v2/"
ROOT=$T/a-registry
nodel=Rcache/nodel:a
REG_ADDR_MAIN=$REG_ADDR
REG_ADDR=$nodel_addr
shared=$nodel
shared_export 3
p3=$(packs "$nodel")
shared_export 2
p2=$(comm -13 <(echo "$p3") <(packs "$nodel"))
shared_export 3
ROOT=$T/pruner-nodel
out=$(CSTORE_TEST_NOW=3000100 cs cache prune --ref "$nodel_addr/cache/nodel:a" --keep-duration 1h 2>"$T/nodel.err")
check "no-delete registry: the prune removes build 2's entries and pack from the cache" \
    grep -qE '^cache prune: removed 2 entries, 0 base images, 1 packs' <<<"$out"
check_eq "no-delete registry: it says once that the blobs are left to the registry's collector" \
    "$(grep -c "left to the registry's garbage collector" "$T/nodel.err")" 1
check_eq "no-delete registry: ... and nothing else on stderr" "$(wc -l <"$T/nodel.err")" 1
check_eq "no-delete registry: the cache no longer names build 2's pack" "$(packs "$nodel")" "$p3"
check "no-delete registry: the registry still has the pack" blob_there "$nodel" "${p2% *}"
check_eq "no-delete registry: build 3 imports all CACHED" "$(imports nodel "$nodel" 3 | cut -d' ' -f1)" 2/2
REG_ADDR=$REG_ADDR_MAIN

# one_line_error DESC WANT_RC CMD...: fails with WANT_RC and one "cstore: " line.
one_line_error() {
    local desc=$1 want=$2 out rc=0
    shift 2
    out=$("$@" 2>&1) || rc=$?
    check_eq "$desc: exit $want" "$rc" "$want"
    check "$desc: one 'cstore: ' line" bash -c '[ "$(wc -l <<<"$1")" = 1 ] && [[ $1 == cstore:* ]]' _ "$out"
}
ROOT=$T/never
one_line_error "a malformed registry ref" 1 cs cache prune --ref "Bad Ref!"
check "... makes no store" test ! -e "$T/never"
ROOT=$T/pruner-bad
before=$(ls -R "$T/cache1" | sha256sum)
one_line_error "a dir without a cache" 1 cs cache prune --ref "type=local,src=$T/nope"
one_line_error "a registry ref without a cache" 1 cs cache prune --ref "$REG_ADDR/cache/none:x"
one_line_error "a bad duration" 2 cs cache prune --ref "type=local,src=$T/cache1" --keep-duration 1x
one_line_error "a bad size" 2 cs cache prune --ref "type=local,src=$T/cache1" --keep-storage lots
one_line_error "no --ref" 2 cs cache prune --keep-duration 1h
one_line_error "an unknown cache type" 2 cs cache prune --ref "type=s3,ref=x"
one_line_error "an unknown cache command" 2 cs cache shrink --ref "type=local,src=$T/cache1"
check_eq "bad input leaves the cache dir unchanged" "$(ls -R "$T/cache1" | sha256sum)" "$before"

finish
