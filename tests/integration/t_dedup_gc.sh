#!/usr/bin/env bash
# Deduplication and garbage collection: golang's first layer is busybox's, so loading both stores
# that layer's content once; rmi of everything + gc leaves no content; gc --dry-run changes
# nothing; gc --compact shrinks data.mdb; the store is usable afterwards.
. "$(dirname "$0")/lib.sh"
need jq
bases

# load_alone NAME IMAGE FIELD...: loads IMAGE into a fresh store $T/NAME-only (left as $ROOT), sets
# NAME_FIELD to its `du --json` FIELD for chunks and each FIELD, and checks chunks were stored.
load_alone() {
    local name=$1 image=$2 field chunks
    shift 2
    ROOT=$T/$name-only
    must cs load "$image"
    for field in chunks "$@"; do
        printf -v "${name}_$field" %s "$(du_json "$field")"
    done
    chunks=${name}_chunks
    check_cmp "$name alone: chunks stored" "${!chunks}" -gt 0
}

# Fresh store with golang alone: the reference for unique content.
load_alone golang "$BASES/golang.oci.tar" unique_bytes contents
rm -rf "$ROOT"

# Fresh store with busybox alone.
load_alone busybox "$BASES/busybox.docker.tar" unique_bytes logical_bytes
check_eq "busybox alone: one image, one tag, one tree" \
    "$(cs du --json | jq -c '[.images, .tags, .trees]')" '[1,1,1]'
rm -rf "$ROOT"

# busybox then golang in one store: busybox's layer is stored once.
ROOT=$T/root
must cs load "$BASES/busybox.docker.tar"
must cs load "$BASES/golang.oci.tar"
check_eq "both: chunks = golang's alone (busybox's layer once)" "$(du_json chunks)" "$golang_chunks"
check_eq "both: unique bytes = golang's alone" "$(du_json unique_bytes)" "$golang_unique_bytes"
check_eq "both: contents = golang's alone" "$(du_json contents)" "$golang_contents"
check_eq "both: 2 images, 2 trees (busybox's layer shared)" \
    "$(cs du --json | jq -c '[.images, .trees]')" '[2,2]'
check_eq "both: logical bytes count busybox's layer twice" \
    "$(du_json logical_bytes)" "$(($(cs inspect golang | jq '[.layers[].size] | add') + busybox_logical_bytes))"
check_eq "both: dedup ratio > 1" "$(cs du --json | jq '.dedup_ratio > 1')" true
check_eq "both: stored bytes <= unique bytes (zstd)" \
    "$(cs du --json | jq '.stored_bytes <= .unique_bytes')" true
check "du (text) runs" bash -c "'$CSTORE' --root '$ROOT' du | grep -q '^chunks: '"
check "fsck" cs fsck

# gc with everything tagged frees nothing.
before=$(du_counts)
check "gc with everything tagged" cs gc
check_eq "gc freed nothing tagged" "$(du_counts)" "$before"

# rmi golang, gc: busybox stays whole.
check "rmi golang" cs rmi golang
check "gc --dry-run" cs gc --dry-run
check_eq "gc --dry-run changed nothing" "$(du_counts | jq -c 'del(.images, .tags)')" \
    "$(jq -c 'del(.images, .tags)' <<<"$before")"
check "gc after rmi golang" cs gc
check_eq "busybox left: chunks as busybox alone" "$(du_json chunks)" "$busybox_chunks"
check_eq "busybox left: unique bytes as busybox alone" "$(du_json unique_bytes)" "$busybox_unique_bytes"
check "busybox still exports" cs export busybox -o "$T/bb.tar"
check "fsck after partial gc" cs fsck

# rmi everything, gc: nothing left.
must cs load "$BASES/golang.docker.tar"
check "rmi busybox golang" cs rmi busybox golang
check_eq "images: none" "$(cs images --json | jq length)" 0
size_full=$(stat -c %s "$ROOT/data.mdb")
check "gc --dry-run" cs gc --dry-run
check_eq "gc --dry-run: content still there" "$(du_json chunks)" "$golang_chunks"
check "gc" cs gc
check_eq "after gc: no images, trees, contents, chunks" \
    "$(cs du --json | jq -c '[.images, .tags, .trees, .contents, .chunks, .unique_bytes, .stored_bytes]')" \
    '[0,0,0,0,0,0,0]'
check "fsck of the empty store" cs fsck
size_gc=$(stat -c %s "$ROOT/data.mdb")
check "gc --compact" cs gc --compact
size_compact=$(stat -c %s "$ROOT/data.mdb")
check_cmp "gc --compact shrinks data.mdb ($size_gc -> $size_compact bytes)" "$size_compact" -lt "$((size_gc / 4))"
check "fsck after compact" cs fsck
echo "  data.mdb: $size_full after loads, $size_gc after gc, $size_compact after gc --compact"

# The store is usable again, and freed pages are reused: reloading after gc (without compact)
# does not grow the file much beyond its first size.
ROOT=$T/reuse
must cs load "$BASES/golang.docker.tar"
s1=$(stat -c %s "$ROOT/data.mdb")
must cs rmi golang
must cs gc
must cs load "$BASES/golang.docker.tar"
s2=$(stat -c %s "$ROOT/data.mdb")
check_cmp "reload after gc reuses freed pages ($s1 -> $s2 bytes)" "$s2" -le "$((s1 + s1 / 5))"
check_eq "reload after gc: chunks as before" "$(du_json chunks)" "$golang_chunks"
check "fsck after reload" cs fsck

ROOT=$T/root
check "load again after compact" cs load "$BASES/busybox.oci"
check_eq "after reload: busybox's chunks" "$(du_json chunks)" "$busybox_chunks"
check "export after reload" cs export busybox -o "$T/bb2.tar"
check "export after gc and reload is identical" cmp "$T/bb.tar" "$T/bb2.tar"
check "fsck at the end" cs fsck
finish
