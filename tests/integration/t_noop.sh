#!/usr/bin/env bash
# The no-op rebuild of a context (issue 11, item 4): COPY's summary record answers an unchanged
# context with one lookup, and a rebuild with nothing changed writes nothing (a touch is no change:
# BuildKit keys COPY by content and metadata without mtime); but no change is
# ever missed: a same-size rewrite with the mtime put back, chmod, rename, a file added or
# removed, a retargeted symlink, a .dockerignore change, and each of those in a directory whose
# mtime is put back (its listing record, which spares a no-op rebuild every listing, no longer
# answers: the ctime changed), a hardlink added, a directory replaced by another. Each rebuild's
# root filesystem is compared with the context. And a COPY whose step misses the cache while the
# summary answers (an earlier instruction changed) makes the layer from the context as it is.
. "$(dirname "$0")/lib.sh"
need jq strace diff
bases
ROOT=$T/root
must cs load "$BASES/busybox.docker.tar"

ctx=$T/ctx
for d in 0 1 2 3; do
    mkdir -p "$ctx/d$d/sub"
    for f in 0 1 2 3 4 5 6 7 8 9; do
        printf 'file %s/%s\n' "$d" "$f" >"$ctx/d$d/f$f"
        printf 'deep %s/%s\n' "$d" "$f" >"$ctx/d$d/sub/g$f"
    done
done
mkdir -p "$ctx/skip"
echo ignored >"$ctx/skip/x"
echo later >"$ctx/d3/only.txt" # ignored by the changed .dockerignore below
ln -s f1 "$ctx/d0/link"
printf 'skip\n.dockerignore\n' >"$ctx/.dockerignore" # it hides itself: only the ignore id tells a change
printf 'FROM busybox\nARG X=1\nENV X=$X\nCOPY . /app/\n' >"$ctx/Dockerfile"
# Old enough for the stat cache (and so the summary) to trust them.
old() { find "$ctx" -exec touch -h -d @1600000000 {} +; }
old

n=0
ign=./skip # what .dockerignore leaves out: ./skip, later also ./d3/only.txt
# build_ok DESC [BUILD-ARGS...]: a build whose /app is the context without what is ignored.
build_ok() {
    local desc=$1
    shift
    n=$((n + 1))
    check "$desc: builds" cs build --progress quiet "$@" -t noop:$n -o "type=local,dest=$T/out.$n" "$ctx"
    # every path with its type, mode, size and (files, links) its content or target
    check "$desc: /app is the context" bash -c 'diff <(cd "$1" && find . \( -path ./skip -o -path ./.dockerignore -o -path "$3" \) -prune -o -printf "%p %y %m %s %l\n" | sort) <(cd "$2" && find . -printf "%p %y %m %s %l\n" | sort)' _ "$ctx" "$T/out.$n/app" "$ign"
    check "$desc: the files' contents are the context's" diff -r --no-dereference -x skip -x .dockerignore -x "${ign##*/}" "$ctx" "$T/out.$n/app"
    check "$desc: what is ignored is not there" test ! -e "$T/out.$n/app/skip" -a ! -e "$T/out.$n/app/.dockerignore" -a ! -e "$T/out.$n/app/$ign"
}
id_of() { cs inspect "noop:$1" | jq -r .id; }
# changed DESC: a rebuild after a change has another image, the next one the same again.
changed() {
    build_ok "$1"
    check_cmp "$1: another image than before" "$(id_of $((n - 1)))" != "$(id_of $n)"
    sleep 0.2
    build_ok "$1, built again"
    check_eq "$1, built again: the same image" "$(id_of $((n - 1)))" "$(id_of $n)"
}

build_ok "the first build"
sleep 0.2
build_ok "the first rebuild (writes the summary)"
check_eq "the first rebuild: the same image" "$(id_of 1)" "$(id_of 2)"
# (LeakSanitizer cannot run under ptrace: off for the traced run of a sanitizer build.)
ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0 \
    strace -f -qq -e trace=fdatasync,fsync,msync -o "$T/trace" "$CSTORE" --root "$ROOT" build -q "$ctx" >"$T/noop.id"
check_eq "a no-op rebuild gives the same image" "$(cat "$T/noop.id")" "$(id_of 2)"
check "a no-op rebuild syncs nothing (no write transaction)" bash -c '! grep -qE "(fdatasync|fsync|msync)\(" "$1"' _ "$T/trace"
strace -f -y -qq -e trace=getdents64 -o "$T/trace.dirs" "$CSTORE" --root "$ROOT" build -q "$ctx" >"$T/noop.id"
check_eq "a no-op rebuild with the directories' listing records: the same image" "$(cat "$T/noop.id")" "$(id_of 2)"
check "a no-op rebuild lists no directory (their listing records answer)" bash -c '! grep -qF "<$2" "$1"' _ "$T/trace.dirs" "$(realpath "$ctx")"

touch -d @1600000100 "$ctx/d1/f5"
build_ok "touch"
check_eq "touch: the same image (BuildKit: no mtime in COPY's key; the hit keeps the layer)" \
    "$(id_of $((n - 1)))" "$(id_of $n)"
printf 'FILE 1/5\n' >"$ctx/d1/f5" # the same size, the mtime put back
touch -d @1600000100 "$ctx/d1/f5"
changed "a same-size rewrite with the mtime put back"
chmod 600 "$ctx/d2/f3"
changed "chmod"
mv "$ctx/d3/f7" "$ctx/d3/f7.renamed"
changed "rename"
echo new >"$ctx/d0/sub/new"
touch -d @1600000000 "$ctx/d0/sub/new"
changed "a file added"
rm "$ctx/d2/sub/g4"
changed "a file removed"
# A directory's listing record answers only while its stat matches: ctime is never put back.
echo added >"$ctx/d1/sub/added"
touch -d @1600000000 "$ctx/d1/sub/added" "$ctx/d1/sub"
changed "a file added, its directory's mtime put back"
mv "$ctx/d1/sub/g1" "$ctx/d1/sub/g1.renamed"
touch -d @1600000000 "$ctx/d1/sub"
changed "a rename, its directory's mtime put back"
rm "$ctx/d1/f9"
touch -d @1600000000 "$ctx/d1"
changed "a file removed, its directory's mtime put back"
ln "$ctx/d0/f3" "$ctx/d0/sub/hard"
touch -d @1600000000 "$ctx/d0/sub"
changed "a hardlink added, its directory's mtime put back"
# The same names but one in a new directory (its inode perhaps the old one's), times put back.
mv "$ctx/d2/sub" "$T/oldsub" && mkdir "$ctx/d2/sub" && cp -a "$T/oldsub/." "$ctx/d2/sub/" && rm -r "$T/oldsub"
rm "$ctx/d2/sub/g5"
touch -d @1600000000 "$ctx/d2/sub"
changed "a directory replaced by another, one name fewer, its mtime put back"
rm "$ctx/d0/link" && ln -s f2 "$ctx/d0/link"
changed "a symlink retargeted"
printf 'skip\n.dockerignore\nd3/only.txt\n' >"$ctx/.dockerignore"
touch -d @1600000000 "$ctx/.dockerignore"
ign=./d3/only.txt
changed ".dockerignore changed"

# The COPY step misses the cache (ENV before it changed) while its summary answers.
old
sleep 0.2
build_ok "settled"
build_ok "settled, again"
build_ok "ENV changed before the COPY" --build-arg X=2
check_cmp "ENV changed before the COPY: another image" "$(id_of $((n - 1)))" != "$(id_of $n)"
build_ok "--no-cache (no summary)" --no-cache --build-arg X=2
check_eq "--no-cache: the same image" "$(id_of $((n - 1)))" "$(id_of $n)"
finish
