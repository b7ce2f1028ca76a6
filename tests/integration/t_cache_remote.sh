#!/usr/bin/env bash
# The build cache shared through a directory (issue 9, type=local): machine A builds with
# --cache-to, machine B (an EMPTY store root) builds the same context with --cache-from: every
# step CACHED, the same image id, no chunk fetched by the build (metadata only), and the bytes an
# export of the image fetches are those of the final image, never the builder stage's. A one-line
# change: A's export writes one new pack; B builds the new version all cached. A corrupted pack
# byte is detected by digest and stores nothing. Bad specs and a bad cache fail in one line with
# the store unchanged. Runs on a busybox project (builder stage with an 8 MB random layer), and on
# examples/hello-go (golang never fetched) unless CSTORE_TEST_LIGHT=1.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/cache_lib.sh"
need root overlayfs runc jq cmp python3
bases


# scenario NAME CTX MAXFETCH: the A/B cycle on context CTX; MAXFETCH bounds what B's export of
# the image may read from packs (less than the builder stage's bytes).
scenario() {
    local name=$1 ctx=$2 maxfetch=$3 cache=$T/cache-$1 out ida idb
    ROOT=$T/a-$name
    must cs load "$BASES/busybox.docker.tar"
    [ "$name" = hello-go ] && must cs load "$BASES/golang.docker.tar"
    out=$(build_plain -t app --cache-to "type=local,dest=$cache,mode=max" "$ctx")
    check "$name: A builds and exports its cache" grep -q '^cache: exported' <<<"$out"
    ida=$(tail -n 1 <<<"$out")
    check "$name: the cache is an OCI layout with a cstore cache manifest" \
        jq -e '.manifests[0].annotations["org.opencontainers.image.ref.name"] == "cstore-cache"' \
        "$cache/index.json"
    must cs export app -o "$T/a-$name.tar"

    ROOT=$T/b-$name
    out=$(build_plain -t app --cache-from "type=local,src=$cache" "$ctx")
    idb=$(tail -n 1 <<<"$out")
    check_eq "$name: B (empty root) builds the same image id" "$idb" "$ida"
    check_eq "$name: B has every step CACHED" "$(cached_steps "$out")" "$(layer_steps "$out")"
    check "$name: B's all-cached build fetched no chunk (metadata only)" \
        bash -c "! grep -q 'cache: fetched' <<<\"\$1\"" _ "$out"
    check "$name: B is fsck-clean with remote-backed chunks" cs fsck
    out=$(cs export app -o "$T/b-$name.tar" 2>&1)
    check "$name: B exports the image" test -s "$T/b-$name.tar"
    local got
    got=$(fetched_bytes "$out")
    check_cmp "$name: B's export fetched the final image's chunks" "${got:-0}" -gt 0
    check_cmp "$name: ... and not the builder stage's ($got bytes < $maxfetch)" "${got:-0}" -lt "$maxfetch"
    check "$name: B's export is byte-identical to A's" cmp "$T/a-$name.tar" "$T/b-$name.tar"
    check "$name: B is fsck-clean after the fetch" cs fsck
}

# ---- the light project: a builder stage with a big random layer ----
lctx=$T/light
light_project "$lctx"
scenario light "$lctx" 4000000

# One-line change: A writes one new pack, small; B builds the new version all cached.
ROOT=$T/a-light
cache=$T/cache-light
packs_before=$(ls "$cache/blobs/sha256" | sort)
printf 'line 2\n' >"$lctx/msg.txt"
out=$(build_plain -t app --cache-to "type=local,dest=$cache,mode=max" "$lctx")
ida=$(tail -n 1 <<<"$out")
check_eq "one-line change: A's export writes one new pack" "$(field "$out" 'written,')" 1
check_cmp "one-line change: ... and < 100 kB of index (the new trees' parts and the root)" \
    "$(field "$out" 'bytes)')" -lt 100000
new_pack=$(comm -13 <(echo "$packs_before") <(ls "$cache/blobs/sha256" | sort) |
    while read -r b; do [ "$(tail -c 8 "$cache/blobs/sha256/$b" | tr -d '\0')" = CSPACK1 ] && echo "$b"; done)
check_eq "one-line change: exactly one new pack blob in the layout" "$(wc -w <<<"$new_pack")" 1
check_cmp "one-line change: the new pack is small (< 9 MB: the RUN's new layer)" \
    "$(stat -c %s "$cache/blobs/sha256/$new_pack")" -lt 9000000
ROOT=$T/b-light
out=$(build_plain -t app --cache-from "type=local,src=$cache" "$lctx")
check_eq "one-line change: B builds A's new image id" "$(tail -n 1 <<<"$out")" "$ida"
check_eq "one-line change: B has every step CACHED" "$(cached_steps "$out")" "$(layer_steps "$out")"
check_eq "B runs the new version" "$(cs run app cat /out.txt)" "built line 2"

# A corrupted pack byte: detected by digest, the export fails in one line, nothing bad stored.
ROOT=$T/c-light
must cs build --progress quiet -t app --cache-from "type=local,src=$cache" "$lctx"
p=$cache/blobs/sha256/$new_pack
cp "$p" "$T/pack.orig"
# The chunk of /out.txt ("built line 2": not in the context, whose files a build ingests),
# found through the pack's table of contents: the last byte of its stored bytes flipped.
python3 - "$p" <<'PY'
import hashlib, struct, sys
p = sys.argv[1]
b = bytearray(open(p, "rb").read())
assert b[-8:] == b"CSPACK1\0"
n = struct.unpack(">I", b[-12:-8])[0]
toc = len(b) - 12 - n * 44
want = hashlib.sha256(b"built line 2\n").digest()
for i in range(n):
    e = b[toc + i * 44 : toc + i * 44 + 44]
    if e[:32] == want:
        off, ln = struct.unpack(">QI", e[32:44])
        b[off + ln - 1] ^= 0xFF
        open(p, "wb").write(b)
        break
else:
    sys.exit("chunk of out.txt not in the pack")
PY
out=$(cs export app -o "$T/c.tar" 2>&1)
rc=$?
check_cmp "corrupted pack: the export fails" "$rc" -ne 0
check_eq "corrupted pack: one error line naming the pack" \
    "$(wc -l <<<"$out") $(grep -c 'cache pack' <<<"$out")" "1 1"
check "corrupted pack: the store is fsck-clean (no bad chunk stored)" cs fsck
cp "$T/pack.orig" "$p"
check "repaired pack: the export succeeds" cs export app -o "$T/c.tar"

# Bad input: one line, non-zero, store unchanged.
ROOT=$T/b-light
before=$(du_counts)
check_fails "--cache-to type=s3 is refused" cs build --cache-to type=s3,ref=x "$lctx"
check_fails "--cache-to type=registry without ref is refused" \
    cs build --cache-to type=registry "$lctx"
check_fails "--cache-to without dest is refused" cs build --cache-to type=local "$lctx"
check_fails "--cache-from with an unknown attribute is refused" \
    cs build --cache-from "type=local,src=$cache,bogus=1" "$lctx"
mkdir -p "$T/badcache/blobs/sha256"
cp -r "$cache/." "$T/badcache/"
idx=$(jq -r '.manifests[0].digest' "$T/badcache/index.json" | cut -d: -f2)
printf 'x' >>"$T/badcache/blobs/sha256/$idx"
out=$(cs build --progress quiet --cache-from "type=local,src=$T/badcache" "$lctx" 2>&1)
rc=$?
check_cmp "a cache whose manifest does not match its digest fails the build" "$rc" -ne 0
check_eq "... in one line" "$(wc -l <<<"$out")" 1
check_eq "... with the store unchanged" "$(du_counts)" "$before"
out=$(cs build --progress quiet --cache-from "type=local,src=$T/nothing-here" "$lctx" 2>&1)
check "a --cache-from dir without a cache is a warning, the build goes on" \
    grep -q 'warning: --cache-from' <<<"$out"

# A killed export leaves a cache that still imports (index.json is renamed last; blobs are named
# by their digests). Kills at a few points of an export that writes a new 8 MB pack.
for delay in 0.3 0.8 1.5; do
    ROOT=$T/a-light
    printf 'kill %s\n' "$delay" >"$lctx/msg.txt"
    cs build --progress quiet -t app --cache-to "type=local,dest=$cache,mode=max" "$lctx" \
        >/dev/null 2>&1 &
    pid=$!
    sleep "$delay"
    kill -9 "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    ROOT=$T/k-light-$delay
    check "killed export after ${delay}s: the cache still imports and the build succeeds" \
        cs build --progress quiet -t app --cache-from "type=local,src=$cache" "$lctx"
    check "killed export after ${delay}s: the importing store is fsck-clean" cs fsck
done
printf 'line 2\n' >"$lctx/msg.txt"

# Two exports to one dir at once (two machines): both finish, the dir imports, nothing is lost
# that the last writer had (best effort: last writer wins for the root, packs stay).
ROOT=$T/a-light
pctx=$T/par
cp -r "$lctx" "$pctx"
printf 'parallel\n' >"$pctx/msg.txt"
cs build --progress quiet -t par1 --cache-to "type=local,dest=$T/cache-par,mode=max" "$lctx" \
    >"$T/par1.out" 2>&1 &
p1=$!
ROOT=$T/a2-light
must cs load "$BASES/busybox.docker.tar"
cs build --progress quiet -t par2 --cache-to "type=local,dest=$T/cache-par,mode=max" "$pctx" \
    >"$T/par2.out" 2>&1 &
p2=$!
rc1=0 rc2=0
wait "$p1" || rc1=$?
wait "$p2" || rc2=$?
check_eq "parallel exports: both finish" "$rc1 $rc2" "0 0"
ROOT=$T/par-b
check "parallel exports: the dir imports and a build from it succeeds" \
    cs build --progress quiet -t par --cache-from "type=local,src=$T/cache-par" "$pctx"
check "parallel exports: fsck-clean" cs fsck

# COPY --chown on an imported base reads its /etc/passwd and /etc/group: those files' chunks only.
cctx=$T/chown
mkdir -p "$cctx"
printf 'hi\n' >"$cctx/f"
printf 'FROM busybox\nCOPY --chown=nobody:nogroup f /f\n' >"$cctx/Dockerfile"
ROOT=$T/a-light
ida=$(cs build --progress quiet -t chown --cache-to "type=local,dest=$T/cache-chown" "$cctx" 2>/dev/null)
ROOT=$T/chown-b
out=$(build_plain -t chown --cache-from "type=local,src=$T/cache-chown" "$cctx")
check_eq "COPY --chown from an empty root: the same image id" "$(tail -n 1 <<<"$out")" "$ida"
check_eq "COPY --chown from an empty root: every step CACHED" "$(cached_steps "$out")" "$(layer_steps "$out")"
check_cmp "COPY --chown: only /etc/passwd and /etc/group fetched (< 4096 bytes)" \
    "$(fetched_bytes "$out")" -lt 4096

# mode=min: only the final stage's steps (and the images they use).
ROOT=$T/a-light
out=$(build_plain -t app --cache-to "type=local,dest=$T/cache-min" "$lctx")
check_eq "mode=min exports the final stage's one step" "$(field "$out" entries)" 1

# A file of local chunks and chunks still in a pack, next to other contents: fsck hashes each
# content from a fresh start (a remote-backed chunk once left the worker's hash half-fed, and the
# next content on that worker was reported as a digest mismatch).
mctx=$T/mixed
mkdir -p "$mctx"
printf 'FROM busybox\nRUN cat /bin/busybox >/mixed && head -c 3000000 /dev/urandom >>/mixed\n' \
    >"$mctx/Dockerfile"
ROOT=$T/a-mixed
must cs load "$BASES/busybox.docker.tar"
must cs build --progress quiet -t mixed --cache-to "type=local,dest=$T/cache-mixed,mode=max" "$mctx"
ROOT=$T/b-mixed
must cs load "$BASES/busybox.docker.tar"
must cs build --progress quiet -t mixed --cache-from "type=local,src=$T/cache-mixed" "$mctx"
check "fsck is clean with contents half local, half in a pack" cs fsck

if [ "$CSTORE_TEST_LIGHT" != 1 ]; then
    hctx=$T/hello-go
    cp -r "$CSTORE_SRC/examples/hello-go" "$hctx"
    # golang's layers are ~130 MB of packs: the export of hello reads busybox and the binary.
    scenario hello-go "$hctx" 20000000
    ROOT=$T/b-hello-go
    check_cmp "hello-go: B stores < 20 MB of chunks (golang's stay in the packs)" \
        "$(du_json stored_bytes)" -lt 20000000
fi

finish
