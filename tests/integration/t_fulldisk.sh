#!/usr/bin/env bash
# A full disk (issue 12): the store root on a small tmpfs. Load, build and export into it until
# ENOSPC: each fails with one clear `cstore:` line that says the disk is full, the store stays
# intact (fsck), nothing half-made is left, and the same work succeeds once space is freed. An
# export whose output goes elsewhere succeeds while the store's file system is full: caching its
# layer digests is only an optimisation.
. "$(dirname "$0")/lib.sh"
need root overlayfs runc jq mountpoint
bases

MNT=$T/mnt
mkdir -p "$MNT" "$T/ctx" "$T/out"
must mount -t tmpfs -o size=40m cstore-fulldisk "$MNT"
trap '_rc=$?; umount -l "$MNT" 2>/dev/null; (exit $_rc); _cleanup' EXIT
ROOT=$MNT/root
export CSTORE_ROOT=$ROOT

# resize SIZE: the tmpfs grows or shrinks (never below what it holds).
resize() { mount -o "remount,size=$1" "$MNT"; }

# fails_full DESC CMD...: CMD fails, its stderr has exactly one `cstore:` line, and that line says
# the disk is full.
fails_full() {
    local desc=$1 rc=0
    shift
    "$@" >"$T/full.out" 2>"$T/full.err" || rc=$?
    check_cmp "$desc: fails" "$rc" -ne 0
    check_eq "$desc: one error line" "$(grep -c '^cstore: ' "$T/full.err")" 1
    check "$desc: the line says the disk is full" \
        grep -Eiq '^cstore: .*(no space|full)' "$T/full.err"
    grep '^cstore: ' "$T/full.err" | sed 's/^/  | /'
    check "$desc: no other line mentions an I/O error" \
        bash -c "! grep -qi 'input/output error' '$T/full.err'"
}

# no_temp DIR: nothing half-made below DIR (snapshot temp/del dirs, export temp files).
no_temp() {
    check_eq "$2: nothing half-made is left" \
        "$(find "$1" \( -name '*.tmp-*' -o -name '*.del-*' -o -name '.*cstore-tmp-*' \) | head)" ""
}

# ---- load until ENOSPC ----
fails_full "load golang into 40 MB" cs load "$BASES/golang.oci.tar"
check "fsck is clean after the failed load" cs fsck
check_eq "the failed load left no image" "$(cs images --json | jq length)" 0
must resize 60m
check "busybox loads once space is freed" cs load "$BASES/busybox.oci.tar"
check "fsck is clean" cs fsck

# ---- build until ENOSPC ----
# The RUN's upper dir (30 MB) fits; the layer stored a second time in data.mdb does not. The
# file is random, so neither chunk dedup nor zstd makes it small.
cat >"$T/ctx/Dockerfile" <<'EOF'
FROM busybox
RUN head -c 31457280 /dev/urandom > /big
EOF
must cs gc --compact
used=$(df --output=used -B1M "$MNT" | tail -n1)
must resize $((used + 45))m
fails_full "build into a full disk" cs build --progress plain -t big "$T/ctx"
check "fsck is clean after the failed build" cs fsck
check_fails "the failed build tagged nothing" cs inspect big
check "no overlay mount is left" bash -c "! grep -q ' $MNT/' /proc/mounts"
must resize 200m
check "the build succeeds once space is freed" cs build --progress plain -t big "$T/ctx"
check "fsck is clean" cs fsck

# ---- export until ENOSPC ----
must cs gc --compact
filler=$MNT/filler
dd if=/dev/zero of="$filler" bs=1M 2>/dev/null # until the tmpfs is full
rm -f "$filler"
free=$(df --output=avail -B1M "$MNT" | tail -n1)
must dd if=/dev/zero of="$filler" bs=1M count=$((free - 10)) status=none
fails_full "export into a full disk" cs export big -o "$MNT/big.tar"
check_fails "the failed export left no output" test -e "$MNT/big.tar"
no_temp "$MNT" "export into a full disk"
check "fsck is clean after the failed export" cs fsck
rm -f "$filler"
check "the export succeeds once space is freed" cs export big -o "$MNT/big.tar"
rm -f "$MNT/big.tar"

# ---- export with the store full, the output elsewhere (issue 12 item 4) ----
must cs gc --compact
dd if=/dev/zero of="$filler" bs=1M status=none 2>/dev/null
check_eq "the store's file system is full" "$(df --output=avail -B1K "$MNT" | tail -n1 | tr -d ' ')" 0
for fmt in oci-archive docker-archive; do
    check "export as $fmt to another file system succeeds with the store full" \
        cs export big -o "$T/out/big-$fmt.tar" --format "$fmt" --compression zstd
done
check "export as oci-dir to another file system succeeds with the store full" \
    cs export busybox -o "$T/out/bb-dir" --format oci-dir --compression zstd
check "the exported archive loads into another store" \
    "$CSTORE" --root "$T/root2" load "$T/out/big-oci-archive.tar"
rm -f "$filler"
check "fsck is clean at the end" cs fsck
no_temp "$MNT" "the end"

finish
