#!/usr/bin/env bash
# The context walk with its helper thread (which lists subdirectories ahead of the walk, from the
# last one down) sees what the walk on one thread sees ($CSTORE_TEST_WALK_SERIAL=1): over a context
# of many subdirectories (3,800 files), nested three deep, with ignored directories (one with an exception
# inside), symlinks and hardlinks, both give the same image, and the summary one of them writes
# answers the other's no-op rebuild (the same walk digest: no write transaction); after a change
# deep in the last subdirectory (the helper's side), both see it alike.
. "$(dirname "$0")/lib.sh"
need jq strace
bases
ROOT=$T/root
must cs load "$BASES/busybox.docker.tar"

ctx=$T/ctx
# 40 directories of 37 names at the top, each with 5 of 14 and those with one of 3: the helper is
# offered subdirectories of a directory of 32 names or more (copy_ctx.c PREFETCH_MIN).
for a in $(seq -w 0 39); do
    for b in 0 1 2 3 4; do
        mkdir -p "$ctx/a$a/b$b/c"
        for f in $(seq 0 9); do printf '%s/%s/%s\n' "$a" "$b" "$f" >"$ctx/a$a/b$b/f$f"; done
        for f in 0 1 2; do printf 'deep %s/%s/%s\n' "$a" "$b" "$f" >"$ctx/a$a/b$b/c/g$f"; done
    done
    for f in $(seq 0 29); do printf '%s/%s\n' "$a" "$f" >"$ctx/a$a/f$f"; done
    ln -s b0/f1 "$ctx/a$a/link"
    ln "$ctx/a$a/b1/f2" "$ctx/a$a/hard"
done
mkdir -p "$ctx/a03/b2/c/empty" "$ctx/ignored/x" "$ctx/a06/logs"
echo keep >"$ctx/a06/logs/keep.txt"
echo drop >"$ctx/a06/logs/drop.txt"
echo gone >"$ctx/ignored/x/y"
printf 'ignored\na06/logs\n!a06/logs/keep.txt\n' >"$ctx/.dockerignore"
printf 'FROM busybox\nCOPY . /app/\n' >"$ctx/Dockerfile"
old() { find "$ctx" -exec touch -h -d @1600000000 {} +; }
old

id_of() { cs inspect "$1" | jq -r .id; }
serial() { CSTORE_TEST_WALK_SERIAL=1 "$@"; }
# nosync DESC [ENV...]: a no-op rebuild (with ENV) that syncs nothing: the summary answered.
nosync() {
    local desc=$1
    shift
    ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0 \
        env "$@" strace -f -qq -e trace=fdatasync,fsync,msync -o "$T/trace" "$CSTORE" --root "$ROOT" build -q "$ctx" >"$T/noop.id"
    check "$desc: syncs nothing (the summary answered)" bash -c '! grep -qE "(fdatasync|fsync|msync)\(" "$1"' _ "$T/trace"
}

check "one thread: builds" serial cs build --progress quiet -t walk:serial "$ctx"
check "the helper thread: builds" cs build --progress quiet --no-cache -t walk:threads "$ctx"
want=$(id_of walk:serial)
check_eq "both walks give the same image" "$want" "$(id_of walk:threads)"
check "the helper thread: the image out" cs build --progress quiet -o "type=local,dest=$T/out" "$ctx"
check "the image holds every file of the context but the ignored" bash -c 'diff <(cd "$1" && find . \( -path ./ignored -o -path ./a06/logs/drop.txt \) -prune -o -printf "%p %y %m %s %l\n" | sort) <(cd "$2/app" && find . -printf "%p %y %m %s %l\n" | sort)' _ "$ctx" "$T/out"
check "the exception inside an ignored directory is there" test -f "$T/out/app/a06/logs/keep.txt"

# The summary written by one walk answers the other (the same digest), both ways (two stores).
sleep 0.2
check "one thread: the rebuild writing the summary" serial cs build --progress quiet "$ctx"
nosync "a no-op rebuild with the helper after one thread's"
check_eq "that no-op rebuild: the same image" "$(cat "$T/noop.id")" "$want"
ROOT=$T/root2
must cs load "$BASES/busybox.docker.tar"
check "the helper thread: a first build in another store" cs build --progress quiet "$ctx"
check "the helper thread: the rebuild writing the summary" cs build --progress quiet "$ctx"
nosync "a no-op rebuild on one thread after the helper's" CSTORE_TEST_WALK_SERIAL=1
check_eq "that no-op rebuild: the same image" "$(cat "$T/noop.id")" "$want"

# A change deep in the last subdirectory (listed by the helper) is seen by both walks.
printf 'changed\n' >"$ctx/a39/b4/c/g2"
touch -d @1600000000 "$ctx/a39/b4/c/g2"
ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0 \
    strace -f -qq -e trace=fdatasync,fsync,msync -o "$T/trace" "$CSTORE" --root "$ROOT" build -q -t walk:changed "$ctx" >/dev/null
check "after a change: the helper's rebuild writes (what nosync looks for is seen)" grep -qE "(fdatasync|fsync|msync)\(" "$T/trace"
check_cmp "after a change: another image" "$(id_of walk:changed)" != "$want"
check "after a change: one thread builds" serial cs build --progress quiet --no-cache -t walk:changed1 "$ctx"
check_eq "after a change: both walks give the same image" "$(id_of walk:changed1)" "$(id_of walk:changed)"

# Listing records (written with the summaries above) spare the no-op rebuild every listing, on
# both walks; a file added in directories the helper and the walk enter, their mtimes put back,
# is seen by both alike (the records no longer match).
sleep 0.2
check "the rebuild writing the summary after the change" cs build --progress quiet "$ctx"
strace -f -y -qq -e trace=getdents64 -o "$T/trace.dirs" "$CSTORE" --root "$ROOT" build -q "$ctx" >/dev/null
check "a no-op rebuild with the helper lists no directory" bash -c '! grep -qF "<$2" "$1"' _ "$T/trace.dirs" "$(realpath "$ctx")"
CSTORE_TEST_WALK_SERIAL=1 strace -f -y -qq -e trace=getdents64 -o "$T/trace.dirs" "$CSTORE" --root "$ROOT" build -q "$ctx" >/dev/null
check "a no-op rebuild on one thread lists no directory" bash -c '! grep -qF "<$2" "$1"' _ "$T/trace.dirs" "$(realpath "$ctx")"
for d in a00 a39/b4 a39/b0; do
    echo added >"$ctx/$d/added"
    touch -d @1600000000 "$ctx/$d/added" "$ctx/$d"
done
check "added, mtimes put back: the helper's rebuild" cs build --progress quiet -t walk:added -o "type=local,dest=$T/out2" "$ctx"
check "that rebuild has the added files" test -f "$T/out2/app/a00/added" -a -f "$T/out2/app/a39/b4/added" -a -f "$T/out2/app/a39/b0/added"
check "added, mtimes put back: one thread builds" serial cs build --progress quiet --no-cache -t walk:added1 "$ctx"
check_eq "added, mtimes put back: both walks give the same image" "$(id_of walk:added1)" "$(id_of walk:added)"
finish
