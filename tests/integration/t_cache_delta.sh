#!/usr/bin/env bash
# Delta-encoded chunks in registry cache packs (issue 9, goal 2; Debian's docker-registry on
# loopback): A builds with --cache-to, a one-line change, A exports again: the new pack holds the
# changed file's new chunks as zstd deltas against the previous version's chunks, so the upload is
# small. B (an EMPTY root) builds the new version all CACHED and exports an image byte-identical to
# A's (deltas decoded with their bases, checked by digest). C, which built and exported the OLD
# version from the cache, fetches only the deltas. fsck is clean; after `cache prune` dropped the
# old version's entries (the packs holding the deltas' bases stay), an empty root D still gets it.
# Runs on a busybox project (a 1 MB random file with the message in it), and on examples/hello-go
# (the bench's change: the Println string) unless CSTORE_TEST_LIGHT=1.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/registry_lib.sh"
. "$(dirname "$0")/cache_lib.sh"
need root overlayfs runc jq cmp python3
bases
registry_start plain

pushed_bytes() { grep -oE 'pushed [0-9]+ blobs, [0-9]+ bytes' <<<"$1" | awk '{print $4}'; }

# delta_project DIR: a builder stage makes /out.bin, 1 MB of random bytes with msg.txt's line
# inserted at 400000; the final stage copies it.
delta_project() {
    mkdir -p "$1"
    head -c 1000000 /dev/urandom >"$1/seed.bin"
    printf 'line 1\n' >"$1/msg.txt"
    cat >"$1/Dockerfile" <<'EOF2'
FROM busybox AS build
WORKDIR /src
COPY seed.bin msg.txt ./
RUN { head -c 400000 seed.bin; cat msg.txt; tail -c +400001 seed.bin; } >/out.bin
FROM busybox
COPY --from=build /out.bin /out.bin
EOF2
}

# empty_root_gets NAME WHO REF CTX ID WHY: an empty root WHO builds CTX from cache REF: image ID,
# every step CACHED, its export byte-identical to A's ($T/a-NAME.tar), fsck-clean.
empty_root_gets() {
    local name=$1 who=$2 out
    ROOT=$T/${who,,}-$name
    out=$(build_plain -t app --cache-from "type=registry,ref=$3" "$4")
    check_eq "$name: $who (empty root; $6) builds A's new image id" "$(tail -n 1 <<<"$out")" "$5"
    check_eq "$name: $who has every step CACHED" "$(cached_steps "$out")" "$(layer_steps "$out")"
    must cs export app -o "$T/${who,,}-$name.tar"
    check "$name: $who's export is byte-identical to A's" cmp "$T/a-$name.tar" "$T/${who,,}-$name.tar"
    check "$name: $who is fsck-clean" cs fsck
}

# scenario NAME CTX CHANGE MAXUP: the cycle on context CTX; CHANGE is the one-line change (a
# command run in CTX); MAXUP bounds the bytes A's second export uploads.
scenario() {
    local name=$1 ctx=$2 change=$3 maxup=$4 ref=$REG_ADDR/cache/$1:buildcache out ida got
    ROOT=$T/a-$name
    must cs load "$BASES/busybox.docker.tar"
    [ "$name" = hello-go ] && must cs load "$BASES/golang.docker.tar"
    out=$(CSTORE_TEST_NOW=1000000 build_plain -t app --cache-to "type=registry,ref=$ref,mode=max" "$ctx")
    check "$name: A builds and pushes its cache" grep -q '^cache: pushed' <<<"$out"

    ROOT=$T/c-$name
    must cs build --progress quiet -t app --cache-from "type=registry,ref=$ref" "$ctx"
    must cs export app -o "$T/c0-$name.tar"

    ROOT=$T/a-$name
    (cd "$ctx" && eval "$change")
    out=$(CSTORE_TEST_NOW=2000000 build_plain -t app --cache-to "type=registry,ref=$ref,mode=max" "$ctx")
    ida=$(tail -n 1 <<<"$out")
    check_eq "$name: one-line change: A's export writes one new pack" "$(field "$out" 'written,')" 1
    got=$(pushed_bytes "$out")
    check_cmp "$name: ... and uploads $got bytes (deltas: < $maxup)" "${got:-999999999}" -lt "$maxup"
    must cs export app -o "$T/a-$name.tar"

    empty_root_gets "$name" B "$ref" "$ctx" "$ida" "deltas decoded"

    ROOT=$T/c-$name
    out=$(build_plain -t app --cache-from "type=registry,ref=$ref" "$ctx")
    check_eq "$name: C (old version local) builds A's new image id" "$(tail -n 1 <<<"$out")" "$ida"
    out=$(cs export app -o "$T/c-$name.tar" 2>&1)
    got=$(fetched_bytes "$out")
    check_cmp "$name: C's export fetched only the deltas ($got bytes < $maxup)" "${got:-0}" -lt "$maxup"
    check "$name: C's export is byte-identical to A's" cmp "$T/a-$name.tar" "$T/c-$name.tar"
    check "$name: C is fsck-clean" cs fsck

    ROOT=$T/p-$name
    out=$(CSTORE_TEST_NOW=2000100 cs cache prune --ref "type=registry,ref=$ref" --keep-duration 1h 2>&1)
    check "$name: prune removed the old version's entries" \
        grep -qE '^cache prune: removed [1-9][0-9]* entries' <<<"$out"
    empty_root_gets "$name" D "$ref" "$ctx" "$ida" "after prune: the bases' packs kept"
}

dctx=$T/delta
delta_project "$dctx"
# Plain, the changed 64 KiB chunks of random bytes would be > 100 kB.
scenario light "$dctx" "printf 'line two\n' >msg.txt" 40000

if [ "$CSTORE_TEST_LIGHT" != 1 ]; then
    hctx=$T/hello-go
    cp -r "$CSTORE_SRC/examples/hello-go" "$hctx"
    sed -i '/^# syntax=/d' "$hctx/Dockerfile"
    # bench/bench_cache_buildkit.sh's change; plain, the new chunks were 430 kB.
    scenario hello-go "$hctx" "sed -i 's/fmt.Println(.*)/fmt.Println(\"Hello, run 1\")/' app.go" 100000
fi

finish
