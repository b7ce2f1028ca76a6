#!/usr/bin/env bash
# RUN start-up (issue 11, item 5): a RUN's overlay is unmounted and its run dir removed in a
# thread while the build goes on (run_defer.c): by the time the build exits nothing is left, and
# a build SIGKILLed after its first RUN, that teardown perhaps in flight, leaves nothing once the
# next command ran; fsck passes and the images built before are intact.
. "$(dirname "$0")/lib.sh"
need root overlayfs runc jq pgrep
bases
ROOT=$T/root
must cs load "$BASES/busybox.docker.tar"

mounts_under() { awk -v r="$ROOT/" 'index($5, r) == 1 { print $5 }' /proc/self/mountinfo; }
run_dirs() { ls "$ROOT/tmp" 2>/dev/null | grep '^run-' || true; }

ctx=$T/ctx
mkdir -p "$ctx"
printf 'one\n' >"$ctx/a.txt"
cat >"$ctx/Dockerfile.two" <<'EOF'
FROM busybox
COPY a.txt /a.txt
RUN cat /a.txt > /b.txt
RUN sleep 1; cat /b.txt > /c.txt
EOF
cat >"$ctx/Dockerfile.one" <<'EOF'
FROM busybox
COPY a.txt /a.txt
RUN cat /a.txt > /d.txt
EOF

check "two RUNs: the build succeeds" cs build --progress plain -t two -f "$ctx/Dockerfile.two" "$ctx"
check_eq "two RUNs: the second RUN saw the first's file" "$(cs run two cat /c.txt)" one
check_eq "two RUNs: no mount or run dir left when the build exits" "$(mounts_under)$(run_dirs)" ""
printf 'two\n' >"$ctx/a.txt"
check "one RUN: the build succeeds" cs build --progress plain -t one -f "$ctx/Dockerfile.one" "$ctx"
check_eq "one RUN: the RUN's file is in the image" "$(cs run one cat /d.txt)" two
check_eq "one RUN: no mount or run dir left when the build exits" "$(mounts_under)$(run_dirs)" ""

# The build's last RUN keeps its detached overlay until cstore exits, then a spawned process drops
# it (the kernel's teardown off the build's time): that process holds an O_PATH fd on a mount that
# is in no mount table, and nothing is left once it is gone.
printf 'kept\n' >"$ctx/a.txt"
U=$$ # this run's own sleep
export CSTORE_TEST_RELEASE_CMD="exec sleep 3.$U"
check "kept overlay: the build succeeds" cs build --progress plain --snapshotter unpack -t kept \
    -f "$ctx/Dockerfile.one" "$ctx"
unset CSTORE_TEST_RELEASE_CMD
holder=$(pgrep -fx "sleep 3.$U" | head -n1)
check "kept overlay: a process took the overlay over" test -n "$holder"
detached=0
for fd in /proc/"$holder"/fd/*; do
    info=/proc/$holder/fdinfo/${fd##*/}
    flags=$(awk '$1 == "flags:" { print $2 }' "$info" 2>/dev/null)
    mnt=$(awk '$1 == "mnt_id:" { print $2 }' "$info" 2>/dev/null)
    # O_PATH (010000000) on a mount no mount table lists: the detached overlay
    if [ -n "$flags" ] && (((8#$flags & 8#10000000) != 0)) &&
        ! awk -v m="$mnt" '$1 == m { f = 1 } END { exit !f }' /proc/self/mountinfo; then
        detached=$((detached + 1))
    fi
done
check_eq "kept overlay: the holder has the detached overlay's root open" "$detached" 1
# its stdin: a pipe only the build held, so it lives until the build has exited (a `true` exited
# before the build closed its own reference, and the teardown ran in the build)
check "kept overlay: the holder reads a pipe that ends with the build" \
    sh -c "readlink /proc/$holder/fd/0 | grep -q '^pipe:'"
check_eq "kept overlay: no mount or run dir left when the build exits" "$(mounts_under)$(run_dirs)" ""
check_eq "kept overlay: the RUN's file is in the image" "$(cs run kept cat /d.txt)" kept
# gone, or a zombie (its files closed): an orphan is reparented to pid 1, which on these
# machines reaps it seconds later
running() { [ -r "/proc/$1/stat" ] && [ "$(awk '{ print $3 }' "/proc/$1/stat" 2>/dev/null)" != Z ]; }
for i in $(seq 100); do
    running "$holder" || break
    sleep 0.05
done
check_fails "kept overlay: the holder is gone after its command" running "$holder"

# The layer's ingest begins as soon as the container's init has exited, while runc still winds
# down (run_exitwatch.c): by then the mount stubs are gone from the upper dir (busybox has no /etc,
# so runc made etc/ for /etc/hosts). A wrapper runtime looks after runc's exit; without the watch
# the stubs stay until the teardown, after the wrapper. The layers are the same either way.
cat >"$T/rt" <<EOF
#!/bin/sh
prev=; bundle=
for a in "\$@"; do [ "\$prev" = --bundle ] && bundle=\$a; prev=\$a; done
runc "\$@"; rc=\$?
upper=\$(dirname "\$bundle")/upper
n=0
while [ -e "\$upper/etc" ] && [ \$n -lt 100 ]; do sleep 0.05; n=\$((n + 1)); done
if [ -e "\$upper/etc" ]; then echo after; else echo before; fi >>"$T/stubs"
exit \$rc
EOF
chmod +x "$T/rt"
printf 'early\n' >"$ctx/a.txt"
: >"$T/stubs"
check "early ingest: the build succeeds" cs build -q --no-cache --runtime "$T/rt" -t early \
    -f "$ctx/Dockerfile.one" "$ctx"
check_eq "early ingest: the stubs were gone before the runtime's exit" "$(cat "$T/stubs")" before
: >"$T/stubs"
check "without the watch: the build succeeds" env CSTORE_TEST_NO_EXITWATCH=1 "$CSTORE" --root "$ROOT" \
    build -q --no-cache --runtime "$T/rt" -t late -f "$ctx/Dockerfile.one" "$ctx"
check_eq "without the watch: the stubs were there after the runtime's exit" "$(cat "$T/stubs")" after
check_eq "early ingest: the same image as without the watch" "$(cs inspect early | jq -r .id)" \
    "$(cs inspect late | jq -r .id)"
check_eq "early ingest: the RUN's file is in the image" "$(cs run early cat /d.txt)" early
check_eq "early ingest: no mount or run dir left" "$(mounts_under)$(run_dirs)" ""

# SIGKILL while the second RUN runs: the first RUN's teardown went to a thread; whatever it left
# goes with the next command.
printf 'three\n' >"$ctx/a.txt"
sed -i 's/sleep 1/sleep 30/' "$ctx/Dockerfile.two"
"$CSTORE" --root "$ROOT" build --progress plain -t killed -f "$ctx/Dockerfile.two" "$ctx" \
    >/dev/null 2>&1 & # not through cs(): $! is cstore's pid
bpid=$!
for i in $(seq 200); do # the second RUN: its command is the sleep
    pgrep -f -- "sleep 30; cat /b.txt" >/dev/null && break
    sleep 0.05
done
kill -9 "$bpid"
wait "$bpid" 2>/dev/null
# the reaper kills the container when cstore dies, unmounts, deletes it and removes the run dir:
# its processes (and runc's) name the root, as t_kill's procs_of finds them
for i in $(seq 100); do
    pgrep -f -- "sleep 30; cat /b.txt|--root $ROOT( |/|\$)" >/dev/null || break
    sleep 0.05
done
check_fails "killed: no process of the RUN left" pgrep -f -- "sleep 30; cat /b.txt"
check_fails "killed: no process of the killed command left" pgrep -f -- "--root $ROOT( |/|\$)"
check_eq "killed: no overlay mounted under the root right after the kill" "$(mounts_under)" ""
must cs images
check_eq "killed: no mount or run dir left after the next command" "$(mounts_under)$(run_dirs)" ""
check "killed: fsck passes" cs fsck
check "killed: the images built before are intact" cs run two cat /c.txt

finish
