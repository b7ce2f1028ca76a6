#!/usr/bin/env bash
# RUN start-up (issue 11, item 5): a build with two RUNs to run starts runc from a sealed memfd
# copy of its binary (runc then skips its own CVE-2019-5736 copy): the file runc runs from cannot
# be written and the host's runc is unchanged; a build with one RUN starts runc from its path; the
# RUNs' overlays are unmounted and their run dirs removed (in a thread) by the time the build
# exits; a build SIGKILLed after its first RUN leaves nothing once the next command ran, and fsck
# passes.
. "$(dirname "$0")/lib.sh"
need root overlayfs runc jq pgrep sha256sum
bases
ROOT=$T/root
must cs load "$BASES/busybox.docker.tar"

runc_bin=$(readlink -f "$(command -v runc)")
runc_sum=$(sha256sum <"$runc_bin")
mounts_under() { awk -v r="$ROOT/" 'index($5, r) == 1 { print $5 }' /proc/self/mountinfo; }
run_dirs() { ls "$ROOT/tmp" 2>/dev/null | grep '^run-' || true; }

# runtime_pid: the pid of a `runc ... run` of this store, waiting up to 10 s for one.
runtime_pid() {
    local p i
    for i in $(seq 200); do
        p=$(pgrep -f -- "--root $ROOT/tmp/runc .* run " | head -n1)
        [ -n "$p" ] && { echo "$p"; return 0; }
        sleep 0.05
    done
    return 1
}

ctx=$T/ctx
mkdir -p "$ctx"
printf 'one\n' >"$ctx/a.txt"
cat >"$ctx/Dockerfile.two" <<'EOF'
FROM busybox
COPY a.txt /a.txt
RUN cat /a.txt > /b.txt
RUN sleep 2; cat /b.txt > /c.txt
EOF
cat >"$ctx/Dockerfile.one" <<'EOF'
FROM busybox
COPY a.txt /a.txt
RUN sleep 2; cat /a.txt > /d.txt
EOF

cs build --progress plain -t two -f "$ctx/Dockerfile.two" "$ctx" >"$T/two.out" 2>"$T/two.log" &
bpid=$!
pid=$(runtime_pid) || true
check "two RUNs: a runc process seen" test -n "$pid"
exe=$(readlink "/proc/$pid/exe" 2>/dev/null || true)
check "two RUNs: runc runs from a memfd copy ($exe)" grep -q '^/memfd:runc' <<<"$exe"
check_fails "two RUNs: the file runc runs from cannot be written" \
    sh -c "printf x >>/proc/$pid/exe"
wait "$bpid"
check_eq "two RUNs: the build succeeds" "$?" 0
check_eq "two RUNs: the second RUN saw the first's file" "$(cs run two cat /c.txt)" one
check_eq "the host's runc binary is unchanged" "$(sha256sum <"$runc_bin")" "$runc_sum"
check_eq "two RUNs: no mount or run dir left when the build exits" "$(mounts_under)$(run_dirs)" ""

printf 'two\n' >"$ctx/a.txt"
cs build --progress plain -t one -f "$ctx/Dockerfile.one" "$ctx" >"$T/one.out" 2>"$T/one.log" &
bpid=$!
pid=$(runtime_pid) || true
exe=$(readlink "/proc/$pid/exe" 2>/dev/null || true)
check_eq "one RUN: runc runs from its path" "$exe" "$runc_bin"
wait "$bpid"
check_eq "one RUN: the build succeeds" "$?" 0
check_eq "one RUN: no mount or run dir left when the build exits" "$(mounts_under)$(run_dirs)" ""

# SIGKILL while the second RUN runs: the first RUN's teardown went to a thread; whatever it left
# goes with the next command.
printf 'three\n' >"$ctx/a.txt"
sed -i 's/sleep 2/sleep 30/' "$ctx/Dockerfile.two"
"$CSTORE" --root "$ROOT" build --progress plain -t killed -f "$ctx/Dockerfile.two" "$ctx" \
    >/dev/null 2>&1 & # not through cs(): $! is cstore's pid
bpid=$!
for i in $(seq 200); do # the second RUN: its command is the sleep
    pgrep -f -- "sleep 30; cat /b.txt" >/dev/null && break
    sleep 0.05
done
kill -9 "$bpid"
wait "$bpid" 2>/dev/null
for i in $(seq 100); do # the reaper kills the container when cstore dies
    pgrep -f -- "sleep 30; cat /b.txt" >/dev/null || break
    sleep 0.05
done
check_fails "killed: no process of the RUN left" pgrep -f -- "sleep 30; cat /b.txt"
must cs images
check_eq "killed: no mount or run dir left after the next command" "$(mounts_under)$(run_dirs)" ""
check "killed: fsck passes" cs fsck
check "killed: the images built before are intact" cs run two cat /c.txt

finish
