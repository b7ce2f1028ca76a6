#!/usr/bin/env bash
# Several processes on one store: two loads at once both succeed; a load killed with SIGKILL
# halfway leaves a store that fsck passes and a re-run completes; gc waits for a running load.
. "$(dirname "$0")/lib.sh"
need jq
bases

# load_two_at_once IMAGE_A DESC_A IMAGE_B DESC_B: loads both into $ROOT at the same time; each
# load's success is a check (its output shown when it fails).
load_two_at_once() {
    local pa pb ra rb
    cs load "$1" >"$T/a.out" 2>&1 &
    pa=$!
    cs load "$3" >"$T/b.out" 2>&1 &
    pb=$!
    wait $pa
    ra=$?
    wait $pb
    rb=$?
    check_eq "$2" "$ra" 0 || sed 's/^/    /' "$T/a.out"
    check_eq "$4" "$rb" 0 || sed 's/^/    /' "$T/b.out"
}

# --- two loads of different images into one root at once ---
ROOT=$T/root
load_two_at_once "$BASES/golang.docker.tar" "concurrent load of golang succeeds" \
    "$BASES/busybox.oci.tar" "concurrent load of busybox succeeds"
check_eq "both images listed" "$(cs images --json | jq -c '[.[].tags[]] | sort')" \
    '["busybox:latest","golang:latest"]'
check "fsck after concurrent loads" cs fsck
check "golang exports" cs export golang -o "$T/g.tar" --compression none
rm -f "$T/g.tar"

# Reference counts of a store with both images, loaded one after the other.
ROOT=$T/ref
must cs load "$BASES/busybox.oci.tar"
must cs load "$BASES/golang.docker.tar"
ref=$(du_counts)
ROOT=$T/root
check_eq "concurrent loads store what sequential ones do" "$(du_counts)" "$ref"

# The same image twice at once.
ROOT=$T/same
load_two_at_once "$BASES/busybox.docker.tar" "same image loaded twice at once: first succeeds" \
    "$BASES/busybox.oci" "same image loaded twice at once: second succeeds"
check_eq "one image" "$(cs images --json | jq length)" 1
check "fsck" cs fsck

# --- SIGKILL halfway ---
for delay in 0.3 0.5 1.0; do
    ROOT=$T/kill-$delay
    must cs load "$BASES/busybox.oci.tar"
    before=$(du_counts)
    "$CSTORE" --root "$ROOT" load "$BASES/golang.docker.tar" >/dev/null 2>&1 &
    p=$!
    sleep "$delay"
    if kill -KILL "$p" 2>/dev/null; then
        wait "$p" 2>/dev/null
        echo "  killed the golang load after ${delay}s"
        check "killed after ${delay}s: fsck passes" cs fsck
        check_eq "killed after ${delay}s: store as before (no partial image)" "$(du_counts)" "$before"
        check_eq "killed after ${delay}s: images" "$(cs images --json | jq -c '[.[].tags[]]')" \
            '["busybox:latest"]'
    else
        wait "$p"
        echo "  the load finished before ${delay}s: nothing to kill"
    fi
    check "killed after ${delay}s: re-run completes" cs load "$BASES/golang.docker.tar"
    check "killed after ${delay}s: fsck after re-run" cs fsck
    check_eq "killed after ${delay}s: the re-run stores what a clean load does" "$(du_counts)" "$ref"
    rm -rf "$ROOT"
    [ "$CSTORE_TEST_LIGHT" = 1 ] && break
done

# --- gc waits for a running load instead of failing or freeing its content ---
ROOT=$T/gcwait
cs load "$BASES/golang.docker.tar" >"$T/a.out" 2>&1 &
pa=$!
sleep 0.3
check "gc while a load runs" cs gc
wait $pa
ra=$?
check_eq "the load running during gc succeeds" "$ra" 0 || sed 's/^/    /' "$T/a.out"
check "fsck after gc during load" cs fsck
check "golang exports after gc during load" cs export golang -o "$T/g.tar"
rm -f "$T/g.tar"

# --- gc --compact while another process reads ---
cs load "$BASES/busybox.oci" >"$T/a.out" 2>&1 &
pa=$!
check "gc --compact while a load runs" cs gc --compact
wait $pa
check_eq "the load running during gc --compact succeeds" "$?" 0 || sed 's/^/    /' "$T/a.out"
check_eq "both images after compact" "$(cs images --json | jq -c '[.[].tags[]] | sort')" \
    '["busybox:latest","golang:latest"]'
check "fsck after compact during load" cs fsck
finish
