#!/usr/bin/env bash
# A cstore SIGKILLed after a RUN's overlay is mounted but before the runtime starts (mount stubs
# and config.json not written yet) leaves nothing behind: the run's reaper is forked before the
# mount and waits for cstore's go, so its parent-death signal unmounts the overlay and removes the
# run dir at once, not the next command's stale-run cleanup. Before the fix the reaper was forked
# only after the bundle was written, and a kill in that window left the overlay mounted (t_fuse's
# "SIGKILLed build: no mount left" failed once in CI that way).
# CSTORE_TEST_KILL_AFTER_MOUNT=1 (run_int.h) makes cstore raise SIGKILL right after the mount.
# The same for a SIGKILL once the runtime has exited, before cstore's teardown
# (CSTORE_TEST_KILL_AFTER_RUN=1): the reaper lives until the teardown is done.
# Nothing here runs cstore between the kill and the checks: a command would clean up stale runs.
# Also: a SIGTERM right after the mount (the unused reaper is released, cstore cleans up), a
# missing runtime, and a cancel whose runtime kill never lands (the reaper kills it all).
. "$(dirname "$0")/lib.sh"
need root overlayfs runc pgrep /dev/fuse
bases
must cs load "$BASES/busybox.docker.tar"

ctx=$T/ctx
mkdir -p "$ctx"
printf 'FROM busybox\nRUN true\n' >"$ctx/Dockerfile"

# procs: processes naming the root: the killed command's reaper (a fork of it: the same command
# line) and its FUSE server.
procs() { pgrep -fc -- "$ROOT" || true; }
# wait_clean: up to 10 s (loaded machines) for no mount under the root, no run dir, no container
# and no process left.
clean() { [ "$(run_leftovers) $(procs)" = "0 0 0 0" ]; }
wait_clean() {
    local i
    for i in $(seq 100); do
        clean && return 0
        sleep 0.1
    done
    return 1
}
# killed HOOK DESC CMD...: CMD (cstore ARGS) with $HOOK=1 dies by SIGKILL and leaves nothing.
killed() {
    local hook=$1 desc=$2 rc t0 t1
    shift 2
    { env "$hook=1" "$@" >"$T/out.log" 2>&1; } 2>/dev/null # (not bash's "Killed" line)
    rc=$?
    t0=$(date +%s.%N)
    check_eq "$desc: cstore died by SIGKILL (exit 137)" "$rc" 137 || tail -n 5 "$T/out.log"
    wait_clean
    t1=$(date +%s.%N)
    check_eq "$desc: no mount, run dir or container left, no process of it (within 10 s)" \
        "$(run_leftovers) $(procs)" "0 0 0 0" || {
        grep " $ROOT/" /proc/self/mountinfo | cut -d' ' -f5,9 | sed 's/^/  | left: /'
        ls "$ROOT/tmp" 2>/dev/null | sed 's/^/  | tmp: /'
        pgrep -af -- "$ROOT" | sed 's/^/  | ps: /'
    }
    awk -v a="$t0" -v b="$t1" -v d="$desc" 'BEGIN { printf "  (%s: clean %.2f s after the kill)\n", d, b - a }'
}

mount=CSTORE_TEST_KILL_AFTER_MOUNT
for i in 1 2 3; do
    killed $mount "build #$i" "$CSTORE" --root "$ROOT" build --progress plain --no-cache "$ctx"
done
for i in 1 2; do
    killed $mount "fuse build #$i" "$CSTORE" --root "$ROOT" build --snapshotter fuse \
        --progress plain --no-cache "$ctx"
done
killed $mount "cstore run" "$CSTORE" --root "$ROOT" run busybox true

# Parallel stages: two RUNs set up at once on two threads, each with its reaper (forked from a
# stage thread; each holds the other's fds for a moment after its fork); the first mount kills.
# The other stage may be inside the fork of its reaper then (the kill aborts the fork): its run dir,
# nothing mounted in it, is left to the next command's stale-run cleanup.
mkdir -p "$T/par"
printf 'FROM busybox AS a\nRUN true\nFROM busybox AS b\nRUN echo b\nFROM busybox\nCOPY --from=a /etc/hostname /a\nCOPY --from=b /etc/hostname /b\n' \
    >"$T/par/Dockerfile"
no_mount() { [ "$(run_leftovers | cut -d' ' -f1,3) $(procs)" = "0 0 0" ]; }
for i in 1 2 3; do
    { CSTORE_TEST_KILL_AFTER_MOUNT=1 "$CSTORE" --root "$ROOT" build --jobs 2 --progress plain \
        --no-cache "$T/par" >"$T/out.log" 2>&1; } 2>/dev/null
    check_eq "parallel stages #$i: cstore died by SIGKILL (exit 137)" "$?" 137
    for _ in $(seq 100); do
        no_mount && break
        sleep 0.1
    done
    check "parallel stages #$i: no mount, container or process of it left (within 10 s)" no_mount
    must cs images
    check_eq "parallel stages #$i: no run dir after the next command" "$(run_leftovers)" "0 0 0"
done

# The other end: killed once the runtime has exited, before cstore's teardown unmounts (the reaper
# is released only after it; it used to exit with the runtime).
after=CSTORE_TEST_KILL_AFTER_RUN
for i in 1 2; do
    killed $after "after the RUN, build #$i" "$CSTORE" --root "$ROOT" build --progress plain \
        --no-cache "$ctx"
done
killed $after "after the RUN, fuse build" "$CSTORE" --root "$ROOT" build --snapshotter fuse \
    --progress plain --no-cache "$ctx"
killed $after "after the RUN, cstore run" "$CSTORE" --root "$ROOT" run busybox true

# A SIGTERM at the same point (a cancel before the runtime starts): cstore tells the waiting reaper
# to quit, reaps it and tears the run down itself; all of it is gone when cstore exits.
CSTORE_TEST_KILL_AFTER_MOUNT=TERM cs build --progress plain --no-cache "$ctx" >"$T/term.log" 2>&1
check_cmp "a SIGTERM after the mount fails the build" "$?" -ne 0
check "it says it was interrupted" grep -q "interrupted by signal 15" "$T/term.log"
check_eq "nothing left when it exits, not even its reaper" "$(run_leftovers) $(procs)" "0 0 0 0"

# A runtime that cannot be started: the reaper reports it (as before the change) and exits.
cs build --runtime "$T/no-such-runc" --progress plain --no-cache "$ctx" >"$T/nort.log" 2>&1
check_cmp "a build with a missing runtime fails" "$?" -ne 0
check "it names the runtime that cannot be started" \
    grep -q "cannot start '$T/no-such-runc': not found or not executable" "$T/nort.log"
check_eq "and leaves nothing" "$(run_leftovers) $(procs)" "0 0 0 0"

# A cancel whose `runtime kill` never lands (a runtime wrapper that ignores kill; the real runc
# otherwise): after 10 s cstore tells the reaper to kill it all (a byte on the control socket, not a
# signal: this cstore runs in the background, where SIGINT is ignored, and the reaper would inherit
# that). The build fails "interrupted" within the escalation's time, not after the command's sleep.
printf '#!/bin/sh\nfor a in "$@"; do [ "$a" = kill ] && exit 0; done\nexec runc "$@"\n' \
    >"$T/runc-nokill"
chmod +x "$T/runc-nokill"
slp=61.$((RANDOM % 900 + 100))
mkdir -p "$T/esc"
printf 'FROM busybox\nRUN sleep %s\n' "$slp" >"$T/esc/Dockerfile"
t0=$(date +%s)
"$CSTORE" --root "$ROOT" build --runtime "$T/runc-nokill" --no-cache "$T/esc" >"$T/esc.log" 2>&1 &
bpid=$!
for _ in $(seq 100); do
    pgrep -f "sleep $slp" >/dev/null && break
    sleep 0.1
done
kill -TERM "$bpid"
wait "$bpid"
rc=$?
el=$(($(date +%s) - t0))
check_cmp "a cancel whose kill does not land fails the build" "$rc" -ne 0
check "it says it was interrupted" grep -q "interrupted by signal 15" "$T/esc.log"
check_cmp "the reaper killed it all after the escalation's 10 s, not the sleep's 61 (${el}s)" \
    "$el" -lt 30
check_eq "no sleep, mount, run dir, container or process of it left" \
    "$(pgrep -fc "sleep $slp" || true) $(run_leftovers) $(procs)" "0 0 0 0 0"

check "the store is sound after the kills" cs fsck
check_eq "the next command finds nothing left either" "$(run_leftovers)" "0 0 0"

# Without the hook the same build and run succeed: the hook, not the Dockerfile, killed them.
check "without the hook the build succeeds" cs build --progress plain --no-cache "$ctx"
check "without the hook cstore run succeeds" cs run busybox true
check_eq "and leave nothing" "$(run_leftovers)" "0 0 0"

finish
