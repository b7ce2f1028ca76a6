#!/usr/bin/env bash
# examples/demo.sh - the README's first command ("main job"), on a fresh Debian 12 machine, as root.
#
# Today: installs the packages, builds cstore (Release, build/), makes the busybox and golang base
# images from Debian packages (tests/mkbase.sh, no registry needed), loads them into a fresh store
# (./out/store), exports golang as an OCI archive and shows `cstore images` and `cstore du`.
# Later steps (building examples/hello-go) go in as more step functions below.
#
#   CSTORE_DEMO_NO_APT=1   skip apt-get (packages already installed)
#   CSTORE_DEMO_KEEP=1     keep ./out/store from a previous run instead of starting fresh
set -euo pipefail

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
    local sudo=
    [ "$(id -u)" = 0 ] || sudo=sudo
    $sudo apt-get update
    # shellcheck disable=SC2046
    $sudo apt-get install -y --no-install-recommends $(grep -v '^#' .ci/packages)
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

install_packages
build_cstore
make_bases
fresh_store
load_bases
export_golang
show
