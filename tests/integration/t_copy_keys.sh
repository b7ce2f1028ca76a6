#!/usr/bin/env bash
# COPY --from remembers what it selected of a source (copy_keys): a rebuild computes the step's
# key without loading the source stage's tree, and the results are those of a build that loads
# it: a different request from the same source, a cache miss over a remembered selection, a
# changed source, an image as the source, and after gc.
. "$(dirname "$0")/lib.sh"
need jq
bases
ROOT=$T/root
must cs load "$BASES/busybox.docker.tar"

ctx=$T/ctx
mkdir -p "$ctx"
printf 'alpha\n' >"$ctx/a.txt"
printf 'beta\n' >"$ctx/b.txt"
cp -p "$ctx/a.txt" "$T/a.orig" # its mtime is part of the layer
cat >"$ctx/Dockerfile" <<'EOF2'
FROM busybox AS src
COPY a.txt /data/a.txt
COPY b.txt /data/b.txt
FROM scratch
ARG X=1
LABEL x=$X
COPY --from=src /data/ /out/
COPY --from=src /data/a.txt /one
COPY --from=src /data/b.txt /two
COPY --from=busybox /bin/busybox /bin/busybox
EOF2

# files DIR: one line per file of an exported tree: path and content digest.
files() { (cd "$1" && find . -type f -print0 | sort -z | xargs -0 sha256sum); }
build_to() { cs build --progress quiet "$@" -t ck "$ctx"; }

id1=$(build_to -o "type=local,dest=$T/o1")
check "the first build writes the files COPY --from selected" \
    grep -qx alpha "$T/o1/out/a.txt"
check_eq "each COPY --from of one source gets its own selection" "$(cat "$T/o1/one" "$T/o1/two")" \
    "alpha
beta"
check "an image as the source gives its file" cmp "$T/o1/bin/busybox" "$(command -v busybox)"

out=$(cs build --progress plain -t ck "$ctx" 2>&1)
check_eq "a rebuild with nothing changed is all CACHED (six steps)" "$(grep -c '^#[0-9]* CACHED' <<<"$out")" 6
check_eq "and gives the same image" "$(cs build --progress quiet -t ck "$ctx")" "$id1"

# Another LABEL: each COPY's key changes but its selection is remembered; the layer is made from
# the source's tree all the same.
out=$(cs build --progress plain --build-arg X=2 -o "type=local,dest=$T/o2" -t ck "$ctx" 2>&1)
check "a COPY --from whose selection is remembered but whose step is not cached runs" \
    grep -q 'COPY --from=src /data/ /out/' <<<"$out"
check_eq "and copies the same files" "$(files "$T/o2")" "$(files "$T/o1")"

printf 'gamma\n' >"$ctx/a.txt"
build_to -o "type=local,dest=$T/o3" >/dev/null
check_eq "a changed source is copied anew" "$(cat "$T/o3/out/a.txt" "$T/o3/one")" "gamma
gamma"
check_eq "and the other file of it stays" "$(cat "$T/o3/two")" "beta"

# gc with no tag: the records go with the trees; the next build computes everything again.
must cs rmi ck
must cs gc --keep-storage 0
cp -p "$T/a.orig" "$ctx/a.txt"
id4=$(build_to -o "type=local,dest=$T/o4")
check_eq "after gc the build gives the first image again" "$id4" "$id1"
check_eq "with the same files" "$(files "$T/o4")" "$(files "$T/o1")"
check "the store is consistent" cs fsck
finish
