#!/usr/bin/env bash
# Stages in parallel (BuildKit solves independent parts of the graph at once): two stages whose
# RUNs each wait for a file the other writes pass only when they run at the same time (and, with
# --jobs 1, must time out); the image digest does not depend on --jobs; RUN output lines carry
# their step BuildKit-style ("#N 0.123 line", plain mode) and interleave; a failing stage stops
# the others at once, leaving no container, mount or run dir; so does a signal.
. "$(dirname "$0")/lib.sh"
need root overlayfs runc jq pgrep
bases
ROOT=$T/root
must cs load "$BASES/busybox.docker.tar"

# The RUNs below sleep for whole seconds plus a fraction of this run's own (.$U): pgrep -f sees
# every process of the machine, and other runs of this test there (another checkout's
# `ctest -R integration.t_build` runs it too) start the same commands; their containers are not
# this build's leftovers.
U=$((RANDOM % 900 + 100))
# sleepers PATTERN: the processes running `sleep PATTERN`, with what tells whose they are (parent,
# cgroup, pid namespace, age): shown when one is found left over.
sleepers() {
    local p
    for p in $(pgrep -f "sleep $1"); do
        echo "  left: $(ps -o pid=,ppid=,stat=,etimes=,args= -p "$p")"
        echo "    parent: $(ps -o pid=,args= -p "$(awk '/^PPid:/ { print $2 }' /proc/"$p"/status)")"
        echo "    cgroup: $(grep -m1 pids /proc/"$p"/cgroup 2>/dev/null)" \
            "$(grep NSpid /proc/"$p"/status 2>/dev/null)"
    done
}

# ---- two stages that need each other running: a rendezvous through a shared cache mount ----
# Each RUN writes its own flag into the cache mount (the same id: the same host dir; BuildKit's
# sharing=shared lets both use it at once) and waits for the other's, up to WAIT tenths of a
# second. A build that runs stages one after the other times out in the first RUN.
ctx=$T/ctx
mkdir -p "$ctx"
cat >"$ctx/Dockerfile" <<'EOF'
ARG RUNID=0
ARG WAIT=600
FROM busybox AS left
ARG RUNID
ARG WAIT
RUN --mount=type=cache,id=rdv-${RUNID},target=/x,sharing=shared \
    echo left-up; touch /x/left; i=0; \
    while [ ! -e /x/right ]; do i=$((i+1)); [ $i -gt $WAIT ] && { echo left-timeout; exit 7; }; sleep 0.1; done; \
    echo left-met > /left.txt; echo left-done
FROM busybox AS right
ARG RUNID
ARG WAIT
RUN --mount=type=cache,id=rdv-${RUNID},target=/x,sharing=shared \
    echo right-up; touch /x/right; i=0; \
    while [ ! -e /x/left ]; do i=$((i+1)); [ $i -gt $WAIT ] && { echo right-timeout; exit 7; }; sleep 0.1; done; \
    echo right-met > /right.txt; echo right-done
FROM busybox
COPY --from=left /left.txt /
COPY --from=right /right.txt /
EOF
run=$$-$RANDOM
cs build --progress plain --jobs 2 --build-arg RUNID="$run-a" -t par:1 -o "$T/par.fs" "$ctx" \
    >"$T/par.out" 2>"$T/par.log"
check_eq "two stages that wait for each other build with --jobs 2" "$?" 0 || tail -n 30 "$T/par.log"
check_eq "the image holds both stages' results" "$(cat "$T/par.fs/left.txt" "$T/par.fs/right.txt")" \
    "$(printf 'left-met\nright-met')"
# BuildKit's plain progress: an output line is "#N SECONDS TEXT", N the RUN's step.
lstep=$(grep -m1 -E '^#[0-9]+ \[left [0-9]+/[0-9]+\] RUN' "$T/par.log" | cut -d' ' -f1)
rstep=$(grep -m1 -E '^#[0-9]+ \[right [0-9]+/[0-9]+\] RUN' "$T/par.log" | cut -d' ' -f1)
check "RUN output is prefixed with its step and seconds (left)" \
    grep -Eq "^$lstep [0-9]+\.[0-9]{3} left-done$" "$T/par.log"
check "RUN output is prefixed with its step and seconds (right)" \
    grep -Eq "^$rstep [0-9]+\.[0-9]{3} right-done$" "$T/par.log"
# Both RUNs started before either ended: their lines interleave.
first_done=$(grep -n -m1 -E "^($lstep|$rstep) DONE" "$T/par.log" | cut -d: -f1)
l_start=$(grep -n -m1 -E "^$lstep \[left" "$T/par.log" | cut -d: -f1)
r_start=$(grep -n -m1 -E "^$rstep \[right" "$T/par.log" | cut -d: -f1)
check "both RUN steps started before the first ended" \
    test "$l_start" -lt "$first_done" -a "$r_start" -lt "$first_done"
check_eq "nothing left after the parallel build (mounts, run dirs, containers)" \
    "$(run_leftovers)" "0 0 0"

# --jobs 1: one stage at a time, so the first RUN waits in vain (WAIT=20: 2 s).
t0=$(date +%s)
cs build --progress plain --jobs 1 --build-arg RUNID="$run-b" --build-arg WAIT=20 "$ctx" \
    >/dev/null 2>"$T/serial.log"
rc=$?
check_cmp "with --jobs 1 the same build fails (the stages cannot meet)" "$rc" -ne 0
check "with --jobs 1 it fails on the first RUN's timeout" grep -Eq 'exit status 7' "$T/serial.log"
check_eq "with --jobs 1 the other stage never started" \
    "$(grep -cE '^#[0-9]+ [0-9.]+ (left|right)-up$' "$T/serial.log")" 1
check_cmp "with --jobs 1 it took about the timeout, not more ($(($(date +%s) - t0)) s)" \
    "$(($(date +%s) - t0))" -lt 30

# ---- the digest does not depend on scheduling ----
dctx=$T/det
mkdir -p "$dctx"
cat >"$dctx/Dockerfile" <<'EOF'
FROM busybox AS a
RUN echo a > /a && mkdir -p /d && echo x > /d/x
FROM busybox AS b
RUN echo b > /b && sleep 0.3
FROM busybox AS c
COPY --from=a /a /ca
RUN echo c > /c
FROM busybox
COPY --from=a /a /a
COPY --from=b /b /b
COPY --from=c /c /ca /
EOF
d1=$(cs build --progress quiet --no-cache --jobs 1 "$dctx" | tail -n1)
d4=$(cs build --progress quiet --no-cache --jobs 4 "$dctx" | tail -n1)
d2=$(cs build --progress quiet --no-cache "$dctx" | tail -n1)
check "a multi-stage build gives a digest" grep -Eq '^sha256:[0-9a-f]{64}$' <<<"$d1"
check_eq "the same digest with --jobs 1, 4 and the default" "$d4 $d2" "$d1 $d1"
check_fails "--jobs 0 is refused" cs build --jobs 0 "$dctx"
check_fails "--jobs x is refused" cs build --jobs x "$dctx"

# ---- a failing stage stops the others at once ----
fctx=$T/fail
mkdir -p "$fctx"
cat >"$fctx/Dockerfile" <<EOF
FROM busybox AS slow
RUN echo slow-start; sleep 47.$U; echo slow-end > /s
FROM busybox AS bad
RUN sleep 1; echo bad-fails; exit 3
FROM busybox
COPY --from=slow /s /s
COPY --from=bad /bin/sh /h
EOF
t0=$(date +%s)
cs build --progress plain --no-cache --jobs 2 "$fctx" >/dev/null 2>"$T/fail.log"
rc=$?
el=$(($(date +%s) - t0))
check_cmp "a failing stage fails the build" "$rc" -ne 0
check "the error is the failing RUN's, not the cancelled one's" \
    grep -q "^cstore: .*RUN sleep 1; echo bad-fails; exit 3: exit status 3" "$T/fail.log"
check_cmp "the build failed fast, not after the other stage's sleep (${el}s)" "$el" -lt 20
check "the slow stage's RUN had started" grep -Eq '^#[0-9]+ [0-9.]+ slow-start$' "$T/fail.log"
check_eq "no sleep left running" "$(pgrep -fc "sleep 47.$U" || true)" 0 || sleepers "47.$U"
check_eq "nothing left after the failure (mounts, run dirs, containers)" \
    "$(run_leftovers)" "0 0 0"
check "the store is sound after it" cs fsck

# term_build DESC NAME UPS SLEEP: builds $T/NAME with --jobs 2 (cstore itself in the background:
# cs, a function, would run in a subshell) until UPS of its RUNs printed "<name>-up", then
# SIGTERMs it: the build fails at once, says so, and leaves no `sleep SLEEP` and nothing else.
term_build() {
    local desc=$1 log=$T/$2.log ups=$3 pid rc t0 el up='^#[0-9]+ [0-9.]+ [a-z]+-up$'
    "$CSTORE" --root "$ROOT" build --progress plain --no-cache --jobs 2 "$T/$2" >/dev/null 2>"$log" &
    pid=$!
    for _ in $(seq 100); do
        [ "$(grep -cE "$up" "$log")" = "$ups" ] && break
        sleep 0.1
    done
    check_eq "$desc: $ups RUN(s) up at once" "$(grep -cE "$up" "$log")" "$ups"
    t0=$(date +%s)
    kill -TERM "$pid"
    wait "$pid"
    rc=$?
    el=$(($(date +%s) - t0))
    check_cmp "$desc: SIGTERM fails the build" "$rc" -ne 0
    check_cmp "$desc: it stopped at once, not after the sleeps (${el}s)" "$el" -lt 20
    check "$desc: the build says it was interrupted" grep -q "interrupted by signal 15" "$log"
    # The container's processes get SIGKILL from its init's death: give them the moment the
    # kernel takes (t_kill allows the same 5 s).
    for _ in $(seq 50); do
        [ "$(pgrep -fc "sleep $4" || true)" = 0 ] && break
        sleep 0.1
    done
    check_eq "$desc: no sleep left running after SIGTERM (within 5 s)" \
        "$(pgrep -fc "sleep $4" || true)" 0 || sleepers "$4"
    check_eq "$desc: nothing left after SIGTERM (mounts, run dirs, containers)" \
        "$(run_leftovers)" "0 0 0"
}

# ---- a signal while two stages run: both stop, nothing left ----
# (SIGTERM: a background job of a non-interactive shell starts with SIGINT ignored, and cstore
# leaves ignored signals ignored; both signals take the same path.)
mkdir -p "$T/int"
cat >"$T/int/Dockerfile" <<EOF
FROM busybox AS one
RUN echo one-up; sleep 53.$U
FROM busybox AS two
RUN echo two-up; sleep 53.$U
FROM busybox
COPY --from=one /bin/sh /1
COPY --from=two /bin/sh /2
EOF
term_build "two stages in threads" int 2 "53.$U"

# ---- a signal while the one ready stage runs on the calling thread (build_sched.c) ----
mkdir -p "$T/solo"
printf 'FROM busybox AS a\nRUN echo solo-up; sleep 54.%s\nFROM busybox\nCOPY --from=a /bin/sh /1\n' \
    "$U" >"$T/solo/Dockerfile"
term_build "the lone ready stage on the calling thread" solo 1 "54.$U"

finish
