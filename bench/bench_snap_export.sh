#!/usr/bin/env bash
# bench_snap_export.sh - issue 11 items 2, 3, 6: the first build after loading golang in a fresh
# store (snapshot unpack), the store's size on disk after it, and `cstore export` of hello:multi
# (gzip, zstd; layer blobs cached) against `skopeo copy` of the same image.
#
#   CSTORE=path/to/cstore bash bench/bench_snap_export.sh [RUNS]   (default 3; medians)
#
# Prints one line per measure: "name  median_seconds  (runs...)". Compare two builds by running
# it twice with CSTORE set to each, on the same machine.
. "$(dirname "$0")/lib.sh"
runs=${1:-3}
bench_init snapexp
cs() { "$cstore" --root "$1" "${@:2}"; }
csb() { cs "$1" build --progress quiet --network none "${@:2}"; }
report() { local name=$1; shift; printf '%-34s %8.3f  (%s)\n' "$name" "$(printf '%s\n' "$@" | median)" "$*"; }

# ---- first build after loading golang, fresh store each run ----
a=(); s=()
for i in $(seq "$runs"); do
    r=$work/cold$i
    cs "$r" load "$bases/golang.docker.tar" >/dev/null
    cs "$r" load "$bases/busybox.docker.tar" >/dev/null
    sync
    a+=("$(wall csb "$r" -t hello:multi "$src/examples/hello-go")")
    s+=("$(du -sbx "$r" | cut -f1)")
    [ "$i" = 1 ] || rm -rf "$r"
done
report "first build after load (s)" "${a[@]}"
report "du -sb ROOT after it (MB)" $(for x in "${s[@]}"; do echo "$x / 1000000" | bc -l; done)
r=$work/cold1
cs "$r" du >"$work/du.txt" 2>&1 && sed 's/^/    cstore du: /' "$work/du.txt"

# ---- export hello:multi: once to fill the layer_blobs cache, then timed ----
for comp in gzip zstd; do
    cs "$r" export hello:multi -o "$work/warm.tar" --compression $comp >/dev/null
    e=()
    for i in $(seq $((runs * 2 + 1))); do
        rm -f "$work/out.tar"
        e+=("$(wall cs "$r" export hello:multi -o "$work/out.tar" --compression $comp)")
    done
    report "export hello:multi $comp (s)" "${e[@]}"
    cmp -s "$work/warm.tar" "$work/out.tar" && echo "    $comp export deterministic: yes" \
        || echo "    $comp export deterministic: NO"
done
if command -v skopeo >/dev/null; then
    cs "$r" export hello:multi -o "$work/src.oci" --format oci-dir --compression none >/dev/null
    k=()
    for i in $(seq $((runs * 2 + 1))); do
        rm -f "$work/sk.tar"
        k+=("$(wall skopeo copy -q --dest-compress-format gzip "oci:$work/src.oci" "oci-archive:$work/sk.tar")")
    done
    report "skopeo copy oci -> oci-archive gzip (s)" "${k[@]}"
fi
