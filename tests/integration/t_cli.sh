#!/usr/bin/env bash
# t_cli.sh - the command line's argument handling, exit codes and one-line
# errors, on an empty store (needs no images).
set -euo pipefail

CSTORE=${CSTORE:-./build/cstore}
if [[ ! -x $CSTORE ]]; then
    echo "t_cli: no cstore binary at '$CSTORE' (set \$CSTORE)" >&2
    exit 1
fi
. "$(dirname "$0")/need.sh"
need jq

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
root=$tmp/root
passed=0
failed=0

pass() { passed=$((passed + 1)); }
fail() {
    failed=$((failed + 1))
    echo "FAIL: $*" >&2
    if [[ -s $tmp/out ]]; then sed 's/^/  stdout: /' "$tmp/out" >&2; fi
    if [[ -s $tmp/err ]]; then sed 's/^/  stderr: /' "$tmp/err" >&2; fi
}

# run ARGS...: runs cstore on the temp store; sets $rc, output in $tmp/out, $tmp/err.
run() {
    rc=0
    "$CSTORE" --root "$root" "$@" >"$tmp/out" 2>"$tmp/err" || rc=$?
}

# check_rc WANT DESC
check_rc() {
    if [[ $rc -eq $1 ]]; then pass; else fail "$2: exit $rc, want $1"; fi
}

# check_one_error PATTERN DESC: stderr is exactly one line "cstore: ..." matching PATTERN.
check_one_error() {
    local n
    n=$(wc -l <"$tmp/err")
    if [[ $n -eq 1 ]] && grep -q '^cstore: ' "$tmp/err" && grep -q -- "$1" "$tmp/err"; then
        pass
    else
        fail "$2: want one 'cstore: ' line matching '$1'"
    fi
}

# check_out PATTERN DESC: stdout matches the extended regex PATTERN.
check_out() {
    if grep -Eq -- "$1" "$tmp/out"; then pass; else fail "$2: stdout lacks '$1'"; fi
}

# --help and -h print usage and succeed, without a store.
run --help
check_rc 0 "--help"
check_out '^usage: cstore' "--help"
run -h
check_rc 0 "-h"
for verb in load import export images inspect tag rmi gc du fsck; do
    run "$verb" --help
    check_rc 0 "$verb --help"
    check_out "^usage: cstore $verb" "$verb --help"
done

# Unknown command or option: one line, exit 2.
run nosuchcommand
check_rc 2 "unknown command"
check_one_error "nosuchcommand" "unknown command"
run --nosuchoption images
check_rc 2 "unknown global option"
check_one_error "nosuchoption" "unknown global option"
run images --nosuchoption
check_rc 2 "unknown verb option"
check_one_error "nosuchoption" "unknown verb option"
run import somewhere
check_rc 2 "import without -t"
check_one_error "-t" "import without -t"
run export x --format nosuch -o "$tmp/x.tar"
check_rc 2 "export with an unknown format"
check_one_error "nosuch" "export with an unknown format"

# No command: usage on stderr, exit 2.
run
check_rc 2 "no command"

# images on an empty store: only the header.
run images
check_rc 0 "images"
if [[ $(wc -l <"$tmp/out") -eq 1 ]] && grep -q '^REPOSITORY *TAG *IMAGE ID *CREATED *SIZE$' "$tmp/out"; then
    pass
else
    fail "images on an empty store: want the header only"
fi
run images --json
check_rc 0 "images --json"
if [[ $(jq length "$tmp/out") == 0 ]]; then pass; else fail "images --json: want []"; fi

# du --json: parses and shows 0 chunks.
run du --json
check_rc 0 "du --json"
if [[ $(jq -r .chunks "$tmp/out") == 0 && $(jq -r .images "$tmp/out") == 0 ]]; then
    pass
else
    fail "du --json: want 0 chunks and 0 images"
fi
run du
check_rc 0 "du"
check_out '^dedup ratio: +[0-9]+\.[0-9]{2}$' "du"

# Missing images: one line naming the name, exit 1.
run rmi nosuch
check_rc 1 "rmi nosuch"
check_one_error "'nosuch'" "rmi nosuch"
run inspect nosuch
check_rc 1 "inspect nosuch"
check_one_error "'nosuch'" "inspect nosuch"
run tag nosuch other:1
check_rc 1 "tag nosuch"
check_one_error "'nosuch'" "tag nosuch"
# Options may follow the operands.
run export nosuch -o "$tmp/x.tar"
check_rc 1 "export nosuch"
check_one_error "nosuch" "export nosuch"

# fsck and gc on an empty store.
run fsck
check_rc 0 "fsck"
check_out '^fsck: ok$' "fsck"
run gc
check_rc 0 "gc"
run gc --dry-run
check_rc 0 "gc --dry-run"
run gc --compact
check_rc 0 "gc --compact"

# The root comes from $CSTORE_ROOT without --root.
rc=0
CSTORE_ROOT=$tmp/envroot "$CSTORE" images >"$tmp/out" 2>"$tmp/err" || rc=$?
check_rc 0 "CSTORE_ROOT"
if [[ -d $tmp/envroot ]]; then pass; else fail "CSTORE_ROOT: store not made there"; fi

# Every verb's --help lists every option its table accepts (kept here by hand, per verb: a new
# option goes into this list, its usage text and its man page), and `cstore help VERB` prints the
# same text.
declare -A verb_opts=(
    [build]="--file -f --tag -t --label --target --build-arg --no-cache --progress --quiet -q
             --iidfile --network --runtime --snapshotter --platform --add-host --shm-size --ulimit --build-context
             --cache-to --cache-from --jobs -j --help -h"
    [run]="--env -e --network --add-host --shm-size --ulimit --runtime --snapshotter --help -h"
    [load]="--tag -t --help -h"
    [import]="--tag -t --help -h"
    [export]="--output -o --format --compression --help -h"
    [images]="--json --help -h"
    [inspect]="--help -h"
    [tag]="--help -h"
    [rmi]="--help -h"
    [gc]="--dry-run -n --compact --keep-storage --keep-duration --help -h"
    [du]="--json --help -h"
    [fsck]="--help -h"
    [login]="--username -u --password -p --password-stdin --tls-verify --cert-dir --help -h"
    [logout]="--help -h"
    [pull]="--platform --tls-verify --cert-dir --progress --help -h"
    [cache]="--ref --keep-duration --keep-storage --tls-verify --cert-dir --help -h"
)
verb_opts[build]+=" --pull --tls-verify --cert-dir"
for verb in "${!verb_opts[@]}"; do
    run "$verb" --help
    check_rc 0 "$verb --help"
    check_out "^usage: cstore $verb" "$verb --help"
    for opt in ${verb_opts[$verb]}; do
        # The option as a word of its own: --tag does not count inside --tagged.
        check_out "(^|[ ,[])$opt([ ,=]|$)" "$verb --help mentions $opt"
    done
    cp "$tmp/out" "$tmp/verb-help"
    run help "$verb"
    check_rc 0 "help $verb"
    if cmp -s "$tmp/out" "$tmp/verb-help"; then pass; else fail "help $verb differs from $verb --help"; fi
done
# The global help names every verb.
run --help
for verb in "${!verb_opts[@]}"; do
    check_out "^  $verb( |$)" "--help lists $verb"
done
run help nosuchverb
check_rc 2 "help of an unknown verb"
check_one_error "nosuchverb" "help of an unknown verb"

# cmake --install puts the binary, the man pages and the bash completion under the prefix.
build_dir=$(dirname "$CSTORE")
if (need cmake); then
    rc=0
    cmake --install "$build_dir" --prefix "$tmp/inst" >"$tmp/out" 2>"$tmp/err" || rc=$?
    check_rc 0 "cmake --install"
    for f in bin/cstore share/man/man1/cstore.1 share/man/man1/cstore-build.1 \
        share/bash-completion/completions/cstore; do
        if [[ -f $tmp/inst/$f ]]; then pass; else fail "cmake --install: no $f"; fi
    done
    rc=0
    "$tmp/inst/bin/cstore" --help >"$tmp/out" 2>"$tmp/err" || rc=$?
    check_rc 0 "the installed cstore runs"
elif [[ ${CSTORE_CI:-0} = 1 ]]; then
    fail "cmake --install: cmake not installed"
fi

# Bash completion: verbs, a verb's options (from its --help), and words for the cursor.
completions() { # WORDS...: what _cstore offers for the last word
    (
        # shellcheck disable=SC1091
        . "$CSTORE_SRC/contrib/completion/cstore.bash"
        cstore() { "$CSTORE" "$@"; }
        COMP_WORDS=("$@")
        COMP_CWORD=$(($# - 1))
        COMP_WORDS[0]=cstore
        _cstore
        printf '%s\n' "${COMPREPLY[@]}"
    )
}
got=$(completions cstore bu)
if [[ $got == build ]]; then pass; else fail "completion of 'cstore bu': got '$got'"; fi
got=$(completions cstore build --no-)
if [[ $got == --no-cache ]]; then pass; else fail "completion of 'cstore build --no-': got '$got'"; fi
got=$(completions cstore gc --keep-s)
if [[ $got == --keep-storage ]]; then pass; else fail "completion of 'cstore gc --keep-s': got '$got'"; fi
got=$(completions cstore cache pr)
if [[ $got == prune ]]; then pass; else fail "completion of 'cstore cache pr': got '$got'"; fi
got=$(completions cstore cache prune --keep-d)
if [[ $got == --keep-duration ]]; then pass; else fail "completion of 'cstore cache prune --keep-d': got '$got'"; fi

# cache prune: the sub-verb and --ref are checked before anything is opened.
run cache
check_rc 2 "cache without a sub-verb"
check_one_error "missing" "cache without a sub-verb"
run cache prune
check_rc 2 "cache prune without --ref"
check_one_error "--ref is required" "cache prune without --ref"
run cache prune --ref x --keep-duration soon
check_rc 2 "cache prune with a bad duration"
check_one_error "keep-duration" "cache prune with a bad duration"

echo "$passed passed, $failed failed"
[[ $failed -eq 0 ]]
