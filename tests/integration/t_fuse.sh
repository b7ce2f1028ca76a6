#!/usr/bin/env bash
# The FUSE snapshotter: RUN's lower dir served straight from the store. The hello-go example built
# through FUSE gives the digest the unpacked snapshots give, with no snapshot on disk; every file,
# link, mode and xattr seen through the mount equals `cstore export` unpacked; a SIGKILLed build
# leaves no mount (and the next command removes its mount dir); a killed server's dead mount is
# cleaned by the next command; gc beside a served tree frees nothing it serves; gc drops the
# served marks of the trees it frees.
. "$(dirname "$0")/lib.sh"
need root overlayfs runc jq umoci python3 /dev/fuse
bases
ROOT=$T/root
must cs load "$BASES/golang.oci.tar"
must cs load "$BASES/busybox.oci.tar"

# csbg ARGS... &: cstore in the background as the process $! names (not a subshell around it).
csbg() { exec "$CSTORE" --root "$ROOT" "$@"; }
mounts() { grep -c " $ROOT" /proc/self/mountinfo || true; }
# wait_for CMD...: up to 60 s for CMD to succeed (the machines running this may be loaded).
wait_for() {
    local i
    for i in $(seq 600); do
        "$@" && return 0
        sleep 0.1
    done
    return 1
}
view_dir() { ls -d "$ROOT"/mnt/*/*/* 2>/dev/null | head -n1; }
has_view() { test -n "$(view_dir)"; }
no_mounts() { test "$(mounts)" = 0; }
no_fuse_mounts() { ! grep -q "fuse.cstore" <(grep " $ROOT" /proc/self/mountinfo); }

# hello-go through FUSE, then through unpacked snapshots: one digest.
ctx=$T/hello
cp -r "$CSTORE_SRC/examples/hello-go" "$ctx"
idf=$(cs build --snapshotter fuse -q -t hello:fuse "$ctx" | tail -n1)
check "hello-go builds through the fuse snapshotter" grep -Eq '^sha256:[0-9a-f]{64}$' <<<"$idf"
check_eq "fuse: nothing unpacked into snapshots" "$(ls "$ROOT/snapshots" 2>/dev/null | wc -l)" 0
check_eq "fuse: no mount or mount dir left after the build" \
    "$(mounts)$(ls "$ROOT/mnt" 2>/dev/null | wc -l)" 00
idu=$(cs build --snapshotter unpack --no-cache -q -t hello:unpack "$ctx" | tail -n1)
check_eq "the same image digest through unpacked snapshots" "$idu" "$idf"
check_eq "the binary runs (cstore run through fuse)" \
    "$(cs run --snapshotter fuse hello:fuse)" "$(cs run --snapshotter unpack hello:unpack)"
check_fails "a bad --snapshotter is refused" cs build --snapshotter overlay "$ctx"

# Every entry through the mount equals the exported image unpacked.
must cs export golang -o "$T/golang.oci" --format oci-dir
unpack "$T/golang.oci:latest" "$T/gu"
rootfs_manifest "$T/gu/rootfs" > "$T/want.txt"
csbg run --snapshotter fuse golang sleep 60 >"$T/golang-run.log" 2>&1 &
runpid=$!
check "a served view appears while cstore run runs" wait_for has_view
v=$(view_dir)
rootfs_manifest "$v" > "$T/got.txt"
check "golang through the mount: files, links, modes, owners, xattrs, contents as exported" \
    cmp -s "$T/want.txt" "$T/got.txt"
check_eq "golang through the mount: as many entries" "$(wc -l < "$T/got.txt")" \
    "$(wc -l < "$T/want.txt")"
diff "$T/want.txt" "$T/got.txt" | head -n 5
head -n 5 "$T/golang-run.log"

# SIGKILL of the client: the reaper unmounts the overlay, the server its mount.
kill -9 "$runpid"
wait "$runpid" 2>/dev/null
check "SIGKILLed cstore run: no mount left" wait_for no_mounts
must cs images
check_eq "the next command removes the dead client's mount dir" "$(ls "$ROOT/mnt" | wc -l)" 0

# SIGKILL of a build in RUN.
kctx=$T/kill
mkdir -p "$kctx"
printf 'FROM busybox\nRUN sleep 60\n' > "$kctx/Dockerfile"
csbg build --snapshotter fuse -q "$kctx" >/dev/null 2>&1 &
bpid=$!
check "the killed build's RUN was running on a served view" wait_for has_view
kill -9 "$bpid"
wait "$bpid" 2>/dev/null
check "SIGKILLed build: no mount left" wait_for no_mounts
if ! no_mounts; then # whose: the mounts left, and what of the run still lives
    grep " $ROOT" /proc/self/mountinfo | cut -d' ' -f5,9,10 | sed 's/^/  | left: /'
    ps -eo pid,ppid,stat,args | grep -E "__fuse-serve|runc|sleep 60|reaper" | grep -v grep |
        sed 's/^/  | ps: /'
fi
must cs gc
check_eq "gc after the killed build: no mount dir left" "$(ls "$ROOT/mnt" | wc -l)" 0

# A killed server (and client): a dead mount, cleaned by the next command.
csbg run --snapshotter fuse busybox sleep 60 >/dev/null 2>&1 &
rpid=$!
wait_for has_view
spid=$(pgrep -f "__fuse-serve $ROOT " | head -n1)
check "the server runs as its own process" test -n "$spid"
kill -9 "$spid" "$rpid"
wait "$rpid" 2>/dev/null
sleep 0.5
must cs images
check "a killed server's mount is gone after the next command" \
    wait_for no_fuse_mounts
check_eq "and its mount dir" "$(ls "$ROOT/mnt" | wc -l)" 0
check "gc works after it" cs gc

# gc while a mount serves a tree: what it serves stays readable.
gctx=$T/gcimg
mkdir -p "$gctx"
head -c 300000 /dev/urandom > "$gctx/unique.bin"
printf 'FROM busybox\nCOPY unique.bin /\n' > "$gctx/Dockerfile"
must cs build -q -t gcimg "$gctx"
csbg run --snapshotter fuse gcimg sh -c 'sleep 3; sha256sum /unique.bin' > "$T/gc.out" 2>&1 &
gpid=$!
wait_for has_view
must cs rmi gcimg
must cs gc --keep-storage 0
wait "$gpid"
check_eq "gc beside a served tree: its file still reads right" "$(cut -d' ' -f1 "$T/gc.out")" \
    "$(sha256sum < "$gctx/unique.bin" | cut -d' ' -f1)"

# gc drops the served marks (auto: a base served once is unpacked next time) of the trees it frees
# and keeps those of trees still in use.
marks() { ls "$ROOT/snapshots" 2>/dev/null | grep '\.served$' | sort; }
# scratch_image NAME: builds and tags NAME, a base of its own (busybox as /bin/sh beside 1000
# random bytes, so no two share a layer).
scratch_image() {
    mkdir -p "$T/$1"
    cp /bin/busybox "$T/$1/sh"
    head -c 1000 /dev/urandom > "$T/$1/r.bin"
    printf 'FROM scratch\nCOPY sh r.bin /bin/\n' > "$T/$1/Dockerfile"
    must cs build -q -t "$1" "$T/$1"
}
# (busybox is unpacked by now, so not served: a base of its own, kept tagged, gets a mark)
scratch_image kept
must cs run kept /bin/sh -c true
scratch_image marked
marks > "$T/marks0"
must cs run marked /bin/sh -c true
marks > "$T/marks1"
new_mark=$(comm -13 "$T/marks0" "$T/marks1")
check_eq "auto: running an image marks its base served, once" "$(wc -w <<<"$new_mark")" 1
check "the tagged base run before has its mark" test "$(wc -l < "$T/marks0")" -ge 1
must cs rmi marked
must cs gc --keep-storage 0
check "gc drops the mark of the freed base" test ! -e "$ROOT/snapshots/$new_mark"
check_eq "gc keeps the marks of bases still tagged" "$(marks)" "$(cat "$T/marks0")"

# auto: a base already unpacked (here by --snapshotter unpack) is used as it is: not served, not
# marked.
scratch_image unpacked
must cs run --snapshotter unpack unpacked /bin/sh -c true
marks > "$T/marks2"
must cs run unpacked /bin/sh -c true
check_eq "auto: a base already unpacked is not served (no new mark)" "$(marks)" "$(cat "$T/marks2")"
check_eq "no mount left at the end" "$(mounts)" 0
finish
