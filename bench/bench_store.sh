#!/usr/bin/env bash
# bench_store.sh - issue 2's store benchmarks, cstore against buildah/skopeo in the same run.
#
#   bash bench/bench_store.sh [RUNS]      (default 3; medians are reported)
#
# Needs a Release build in build/ (cmake -B build -DCMAKE_BUILD_TYPE=Release) and the Debian
# packages of .ci/run plus buildah. Inputs: the Debian-made base images of tests/mkbase.sh
# (golang: busybox-static + the golang-go toolchain tree, ~460 MB uncompressed). Prints a
# Markdown report on stdout; bench/RESULTS.md holds the last one recorded.
. "$(dirname "$0")/lib.sh"
runs=${1:-3}
limits=${BENCH_LIMITS:-$src/build/bench/bench_limits}
bench_init store
bench_bases

mb() { echo "scale=1; $1 / 1000000" | bc -l; }
rate() { echo "scale=0; $1 / 1000000 / $2" | bc -l; }
ratio() { echo "scale=1; $1 / $2" | bc -l; }
alloc() { du -s --block-size=1 "$1" | cut -f1; }

# Uncompressed layer bytes of the golang image: sum of its layer tar sizes.
layer_bytes=$(tar -tvf "$bases/golang.docker.tar" | awk '$1 ~ /^-/ && $6 ~ /\.tar$/ {s += $3} END {print s}')


echo "# cstore store benchmarks"
echo
echo "- date: $(date -u +%Y-%m-%dT%H:%MZ)"
echo "- machine: $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')), $(free -g | awk '/Mem:/ {print $2}') GiB, $(df -T "$work" | awk 'NR==2 {print $2}') on $(df "$work" | awk 'NR==2 {print $1}')"
echo "- input: golang base image from tests/mkbase.sh, $(mb "$layer_bytes") MB of uncompressed layers; runs: $runs, medians"
echo "- versions: $($cstore --version 2>/dev/null || echo cstore $(git -C "$src" rev-parse --short HEAD)), $(buildah --version), $(skopeo --version)"
echo

# ---- load ----
declare -A t
for form in oci.tar docker.tar; do
    xs=(); ys=()
    for i in $(seq "$runs"); do
        rm -rf "$work/cs"
        xs+=("$(wall "$cstore" --root "$work/cs" load "$bases/golang.$form")")
        rm -rf "$work/bah"
        case $form in
            oci.tar) ref="oci-archive:$bases/golang.oci.tar" ;;
            docker.tar) ref="docker-archive:$bases/golang.docker.tar" ;;
        esac
        ys+=("$(wall bah pull -q "$ref")")
    done
    t[cs_$form]=$(printf '%s\n' "${xs[@]}" | median)
    t[bah_$form]=$(printf '%s\n' "${ys[@]}" | median)
done
echo "## Load (golang image)"
echo
echo "| input | cstore load | MB/s | buildah pull | MB/s | speed-up |"
echo "|---|---|---|---|---|---|"
for form in oci.tar docker.tar; do
    case $form in oci.tar) name="OCI archive, gzip layers" ;; docker.tar) name="docker-archive, uncompressed" ;; esac
    printf '| %s | %.2f s | %s | %.2f s | %s | %sx |\n' "$name" "${t[cs_$form]}" \
        "$(rate "$layer_bytes" "${t[cs_$form]}")" "${t[bah_$form]}" \
        "$(rate "$layer_bytes" "${t[bah_$form]}")" "$(ratio "${t[bah_$form]}" "${t[cs_$form]}")"
done
echo

# ---- disk ----
rm -rf "$work/cs" "$work/bah"
"$cstore" --root "$work/cs" load "$bases/golang.docker.tar" >/dev/null
bah pull -q "docker-archive:$bases/golang.docker.tar" >/dev/null
cs_disk=$(alloc "$work/cs")
bah_disk=$(alloc "$work/bah/root")
stored=$("$cstore" --root "$work/cs" du --json | jq .stored_bytes)
echo "## Bytes on disk after loading golang"
echo
echo "| | bytes | vs. uncompressed |"
echo "|---|---|---|"
echo "| uncompressed layers | $(mb "$layer_bytes") MB | 1.00 |"
echo "| cstore root (all files) | $(mb "$cs_disk") MB | $(echo "scale=2; $cs_disk / $layer_bytes" | bc -l) |"
echo "| cstore chunk values (zstd -1) | $(mb "$stored") MB | $(echo "scale=2; $stored / $layer_bytes" | bc -l) |"
echo "| buildah containers-storage (overlay) | $(mb "$bah_disk") MB | $(echo "scale=2; $bah_disk / $layer_bytes" | bc -l) |"
echo
"$cstore" --root "$work/cs" load "$bases/busybox.docker.tar" >/dev/null
echo "Loading busybox next to golang (its layer is golang's first) adds $(( $(alloc "$work/cs") - cs_disk )) bytes to the cstore root."
echo

# ---- export ----
echo "## Export (golang image)"
echo
echo "| output | cstore first | cstore cached | MB/s (first) | skopeo copy from containers-storage | speed-up |"
echo "|---|---|---|---|---|---|"
for spec in "oci-archive gzip" "oci-archive zstd" "oci-archive none" "docker-archive none"; do
    set -- $spec
    fmt=$1 comp=$2
    a=(); b=(); c=()
    for i in $(seq "$runs"); do
        "$cstore" --root "$work/cs" gc >/dev/null # drops nothing tagged, keeps the digests cache honest
        rm -rf "$work/cs-copy"; cp -a "$work/cs" "$work/cs-copy"
        # first export: a fresh copy of the store without cached layer digests for this compression
        a+=("$(wall "$cstore" --root "$work/cs-copy" export golang -o "$work/out.tar" --format "$fmt" --compression "$comp")")
        b+=("$(wall "$cstore" --root "$work/cs-copy" export golang -o "$work/out.tar" --format "$fmt" --compression "$comp")")
        rm -f "$work/out.tar"
        case $comp in gzip) sc=(--dest-compress-format gzip) ;; zstd) sc=(--dest-compress-format zstd) ;; none) sc=(--dest-decompress) ;; esac
        [ "$fmt" = docker-archive ] && sc=()
        c+=("$(wall skopeo copy -q "${sc[@]}" "containers-storage:[overlay@$work/bah/root+$work/bah/run]docker.io/library/golang:latest" "$fmt:$work/out.tar")")
        rm -f "$work/out.tar"
    done
    fa=$(printf '%s\n' "${a[@]}" | median); fb=$(printf '%s\n' "${b[@]}" | median); fc=$(printf '%s\n' "${c[@]}" | median)
    printf '| %s %s | %.2f s | %.2f s | %s | %.2f s | %sx |\n' "$fmt" "$comp" "$fa" "$fb" "$(rate "$layer_bytes" "$fa")" "$fc" "$(ratio "$fc" "$fa")"
done
rm -rf "$work/cs-copy"
echo

# ---- gc ----
xs=()
for i in $(seq "$runs"); do
    rm -rf "$work/g"; "$cstore" --root "$work/g" load "$bases/golang.docker.tar" >/dev/null
    "$cstore" --root "$work/g" rmi golang >/dev/null
    xs+=("$(wall "$cstore" --root "$work/g" gc)")
done
echo "## gc after rmi of everything"
echo
echo "gc of the golang image's $("$cstore" --root "$work/cs" du --json | jq .chunks) chunks: $(printf '%.2f' "$(printf '%s\n' "${xs[@]}" | median)") s (median); du afterwards:"
echo
echo '```'
"$cstore" --root "$work/g" du
echo '```'
echo

# ---- single-core limits ----
if [ -x "$limits" ]; then
    tar cf "$work/go.tar" -C /usr/lib go-1.19
    echo "## Single-core limits on this machine (bench_limits on a tar of /usr/lib/go-1.19)"
    echo
    echo '```'
    "$limits" --file "$work/go.tar" --runs "$runs"
    echo '```'
fi
