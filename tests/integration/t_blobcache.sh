#!/usr/bin/env bash
# The blob cache (ROOT/blobcache): an export keeps the layer blobs it made, and the next export of
# the image copies them instead of making them again (the files are not replaced: same inodes),
# byte for byte the same archive; a cached file of the right size but wrong bytes, or cut short, is
# found out and made again, the archive still right; gc removes the files of the trees it frees,
# files no record names and dead processes' temp files, keeps the rest within --keep-storage (least
# recently used out first).
. "$(dirname "$0")/lib.sh"
need jq sha256sum
bases
ROOT=$T/root
C=$ROOT/blobcache
must cs load "$BASES/busybox.oci.tar"
ctx=$T/ctx
mkdir -p "$ctx"
head -c 200000 /dev/urandom > "$ctx/u.bin"
printf 'FROM busybox\nCOPY u.bin /\n' > "$ctx/Dockerfile"
must cs build -q -t img "$ctx"

# the layer digests (hex) of the image in the oci-archive $1
layers_of() {
    local m
    m=$(tar -xOf "$1" index.json | jq -r '.manifests[0].digest | sub("sha256:"; "")')
    tar -xOf "$1" "blobs/sha256/$m" | jq -r '.layers[].digest | sub("sha256:"; "")'
}
inodes() { for h in "$@"; do stat -c %i "$C/$h"; done; }
good_file() { test "$(sha256sum < "$1" | cut -d' ' -f1)" = "$2"; }
good() { good_file "$C/$1" "$1"; }

must cs export img -o "$T/a.tar"
mapfile -t L < <(layers_of "$T/a.tar")
check_eq "the image has two layers" "${#L[@]}" 2
check_eq "the first export keeps both layer blobs, named by digest" \
    "$(ls "$C" | sort)" "$(printf '%s\n' "${L[@]}" | sort)"
check "the cached files hold the blobs' bytes" good "${L[0]}"
check "and the second's" good "${L[1]}"
i0=$(inodes "${L[@]}")
must cs export img -o "$T/b.tar"
check "the second export gives the same archive" cmp "$T/a.tar" "$T/b.tar"
check_eq "the second export reads the cached blobs: nothing made again" "$(inodes "${L[@]}")" "$i0"

# A file of the right size with other bytes, and one cut short: made again, archive unchanged.
size=$(stat -c %s "$C/${L[1]}")
head -c "$size" /dev/urandom > "$C/${L[1]}"
must cs export img -o "$T/c.tar"
check "a wrong cached blob is found out: the archive is still right" cmp "$T/a.tar" "$T/c.tar"
check "and the cached file is right again" good "${L[1]}"
truncate -s 100 "$C/${L[0]}"
must cs export img -o "$T/d.tar"
check "a cached blob cut short: the archive is still right" cmp "$T/a.tar" "$T/d.tar"
check "and the cached file is whole again" good "${L[0]}"

# Other formats use it too (docker-archive: uncompressed tars).
must cs export img -o "$T/e.tar" --format docker-archive
ncached=$(ls "$C" | wc -l)
must cs export img -o "$T/f.tar" --format docker-archive
check "docker-archive twice: the same bytes" cmp "$T/e.tar" "$T/f.tar"
check_eq "docker-archive: its two uncompressed blobs kept beside the gzip ones" "$ncached" 4
check_eq "du counts the blob cache apart: the bytes of its files" \
    "$(cs du --json | jq .blobcache_bytes)" "$(du -B1 -s "$C" | cut -f1)"

# oci-dir: the same blobs, from the cache or made and kept.
rm -rf "$C"
must cs export img -o "$T/dir1" --format oci-dir
check_eq "an oci-dir export keeps the layer blobs it made" \
    "$(ls "$C" | sort)" "$(printf '%s\n' "${L[@]}" | sort)"
head -c "$size" /dev/urandom > "$C/${L[1]}"
i1=$(inodes "${L[0]}")
must cs export img -o "$T/dir2" --format oci-dir
check "an oci-dir export from the cache has the archive's blobs" \
    cmp "$T/dir2/blobs/sha256/${L[0]}" "$T/dir1/blobs/sha256/${L[0]}"
check_eq "... read from the cached file (not made again)" "$(inodes "${L[0]}")" "$i1"
check "a wrong cached blob is found out by an oci-dir export: its blob is right" \
    good_file "$T/dir2/blobs/sha256/${L[1]}" "${L[1]}"
check "and the cached file is right again" good "${L[1]}"
must cs export img -o "$T/e.tar" --format docker-archive

# gc: the freed image's blobs, unknown files and dead processes' temp files go.
dead=$(($(cat /proc/sys/kernel/pid_max) - 1))
while kill -0 "$dead" 2>/dev/null; do dead=$((dead - 1)); done
touch -d @1000 "$C/.tmp-$dead-AbCdEf"
printf 'x' > "$C/$(printf '0%.0s' $(seq 64))"
must cs gc
check_eq "gc keeps the blobs of a tagged image" "$(ls "$C" | wc -l)" 4
must cs rmi img
must cs gc --keep-duration 0s
left=$(ls -A "$C" | sort)
bb=$(tar -xOf "$T/e.tar" manifest.json | jq -r '.[0].Layers[0] | sub("/layer.tar"; "")')
check_eq "gc after rmi keeps only busybox's layer blobs (gzip, plain)" \
    "$left" "$(printf '%s\n' "${L[0]}" "$bb" | sort)"
must cs export busybox -o "$T/g.tar"
check "busybox exports from what is left" test -s "$T/g.tar"

# --keep-storage: what the build cache and snapshots leave; the least recently used go first.
touch -d @1000 "$C/$bb"
touch "$C/${L[0]}"
must cs gc --keep-storage "$(stat -c %s "$C/${L[0]}")"
check_eq "gc --keep-storage keeps the most recently used blob that fits" "$(ls -A "$C")" "${L[0]}"
must cs gc --keep-storage 0
check_eq "gc --keep-storage 0 empties the blob cache" "$(ls -A "$C" | wc -l)" 0
must cs export busybox -o "$T/h.tar"
check "and exports still give the same archive" cmp "$T/g.tar" "$T/h.tar"
finish
