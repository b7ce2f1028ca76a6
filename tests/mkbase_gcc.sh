#!/usr/bin/env bash
# mkbase_gcc.sh [OUTDIR] - the bench-only `gcc` base image: a Debian bookworm minbase with gcc and
# libc6-dev, made by mmdebstrap from Debian's repositories (network needed; CI does not make it).
#
#   gcc  one layer: `mmdebstrap --variant=minbase --include=gcc,libc6-dev bookworm` (apt lists and
#        caches dropped, /dev emptied, every mtime 0)
#
# The same three forms as tests/mkbase.sh in OUTDIR (default ./out/bases): gcc.oci/, gcc.oci.tar,
# gcc.docker.tar (tag gcc:latest), written by mkbase.sh's own make_layer/write_image (read out of
# it below, so that this image's code never changes mkbase.sh, whose hash is the busybox and
# golang stamps' input). Rebuilt only when this script, mkbase.sh or mmdebstrap changed (stamp);
# flock on OUTDIR/.lock as mkbase.sh. The package versions are whatever the mirror serves that
# day: the same inputs on another day may give other bytes.
set -euo pipefail

out=${1:-./out/bases}
mkdir -p "$out"
out=$(cd "$out" && pwd)
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
export LC_ALL=C
umask 022

for t in tar gzip jq sha256sum skopeo flock mmdebstrap; do
    command -v "$t" >/dev/null || { echo "mkbase_gcc.sh: '$t' not found (apt-get install mmdebstrap)" >&2; exit 1; }
done
exec 9>"$out/.lock"
flock 9

inputs_gcc="$(cat "${BASH_SOURCE[0]}" "$here/mkbase.sh" | sha256sum | cut -d' ' -f1) $(dpkg-query -W -f='${Package}=${Version}' mmdebstrap)"
created=1970-01-01T00:00:00Z
work=$out/.work-gcc
tarflags=(--format=posix --sort=name --numeric-owner --owner=0 --group=0 --mtime=@0
    --pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime)
if command -v pigz >/dev/null; then gz=(pigz -n -6); else gz=(gzip -n -6); fi
log() { echo "mkbase_gcc: $*" >&2; }
# mkbase.sh's layer and image writers (functions only: nothing of it runs)
eval "$(sed -n '/^\(make_layer\|put_blob\|write_image\|new_layout\|is_built\)() {/,/^}/p' "$here/mkbase.sh")"
for f in make_layer put_blob write_image new_layout is_built; do
    declare -F "$f" >/dev/null || { echo "mkbase_gcc.sh: mkbase.sh has no $f()" >&2; exit 1; }
done

if is_built gcc "$inputs_gcc"; then
    log "gcc up to date"
else
    log "building gcc (mmdebstrap bookworm minbase + gcc, libc6-dev)"
    rm -rf "$work"
    mkdir -p "$work"
    new_layout gcc
    r=$work/gcc-rootfs
    SOURCE_DATE_EPOCH=0 mmdebstrap --quiet --mode=root --variant=minbase --include=gcc,libc6-dev \
        bookworm "$r" http://deb.debian.org/debian >&2
    rm -rf "${r:?}"/dev/* "$r"/var/lib/apt/lists/* "$r"/var/cache/apt/* "$r"/var/log/*
    find "$r" -exec touch -h -d @0 {} +
    make_layer "$r" gcc-layer
    rm -f "$work/gcc-layer.tar"
    rm -rf "$r"
    layers=$(jq -cn --arg d "$layer_digest" --argjson s "$layer_size" --arg i "$layer_diff" \
        '[{digest: $d, size: $s, diff_id: $i, created_by: "mkbase_gcc.sh: mmdebstrap bookworm minbase, gcc, libc6-dev"}]')
    write_image gcc \
        '{"Env":["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],"Cmd":["bash"]}' \
        "$layers"
    echo "$inputs_gcc" >"$out/gcc.stamp"
    rm -rf "$work"
fi
printf '%s\t%s\n' "$out/gcc.oci" "$(jq -r '.manifests[0].digest' "$out/gcc.oci/index.json")"
