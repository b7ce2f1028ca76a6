#!/usr/bin/env bash
# cstore build of Dockerfiles without a working RUN (t_run.sh tests RUN): multi-stage builds over
# the busybox base, checked with skopeo inspect --config and umoci unpack; the cache (no-op and
# incremental rebuilds), determinism across store roots, .dockerignore, COPY --from writes no
# content, errors (a failing RUN among them).
. "$(dirname "$0")/lib.sh"
need jq umoci skopeo
bases
ROOT=$T/root
must cs load "$BASES/busybox.docker.tar"

ctx=$T/ctx
mkdir -p "$ctx/src/sub" "$ctx/ignored"
printf 'hello\n' > "$ctx/src/hello.txt"
printf 'deep\n' > "$ctx/src/sub/deep.txt"
printf 'secret\n' > "$ctx/ignored/secret.txt"
printf 'tmp\n' > "$ctx/src/x.tmp"
ln -s hello.txt "$ctx/src/link"
printf 'ignored\n**/*.tmp\n!keep.tmp\n' > "$ctx/.dockerignore"
printf 'keep\n' > "$ctx/keep.tmp"
touch -d @1600000000 "$ctx/src/hello.txt" "$ctx/src/sub/deep.txt" "$ctx/keep.tmp"
cat > "$ctx/Dockerfile" <<'EOF'
# syntax=docker/dockerfile:1
ARG BASE=busybox
FROM ${BASE} AS build
ARG GREETING=hi
ENV APP_HOME=/opt/app \
    GREETING=${GREETING}
WORKDIR $APP_HOME
COPY src/ ./src/
COPY --chown=nobody:nogroup --chmod=0640 keep.tmp ./
COPY <<EOT /opt/app/generated.txt
generated ${GREETING}
EOT

FROM busybox AS unused
COPY does-not-exist /nowhere

FROM scratch
LABEL org.example.name="demo" version=1
COPY --from=build /opt/app /app
COPY --from=0 /bin/busybox /bin/busybox
ENV PATH=/bin
EXPOSE 8080 53/udp
VOLUME /data
USER 1000:1000
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=30s --retries=3 CMD ["/bin/busybox", "true"]
ENTRYPOINT ["/bin/busybox"]
CMD ["echo", "Hello"]
EOF

out=$(cs build --progress plain -t demo:1 "$ctx" 2>"$T/build.log")
check "build succeeds" test -n "$out"
id=$(printf '%s\n' "$out" | tail -n1)
check "last stdout line is the digest" grep -Eq '^sha256:[0-9a-f]{64}$' <<<"$id"
check_eq "image is tagged" "$(cs images --json | jq -r '.[] | select(.tags | index("demo:1")) | .id')" "$id"
check "progress is BuildKit-style" grep -Eq '^#[0-9]+ \[build [0-9]+/[0-9]+\] COPY src/ ./src/$' "$T/build.log"
check "the unused stage is not built" bash -c "! grep -q 'does-not-exist' '$T/build.log'"

must cs export demo:1 -o "$T/demo.oci" --format oci-dir
cfg=$(skopeo inspect --config "oci:$T/demo.oci:1")
check_eq "config: Entrypoint" "$(jq -c .config.Entrypoint <<<"$cfg")" '["/bin/busybox"]'
check_eq "config: Cmd" "$(jq -c .config.Cmd <<<"$cfg")" '["echo","Hello"]'
check_eq "config: Env" "$(jq -c .config.Env <<<"$cfg")" '["PATH=/bin"]'
check_eq "config: User" "$(jq -r .config.User <<<"$cfg")" "1000:1000"
check_eq "config: ExposedPorts" "$(jq -c '.config.ExposedPorts | keys' <<<"$cfg")" '["53/udp","8080/tcp"]'
check_eq "config: Volumes" "$(jq -c '.config.Volumes | keys' <<<"$cfg")" '["/data"]'
check_eq "config: Labels" "$(jq -c .config.Labels <<<"$cfg")" '{"org.example.name":"demo","version":"1"}'
check_eq "config: StopSignal" "$(jq -r .config.StopSignal <<<"$cfg")" SIGTERM
check_eq "config: Healthcheck (not in the OCI spec: cstore inspect)" \
    "$(cs inspect demo:1 | jq -c .config.config.Healthcheck)" \
    '{"Interval":30000000000,"Retries":3,"Test":["CMD","/bin/busybox","true"]}'
check_eq "config: two layers" "$(jq '.rootfs.diff_ids | length' <<<"$cfg")" 2
check_eq "history: empty_layer where no layer" \
    "$(jq -c '[.history[] | .empty_layer // false]' <<<"$cfg")" \
    '[true,false,false,true,true,true,true,true,true,true,true]'

unpack "$T/demo.oci:1" "$T/b"
r=$T/b/rootfs
check_eq "file list" "$(cd "$r" && find . | sort | tr '\n' ' ')" \
    ". ./app ./app/generated.txt ./app/keep.tmp ./app/src ./app/src/hello.txt ./app/src/link ./app/src/sub ./app/src/sub/deep.txt ./bin ./bin/busybox "
check_eq "COPY content" "$(cat "$r/app/src/hello.txt")" hello
check_eq "heredoc COPY expanded ARG" "$(cat "$r/app/generated.txt")" "generated hi"
check_eq "symlink kept" "$(readlink "$r/app/src/link")" hello.txt
check_eq "--chown/--chmod" "$(stat -c '%u:%g %a' "$r/app/keep.tmp")" "65534:65534 640"
check_eq "mtime kept from the context" "$(stat -c %Y "$r/app/src/hello.txt")" 1600000000
check "busybox copied from stage 0" cmp "$r/bin/busybox" /bin/busybox
check ".dockerignore: ignored/ not copied" test ! -e "$r/app/ignored"
check ".dockerignore: *.tmp not copied" test ! -e "$r/app/src/x.tmp"

# No-op rebuild: every step cached, same digest.
id2=$(cs build --progress plain -t demo:1 "$ctx" 2>"$T/build2.log" | tail -n1)
check_eq "no-op rebuild gives the same digest" "$id2" "$id"
check "no-op rebuild: COPY steps CACHED" grep -q CACHED "$T/build2.log"
check "no-op rebuild: nothing rebuilt" bash -c "! grep -q 'DONE' <(grep -A1 ' COPY ' '$T/build2.log' | grep -v '^--')"

# Change one file: the digest changes, later steps rerun.
printf 'hello again\n' > "$ctx/src/hello.txt"
id3=$(cs build --progress quiet -t demo:2 "$ctx" | tail -n1)
check "changed file gives a new digest" test "$id3" != "$id"

# Same Dockerfile and context, another directory and another store: same digest.
cp -a "$ctx" "$T/ctx-copy"
printf 'hello\n' > "$T/ctx-copy/src/hello.txt"
touch -d @1600000000 "$T/ctx-copy/src/hello.txt"
ROOT=$T/root2
must cs load "$BASES/busybox.oci.tar"
id4=$(cs build --progress quiet "$T/ctx-copy" | tail -n1)
check_eq "another directory and store root: same digest" "$id4" "$id"
ROOT=$T/root

# SOURCE_DATE_EPOCH fixes the timestamps.
id5=$(SOURCE_DATE_EPOCH=1700000000 cs build --progress quiet -t demo:sde "$T/ctx-copy" | tail -n1)
check_eq "SOURCE_DATE_EPOCH: created" \
    "$(cs inspect demo:sde | jq -r .config.created)" "2023-11-14T22:13:20Z"
check "SOURCE_DATE_EPOCH: new digest" test "$id5" != "$id"

# --target builds only what the target needs.
idt=$(cs build --progress quiet --target build -t demo:build "$ctx" | tail -n1)
check_eq "--target: the build stage's WorkingDir" "$(cs inspect "$idt" | jq -r .config.config.WorkingDir)" /opt/app

# COPY --from of a big file writes no chunk.
big=$T/bigctx
mkdir -p "$big"
size_mb=1024
[ "$CSTORE_TEST_LIGHT" = 1 ] && size_mb=64
head -c $((size_mb << 20)) /dev/urandom > "$big/big.bin"
printf 'FROM scratch AS a\nCOPY big.bin /big.bin\nFROM scratch\nCOPY --from=a /big.bin /copied.bin\n' > "$big/Dockerfile"
printf 'FROM scratch AS a\nCOPY big.bin /big.bin\n' > "$big/Dockerfile.a"
must cs build --progress quiet -f "$big/Dockerfile.a" "$big"
c1=$(du_json chunks); s1=$(du_json stored_bytes); d1=$(stat -c %s "$ROOT/data.mdb")
must cs build --progress quiet -t big:copy "$big"
check_eq "COPY --from of ${size_mb} MiB: chunk count unchanged" "$(du_json chunks)" "$c1"
check_eq "COPY --from of ${size_mb} MiB: stored bytes unchanged" "$(du_json stored_bytes)" "$s1"
check_cmp "COPY --from of ${size_mb} MiB: data.mdb grew < 1 MiB" $(( $(stat -c %s "$ROOT/data.mdb") - d1 )) -lt 1048576
rm -f "$big/big.bin"

# The build cache is a gc root within the policy: untagged, a rebuild still hits it.
gcctx=$T/gcctx
mkdir -p "$gcctx"
printf 'cache me\n' > "$gcctx/f"
printf 'FROM busybox\nCOPY f /f\n' > "$gcctx/Dockerfile"
must cs build --progress quiet -t gc:1 "$gcctx"
must cs rmi gc:1
must cs gc
cs build --progress plain "$gcctx" >/dev/null 2>"$T/gc1.log"
check "after gc (default policy) the cache still hits" grep -q CACHED "$T/gc1.log"
must cs gc --keep-duration 0
cs build --progress plain "$gcctx" >/dev/null 2>"$T/gc2.log"
check "after gc --keep-duration 0 the step runs again" bash -c "! grep -q CACHED '$T/gc2.log'"
check "fsck clean after cache gc" cs fsck

# Errors: one line, DOCKERFILE:LINE, non-zero exit.
err_case() { # DESC EXPECTED-REGEX DOCKERFILE-TEXT
    local d=$T/err.$RANDOM
    mkdir -p "$d"
    printf '%b' "$3" > "$d/Dockerfile"
    local rc=0
    cs build --progress quiet "$d" >/dev/null 2>"$d/stderr" || rc=$?
    check "$1: non-zero exit" test "$rc" -ne 0
    check_eq "$1: one stderr line" "$(wc -l < "$d/stderr")" 1
    check "$1: message" grep -Eq "$2" "$d/stderr"
}
err_case "unknown instruction" '^cstore: Dockerfile:2: unknown instruction: FOO' 'FROM busybox\nFOO bar\n'
err_case "unknown flag" '^cstore: Dockerfile:2: unknown flag: --nope' 'FROM busybox\nCOPY --nope a b\n'
err_case "unknown image" '^cstore: Dockerfile:1: .*nosuchimage' 'FROM nosuchimage\n'
err_case "missing source" '^cstore: Dockerfile:2: .*missing.txt' 'FROM busybox\nCOPY missing.txt /\n'
err_case "empty glob" '^cstore: Dockerfile:2: ' 'FROM busybox\nCOPY *.nomatch /\n'
err_case "failing RUN" '^cstore: Dockerfile:2: RUN exit 5: exit status 5' 'FROM busybox\nRUN exit 5\n'
err_case "unterminated heredoc" '^cstore: Dockerfile:2: .*heredoc' 'FROM busybox\nCOPY <<EOT /x\nabc\n'
err_case "forward stage reference" '^cstore: Dockerfile:2: .*later' 'FROM busybox AS a\nCOPY --from=b /x /x\nFROM busybox AS b\nCOPY --from=a /x /y\n'
err_case "bad --chown user" '^cstore: Dockerfile:2: .*nosuchuser' 'FROM busybox\nCOPY --chown=nosuchuser Dockerfile /x\n'

# -q/--quiet (docker build -q): stdout is exactly one line, the image id; no progress on stderr.
qctx=$T/quiet
mkdir -p "$qctx"
printf 'FROM busybox\nLABEL a=fromdf c=d\nRUN echo q > /q\n' > "$qctx/Dockerfile"
for q in -q --quiet; do
    qrc=0
    cs build $q --no-cache "$qctx" >"$T/q.out" 2>"$T/q.err" || qrc=$?
    check_eq "build $q: exit status 0" "$qrc" 0
    check_eq "build $q: stdout is one line" "$(wc -l < "$T/q.out")" 1
    check "build $q: that line is the image id" grep -Eqx 'sha256:[0-9a-f]{64}' "$T/q.out"
    check_eq "build $q: nothing on stderr" "$(wc -c < "$T/q.err")" 0
done
check "build -q --progress plain: refused as buildx does" \
    bash -c "! '$CSTORE' --root '$ROOT' build -q --progress plain '$qctx' >/dev/null 2>&1"

# --label K=V (repeatable) sets config.Labels over the Dockerfile's LABELs, as BuildKit applies
# them after the Dockerfile; K alone is an empty value (docker's parsing).
lid=$(cs build --progress quiet --label a=b --label e=f=g --label h "$qctx" | tail -n1)
check_eq "--label: config.Labels merged over LABEL" \
    "$(cs inspect "$lid" | jq -c .config.config.Labels)" '{"a":"b","c":"d","e":"f=g","h":""}'
check "--label changes the image id" test "$lid" != "$(cat "$T/q.out")"
check_eq "--label: the same build again gives the same id" \
    "$(cs build -q --label a=b --label e=f=g --label h "$qctx")" "$lid"
check "--label with an empty key: refused" \
    bash -c "! '$CSTORE' --root '$ROOT' build -q --label =x '$qctx' >/dev/null 2>&1"
check "fsck clean after all that" cs fsck
# img_manifest REF DIR: the rootfs manifest (lib.sh rootfs_manifest) of an image, via export + umoci.
img_manifest() {
    rm -rf "$2.oci"
    cs export "$1" -o "$2.oci" --format oci-dir >/dev/null
    unpack "$2.oci:$(oci_tag "$2.oci")" "$2"
    rootfs_manifest "$2/rootfs"
}
# top_layer_listing REF DIR: tar -tv of the image's last layer.
top_layer_listing() {
    rm -rf "$2.oci"
    cs export "$1" -o "$2.oci" --format oci-dir >/dev/null
    local mf
    mf=$(jq -r '.manifests[0].digest' "$2.oci/index.json" | sed 's/sha256://')
    tar -tvf "$2.oci/blobs/sha256/$(jq -r '.layers[-1].digest' "$2.oci/blobs/sha256/$mf" | sed 's/sha256://')"
}

# Hardlinks in the context stay one inode in the layer (BuildKit's copier keeps them within a
# COPY): the second path is a hardlink entry of the layer.
hctx=$T/hardlinks
mkdir -p "$hctx/d"
printf 'one inode\n' > "$hctx/d/a"
ln "$hctx/d/a" "$hctx/d/b"
touch -d @1000 "$hctx/d/a" "$hctx/d"
printf 'FROM busybox\nCOPY . /dst/\n' > "$hctx/Dockerfile"
check "COPY . of hardlinked files builds" cs build --progress quiet -t hl:1 "$hctx"
check "COPY . of hardlinked files: the layer holds a hardlink entry" \
    grep -Eq 'dst/d/b link to dst/d/a$' <(top_layer_listing hl:1 "$T/hl1")
check_eq "COPY . of hardlinked files: one inode with two links in the image" \
    "$(img_manifest hl:1 "$T/hl1m" | grep -E "^'dst/d/[ab]'" | grep -c ' n=2 ')" 2
hid=$(cs images --json | jq -r '.[] | select(.tags | index("hl:1")) | .id')
# The same names, contents, modes and times, no longer linked: another layer, not a cache hit.
rm "$hctx/d/b" && cp -p "$hctx/d/a" "$hctx/d/b" && touch -d @1000 "$hctx/d"
check "COPY . after the hardlink was broken builds" cs build --progress quiet -t hl:2 "$hctx"
check "COPY . after the hardlink was broken: a different image (the key sees links)" \
    test "$hid" != "$(cs images --json | jq -r '.[] | select(.tags | index("hl:2")) | .id')"
check_eq "COPY . after the hardlink was broken: no hardlink entry" \
    "$(top_layer_listing hl:2 "$T/hl2" | grep -c 'link to' || true)" 0

# --chmod applies to what is copied; the parent directories a COPY creates are 0755 (fsutil's
# MkdirAll(dest, 0755, chown)), owned by the --chown user.
cmctx=$T/chmodparents
mkdir -p "$cmctx/tree/sub"
printf 'a\n' > "$cmctx/a.txt"
printf 'b\n' > "$cmctx/tree/sub/b.txt"
printf 'FROM busybox\nCOPY --chmod=0600 a.txt /newdir/f\nCOPY --chmod=0640 --chown=1:2 a.txt /p/q/r/\nCOPY --chmod=0700 tree /t1/t2/\n' \
    > "$cmctx/Dockerfile"
check "COPY --chmod into new parents builds" cs build --progress quiet -t cm:1 "$cmctx"
cmm=$(img_manifest cm:1 "$T/cm1")
check_eq "COPY --chmod: the created parent /newdir is 0755" "$(grep -E "^'newdir' " <<<"$cmm")" "'newdir' d 755 0 0"
check "COPY --chmod: the file itself is 0600" grep -Eq "^'newdir/f' f 600 0 0 " <<<"$cmm"
check_eq "COPY --chmod --chown: created parents are 0755 owned by the --chown user" \
    "$(grep -E "^'p(/q(/r)?)?' " <<<"$cmm")" "'p' d 755 1 2
'p/q' d 755 1 2
'p/q/r' d 755 1 2"
check "COPY --chmod --chown: the file is 0640 1:2" grep -Eq "^'p/q/r/a.txt' f 640 1 2 " <<<"$cmm"
check_eq "COPY --chmod of a directory: the parent made for it is 0755" "$(grep -E "^'t1' " <<<"$cmm")" "'t1' d 755 0 0"
check "COPY --chmod of a directory: what is copied gets the mode" \
    grep -Eq "^'t1/t2/sub/b.txt' f 700 0 0 " <<<"$cmm"

# WORKDIR creates its directory in every sequence: after a default-valued expansion followed by
# ENV and a COPY elsewhere, and as the last instruction; after USER the missing directories are
# owned by that user (BuildKit's Mkdir with WithUser).
wctx=$T/workdirs
mkdir -p "$wctx"
printf 'x\n' > "$wctx/x.txt"
printf 'FROM busybox\nWORKDIR ${UNSET:-/fallback/dir}\nENV A=b\nCOPY x.txt /elsewhere/\nUSER nobody\nWORKDIR /home/x/data\nUSER root\nWORKDIR /last/one\n' \
    > "$wctx/Dockerfile"
check "WORKDIR sequences build" cs build --progress quiet -t wd:1 "$wctx"
wdm=$(img_manifest wd:1 "$T/wd1")
check_eq "WORKDIR \${UNSET:-/fallback/dir} then ENV and COPY: the directory is in the image" \
    "$(grep -E "^'fallback(/dir)?' " <<<"$wdm")" "'fallback' d 755 0 0
'fallback/dir' d 755 0 0"
check_eq "WORKDIR after USER nobody: the missing directories owned by 65534:65534 (the base's /home kept)" \
    "$(grep -E "^'home(/x(/data)?)?' " <<<"$wdm")" "'home' d 755 0 0
'home/x' d 755 65534 65534
'home/x/data' d 755 65534 65534"
check_eq "WORKDIR as the last instruction: the directory is in the image" \
    "$(grep -E "^'last(/one)?' " <<<"$wdm")" "'last' d 755 0 0
'last/one' d 755 0 0"
check_eq "WORKDIR as the last instruction: config.WorkingDir" \
    "$(skopeo inspect --config "oci:$T/wd1.oci:$(oci_tag "$T/wd1.oci")" | jq -r .config.WorkingDir)" /last/one
check "fsck clean after the conformance checks" cs fsck
# -o/--output (buildx's exporters) and --metadata-file. The base has a layer that whites out a file
# of the layer below, so the merged root filesystem of type=tar|local must not hold it nor any .wh.
oxl=$T/out-layers
mkdir -p "$oxl/l1/gone" "$oxl/l2/gone"
printf 'kept\n' >"$oxl/l1/gone/kept.txt"
printf 'removed\n' >"$oxl/l1/gone/removed.txt"
: >"$oxl/l2/gone/.wh.removed.txt"
tar -C "$oxl/l1" --owner=0 --group=0 -cf "$oxl/1.tar" gone
tar -C "$oxl/l2" --owner=0 --group=0 -cf "$oxl/2.tar" gone
mk_oci "$oxl/wh.oci" "$oxl/1.tar" "$oxl/2.tar"
oci_archive "$oxl/wh.oci" "$oxl/wh.tar"
must cs load "$oxl/wh.tar" -t whbase:1
octx=$T/outctx
mkdir -p "$octx"
printf 'out\n' >"$octx/a.txt"
printf 'FROM whbase:1\nCOPY --chmod=0751 a.txt /app/run.sh\nCOPY --chmod=0600 a.txt /app/secret\n' \
    >"$octx/Dockerfile"
oid=$(cs build --progress quiet -t out:1 -t out:2 "$octx" | tail -n 1)
check "-o: the image builds" test -n "$oid"

check "-o type=oci,dest=FILE writes an OCI archive skopeo reads" \
    cs build --progress quiet -t out:1 -o "type=oci,dest=$T/o.oci.tar" "$octx"
check_eq "-o type=oci: the archive's config digest is the image id" \
    "$(skopeo inspect --raw "oci-archive:$T/o.oci.tar" | jq -r .config.digest)" "$oid"
check_eq "-o type=oci: the archive has the image's layers" \
    "$(skopeo inspect "oci-archive:$T/o.oci.tar" | jq '.Layers | length')" 4

check "-o type=docker,dest=FILE writes a docker-archive skopeo reads" \
    cs build --progress quiet -t out:1 -t out:2 --output "type=docker,dest=$T/o.docker.tar" "$octx"
# BuildKit's docker exporter lists every -t name in RepoTags (docker load tags them all).
check_eq "-o type=docker: tagged with every -t name" \
    "$(tar -xOf "$T/o.docker.tar" manifest.json | jq -c '.[0].RepoTags')" '["out:1","out:2"]'
check_eq "-o type=docker: skopeo reads the image (its config digest is the image id)" \
    "$(skopeo inspect --raw "docker-archive:$T/o.docker.tar" | jq -r .config.digest)" "$oid"

check "-o type=tar,dest=FILE writes the root filesystem as a tar" \
    cs build --progress quiet -o "type=tar,dest=$T/o.rootfs.tar" "$octx"
otl=$(tar -tf "$T/o.rootfs.tar")
check "-o type=tar: the COPY'd files are there" grep -qx 'app/run.sh' <<<"$otl"
check "-o type=tar: the file kept by the base's upper layer is there" grep -qx 'gone/kept.txt' <<<"$otl"
check_fails "-o type=tar: the whited-out file is not there" grep -q 'gone/removed.txt' <<<"$otl"
check_fails "-o type=tar: no whiteout entries" grep -q '\.wh\.' <<<"$otl"

rm -rf "$T/o.local"
check "-o type=local,dest=DIR writes the root filesystem into DIR" \
    cs build --progress quiet -o "type=local,dest=$T/o.local" "$octx"
check_eq "-o type=local: a COPY'd file has its content" "$(cat "$T/o.local/app/run.sh")" out
check_eq "-o type=local: modes as in the image" \
    "$(stat -c %a "$T/o.local/app/run.sh" "$T/o.local/app/secret")" "751
600"
check "-o type=local: the kept file is there" test -f "$T/o.local/gone/kept.txt"
check_fails "-o type=local: the whited-out file is not there" test -e "$T/o.local/gone/removed.txt"
check_eq "-o type=local: no whiteouts" "$(find "$T/o.local" -name '.wh.*' | wc -l)" 0
rm -rf "$T/o.dir"
check "-o DIR (no type=) builds" cs build --progress quiet -o "$T/o.dir" "$octx"
check_eq "-o DIR is type=local,dest=DIR" "$(rootfs_manifest "$T/o.dir")" "$(rootfs_manifest "$T/o.local")"
check_eq "-o type=local matches the image unpacked by umoci" \
    "$(rootfs_manifest "$T/o.local" | cut -d' ' -f1-5)" \
    "$(img_manifest out:1 "$T/o.umoci" | cut -d' ' -f1-5)"

cs build --progress quiet -o - "$octx" >"$T/o.stdout.tar" 2>"$T/o.stderr"
check_eq "-o - writes the root filesystem tar to stdout (nothing else there)" \
    "$(tar -tf "$T/o.stdout.tar" | sort)" "$(tar -tf "$T/o.rootfs.tar" | sort)"
check_eq "-o -: the image id goes to stderr instead" "$(tail -n 1 "$T/o.stderr")" "$oid"
cs build --progress quiet -o type=oci,dest=- "$octx" >"$T/o.stdout.oci.tar" 2>"$T/o.stderr"
check_eq "-o type=oci,dest=- writes the OCI archive to stdout" \
    "$(skopeo inspect --raw "oci-archive:$T/o.stdout.oci.tar" | jq -r .config.digest)" "$oid"
check_fails "-o type=local,dest=- is refused" cs build --progress quiet -o type=local,dest=- "$octx"
ounk=$(cs build --progress quiet -o type=registry,dest=x "$octx" 2>&1)
check_eq "-o with an unknown type fails with one line" "$(wc -l <<<"$ounk")" 1
check "-o with an unknown type: the message names it" grep -q "registry" <<<"$ounk"
check_fails "-o with an unknown type fails" cs build --progress quiet -o type=registry,dest=x "$octx"
check_fails "-o type=local without dest fails" cs build --progress quiet -o type=local "$octx"

check "--metadata-file FILE builds" \
    cs build --progress quiet -t out:1 -t out:2 --metadata-file "$T/meta.json" "$octx"
check "--metadata-file: the file is JSON" jq -e . "$T/meta.json"
check_eq "--metadata-file: containerimage.config.digest is the image id" \
    "$(jq -r '."containerimage.config.digest"' "$T/meta.json")" "$oid"
check "--metadata-file: containerimage.digest is a sha256 digest" \
    grep -Eq '^sha256:[0-9a-f]{64}$' <<<"$(jq -r '."containerimage.digest"' "$T/meta.json")"
check_eq "--metadata-file: image.name lists the -t names" \
    "$(jq -r '."image.name"' "$T/meta.json")" "docker.io/library/out:1,docker.io/library/out:2"
check "fsck clean after the -o checks" cs fsck

# --build-context NAME=DIR|NAME=docker-image://REF (buildx named contexts).
bctx=$T/bctx
mkdir -p "$bctx/main" "$bctx/extra"
printf 'main\n' >"$bctx/main/m.txt"
printf 'extra\n' >"$bctx/extra/f"
printf 'other\n' >"$bctx/extra/g"
printf 'f\n' >"$bctx/extra/.dockerignore" # not read for a named context
printf 'FROM base\n' >"$bctx/main/Dockerfile.img"
bbl=$(cs inspect busybox | jq -c .config.rootfs.diff_ids)
bid=$(cs build --progress quiet -f "$bctx/main/Dockerfile.img" \
    --build-context base=docker-image://busybox "$bctx/main" | tail -n1)
check_eq "--build-context NAME=docker-image://REF: FROM NAME has the image's layers" \
    "$(cs inspect "$bid" | jq -c .config.rootfs.diff_ids)" "$bbl"
cat >"$bctx/main/Dockerfile.dir" <<'EOF'
FROM scratch
COPY m.txt /m.txt
COPY --from=extra g /g
COPY --from=extra f /f
EOF
(cd "$bctx" && cs build --progress plain -t bctx:dir -f main/Dockerfile.dir \
    --build-context extra=extra main >"$T/bctx1.out" 2>"$T/bctx1.log")
check "--build-context NAME=DIR (relative to the cwd) builds" test -s "$T/bctx1.out"
bctx_file() { # IMAGE PATH: PATH's content in the image's layers
    local mf
    rm -rf "$T/bctx.oci"
    cs export -o "$T/bctx.oci" --format oci-dir "$1" || return
    mf=$(jq -r '.manifests[0].digest' "$T/bctx.oci/index.json" | sed 's/sha256://')
    for l in $(jq -r '.layers[].digest' "$T/bctx.oci/blobs/sha256/$mf" | sed 's/sha256://'); do
        tar -xOf "$T/bctx.oci/blobs/sha256/$l" "$2" 2>/dev/null
    done
}
check_eq "--build-context NAME=DIR: COPY --from=NAME copies DIR/f (its .dockerignore not applied)" \
    "$(bctx_file bctx:dir f)" extra
check_eq "--build-context NAME=DIR: the main context is still the context" \
    "$(bctx_file bctx:dir m.txt)" main
printf 'extra2\n' >"$bctx/extra/f"
(cd "$bctx" && cs build --progress plain -t bctx:dir -f main/Dockerfile.dir \
    --build-context extra=extra main >/dev/null 2>"$T/bctx2.log")
check_eq "--build-context NAME=DIR: a changed file re-runs its COPY only (two of three CACHED)" \
    "$(grep -c CACHED "$T/bctx2.log")" 2
fstep=$(grep -m1 'COPY --from=extra f /f' "$T/bctx2.log" | cut -d' ' -f1)
check "--build-context NAME=DIR: the COPY of the changed file ran (DONE, not CACHED)" \
    grep -q "^$fstep DONE" "$T/bctx2.log"
check_eq "--build-context NAME=DIR: the changed content is in the image" \
    "$(bctx_file bctx:dir f)" extra2
cat >"$bctx/main/Dockerfile.stage" <<'EOF'
FROM scratch AS base
COPY m.txt /m.txt
FROM base
EOF
sid=$(cs build --progress quiet -f "$bctx/main/Dockerfile.stage" \
    --build-context base=docker-image://busybox "$bctx/main" | tail -n1)
check_eq "--build-context: a named context overrides the stage of that name" \
    "$(cs inspect "$sid" | jq -c .config.rootfs.diff_ids)" "$bbl"
bad=$(cs build --progress quiet --build-context bad "$bctx/main" 2>&1)
check_fails "--build-context without '=' fails" \
    cs build --progress quiet --build-context bad "$bctx/main"
check_eq "--build-context without '=': one line" "$(wc -l <<<"$bad")" 1
check "--build-context without '=': the message names it" grep -q "bad" <<<"$bad"
bad=$(cs build --progress quiet -f "$bctx/main/Dockerfile.img" \
    --build-context base=docker-image://nosuch "$bctx/main" 2>&1)
check_fails "--build-context NAME=docker-image://nosuch fails" \
    cs build --progress quiet -f "$bctx/main/Dockerfile.img" \
    --build-context base=docker-image://nosuch "$bctx/main"
check_eq "--build-context NAME=docker-image://nosuch: one line" "$(wc -l <<<"$bad")" 1
check "--build-context NAME=docker-image://nosuch: the message names the image" \
    grep -q "nosuch" <<<"$bad"
bad=$(cs build --progress quiet -f "$bctx/main/Dockerfile.img" \
    --build-context base="$bctx/extra" "$bctx/main" 2>&1)
check_eq "--build-context NAME=DIR: FROM NAME is refused with one line" "$(wc -l <<<"$bad")" 1
check "--build-context NAME=DIR: FROM NAME names the context" grep -q "base" <<<"$bad"
check "fsck clean after the --build-context checks" cs fsck
finish
