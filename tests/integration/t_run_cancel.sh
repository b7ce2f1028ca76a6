#!/usr/bin/env bash
# A signal that comes while the runtime is still creating the container (the race of a cancel
# with `runc run`): `runc kill` finds no container yet, and the command starts once the runtime
# has created it. The kill is sent again as soon as the runtime has recorded the container (its
# state is looked for every 50 ms), so the command is stopped at its start: it never prints what
# it prints after 0.6 s (it did when the kill was retried only each second), the build fails
# "interrupted" and leaves nothing.
# CSTORE_TEST_CANCEL_AT_SPAWN=1 (run_int.h) makes the race deterministic: the cancel is triggered
# the moment the runtime is spawned, before its container can exist.
. "$(dirname "$0")/lib.sh"
need root overlayfs runc pgrep
bases
must cs load "$BASES/busybox.docker.tar"

# A sleep of this run only (other runs of this test on the machine have another one).
slp=51.$((RANDOM % 900 + 100))
ctx=$T/ctx
mkdir -p "$ctx"
printf 'FROM busybox\nRUN echo cmd-up; sleep 0.6; echo cmd-late; sleep %s\n' "$slp" >"$ctx/Dockerfile"

for i in 1 2 3 4 5; do
    t0=$(date +%s)
    CSTORE_TEST_CANCEL_AT_SPAWN=1 cs build --progress plain --no-cache "$ctx" >/dev/null 2>"$T/b$i.log"
    rc=$?
    el=$(($(date +%s) - t0))
    check_cmp "#$i: the build cancelled at the runtime's spawn fails" "$rc" -ne 0
    check "#$i: it says it was interrupted" grep -q "interrupted by signal 15" "$T/b$i.log"
    check_cmp "#$i: it stopped at once, not after the sleep (${el}s)" "$el" -lt 20
    check_eq "#$i: the command was stopped before 0.6 s (no 'cmd-late')" \
        "$(grep -cE '^#[0-9]+ [0-9.]+ cmd-late$' "$T/b$i.log")" 0 || tail -n 5 "$T/b$i.log"
    for _ in $(seq 50); do
        [ "$(pgrep -fc "sleep $slp" || true)" = 0 ] && break
        sleep 0.1
    done
    check_eq "#$i: no sleep left running (within 5 s)" "$(pgrep -fc "sleep $slp" || true)" 0
    check_eq "#$i: nothing left (mounts, run dirs, containers)" \
        "$(run_leftovers)" "0 0 0"
done
check "the store is sound after the cancels" cs fsck

# Without the hook the same build runs to its end: the hook, not the Dockerfile, stopped it.
printf 'FROM busybox\nRUN echo cmd-up; sleep 0.6; echo cmd-late\n' >"$ctx/Dockerfile"
cs build --progress plain --no-cache "$ctx" >/dev/null 2>"$T/full.log"
check_eq "without the hook the RUN runs to its end" "$?" 0
check "without the hook 'cmd-late' is printed" grep -qE '^#[0-9]+ [0-9.]+ cmd-late$' "$T/full.log"

finish
