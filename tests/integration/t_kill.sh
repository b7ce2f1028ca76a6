#!/usr/bin/env bash
# SIGKILL at seeded random points of load, build (in RUN), export and gc --compact leaves a store
# that fsck passes, the images committed before intact, a re-run that succeeds, and nothing behind:
# no overlay mount under the root, no runc container, no process of the killed command, no
# temporary file or dir after the next command (issue 12).
#
#   CSTORE_KILL_SEED=N   seed of the delays (printed at the start: a failure reproduces with it)
#   CSTORE_KILL_ITERS=N  kills per command (default 5; 2 with CSTORE_TEST_LIGHT=1)
#   CSTORE_KILL_ONLY=CMD only this command (load, build, export or gc)
. "$(dirname "$0")/lib.sh"
need overlayfs runc jq pgrep
bases

SEED=${CSTORE_KILL_SEED:-4242}
ITERS=${CSTORE_KILL_ITERS:-5}
[ -z "${CSTORE_KILL_ITERS:-}" ] && [ "$CSTORE_TEST_LIGHT" = 1 ] && ITERS=2
ONLY=${CSTORE_KILL_ONLY:-}
RANDOM=$SEED
echo "# CSTORE_KILL_SEED=$SEED CSTORE_KILL_ITERS=$ITERS (rerun with these to reproduce)"

# A string in the RUN's command line, to find its processes on the host.
MARK=cstorekill$$

now_ms() { echo $(($(date +%s%N) / 1000000)); }

# timed_ms CMD ARGS...: runs CMD (a set-up step: must succeed); prints how long it took in ms.
timed_ms() {
    local t0
    t0=$(now_ms)
    must "$@" >&2
    echo $(($(now_ms) - t0))
}

# rand_delay MS: a random delay in seconds ("S.mmm") in [0, MS * 1.2): mostly mid-way, a few past
# the end (those runs finish before the kill).
rand_delay() {
    local span=$(($1 * 12 / 10 + 1)) d
    d=$((((RANDOM << 15) | RANDOM) % span))
    printf '%d.%03d' $((d / 1000)) $((d % 1000))
}

# images_json: the store's images, normalised (sorted by id, keys sorted).
images_json() { cs images --json | jq -cS 'sort_by(.id)'; }

# procs_of PID: the processes of a killed command: its reaper and runtime (their command lines
# name the root), the container's processes (their root dir is under the store root; the RUN's
# marker) and runc's processes for containers named after it.
procs_of() {
    local p
    pgrep -af -- "--root $ROOT( |/|\$)|$ROOT/|$MARK|cstore-$1-"
    for p in $(find /proc/[0-9]*/root -maxdepth 0 -lname "$ROOT/*" 2>/dev/null); do
        p=${p%/root}
        echo "${p#/proc/} (root under the store): $(tr '\0' ' ' <"$p/cmdline" 2>/dev/null)"
    done
    return 0
}

# mounts_under: mount points under the root.
mounts_under() { awk -v r="$ROOT/" 'index($5, r) == 1 { print $5 }' /proc/self/mountinfo; }

# leftovers PID: temp files and dirs a killed process PID may leave in the root.
leftovers() {
    (
        cd "$ROOT" || exit
        shopt -s nullglob
        printf '%s\n' tmp/run-* snapshots/*.tmp-* snapshots/*.del-* "leases/$1-"* compact.tmp
    ) | while read -r f; do [ -e "$ROOT/$f" ] && echo "$f"; done
}

# after_kill WHAT I PID STATUS: the checks every kill shares, up to and including fsck. Counts the
# iteration as killed mid-way or finished.
after_kill() {
    local what=$1 i=$2 pid=$3 st=$4 n left
    case $st in
    137) KILLED=$((KILLED + 1)) ;;
    0) FINISHED=$((FINISHED + 1)) ;;
    *) check_eq "$what #$i: the command exited 0 or by SIGKILL" "$st" "0 or 137" ;;
    esac
    # What the killed command started ends on its own (the reaper): give it 5 s.
    for ((n = 0; n < 50; n++)); do
        [ -z "$(procs_of "$pid")" ] && break
        sleep 0.1
    done
    check_eq "$what #$i: no process of the killed command is left" "$(procs_of "$pid")" ""
    check_eq "$what #$i: no overlay mount under the root" "$(mounts_under)" ""
    check_eq "$what #$i: no runc container" \
        "$(runc --root "$ROOT/tmp/runc" list -q 2>&1)" ""
    check "$what #$i: fsck passes" cs fsck
}

# no_leftovers WHAT I PID: after one more command, nothing of the killed process is left.
no_leftovers() {
    check "$1 #$2: the next command (images) succeeds" cs images
    check_eq "$1 #$2: no temp file or dir left after the next command" "$(leftovers "$3")" ""
}

# kill_at DELAY CMD ARGS...: starts cstore CMD in the background, kills it after DELAY seconds,
# waits; sets PID and STATUS.
kill_at() {
    local delay=$1
    shift
    "$CSTORE" --root "$ROOT" "$@" >"$T/killed.out" 2>&1 &
    PID=$!
    sleep "$delay"
    kill -KILL "$PID" 2>/dev/null
    wait "$PID" 2>/dev/null # no "Killed" line
    STATUS=$?
}

# kill_one WHAT I MS CMD ARGS...: kill_at a random delay within MS ms, then after_kill.
kill_one() {
    local what=$1 i=$2 d
    d=$(rand_delay "$3")
    shift 3
    kill_at "$d" "$@"
    echo "  $what #$i: kill after ${d}s (status $STATUS)"
    after_kill "$what" "$i" "$PID" "$STATUS"
}

# start WHAT: a fresh count and store root for WHAT's kills.
start() {
    KILLED=0 FINISHED=0
    ROOT=$T/$1
}

summary() { echo "# $1: $ITERS iterations, $KILLED killed mid-way, $FINISHED finished before the kill"; }

want() { [ -z "$ONLY" ] || [ "$ONLY" = "$1" ]; }

# --- load of golang (docker-archive) beside busybox ---
if want load; then
    start load
    must cs load "$BASES/busybox.oci.tar"
    before=$(images_json)
    ms=$(timed_ms cs load "$BASES/golang.docker.tar")
    full=$(images_json)
    echo "# load takes ${ms} ms"
    for ((i = 1; i <= ITERS; i++)); do
        rm -rf "$ROOT"
        must cs load "$BASES/busybox.oci.tar"
        kill_one load "$i" "$ms" load "$BASES/golang.docker.tar"
        got=$(images_json)
        [ "$got" = "$full" ] || check_eq "load #$i: images as before (no partial image)" "$got" "$before"
        check "load #$i: the re-run succeeds" cs load "$BASES/golang.docker.tar"
        check_eq "load #$i: images after the re-run" "$(images_json)" "$full"
        no_leftovers load "$i" "$PID"
    done
    summary load
fi

# --- build, killed during COPY or RUN ---
if want build; then
    start build
    mkdir -p "$T/ctx"
    head -c 4M /dev/urandom >"$T/ctx/data"
    cat >"$T/ctx/Dockerfile" <<EOF
FROM busybox
COPY data /data
RUN sleep 0.\$RANDOM; dd if=/dev/urandom of=/f bs=1M count=20 2>/dev/null; echo $MARK >/m
RUN sh -c 'sleep 0.\$RANDOM; echo $MARK' >/m2
EOF
    must cs load "$BASES/busybox.oci.tar"
    build=(build --no-cache -t kill:latest "$T/ctx")
    ms=$(timed_ms cs "${build[@]}")
    echo "# build takes ${ms} ms"
    # The tags but kill:latest, which the build moves (or not, killed before its commit).
    others() { jq -cS '[.[] | .id as $id | .tags[] | select(. != "kill:latest") | {(.): $id}] | add' <<<"$1"; }
    # The images of $1 missing from $2 (a finished build leaves the old kill:latest untagged).
    lost() { jq -cn --argjson a "$1" --argjson b "$2" '($a | map(.id)) - ($b | map(.id))'; }
    for ((i = 1; i <= ITERS; i++)); do
        before=$(images_json)
        kill_one build "$i" "$ms" "${build[@]}"
        got=$(images_json)
        check_eq "build #$i: no image lost" "$(lost "$before" "$got")" "[]"
        check_eq "build #$i: the other tags are as before" "$(others "$got")" "$(others "$before")"
        check_eq "build #$i: kill:latest names one image" \
            "$(jq '[.[] | select(.tags | index("kill:latest"))] | length' <<<"$got")" 1
        check "build #$i: the re-run succeeds" cs "${build[@]}"
        check "build #$i: the built image runs" cs run kill:latest test -s /f -a -s /m2
        no_leftovers build "$i" "$PID"
    done
    summary build
fi

# --- export of golang to a file ---
if want export; then
    start export
    must cs load "$BASES/golang.docker.tar"
    before=$(images_json)
    out=$T/out/golang.tar
    mkdir -p "$T/out"
    ms=$(timed_ms cs export golang -o "$out" --compression zstd)
    ref=$(sha256sum <"$out")
    echo "# export takes ${ms} ms"
    for ((i = 1; i <= ITERS; i++)); do
        rm -f "$out"
        kill_one export "$i" "$ms" export golang -o "$out" --compression zstd
        check_eq "export #$i: images unchanged" "$(images_json)" "$before"
        if [ -e "$out" ]; then
            check_eq "export #$i: an output that exists is complete" "$(sha256sum <"$out")" "$ref"
        fi
        check "export #$i: the re-run succeeds" cs export golang -o "$out" --compression zstd
        check_eq "export #$i: the re-run's output is the image" "$(sha256sum <"$out")" "$ref"
        check_eq "export #$i: no temp file beside the output after the next export" \
            "$(find "$T/out" -name '.*.cstore-tmp-*')" ""
        no_leftovers export "$i" "$PID"
    done
    summary export
fi

# --- gc --compact after an rmi ---
if want gc; then
    start gc
    must cs load "$BASES/busybox.oci.tar"
    before=$(images_json)
    must cs load "$BASES/golang.docker.tar"
    must cs rmi golang
    ms=$(timed_ms cs gc --compact)
    echo "# gc --compact takes ${ms} ms"
    for ((i = 1; i <= ITERS; i++)); do
        must cs load "$BASES/golang.docker.tar"
        must cs rmi golang
        kill_one gc "$i" "$ms" gc --compact
        check_eq "gc #$i: images as before" "$(images_json)" "$before"
        check "gc #$i: the re-run succeeds" cs gc --compact
        check "gc #$i: fsck after the re-run" cs fsck
        check "gc #$i: busybox still exports" cs export busybox -o "$T/bb.tar"
        rm -f "$T/bb.tar"
        no_leftovers gc "$i" "$PID"
    done
    summary gc
fi

finish
