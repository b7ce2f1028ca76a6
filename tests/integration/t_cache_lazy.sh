#!/usr/bin/env bash
# Lazy index parts (issue 9; store/rcache_lazy.c), through a registry (Debian's docker-registry on
# loopback): A builds examples/hello-go with --cache-to type=registry,mode=max; B (the bases
# loaded, nothing else) builds it with --cache-from: every step CACHED, the same image id, and
# B downloads the manifest, the root and one small part (the final stage's COPY --from layer's
# layer_blobs), never the golang stage's tree parts nor any pack part: < 200 kB (the access
# log's GET bytes). B stays fsck-clean; a gc keeps what the imported entries name; B's export
# of the image fetches the parts and chunks it needs (only the pack parts that hold them) and
# equals A's. B then changes a line: the
# RUN on golang runs (its lower trees' parts fetched then) and the image equals A's for the
# same change. An empty root C (no bases) builds all cached too: it takes the base images'
# parts, its trees stay remote, fsck is clean. D (bases only) builds with --cache-from and
# --cache-to the same ref: its export of remote hits is pushed, and E (empty) builds all cached from it.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/registry_lib.sh"
. "$(dirname "$0")/cache_lib.sh"
need root overlayfs runc jq cmp
bases
registry_start plain

mark() { wc -l <"$REG_LOG"; }
# down FROM: the GET bytes the registry sent after access-log line FROM
down() { tail -n +"$(($1 + 1))" "$REG_LOG" | awk '$6 == "\"GET" {s += $10} END {print s + 0}'; }
# got FROM DIGEST: 1 when a GET of blob DIGEST was answered after line FROM, else 0
got() { tail -n +"$(($1 + 1))" "$REG_LOG" | grep -cE "\"GET /v2/[^ ]*/blobs/$2 HTTP[^\"]*\" 20[06]"; }
# blob_gets FROM: the blob GETs answered after line FROM
blob_gets() { got "$1" 'sha256:[0-9a-f]+'; }

ref=$REG_ADDR/cache/lazy:buildcache
ctx=$T/hello-go
cp -r "$CSTORE_SRC/examples/hello-go" "$ctx"
cp -a "$ctx" "$T/hello-go.orig" # C's context: the same files, mtimes included (COPY keeps them)

ROOT=$T/a
must cs load "$BASES/busybox.docker.tar"
must cs load "$BASES/golang.docker.tar"
out=$(build_plain -t app --cache-to "type=registry,ref=$ref,mode=max" "$ctx")
check "A builds and pushes its cache" grep -q '^cache: pushed' <<<"$out"
ida=$(tail -n 1 <<<"$out")
must cs export app -o "$T/a.tar"
# The manifest A pushed: its index parts, the largest first (the golang base's tree part).
man=$(ls -d "$ROOT"/rcache/*)/blobs/sha256/$(jq -r '.manifests[0].digest' "$ROOT"/rcache/*/index.json | cut -c8-)
mapfile -t parts < <(jq -r '.layers | map(select(.mediaType | endswith("part.v1"))) |
    sort_by(-.size) | .[].digest' "$man")
check_cmp "A's cache has the golang tree part and the stage's parts" "${#parts[@]}" -ge 6

ROOT=$T/b
must cs load "$BASES/busybox.docker.tar"
must cs load "$BASES/golang.docker.tar"
m0=$(mark)
out=$(build_plain -t app --cache-from "type=registry,ref=$ref" "$ctx")
check_eq "B (bases only) builds A's image id" "$(tail -n 1 <<<"$out")" "$ida"
check_eq "B has every step CACHED" "$(cached_steps "$out")" "$(layer_steps "$out")"
bytes=$(down "$m0")
check_cmp "B's all-cached build downloads < 200 kB ($bytes B; every part: 2.4 MB)" "$bytes" -lt 200000
check_eq "... not the golang base's tree part" "$(got "$m0" "${parts[0]}")" 0
n=0
for p in "${parts[@]}"; do n=$((n + $(got "$m0" "$p"))); done
check_cmp "... at most one index part ($n: the final stage's own layer, for its diff_id)" "$n" -le 1
check_eq "... and no pack: the blobs read are the config, the root and that part" \
    "$(blob_gets "$m0")" "$((2 + n))"
check "B is fsck-clean with remote trees" cs fsck
must cs gc
check "B is fsck-clean after gc" cs fsck
out=$(build_plain -t app --cache-from "type=registry,ref=$ref" "$ctx")
check_eq "after gc, B builds the same image id again" "$(tail -n 1 <<<"$out")" "$ida"
check_eq "... every step CACHED" "$(cached_steps "$out")" "$(layer_steps "$out")"
m1=$(mark)
out=$(cs export app -o "$T/b.tar" 2>&1)
check "B exports the image, its parts and chunks fetched" test -s "$T/b.tar"
check "B's export equals A's" cmp "$T/a.tar" "$T/b.tar"
check_eq "... still not the golang base's tree part" "$(got "$m1" "${parts[0]}")" 0
n=0
for p in "${parts[@]}"; do n=$((n + $(got "$m1" "$p"))); done
check_cmp "... and only the pack parts holding the image's chunks ($n of ${#parts[@]} parts)" "$n" -le 2
check "B is fsck-clean after the export" cs fsck

# A one-line change B builds itself: the RUN's lower trees come from their parts.
sed -i 's/fmt.Println(.*)/fmt.Println("Hello, lazy")/' "$ctx/app.go"
out=$(build_plain -t app2 --cache-from "type=registry,ref=$ref" "$ctx")
idb=$(tail -n 1 <<<"$out")
check_cmp "one-line change: B runs the RUN (not every step CACHED)" "$(cached_steps "$out")" -lt "$(layer_steps "$out")"
check "one-line change: B is fsck-clean" cs fsck
check_eq "one-line change: B's image runs the new version" "$(cs run app2 hello)" "Hello, lazy"
ROOT=$T/a
out=$(build_plain -t app2 "$ctx")
check_eq "one-line change: B's image equals A's for the same change" "$(tail -n 1 <<<"$out")" "$idb"
ROOT=$T/b
must cs gc
check "B is fsck-clean after another gc" cs fsck
out=$(build_plain -t app2 --cache-from "type=registry,ref=$ref" "$ctx")
check_eq "after gc, B's rebuild of the change gives the same image" "$(tail -n 1 <<<"$out")" "$idb"

# An empty root: the base images' parts come along, their trees stay remote.
ROOT=$T/c
out=$(build_plain -t app --cache-from "type=registry,ref=$ref" "$T/hello-go.orig")
check_eq "C (empty root) builds A's image id" "$(tail -n 1 <<<"$out")" "$ida"
check_eq "C has every step CACHED" "$(cached_steps "$out")" "$(layer_steps "$out")"
check "C is fsck-clean (base images whose trees are remote)" cs fsck
out=$(cs export app -o "$T/c.tar" 2>&1)
check "C's export equals A's" cmp "$T/a.tar" "$T/c.tar"
check "C is fsck-clean after the export" cs fsck

# CI's usual pair on a fresh machine: D's all-cached build with --cache-from and --cache-to the
# same ref exports hits whose trees are still remote (their parts are read for it), and E, an
# empty root, builds all cached from what D pushed.
ROOT=$T/d
must cs load "$BASES/busybox.docker.tar"
must cs load "$BASES/golang.docker.tar"
out=$(build_plain -t app --cache-from "type=registry,ref=$ref" --cache-to "type=registry,ref=$ref,mode=max" "$T/hello-go.orig")
check_eq "D (bases only, both flags) builds A's image id" "$(tail -n 1 <<<"$out")" "$ida"
check_eq "D has every step CACHED" "$(cached_steps "$out")" "$(layer_steps "$out")"
check "D pushes its cache though its hits' trees were remote" grep -q '^cache: pushed' <<<"$out"
check "D is fsck-clean after its export" cs fsck
ROOT=$T/e
out=$(build_plain -t app --cache-from "type=registry,ref=$ref" "$T/hello-go.orig")
check_eq "E (empty root) builds A's image id from D's push" "$(tail -n 1 <<<"$out")" "$ida"
check_eq "E has every step CACHED" "$(cached_steps "$out")" "$(layer_steps "$out")"
out=$(cs export app -o "$T/e.tar" 2>&1)
check "E's export equals A's" cmp "$T/a.tar" "$T/e.tar"

finish
