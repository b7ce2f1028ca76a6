#!/usr/bin/env bash
# What a cstore start loads and what a no-op rebuild does (issue 11, item 4): libarchive (with
# libxml2, ICU and libstdc++ behind it) is not linked but loaded on first use, and a job that
# needs it when it cannot be loaded fails with one line naming the library, leaving the store as
# it was; a no-op rebuild of a two-stage build reads no openssl.cnf and starts no thread.
. "$(dirname "$0")/lib.sh"
need jq strace ldd
bases

libs=$(ldd "$CSTORE")
# A sanitizer build links its runtime, which brings libstdc++ (the libraries cstore itself
# links are the same in both builds); its leak checker starts a thread at exit (off for the
# traced run below).
san=0
grep -q libasan <<<"$libs" && san=1
for l in libarchive libxml2 libicu libstdc++ libcurl; do
    [ "$san" = 1 ] && [ "$l" = libstdc++ ] && continue
    check "the cstore binary does not link $l" bash -c '! grep -q "$1" <<<"$2"' _ "$l" "$libs"
done

# The store's libraries are linked statically where their .a was found at configure time (the
# top-level CMakeLists.txt, CSTORE_STATIC_DEPS): a start maps no shared copy of them.
cache=$(dirname "$CSTORE")/CMakeCache.txt
if [ -f "$cache" ] && grep -q '^CSTORE_STATIC_DEPS:BOOL=ON$' "$cache"; then
    for l in lmdb zstd crypto jansson z fuse3; do
        grep -qE "^CSTORE_STATIC_$l:FILEPATH=/.*\.a$" "$cache" || continue
        check "the cstore binary links lib$l statically" bash -c '! grep -q "lib$1\.so" <<<"$2"' _ "$l" "$libs"
    done
fi

# An unloadable libarchive.so.13 found first (an empty file: dlopen fails on it).
mkdir -p "$T/badlib"
: >"$T/badlib/libarchive.so.13"
bad() { LD_LIBRARY_PATH=$T/badlib "$CSTORE" --root "$ROOT" "$@"; }
# one_line_error DESC CMD...: CMD fails with exactly one stderr line naming the library.
one_line_error() {
    local desc=$1 rc=0
    shift
    "$@" >"$T/out" 2>"$T/err" || rc=$?
    check_cmp "$desc: exits non-zero" "$rc" -ne 0
    check_eq "$desc: one line on stderr" "$(wc -l <"$T/err")" 1
    check "$desc: the line names libarchive.so.13" grep -q "^cstore: .*libarchive (libarchive.so.13) cannot be loaded: install libarchive13$" "$T/err"
}

check "help needs no libarchive" bad --help
one_line_error "load without libarchive" bad load "$BASES/busybox.oci.tar"
check_eq "the failed load left the store empty" "$(cs images --json | jq length)" 0

must cs load "$BASES/busybox.oci.tar"
snap_du=$(du_counts)
check "images needs no libarchive" bad images
one_line_error "export to an archive without libarchive" bad export busybox -o "$T/bb.tar"
check "the failed export wrote no file" test ! -e "$T/bb.tar"

ctx=$T/ctx
mkdir -p "$ctx"
echo hi >"$ctx/f"
tar -C "$ctx" -cf "$ctx/x.tar" f
printf 'FROM busybox\nADD x.tar /x/\n' >"$ctx/Dockerfile"
check_eq "the failed export left the store as it was" "$(du_counts)" "$snap_du"
one_line_error "ADD of a local tar without libarchive" bad build -q -t add "$ctx"
check_fails "the failed build tagged nothing" cs inspect add
check "the same ADD builds with libarchive" cs build -q -t add "$ctx"

# A two-stage no-op rebuild: each stage is the only one ready, so both build on the calling thread.
printf 'hello\n' >"$ctx/g"
printf 'FROM busybox AS a\nCOPY g /g\nFROM busybox\nCOPY --from=a /g /h\n' >"$ctx/Dockerfile"
sleep 0.2 # older than copy_ctx.c's racy window, so the build remembers g and the rebuild hashes nothing
must cs build -q -t two "$ctx"
ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0 \
    strace -f -qq -e trace=openat,clone,clone3 -o "$T/trace" "$CSTORE" --root "$ROOT" build -q -t two "$ctx" >/dev/null
check "a no-op rebuild reads no openssl.cnf" bash -c '! grep -q openssl.cnf "$1"' _ "$T/trace"
check "a no-op rebuild of two stages starts no thread" bash -c '! grep -qE "^[0-9]+ +clone3?\(" "$1"' _ "$T/trace"
check_eq "the no-op rebuild gives the same image" "$(cs build -q -t two "$ctx")" "$(cs inspect two | jq -r .id)"
finish
