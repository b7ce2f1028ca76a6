#!/usr/bin/env bash
# Durability of what a build reports (store/db.c): commits flush their data pages but not the
# meta page (MDB_NOMETASYNC), so the build syncs the store once more before it names the image;
# a no-op build, which commits nothing, syncs nothing.
. "$(dirname "$0")/lib.sh"
need root overlayfs runc strace
bases
ROOT=$T/root
must cs load "$BASES/busybox.docker.tar"
ctx=$T/ctx
mkdir -p "$ctx"
printf 'one\n' >"$ctx/a.txt"
cat >"$ctx/Dockerfile" <<'EOF2'
FROM busybox
COPY a.txt /a.txt
RUN cat /a.txt > /b.txt
EOF2

# traced TAG: a build under strace (fdatasync, fsync and the writes of cstore's own process);
# LeakSanitizer stops the world with ptrace, which strace holds: no leak check there
traced() {
    ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0 strace -f -qq -o "$T/trace" -e trace=fdatasync,fsync,pwrite64,write -e signal=none \
        "$CSTORE" --root "$ROOT" build --progress plain --network none -t "$1" "$ctx" \
        >"$T/out" 2>&1
}
check "a build under strace succeeds" traced one
# The line that names the image, and the syncs and store writes before it.
done_line=$(grep -n 'write(2, .*naming to one done' "$T/trace" | head -n1 | cut -d: -f1)
check "the build names its image" test -n "$done_line"
head -n "$done_line" "$T/trace" >"$T/before"
last_write=$(grep -n 'pwrite64(' "$T/before" | tail -n1 | cut -d: -f1)
last_sync=$(grep -nE 'f(data)?sync\(' "$T/before" | tail -n1 | cut -d: -f1)
check "the store is written before the image is named" test -n "$last_write"
check "a sync follows the store's last write before the image is named" \
    test "${last_sync:-0}" -gt "${last_write:-0}"

must traced one # records the context's listing, now older than 100 ms (copy_list.c)
check "a no-op build under strace succeeds" traced one
check_eq "a no-op build syncs nothing" "$(grep -cE 'f(data)?sync\(' "$T/trace" || true)" 0
check_eq "the image holds the RUN's file" "$(cs run one cat /b.txt)" one
must cs fsck
finish
