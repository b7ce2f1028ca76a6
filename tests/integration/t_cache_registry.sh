#!/usr/bin/env bash
# The build cache through a registry (issue 9, type=registry; Debian's docker-registry on
# loopback): A builds with --cache-to type=registry, an EMPTY root B builds the same context with
# --cache-from: every step CACHED, the same image id, no pack blob read by the build; B's export
# of the image reads a few MB of packs with Range requests (access log), never golang's (hello-go)
# or the builder stage's 8 MB layer (light project). A second export of nothing new uploads no
# blob; after a one-line change A uploads one new pack and a few index blobs.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/registry_lib.sh"
. "$(dirname "$0")/cache_lib.sh"
need root overlayfs runc jq
bases
registry_start plain

pushed() { grep -oE 'pushed [0-9]+ blobs' <<<"$1" | awk '{print $2}'; }
pack_gets() { reg_count '"GET /v2/cache/[^ ]*/blobs/sha256:[0-9a-f]+ HTTP[^"]*" 20[06]'; }

scenario() {
    local name=$1 ctx=$2 maxfetch=$3 ref=$REG_ADDR/cache/$1:buildcache out ida gets
    ROOT=$T/a-$name
    must cs load "$BASES/busybox.docker.tar"
    [ "$name" = hello-go ] && must cs load "$BASES/golang.docker.tar"
    out=$(build_plain -t app --cache-to "type=registry,ref=$ref,mode=max" "$ctx")
    check "$name: A builds and pushes its cache" grep -q '^cache: pushed' <<<"$out"
    ida=$(tail -n 1 <<<"$out")
    out=$(build_plain -t app --cache-to "type=registry,ref=$ref,mode=max" "$ctx")
    check_eq "$name: exporting again uploads no blob" "$(pushed "$out")" 0
    # (after it: an export adds layer_blobs records, which a tree's index part carries)
    must cs export app -o "$T/a-$name.tar"

    ROOT=$T/b-$name
    gets=$(pack_gets)
    out=$(build_plain -t app --cache-from "type=registry,ref=$ref" "$ctx")
    check_eq "$name: B (empty root) builds the same image id" "$(tail -n 1 <<<"$out")" "$ida"
    check_eq "$name: B has every step CACHED" "$(cached_steps "$out")" "$(layer_steps "$out")"
    check "$name: B's all-cached build fetched no chunk" \
        bash -c "! grep -q 'cache: fetched' <<<\"\$1\"" _ "$out"
    check "$name: B is fsck-clean" cs fsck
    out=$(cs export app -o "$T/b-$name.tar" 2>&1)
    local got
    got=$(fetched_bytes "$out")
    check_cmp "$name: B's export fetched the final image's chunks by Range" "${got:-0}" -gt 0
    check_cmp "$name: ... and not the builder stage's ($got bytes < $maxfetch)" "${got:-0}" -lt "$maxfetch"
    check "$name: B's export is byte-identical to A's" cmp "$T/a-$name.tar" "$T/b-$name.tar"
    check "$name: B is fsck-clean after the fetch" cs fsck
}

lctx=$T/light
light_project "$lctx"
scenario light "$lctx" 4000000

# One-line change: one new pack and a few small index blobs go up.
ROOT=$T/a-light
printf 'line 2\n' >"$lctx/msg.txt"
up0=$(reg_count '"PUT /v2/cache/light/blobs/uploads/')
out=$(build_plain -t app --cache-to "type=registry,ref=$REG_ADDR/cache/light:buildcache,mode=max" "$lctx")
ida=$(tail -n 1 <<<"$out")
check_eq "one-line change: A's export writes one new pack" \
    "$(grep -oE '[0-9]+ written' <<<"$out" | cut -d' ' -f1)" 1
check_cmp "one-line change: the blobs uploaded are the new pack and index blobs (< 10)" \
    "$(($(reg_count '"PUT /v2/cache/light/blobs/uploads/') - up0))" -lt 10
ROOT=$T/b-light
out=$(build_plain -t app --cache-from "type=registry,ref=$REG_ADDR/cache/light:buildcache" "$lctx")
check_eq "one-line change: B builds A's new image id" "$(tail -n 1 <<<"$out")" "$ida"
check_eq "one-line change: B has every step CACHED" "$(cached_steps "$out")" "$(layer_steps "$out")"
check_eq "B runs the new version" "$(cs run app cat /out.txt)" "built line 2"

# A killed export leaves the previous cache importable (the manifest is PUT last; blobs are named
# by their digests): kills at a few points of an export that pushes a new 8 MB pack.
ref=$REG_ADDR/cache/light:buildcache
for delay in 0.2 0.6 1.2; do
    ROOT=$T/a-light
    printf 'kill %s\n' "$delay" >"$lctx/msg.txt"
    "$CSTORE" --root "$ROOT" build --progress quiet -t app \
        --cache-to "type=registry,ref=$ref,mode=max" "$lctx" >/dev/null 2>&1 &
    pid=$!
    sleep "$delay"
    kill -9 "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    printf 'line 2\n' >"$lctx/msg.txt"
    ROOT=$T/k-light-$delay
    out=$(build_plain -t app --cache-from "type=registry,ref=$ref" "$lctx")
    check_eq "killed export after ${delay}s: the previous cache imports: same image id" \
        "$(tail -n 1 <<<"$out")" "$ida"
    check_eq "killed export after ${delay}s: every step CACHED" \
        "$(cached_steps "$out")" "$(layer_steps "$out")"
    check "killed export after ${delay}s: the importing store is fsck-clean" cs fsck
done

ROOT=$T/c-light
out=$(cs build --progress quiet -t app --cache-from "type=registry,ref=$REG_ADDR/cache/none:x" "$lctx" 2>&1)
check "a ref with no cache yet is a warning, the build goes on" grep -q 'warning: --cache-from' <<<"$out"

if [ "$CSTORE_TEST_LIGHT" != 1 ]; then
    hctx=$T/hello-go
    cp -r "$CSTORE_SRC/examples/hello-go" "$hctx"
    scenario hello-go "$hctx" 20000000
fi

finish
