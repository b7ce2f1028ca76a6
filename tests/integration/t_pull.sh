#!/usr/bin/env bash
# cstore pull against a real registry (Debian's docker-registry on loopback, seeded by skopeo from
# the base archives): a pulled image equals the loaded one (id, inspect, fsck); what the store has
# is never downloaded again (blob GETs counted in the registry's access log); digest references;
# an index with two platforms and --platform; FROM a registry image in a fresh root (RUN included);
# bad input (unknown tag, a corrupted blob, the registry killed mid-pull) and SIGKILL of the pull
# leave the store as it was.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/registry_lib.sh"
need skopeo jq python3 sha256sum
bases
registry_start plain || exit 1
R=$REG_ADDR

heavy="busybox golang"
[ "$CSTORE_TEST_LIGHT" = 1 ] && heavy=busybox
blob_gets() { reg_count '"GET /v2/[^ ]*/blobs/sha256:'; }
# fails_with DESC REGEX CMD...: CMD fails with exactly one line on stderr, matching REGEX.
fails_with() {
    local desc=$1 want=$2 rc
    shift 2
    "$@" >/dev/null 2>"$T/err"
    rc=$?
    if [ $rc -ne 0 ] && [ "$(wc -l <"$T/err")" -eq 1 ] && grep -qE -- "$want" "$T/err"; then
        _ok "$desc"
    else
        _fail "$desc"
        _show_cmd "exit $rc; stderr:" "$(cat "$T/err")" "$@"
    fi
}
# state: what a failed command must leave unchanged
state() { cs images --json | jq -c '[.[] | {id, tags}]'; du_counts; }

# --- pull equals load ---
for n in $heavy; do
    must registry_seed "lib/$n:1" "$n"
    ROOT=$T/load-$n
    must cs load "$BASES/$n.oci.tar"
    want=$(cs inspect "$n" | jq -S 'del(.tags)')
    ROOT=$T/pull-$n
    before=$(blob_gets)
    out=$(cs pull --progress plain "$R/lib/$n:1" 2>"$T/pull.err")
    check_eq "pull $n: prints the image id last" "$(tail -n 1 <<<"$out")" "$(jq -r .id <<<"$want")"
    check_eq "pull $n: inspect equals load's" "$(cs inspect "$R/lib/$n:1" | jq -S 'del(.tags)')" "$want"
    check_eq "pull $n: tagged with the reference" "$(cs images --json | jq -c '.[].tags')" "[\"$R/lib/$n:1\"]"
    check "pull $n: fsck clean" cs fsck
    check "pull $n: plain progress names each blob with its rate" grep -q 'done .* in .*s (.*/s)' "$T/pull.err"
    nl=$(jq '.layers | length' <<<"$want")
    check_cmp "pull $n: one GET per blob (config + layers)" "$(($(blob_gets) - before))" -le $((nl + 1))
    before=$(blob_gets) counts=$(du_counts)
    check "pull $n again" cs pull --progress quiet "$R/lib/$n:1"
    check_eq "pull $n again: no layer downloaded" "$(($(blob_gets) - before))" 1 # the config
    check_eq "pull $n again: nothing new stored" "$(du_counts)" "$counts"
done

# --- every manifest and layer kind: Docker schema 2 (docker-archive), zstd and uncompressed layers ---
for f in docker:"$BASES/busybox.docker.tar" zstd:"$(variant busybox zstd)" none:"$(variant busybox none)"; do
    kind=${f%%:*} path=${f#*:}
    case $kind in
    docker) must registry_seed "kinds/$kind:1" "$path" ;;
    *) must skopeo copy -q --dest-tls-verify=false "oci:$path:latest" "docker://$R/kinds/$kind:1" ;;
    esac
    ROOT=$T/kind-load-$kind
    must cs load "$path" -t x
    ROOT=$T/kind-pull-$kind
    check_eq "pull of $kind layers: the id and layers load gives" \
        "$(cs pull --progress quiet "$R/kinds/$kind:1" >/dev/null && cs inspect "$R/kinds/$kind:1" | jq -c '[.id, .layers]')" \
        "$(ROOT=$T/kind-load-$kind cs inspect x | jq -c '[.id, .layers]')"
done
check_eq "docker-archive push: a Docker schema 2 manifest was pulled" \
    "$(skopeo inspect --raw --tls-verify=false "docker://$R/kinds/docker:1" | jq -r .mediaType)" \
    application/vnd.docker.distribution.manifest.v2+json

# --- what load stored is not downloaded by a pull ---
ROOT=$T/load-then-pull
must cs load "$BASES/busybox.oci.tar"
before=$(blob_gets)
check "pull after load" cs pull --progress quiet "$R/lib/busybox:1"
check_eq "pull after load: only the config downloaded" "$(($(blob_gets) - before))" 1

# --- digest reference: no tag, the id printed; a wrong digest fails ---
ROOT=$T/digest
dg=$(skopeo inspect --raw --tls-verify=false "docker://$R/lib/busybox:1" | sha256sum | cut -d' ' -f1)
id=$(cs pull --progress quiet "$R/lib/busybox@sha256:$dg")
check_eq "digest pull: the id printed" "$id" "$(cs images --json | jq -r '.[0].id')"
check_eq "digest pull: no tag" "$(cs images --json | jq -c '.[0].tags')" "[]"
bad=$(printf '%064d' 0)
fails_with "digest pull: an unknown digest fails" 'manifest unknown' \
    cs pull --progress quiet "$R/lib/busybox@sha256:$bad"

# --- an index with two platforms (OCI layout made by hand), --platform ---
mkindex() { # DIR: busybox's manifest as linux/amd64 plus a copy with an arm64 config, in an
    # index that index.json names "multi" (skopeo copies one named image of a layout)
    local d=$1 m c cfg2 c2 m2 man2 ix
    cp -r "$BASES/busybox.oci" "$d"
    m=$(jq -r '.manifests[0].digest' "$d/index.json")
    c=$(jq -r '.config.digest' "$d/blobs/sha256/${m#sha256:}")
    cfg2=$(jq -c '.architecture = "arm64" | .variant = "v8"' "$d/blobs/sha256/${c#sha256:}")
    printf '%s' "$cfg2" >"$d/tmp"
    c2=$(sha256sum "$d/tmp" | cut -d' ' -f1)
    mv "$d/tmp" "$d/blobs/sha256/$c2"
    man2=$(jq -c --arg d "sha256:$c2" --argjson s "${#cfg2}" '.config.digest = $d | .config.size = $s' \
        "$d/blobs/sha256/${m#sha256:}")
    printf '%s' "$man2" >"$d/tmp"
    m2=$(sha256sum "$d/tmp" | cut -d' ' -f1)
    mv "$d/tmp" "$d/blobs/sha256/$m2"
    jq -c --arg m2 "sha256:$m2" --argjson s2 "${#man2}" '.manifests = [
        (.manifests[0] | .platform = {os: "linux", architecture: "amd64"} | del(.annotations)),
        {mediaType: "application/vnd.oci.image.manifest.v1+json", digest: $m2, size: $s2,
         platform: {os: "linux", architecture: "arm64", variant: "v8"}}]' "$d/index.json" >"$d/tmp"
    ix=$(sha256sum "$d/tmp" | cut -d' ' -f1)
    jq -c --arg ix "sha256:$ix" --argjson s "$(stat -c %s "$d/tmp")" '{schemaVersion: 2,
        mediaType: "application/vnd.oci.image.index.v1+json", manifests: [{
        mediaType: "application/vnd.oci.image.index.v1+json", digest: $ix, size: $s,
        annotations: {"org.opencontainers.image.ref.name": "multi"}}]}' "$d/index.json" >"$d/top"
    mv "$d/tmp" "$d/blobs/sha256/$ix"
    mv "$d/top" "$d/index.json"
    echo "sha256:$c2"
}
arm_id=$(mkindex "$T/multi.oci")
skopeo copy -q --all --dest-tls-verify=false "oci:$T/multi.oci:multi" "docker://$R/multi:1" ||
    _fail "seed the two-platform index"
ROOT=$T/multi
amd_id=$(cs pull --progress quiet "$R/multi:1")
check_eq "index: the host's platform (linux/amd64) by default" "$amd_id" \
    "$(ROOT=$T/load-busybox cs images --json | jq -r '.[0].id')"
check_eq "index: --platform linux/arm64 picks the arm64 image" \
    "$(cs pull --progress quiet --platform linux/arm64 "$R/multi:1")" "$arm_id"
check_eq "index: --platform linux/arm64/v8 is the same image" \
    "$(cs pull --progress quiet --platform linux/arm64/v8 "$R/multi:1")" "$arm_id"
st=$(state)
fails_with "index: no image for linux/ppc64le, the platforms listed" \
    'no image for platform linux/ppc64le \(the index has: linux/amd64, linux/arm64\)' \
    cs pull --progress quiet --platform linux/ppc64le "$R/multi:1"
fails_with "index: a malformed --platform" 'expected OS/ARCH' \
    cs pull --progress quiet --platform linux "$R/multi:1"
check_eq "index: failures changed nothing" "$(state)" "$st"

# --- FROM, COPY --from and RUN --mount=from an image the store lacks: pulled (--pull=missing) ---
if command -v runc >/dev/null && grep -qw overlay /proc/filesystems; then
    mkdir -p "$T/ctx"
    cat >"$T/ctx/Dockerfile" <<EOT
FROM $R/lib/busybox:1
COPY --from=$R/multi:1 /bin/busybox /bb
RUN --mount=from=$R/multi:1,target=/m cp /m/bin/busybox /bb2 && echo hi >/hello
EOT
    ROOT=$T/build
    check "build FROM a registry image in a fresh root (RUN included)" \
        cs build --progress plain -o "type=local,dest=$T/out" "$T/ctx"
    check_eq "build: RUN ran on the pulled image" "$(cat "$T/out/hello" 2>/dev/null)" hi
    check "build: COPY --from and RUN --mount=from got the pulled image's files" \
        cmp "$T/out/bb" "$T/out/bb2"
    check_eq "build: the bases are tagged in the store" \
        "$(cs images --json | jq -r '.[].tags[]' | sort | tr '\n' ' ')" "$R/lib/busybox:1 $R/multi:1 "
    check "build: fsck clean" cs fsck
    mgets() { reg_count '"GET /v2/[^ ]*/manifests/'; }
    before=$(mgets)
    check "build again (--pull=missing: nothing asked)" cs build -q "$T/ctx"
    check_eq "build again: no manifest GET" "$(mgets)" "$before"
    check "build --pull=always" cs build -q --pull=always "$T/ctx"
    check_cmp "build --pull=always: asks the registry again" "$(mgets)" -gt "$before"
    ROOT=$T/build-never
    fails_with "build --pull=never in a fresh root: not in the store" 'no such stage or image' \
        cs build -q --pull=never "$T/ctx"
    fails_with "build --pull=bogus" 'must be missing, always or never' cs build -q --pull=bogus "$T/ctx"
else
    need runc overlayfs
fi

# --- bad input: one line, non-zero, store unchanged ---
ROOT=$T/bad
must cs load "$BASES/busybox.oci.tar"
st=$(state)
fails_with "unknown tag: manifest unknown" 'manifest unknown' cs pull --progress quiet "$R/lib/busybox:nope"
fails_with "unknown repository" 'unknown' cs pull --progress quiet "$R/nobody/here:1"
fails_with "a reference that does not parse" 'UPPER' cs pull --progress quiet "$R/UPPER:1"

# a blob corrupted on the registry's disk (an image of its own: blobs are shared across repos)
mkdir -p "$T/rnd" && head -c 3000000 /dev/urandom >"$T/rnd/noise"
ROOT=$T/mk
must cs import "$T/rnd" -t rnd:1
must cs export rnd:1 -o "$T/rnd.oci.tar" --format oci-archive
must registry_seed "rnd:1" "$T/rnd.oci.tar"
ldg=$(skopeo inspect --tls-verify=false "docker://$R/rnd:1" | jq -r '.Layers[0]')
f=$(echo "$REG_DIR"/data/docker/registry/v2/blobs/sha256/*/"${ldg#sha256:}"/data)
python3 -c 'import sys; f=open(sys.argv[1],"r+b"); f.seek(1500000); b=f.read(1); f.seek(1500000); f.write(bytes([b[0]^1]))' "$f"
ROOT=$T/bad
fails_with "corrupted blob: the digest mismatch named" 'do not match' \
    cs pull --progress quiet "$R/rnd:1"
check_eq "bad input changed nothing" "$(state)" "$st"
check "bad input: fsck clean" cs fsck

# --- SIGKILL of the pull midway: fsck clean, no image ---
# an image of its own, big enough to be caught downloading: 300 MB of noise, uncompressed
mkdir -p "$T/big" && head -c 300000000 /dev/urandom >"$T/big/noise"
ROOT=$T/mk
must cs import "$T/big" -t big:1
must cs export big:1 -o "$T/big.oci.tar" --format oci-archive --compression none
rm -rf "$T/big"
must registry_seed "big:1" "$T/big.oci.tar"
rm -f "$T/big.oci.tar"
pull_midway() { # starts pulling big:1, returns once a layer downloads (MID: its pid)
    : >"$T/mid.err"
    "$CSTORE" --root "$ROOT" pull --progress plain "$R/big:1" >"$T/mid.out" 2>"$T/mid.err" &
    MID=$!
    for _ in $(seq 1000); do
        grep -q downloading "$T/mid.err" && break
        sleep 0.01
    done
}
ROOT=$T/killed
must cs load "$BASES/busybox.oci.tar"
st=$(state)
pull_midway
check "SIGKILL mid-pull: caught downloading" kill -9 $MID
wait $MID 2>/dev/null
check_eq "SIGKILL mid-pull: store unchanged" "$(state)" "$st"
check "SIGKILL mid-pull: fsck clean" cs fsck

# --- the registry killed mid-pull: one line, store unchanged ---
pull_midway
kill -9 "$REG_PID"
wait "$MID"
rc=$?
check_cmp "registry gone mid-pull: pull fails" "$rc" -ne 0
check_eq "registry gone mid-pull: one error line" "$(grep -c '^cstore:' "$T/mid.err")" 1
check_eq "registry gone mid-pull: store unchanged" "$(state)" "$st"
check "registry gone mid-pull: fsck clean" cs fsck

finish
