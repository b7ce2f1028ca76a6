#!/usr/bin/env bash
# Several processes on one store: two loads at once both succeed; a load killed with SIGKILL
# halfway leaves a store that fsck passes and a re-run completes; gc runs beside loads and builds
# (leases keep what they rely on) and loses nothing.
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

# --- gc in a loop beside parallel builds: nothing lost, fsck clean ---
# --keep-storage 0 drops every build cache entry, so only the builds' leases keep the layers
# they have written but not yet committed.
ROOT=$T/gcbuild
must cs load "$BASES/busybox.oci"
for n in 1 2 3 4; do
    mkdir -p "$T/ctx$n"
    head -c $((300000 * n)) /dev/urandom >"$T/ctx$n/big"
    printf 'FROM busybox\nCOPY big /big\nWORKDIR /w%s\nCOPY big /again\n' "$n" >"$T/ctx$n/Dockerfile"
done
rm -f "$T/gc.stop" "$T/gc.log"
(while [ ! -e "$T/gc.stop" ]; do
    if cs gc --keep-storage 0 >/dev/null 2>"$T/gc.err"; then echo ok; else echo "FAIL $(cat "$T/gc.err")"; fi
done >"$T/gc.log") &
pg=$!
builds_ok=0
for round in 1 2 3; do
    pids=()
    for n in 1 2 3 4; do
        cs build --no-cache --progress quiet -t "b$n:$round" "$T/ctx$n" >"$T/b$n.out" 2>&1 &
        pids+=($!)
    done
    for n in 1 2 3 4; do
        if wait "${pids[$((n - 1))]}"; then
            builds_ok=$((builds_ok + 1))
        else
            sed 's/^/    /' "$T/b$n.out"
        fi
    done
done
touch "$T/gc.stop"
wait $pg
check_eq "12 builds beside a gc loop succeed" "$builds_ok" 12
check_eq "every gc beside the builds succeeded" "$(grep -c FAIL "$T/gc.log")" 0 || grep FAIL "$T/gc.log"
echo "  gc ran $(grep -c ok "$T/gc.log") times beside the builds"
check "fsck after gc beside builds" cs fsck
for n in 1 2 3 4; do
    check "b$n:3 exports after gc beside builds" cs export "b$n:3" -o "$T/e.tar"
done
check "gc after the builds" cs gc
check "fsck after the last gc" cs fsck
check_eq "no lease left behind" "$(find "$ROOT/leases" -type f 2>/dev/null | wc -l)" 0
rm -f "$T/e.tar"

# --- gc --compact while another process reads ---
ROOT=$T/gcwait
cs load "$BASES/busybox.oci" >"$T/a.out" 2>&1 &
pa=$!
check "gc --compact while a load runs" cs gc --compact
wait $pa
check_eq "the load running during gc --compact succeeds" "$?" 0 || sed 's/^/    /' "$T/a.out"
check_eq "both images after compact" "$(cs images --json | jq -c '[.[].tags[]] | sort')" \
    '["busybox:latest","golang:latest"]'
check "fsck after compact during load" cs fsck
finish
