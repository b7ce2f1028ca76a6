#!/usr/bin/env bash
# t_push.sh - `cstore push` and `build --push` against a real registry (Debian's docker-registry on
# loopback, registry_lib.sh), skopeo reading back what was pushed: same manifest digest, copies to an
# OCI layout with the diff_ids `cstore inspect` shows; a re-push uploads no blob, a one-line change
# only its layer and the config, another repository gets mounts; docker and OCI formats, gzip, zstd
# and no compression; bad input fails with one line; a killed push leaves the store fsck-clean.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/registry_lib.sh"
need jq skopeo sha256sum
BASES=$CSTORE_BASES

registry_start plain || exit 1
R=$REG_ADDR
SK=(--tls-verify=false)

must cs load "$BASES/busybox.oci.tar"
ctx=$T/ctx
mkdir -p "$ctx"
printf 'FROM busybox\nCOPY app.txt /app/app.txt\nCMD ["cat", "/app/app.txt"]\n' >"$ctx/Dockerfile"
echo "version 1" >"$ctx/app.txt"
must cs build --progress quiet -t app:1 "$ctx"

# Blob uploads in the access log: the PUT that completes each one (monolithic or after PATCHes),
# and the PATCHes.
uploads() { reg_count '"(PUT|PATCH) /v2/[^ ]*/blobs/uploads/'; }
put_digests() { grep -oE '"PUT /v2/[^ ]*/blobs/uploads/[^ ]*digest=sha256(:|%3A)[0-9a-f]{64}' "$REG_LOG" |
    grep -oE '[0-9a-f]{64}$' | sort; }

# ---- first push: skopeo reads back the digest cstore printed
out=$(cs push --progress plain app:1 "$R/test/app:1" 2>"$T/push1.err")
check "push app:1 succeeds" test $? -eq 0
digest=$(printf '%s\n' "$out" | tail -n1)
check "push prints the manifest digest last on stdout" grep -qE '^sha256:[0-9a-f]{64}$' <<<"$digest"
check "plain progress names each blob it pushed" grep -q 'pushed' "$T/push1.err"
raw=$(skopeo inspect "${SK[@]}" --raw "docker://$R/test/app:1")
check_eq "the registry's manifest has the digest cstore printed" \
    "sha256:$(printf '%s' "$raw" | sha256sum | cut -d' ' -f1)" "$digest"
check_eq "skopeo inspect gives the same digest" \
    "$(skopeo inspect "${SK[@]}" "docker://$R/test/app:1" | jq -r .Digest)" "$digest"
check_eq "the manifest is an OCI manifest" "$(jq -r .mediaType <<<"$raw")" \
    application/vnd.oci.image.manifest.v1+json
check "skopeo copies the pushed image to an OCI layout" \
    skopeo copy -q --src-tls-verify=false "docker://$R/test/app:1" "oci:$T/layout:app"
mdig=$(jq -r '.manifests[0].digest' "$T/layout/index.json")
cfg=$(jq -r .config.digest "$T/layout/blobs/sha256/${mdig#sha256:}")
check_eq "the copied layers' diff_ids are those cstore inspect shows" \
    "$(jq -c .rootfs.diff_ids "$T/layout/blobs/sha256/${cfg#sha256:}")" \
    "$(cs inspect app:1 | jq -c '[.layers[].diff_id]')"
check_eq "the pushed config is the image id" "$cfg" "$(cs inspect app:1 | jq -r .id)"

# ---- re-push: nothing uploaded
n0=$(uploads)
check "push of an unchanged image again succeeds" cs push --progress quiet app:1 "$R/test/app:1"
check_eq "re-push uploads no blob" "$(uploads)" "$n0"

# ---- a one-line change: only the new layer and the config go up
echo "version 2" >"$ctx/app.txt"
must cs build --progress quiet -t app:2 "$ctx"
before=$(put_digests)
check "push after a one-line change succeeds" cs push --progress quiet app:2 "$R/test/app:2"
new=$(comm -13 <(printf '%s\n' "$before") <(put_digests) | tr '\n' ' ')
m2=$(skopeo inspect "${SK[@]}" --raw "docker://$R/test/app:2")
want=$(jq -r '.layers[-1].digest, .config.digest' <<<"$m2" | sed 's/^sha256://' | sort | tr '\n' ' ')
check_eq "after a one-line change only the new layer and the config are uploaded" "$new" "$want"

# ---- another repository of the same registry: mounted, not uploaded
n0=$(uploads)
cs push --progress plain app:1 "$R/other/app:1" >/dev/null 2>"$T/mount.err"
check "push to another repository succeeds" test $? -eq 0
check "a mount from the first repository is asked for" \
    grep -qE '"POST /v2/other/app/blobs/uploads/\?(from=[^ &]*&)?mount=sha256' "$REG_LOG"
check_eq "pushing to another repository uploads no blob" "$(uploads)" "$n0"
check "progress says the blobs were mounted" grep -q 'mounted from test/app' "$T/mount.err"
check_eq "the mounted image has the same digest" \
    "$(skopeo inspect "${SK[@]}" "docker://$R/other/app:1" | jq -r .Digest)" "$digest"

# ---- formats and compressions
d=$(cs push --progress quiet --format docker app:1 "$R/test/app:docker" | tail -n1)
raw=$(skopeo inspect "${SK[@]}" --raw "docker://$R/test/app:docker")
check_eq "--format docker pushes a schema 2 manifest" "$(jq -r .mediaType <<<"$raw")" \
    application/vnd.docker.distribution.manifest.v2+json
check_eq "--format docker layers are gzip" "$(jq -r '.layers[0].mediaType' <<<"$raw")" \
    application/vnd.docker.image.rootfs.diff.tar.gzip
check_eq "--format docker prints the digest of that manifest" \
    "sha256:$(printf '%s' "$raw" | sha256sum | cut -d' ' -f1)" "$d"
check "skopeo copies the docker manifest to an OCI layout" \
    skopeo copy -q --src-tls-verify=false "docker://$R/test/app:docker" "oci:$T/layout-docker:x"
check "push --format docker --compression none succeeds" \
    cs push --progress quiet --format docker --compression none app:1 "$R/test/app:docker-none"
check_eq "--format docker --compression none layers are plain tars" \
    "$(skopeo inspect "${SK[@]}" --raw "docker://$R/test/app:docker-none" |
        jq -r '[.layers[].mediaType] | unique | .[]')" application/vnd.docker.image.rootfs.diff.tar
check "skopeo copies the uncompressed docker manifest to an OCI layout" skopeo copy -q \
    --src-tls-verify=false "docker://$R/test/app:docker-none" "oci:$T/layout-docker-none:x"
for comp in zstd none; do
    check "push --compression $comp succeeds" \
        cs push --progress quiet --compression "$comp" app:1 "$R/test/app:$comp"
    raw=$(skopeo inspect "${SK[@]}" --raw "docker://$R/test/app:$comp")
    want=application/vnd.oci.image.layer.v1.tar
    [ "$comp" = zstd ] && want=$want+zstd
    check_eq "--compression $comp layers have media type $want" \
        "$(jq -r '[.layers[].mediaType] | unique | .[]' <<<"$raw")" "$want"
    check "skopeo copies the $comp image to an OCI layout" \
        skopeo copy -q --src-tls-verify=false "docker://$R/test/app:$comp" "oci:$T/layout-$comp:x"
done

# ---- build --push
out=$(cs build --progress quiet --push -t "$R/built/app:1" "$ctx" 2>"$T/bpush.err")
check "build --push succeeds" test $? -eq 0
check_eq "build --push keeps the image id last on stdout" "$(printf '%s\n' "$out" | tail -n1)" \
    "$(cs inspect app:2 | jq -r .id)"
check_eq "build --push pushed the -t name" \
    "$(skopeo inspect "${SK[@]}" "docker://$R/built/app:1" | jq -r .Digest)" \
    "$(grep -E '^sha256:' "$T/bpush.err" | tail -n1)"
check_fails "build --push without -t fails" cs build --progress quiet --push "$ctx"

# ---- bad input: one line, non-zero, store unchanged
onefail() { # DESC WANT CMD...: fails with one line on stderr that contains WANT
    local desc=$1 want=$2 err
    shift 2
    if err=$("$@" 2>&1 >/dev/null); then
        _fail "$desc (exit 0)"
        return
    fi
    check_eq "$desc: one line" "$(printf '%s\n' "$err" | wc -l)" 1
    check "$desc: says '$want'" grep -q -- "$want" <<<"$err"
}
imgs=$(cs images --json | jq -c '[.[].id] | sort')
onefail "push of an unknown image" "not found" cs push --progress quiet nosuch:1 "$R/test/x:1"
onefail "--format docker with zstd" "zstd" cs push --format docker --compression zstd app:1 "$R/test/x:1"
dead=127.0.0.1:$(_reg_free_port)
onefail "push to a registry that is down" "$dead" cs push --progress quiet app:1 "$dead/test/x:1"
onefail "push to a digest reference" "tag" cs push app:1 "$R/test/x@sha256:$(printf '%064d' 0)"
check_eq "failed pushes leave the images as they were" "$(cs images --json | jq -c '[.[].id] | sort')" \
    "$imgs"
check "the store is fsck-clean after the pushes" cs fsck

# ---- a killed push leaves the store fsck-clean
if [ "$CSTORE_TEST_LIGHT" != 1 ]; then
    must cs load "$BASES/golang.oci.tar"
    d=$(cs push --progress quiet --compression zstd golang:latest "$R/big/golang:1" | tail -n1)
    check "a push of golang completes (big layers: chunked uploads)" test -n "$d"
    check_eq "skopeo reads the golang image back with the digest cstore printed" \
        "$(skopeo inspect "${SK[@]}" "docker://$R/big/golang:1" | jq -r .Digest)" "$d"
    # A registry of its own (no mount from the first): with the digests cached by the push above,
    # the kills land in the uploads.
    registry_stop
    rm -rf "$REG_DIR"
    registry_start plain || exit 1
    for delay in 0.5 1.5 3; do
        cs push --progress quiet --compression zstd golang:latest "$REG_ADDR/kill/golang:1" \
            >/dev/null 2>&1 &
        pid=$!
        sleep "$delay"
        kill -KILL "$pid" 2>/dev/null
        wait "$pid" 2>/dev/null
        check "the store is fsck-clean after a push killed at ${delay}s" cs fsck
    done
    check "some blob upload was under way when a push was killed" \
        grep -qE '"(PATCH|PUT) /v2/kill/golang/blobs/uploads/' "$REG_LOG"
    check_eq "a push after the killed ones completes with the same digest" \
        "$(cs push --progress quiet --compression zstd golang:latest "$REG_ADDR/kill/golang:1" |
            tail -n1)" "$d"
fi
# ---- a registry with token auth: credentials from `cstore login`, mounts across repositories
registry_stop
export DOCKER_CONFIG=$T/docker HOME=$T/home XDG_RUNTIME_DIR=$T/xdg
rm -rf "$REG_DIR"
registry_start token || exit 1
out=$(cs push --progress quiet app:1 "$REG_ADDR/priv/app:1" 2>&1)
check_eq "without credentials a push fails in one line" "$(printf '%s\n' "$out" | wc -l)" 1
check "which names cstore login" grep -q "cstore login" <<<"$out"
check "cstore login to the token registry" \
    cs login -u "$REG_USER" --password-stdin "$REG_ADDR" <<<"$REG_PASS"
d=$(cs push --progress plain app:1 "$REG_ADDR/priv/app:1" 2>"$T/tok.err" | tail -n1)
check_eq "with login's credentials (token auth) the push succeeds" \
    "$(skopeo inspect --tls-verify=false --creds "$REG_USER:$REG_PASS" \
        "docker://$REG_ADDR/priv/app:1" | jq -r .Digest)" "$d"
n0=$(uploads)
cs push --progress plain app:1 "$REG_ADDR/priv2/app:1" >/dev/null 2>>"$T/tok.err"
check "with token auth the blobs are mounted from the first repository" \
    grep -q "mounted from priv/app" "$T/tok.err"
check_eq "and none is uploaded" "$(uploads)" "$n0"
check_eq "no push output holds the password" \
    "$(cat "$T/tok.err" <(printf '%s\n' "$out") | grep -c -e "$REG_PASS")" 0
finish
