#!/usr/bin/env bash
# The no-op rebuild on a filesystem with whole-second timestamps (ext4 with 128-byte inodes, as
# FAT, HFS+ and some NFS servers have them): a change made within the same second as the one a
# build saw leaves a directory's (or a file's) lstat as it was, so a directory listed (or a file
# read) then must not be trusted by its stat alone. A file added to a directory, and a same-size
# rewrite of a file, in the second of an earlier change but after a build walked the context, are
# in the next build.
. "$(dirname "$0")/lib.sh"
need mkfs.ext4 mount umount losetup diff
grep -qw ext4 /proc/filesystems || skip "needs ext4"
bases
must cs load "$BASES/busybox.docker.tar"

mnt=$T/mnt
mkdir -p "$mnt"
truncate -s 32M "$T/img"
must mkfs.ext4 -q -F -I 128 "$T/img"
# The image is unmounted before lib.sh's cleanup removes $T (which keeps the exit status).
unmount_then_cleanup() {
    local rc=$?
    umount "$mnt" 2>/dev/null
    (exit "$rc")
    _cleanup
}
trap unmount_then_cleanup EXIT
must mount -o loop "$T/img" "$mnt"
ctx=$mnt/ctx
mkdir -p "$ctx/d"
for f in 0 1 2 3; do echo "file $f" >"$ctx/d/f$f"; done
echo aaaa >"$ctx/d/same"
printf 'FROM busybox\nCOPY d /d/\n' >"$ctx/Dockerfile"
check "the context's timestamps are whole seconds" test "$(stat -c %z "$ctx/d")" = "$(stat -c %z "$ctx/d" | sed 's/\.[0-9]*/.000000000/')"
sleep 2.2
n=0
build() { # build DESC: exports /d to $T/out.$n
    n=$((n + 1))
    check "$1: builds" cs build --progress quiet -o "type=local,dest=$T/out.$n" "$ctx"
}
build "the first build"
sleep 0.2
build "the first rebuild (writes the summary)"

# Changes at the start of a second, a build 150 ms later (it walks the context), more changes in
# the same second: the directory's and the file's lstat after are the same as the build saw.
met=0
for try in 1 2 3 4 5 6 7 8 9 10; do
    until [ "$(date +%N | cut -c1)" = 0 ]; do sleep 0.01; done
    echo "new $try" >"$ctx/d/new$try"
    echo bbbb >"$ctx/d/same"
    before="$(stat -c '%i %s %Y %Z' "$ctx/d") $(stat -c '%i %s %Y %Z' "$ctx/d/same")"
    sleep 0.15
    cs build --progress quiet -q "$ctx" >/dev/null
    echo "late $try" >"$ctx/d/late$try"
    echo cccc >"$ctx/d/same"
    after="$(stat -c '%i %s %Y %Z' "$ctx/d") $(stat -c '%i %s %Y %Z' "$ctx/d/same")"
    if [ "$before" = "$after" ]; then
        met=1
        break
    fi
    echo "# try $try: the build ended in the next second; again"
done
check_eq "a build ran between two changes of the same second" "$met" 1
sleep 2.2 # nothing is within the racy window now
build "after changes in the second a build saw"
check "the file added in that second is there" test -e "$T/out.$n/d/late$try"
check_eq "the file rewritten in that second has its new content" "$(cat "$T/out.$n/d/same")" cccc
check "/d is the context's d" diff -r --no-dereference "$ctx/d" "$T/out.$n/d"
finish
