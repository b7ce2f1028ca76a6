#!/usr/bin/env bash
# Loaded layers go out as they came in (tar-split): a docker-archive export of a loaded image has
# the original layer tars, byte for byte, and the original config (same image id), whatever form
# the image was loaded from. gc keeps the framing while the image lives and drops it after.
. "$(dirname "$0")/lib.sh"
need jq tar cmp
bases

imgs="busybox golang"
[ "$CSTORE_TEST_LIGHT" = 1 ] && imgs=busybox

# unpack_docker TAR DIR: extracts a docker-archive; prints its config member name.
unpack_docker() {
    rm -rf "$2" && mkdir -p "$2" && tar -C "$2" -xf "$1" && jq -r '.[0].Config' "$2/manifest.json"
}

for n in $imgs; do
    orig_cfg=$(unpack_docker "$BASES/$n.docker.tar" "$T/orig")
    for form in docker.tar oci.tar; do
        ROOT=$T/root-$n-$form
        check "load $n.$form" cs load "$BASES/$n.$form" || continue
        check "$n.$form: export docker-archive" cs export "$n" -o "$T/out.tar" --format docker-archive || continue
        check_eq "$n.$form: same config (image id)" "$(unpack_docker "$T/out.tar" "$T/out")" "$orig_cfg"
        i=0
        for l in $(jq -r '.[0].Layers[]' "$T/orig/manifest.json"); do
            got=$(jq -r ".[0].Layers[$i]" "$T/out/manifest.json")
            check "$n.$form: layer $i is the original tar" cmp "$T/orig/$l" "$T/out/$got"
            i=$((i + 1))
        done
        check "$n.$form: fsck" cs fsck
        rm -rf "$T/out" "$T/out.tar"
    done
    rm -rf "$T/orig"
done

# gc: the framing lives as long as the image.
ROOT=$T/root-gc
must cs load "$BASES/busybox.docker.tar"
check "gc with the image tagged" cs gc
check "export after gc" cs export busybox -o "$T/bb.tar" --format docker-archive
cfg=$(unpack_docker "$T/bb.tar" "$T/bb")
check_eq "after gc: same config" "$cfg" "$(tar -xOf "$BASES/busybox.docker.tar" manifest.json | jq -r '.[0].Config')"
check "rmi busybox" cs rmi busybox
check "gc after rmi" cs gc
check "fsck after gc" cs fsck
check_eq "store empty after gc" "$(du_counts | jq -c '[.images, .trees, .contents, .chunks]')" '[0,0,0,0]'
finish
