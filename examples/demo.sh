#!/usr/bin/env bash
# examples/demo.sh - the README's first command ("main job"), on a fresh Debian 12 machine, as root.
#
# Installs the packages, builds cstore (Release, build/), makes the busybox and golang base images
# from Debian packages (tests/mkbase.sh, no registry needed), loads them into a fresh store
# (./out/store), builds examples/hello-go three ways (single-stage on golang, multi-stage onto
# busybox, multi-stage onto scratch), runs each (they print "Hello, World!"), rebuilds with
# nothing changed, exports the multi-stage image as an OCI archive, and prints the three image
# sizes side by side, then `cstore du`.
#
#   CSTORE_DEMO_NO_APT=1   skip apt-get (packages already installed)
#   CSTORE_DEMO_KEEP=1     keep ./out/store from a previous run instead of starting fresh
set -euo pipefail
# Not root: run again through sudo (packages, overlay mounts and runc need root).
[ "$(id -u)" = 0 ] || exec sudo -E bash "$0" "$@"

cd "$(dirname "$0")/.."
src=$(pwd)
out=$src/out
store=$out/store
bases=$out/bases
cstore=$src/build/cstore
export DEBIAN_FRONTEND=noninteractive

step() { printf '\n=== %s\n' "$*"; }
# run CMD...: shows the command, then runs it, timing it.
run() {
    printf '$ %s\n' "$*"
    local t0=${EPOCHREALTIME/./} t1
    "$@"
    t1=${EPOCHREALTIME/./}
    printf '  (%d.%02ds)\n' $(((t1 - t0) / 1000000)) $(((t1 - t0) / 10000 % 100))
}
cs() { "$cstore" --root "$store" "$@"; }

install_packages() {
    [ "${CSTORE_DEMO_NO_APT:-0}" = 1 ] && return
    step "installing Debian packages"
    apt-get update
    # shellcheck disable=SC2046
    apt-get install -y --no-install-recommends $(grep -v '^#' .ci/packages)
}

build_cstore() {
    step "building cstore (Release)"
    cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
    cmake --build build -j "$(nproc)"
}

make_bases() {
    step "making the base images from Debian packages (busybox-static, golang-go)"
    bash tests/mkbase.sh "$bases"
    ls -la "$bases"/{busybox,golang}.{oci.tar,docker.tar}
}

fresh_store() {
    [ "${CSTORE_DEMO_KEEP:-0}" = 1 ] && return
    rm -rf "$store"
}

load_bases() {
    step "loading the base images into $store"
    run cs load "$bases/busybox.oci.tar"
    run cs load "$bases/golang.docker.tar"
}

export_golang() {
    step "exporting golang as an OCI archive"
    run cs export golang -o "$out/golang.oci.tar" --format oci-archive
    ls -la "$out/golang.oci.tar"
    command -v skopeo >/dev/null && skopeo inspect "oci-archive:$out/golang.oci.tar" |
        jq -c '{Digest, Layers}' 2>/dev/null || true
}

show() {
    step "cstore images"
    cs images
    step "cstore du"
    cs du
}

ex=$src/examples/hello-go

build_examples() {
    step "building examples/hello-go: single-stage, multi-stage (busybox), multi-stage (scratch)"
    run cs build --progress plain -t hello:single -f "$ex/Dockerfile.single" "$ex"
    run cs build --progress plain -t hello:multi -f "$ex/Dockerfile" "$ex"
    run cs build --progress plain -t hello:scratch -f "$ex/Dockerfile.scratch" "$ex"
    step "rebuilding the multi-stage image with nothing changed"
    run cs build --progress plain -t hello:multi -f "$ex/Dockerfile" "$ex"
}

run_examples() {
    step "running them"
    for t in single multi scratch; do
        printf 'hello:%-8s -> %s\n' "$t" "$(cs run "hello:$t")"
    done
}

export_multi() {
    step "exporting hello:multi as an OCI archive (checked by skopeo)"
    run cs export hello:multi -o "$out/hello-multi.oci.tar" --format oci-archive
    command -v skopeo >/dev/null && skopeo inspect "oci-archive:$out/hello-multi.oci.tar" |
        jq -c '{Digest, Layers}' 2>/dev/null || true
}

sizes() {
    step "image sizes (bytes of the files in their layers)"
    local single multi scratch
    single=$(cs inspect hello:single | jq '[.layers[].size] | add')
    multi=$(cs inspect hello:multi | jq '[.layers[].size] | add')
    scratch=$(cs inspect hello:scratch | jq '[.layers[].size] | add')
    printf '%-28s %12s %10s\n' image bytes "vs single"
    printf '%-28s %12d %10s\n' "hello:single (golang)" "$single" 1x
    printf '%-28s %12d %10s\n' "hello:multi (busybox)" "$multi" "1/$((single / multi))"
    printf '%-28s %12d %10s\n' "hello:scratch" "$scratch" "1/$((single / scratch))"
}

install_packages
build_cstore
make_bases
fresh_store
load_bases
build_examples
run_examples
export_multi
sizes
show
