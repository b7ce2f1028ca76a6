#!/usr/bin/env bash
# mkbase.sh [OUTDIR] - make the demo/test base images from Debian packages, without cstore.
#
#   busybox  one layer: busybox-static with its applets as symlinks in /bin, /etc/passwd...
#   golang   busybox's layer + a layer with Debian's Go toolchain tree (golang-go: /usr/lib/go-1.19,
#            /usr/share/go-1.19, /usr/bin/go, /usr/local/go -> /usr/lib/go-1.19) and the C
#            libraries its dynamically linked binaries need (libc, ld.so).
#
# Each image comes in three forms in OUTDIR (default ./out/bases):
#   NAME.oci/        OCI layout directory (gzip layers), written here with tar, gzip -n, jq
#   NAME.oci.tar     OCI archive (tar of that layout)
#   NAME.docker.tar  docker-archive with uncompressed layers (skopeo copy), tag NAME:latest
# The layout's index names the manifest "latest" (org.opencontainers.image.ref.name) and
# "docker.io/library/NAME:latest" (io.containerd.image.name), as containerd and docker export.
#
# Deterministic: same packages, same bytes. Idempotent: an image is rebuilt only when the inputs
# (this script, the package versions) changed; a stamp file records them. Safe to run
# concurrently (flock on OUTDIR/.lock): the second run waits and then finds everything built.
set -euo pipefail

out=${1:-./out/bases}
mkdir -p "$out"
out=$(cd "$out" && pwd)
export LC_ALL=C
umask 022

for t in tar gzip jq sha256sum skopeo flock; do
    command -v "$t" >/dev/null || { echo "mkbase.sh: '$t' not found" >&2; exit 1; }
done
[ -x /bin/busybox ] || { echo "mkbase.sh: /bin/busybox not found (apt-get install busybox-static)" >&2; exit 1; }

exec 9>"$out/.lock"
flock 9

goroot=$(readlink -f /usr/lib/go) # /usr/lib/go-1.19
gover=${goroot##*/}               # go-1.19
[ -x "$goroot/bin/go" ] || { echo "mkbase.sh: $goroot/bin/go not found (apt-get install golang-go)" >&2; exit 1; }

pkgver() { dpkg-query -W -f='${Package}=${Version} ' "$@" 2>/dev/null || true; }
self=$(sha256sum "${BASH_SOURCE[0]}" | cut -d' ' -f1)
inputs_busybox="$self $(pkgver busybox-static)"
inputs_golang="$inputs_busybox $(pkgver "golang-${gover#go-}-go" "golang-${gover#go-}-src" libc6)"

created=1970-01-01T00:00:00Z
work=$out/.work
tarflags=(--format=posix --sort=name --numeric-owner --owner=0 --group=0 --mtime=@0
    --pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime)
if command -v pigz >/dev/null; then gz=(pigz -n -6); else gz=(gzip -n -6); fi

log() { echo "mkbase: $*" >&2; }

# make_layer ROOTFS NAME: writes $work/NAME.tar (uncompressed) and a gzip blob into $layout;
# sets layer_diff, layer_digest, layer_size.
make_layer() {
    local root=$1 name=$2
    # Member names without "./", top-level entries in sorted order.
    local top
    mapfile -t top < <(cd "$root" && ls -A | sort)
    tar -C "$root" "${tarflags[@]}" -cf "$work/$name.tar" "${top[@]}"
    layer_diff=sha256:$(sha256sum "$work/$name.tar" | cut -d' ' -f1)
    "${gz[@]}" -c "$work/$name.tar" >"$work/$name.tar.gz"
    layer_digest=sha256:$(sha256sum "$work/$name.tar.gz" | cut -d' ' -f1)
    layer_size=$(stat -c %s "$work/$name.tar.gz")
    mv "$work/$name.tar.gz" "$layout/blobs/sha256/${layer_digest#sha256:}"
}

# put_blob FILE: moves FILE into the layout's blobs; sets blob_digest, blob_size.
put_blob() {
    blob_digest=sha256:$(sha256sum "$1" | cut -d' ' -f1)
    blob_size=$(stat -c %s "$1")
    mv "$1" "$layout/blobs/sha256/${blob_digest#sha256:}"
}

# write_image NAME CONFIG_JSON LAYERS_JSON: config, manifest, index, oci-layout; then the archive
# forms. LAYERS_JSON is [{digest,size,diff_id,created_by}].
write_image() {
    local name=$1 cfg=$2 layers=$3
    jq -cn --arg created "$created" --argjson cfg "$cfg" --argjson layers "$layers" '{
        created: $created, architecture: "amd64", os: "linux", config: $cfg,
        rootfs: {type: "layers", diff_ids: [$layers[].diff_id]},
        history: [$layers[] | {created: $created, created_by: .created_by}]
    }' | tr -d '\n' >"$work/config.json"
    put_blob "$work/config.json"
    jq -cn --arg cd "$blob_digest" --argjson cs "$blob_size" --argjson layers "$layers" '{
        schemaVersion: 2,
        mediaType: "application/vnd.oci.image.manifest.v1+json",
        config: {mediaType: "application/vnd.oci.image.config.v1+json", digest: $cd, size: $cs},
        layers: [$layers[] | {mediaType: "application/vnd.oci.image.layer.v1.tar+gzip",
                              digest: .digest, size: .size}]
    }' | tr -d '\n' >"$work/manifest.json"
    put_blob "$work/manifest.json"
    jq -cn --arg md "$blob_digest" --argjson ms "$blob_size" --arg name "$name" '{
        schemaVersion: 2,
        mediaType: "application/vnd.oci.image.index.v1+json",
        manifests: [{mediaType: "application/vnd.oci.image.manifest.v1+json",
                     digest: $md, size: $ms,
                     annotations: {"io.containerd.image.name": ("docker.io/library/" + $name + ":latest"),
                                   "org.opencontainers.image.ref.name": "latest"}}]
    }' | tr -d '\n' >"$layout/index.json"
    printf '{"imageLayoutVersion":"1.0.0"}' >"$layout/oci-layout"

    tar -C "$layout" "${tarflags[@]}" -cf "$out/$name.oci.tar.tmp" oci-layout index.json blobs
    rm -f "$out/$name.docker.tar.tmp"
    skopeo copy -q "oci:$layout:latest" "docker-archive:$out/$name.docker.tar.tmp:$name:latest" >&2

    skopeo inspect "oci:$layout:latest" >/dev/null
    skopeo inspect "oci-archive:$out/$name.oci.tar.tmp:latest" >/dev/null
    skopeo inspect "docker-archive:$out/$name.docker.tar.tmp" >/dev/null

    rm -rf "$out/$name.oci"
    mv "$layout" "$out/$name.oci"
    mv "$out/$name.oci.tar.tmp" "$out/$name.oci.tar"
    mv "$out/$name.docker.tar.tmp" "$out/$name.docker.tar"
}

new_layout() {
    layout=$work/$1.oci
    rm -rf "$layout"
    mkdir -p "$layout/blobs/sha256"
}

is_built() { # NAME INPUTS
    [ -f "$out/$1.stamp" ] && [ "$(cat "$out/$1.stamp")" = "$2" ] &&
        [ -f "$out/$1.oci/index.json" ] && [ -f "$out/$1.oci.tar" ] && [ -f "$out/$1.docker.tar" ]
}

busybox_rootfs() { # DIR
    local r=$1 a
    rm -rf "$r"
    mkdir -p "$r"/{bin,etc,root,home,var,usr/bin,usr/sbin,dev,proc,sys,tmp}
    chmod 1777 "$r/tmp"
    chmod 700 "$r/root"
    cp /bin/busybox "$r/bin/busybox"
    chmod 755 "$r/bin/busybox"
    for a in $(/bin/busybox --list); do
        [ "$a" = busybox ] || ln -s busybox "$r/bin/$a"
    done
    printf '%s\n' 'root:x:0:0:root:/root:/bin/sh' \
        'nobody:x:65534:65534:nobody:/nonexistent:/bin/false' >"$r/etc/passwd"
    printf '%s\n' 'root:x:0:' 'nogroup:x:65534:' >"$r/etc/group"
    chmod 644 "$r/etc/passwd" "$r/etc/group"
    find "$r" -exec touch -h -d @0 {} +
}

build_busybox() {
    log "building busybox"
    new_layout busybox
    busybox_rootfs "$work/busybox-rootfs"
    make_layer "$work/busybox-rootfs" busybox-layer
    rm -f "$work/busybox-layer.tar"
    local layers
    layers=$(jq -cn --arg d "$layer_digest" --argjson s "$layer_size" --arg i "$layer_diff" \
        '[{digest: $d, size: $s, diff_id: $i, created_by: "mkbase.sh: busybox-static rootfs"}]')
    write_image busybox \
        '{"Env":["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],"Cmd":["sh"]}' \
        "$layers"
    echo "$inputs_busybox" >"$out/busybox.stamp"
}

# copy_lib PATH ROOT: copies a library (following symlinks) to the same path under ROOT, keeping
# the symlink chain.
copy_lib() {
    local p=$1 r=$2
    while :; do
        mkdir -p "$r$(dirname "$p")"
        if [ -L "$p" ]; then
            local t
            t=$(readlink "$p")
            ln -sfn "$t" "$r$p"
            case $t in /*) p=$t ;; *) p=$(dirname "$p")/$t ;; esac
        else
            cp -a "$p" "$r$p"
            return
        fi
    done
}

build_golang() {
    log "building golang ($goroot)"
    new_layout golang
    busybox_rootfs "$work/busybox-rootfs"
    make_layer "$work/busybox-rootfs" busybox-layer
    rm -f "$work/busybox-layer.tar"
    local l1
    l1=$(jq -cn --arg d "$layer_digest" --argjson s "$layer_size" --arg i "$layer_diff" \
        '{digest: $d, size: $s, diff_id: $i, created_by: "mkbase.sh: busybox-static rootfs"}')

    local r=$work/golang-rootfs share
    share=/usr/share/$gover
    rm -rf "$r"
    mkdir -p "$r/usr/lib" "$r/usr/share" "$r/usr/bin" "$r/usr/local/bin" "$r/go"
    cp -a "$goroot" "$r/usr/lib/"
    [ -d "$share" ] && cp -a "$share" "$r/usr/share/"
    ln -s "$gover" "$r/usr/lib/go"
    ln -s "../lib/$gover/bin/go" "$r/usr/bin/go"
    ln -s "../lib/$gover/bin/gofmt" "$r/usr/bin/gofmt"
    ln -s "/usr/lib/$gover" "$r/usr/local/go"
    chmod 777 "$r/go"
    # The C libraries the toolchain's dynamically linked binaries need.
    local f lib
    while read -r f; do
        file_is_elf "$f" || continue
        for lib in $(ldd "$f" 2>/dev/null | awk '$2 == "=>" && $3 ~ /^\// {print $3} $1 ~ /^\// {print $1}'); do
            [ -e "$r$lib" ] || copy_lib "$lib" "$r"
        done
    done < <(find "$goroot/" "$share/" -type f -perm -u+x)
    find "$r" -exec touch -h -d @0 {} +
    make_layer "$r" golang-layer
    rm -f "$work/golang-layer.tar"
    rm -rf "$r"
    local layers
    layers=$(jq -cn --argjson l1 "$l1" --arg d "$layer_digest" --argjson s "$layer_size" \
        --arg i "$layer_diff" --arg by "mkbase.sh: Debian golang-go ($gover) toolchain tree" \
        '[$l1, {digest: $d, size: $s, diff_id: $i, created_by: $by}]')
    write_image golang "$(jq -cn '{
        Env: ["PATH=/usr/local/go/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
              "GOPATH=/go", "CGO_ENABLED=0"],
        Cmd: ["sh"], WorkingDir: "/go"}')" "$layers"
    echo "$inputs_golang" >"$out/golang.stamp"
}

file_is_elf() { [ "$(head -c 4 "$1" 2>/dev/null | od -An -c | tr -d ' ')" = '177ELF' ]; }

mkdir -p "$work"
if is_built busybox "$inputs_busybox"; then log "busybox up to date"; else build_busybox; fi
if is_built golang "$inputs_golang"; then log "golang up to date"; else build_golang; fi
rm -rf "$work"
for n in busybox golang; do
    printf '%s\t%s\n' "$out/$n.oci" "$(jq -r '.manifests[0].digest' "$out/$n.oci/index.json")"
done
