#!/usr/bin/env bash
# bench_snap_export.sh - issue 11 items 2, 3, 6, two cstore builds side by side: the first build
# after loading golang in a fresh store (the snapshot unpack), the store's size on disk after it,
# and `cstore export` of hello:multi and golang (layer blobs cached) against `skopeo copy` of the
# same images. Runs alternate between the two builds (A B A B ...), so that both see the same
# load on a shared machine.
#
#   CSTORE_A=old/cstore CSTORE=new/cstore bash bench/bench_snap_export.sh [RUNS]  (default 3)
#
# Prints one line per measure and build: "name  median  (runs...)".
. "$(dirname "$0")/lib.sh"
runs=${1:-3}
bench_init snapexp
A=${CSTORE_A:?set CSTORE_A to the cstore to compare with}
B=$cstore
report() { local name=$1; shift; printf '%-44s %8.3f  (%s)\n' "$name" "$(printf '%s\n' "$@" | median)" "$*"; }
cs() { local bin=$1; shift; "$bin" --root "$@"; }

echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
# ---- the first RUN on golang in a fresh store (its snapshot unpacked: the RUN itself is `true`),
# then the first build of hello-go after loading golang, fresh store each run ----
mkdir -p "$work/true"
printf 'FROM golang\nRUN true\n' > "$work/true/Dockerfile"
declare -A t u s
for i in $(seq "$runs"); do
    for k in A B; do
        bin=${!k}; r=$work/$k$i
        cs "$bin" "$r" load "$bases/golang.docker.tar" >/dev/null
        sync
        u[$k]+=" $(wall cs "$bin" "$r" build --progress quiet --network none -t t "$work/true")"
        rm -rf "$r"
        cs "$bin" "$r" load "$bases/golang.docker.tar" >/dev/null
        cs "$bin" "$r" load "$bases/busybox.docker.tar" >/dev/null
        sync
        t[$k]+=" $(wall cs "$bin" "$r" build --progress quiet --network none -t hello:multi "$src/examples/hello-go")"
        s[$k]+=" $(echo "$(du -sbx "$r" | cut -f1) / 1000000" | bc -l)"
        [ "$i" = 1 ] || rm -rf "$r"
    done
done
for k in A B; do
    report "$k first RUN true on golang (s)" ${u[$k]}
    report "$k first hello-go build after load (s)" ${t[$k]}
    report "$k du -sb ROOT after it (MB)" ${s[$k]}
done
cs "$B" "$work/B1" du | sed 's/^/    B du: /'

# ---- exports, layer blobs cached (one export first) ----
for img in hello:multi golang; do
    n=$((runs * 2 + 1)); [ $img = golang ] && n=$runs
    for comp in gzip zstd; do
        t=()
        for k in A B; do
            cs "${!k}" "$work/${k}1" export $img -o "$work/$k.warm.tar" --compression $comp >/dev/null
        done
        declare -A e=()
        for i in $(seq $n); do
            for k in A B; do
                rm -f "$work/$k.out.tar"
                e[$k]+=" $(wall cs "${!k}" "$work/${k}1" export $img -o "$work/$k.out.tar" --compression $comp)"
            done
        done
        for k in A B; do
            report "$k export $img $comp (s)" ${e[$k]}
            cmp -s "$work/$k.warm.tar" "$work/$k.out.tar" || echo "    $k $img $comp: NOT deterministic"
        done
        unset e
        rm -f "$work"/*.tar
    done
    if command -v skopeo >/dev/null; then
        cs "$B" "$work/B1" export $img -o "$work/src.oci" --format oci-dir --compression none >/dev/null
        k=()
        for i in $(seq $n); do
            rm -f "$work/sk.tar"
            k+=("$(wall skopeo copy -q --dest-compress-format gzip "oci:$work/src.oci" "oci-archive:$work/sk.tar")")
        done
        report "skopeo copy $img oci -> oci-archive gzip (s)" "${k[@]}"
        rm -rf "$work/src.oci" "$work/sk.tar"
    fi
done
echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
