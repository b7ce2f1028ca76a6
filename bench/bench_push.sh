#!/usr/bin/env bash
# bench_push.sh - issue 8's push benchmark: examples/hello-go's image (multi-stage: golang ->
# busybox) pushed to a loopback registry (Debian's docker-registry, plain HTTP): first push, re-push
# (nothing to send), push after a one-line change in app.go; and `skopeo copy` from an OCI layout of
# the same images (`cstore export --format oci-dir`) into a registry of its own as the baseline, in
# the same run. Bytes sent are counted from the registry's access log: the blobs whose upload was
# completed (PUT ...?digest=) and their sizes in the registry's storage.
#
#   bash bench/bench_push.sh [RUNS]     (default 3; medians, min-max)
#
# Needs a Release build in build/, runc, docker-registry, skopeo, jq, bc and the base images of
# tests/mkbase.sh. Each run starts from a copy of a store where hello-go was built (so its layers'
# gzip digests are not cached yet: the first push learns them) and a fresh registry per tool.
# Prints a Markdown report on stdout (bench/RESULTS-registry.md holds the last one recorded).
. "$(dirname "$0")/lib.sh"
runs=${1:-3}
bench_init push
load_start=$(cut -d" " -f1-3 /proc/loadavg)
for t in runc docker-registry skopeo jq bc curl python3 /usr/bin/time; do
    command -v "$t" >/dev/null || { echo "bench: '$t' not found" >&2; exit 1; }
done
bench_bases
log() { echo "bench: $*" >&2; }

# registry_lib.sh wants lib.sh's $T, need/skip and _cleanup: the bench's own.
T=$work
need() { :; }
skip() { echo "bench: $*" >&2; exit 1; }
_cleanup() { bench_cleanup; }
CSTORE_SRC=$src
. "$src/tests/integration/registry_lib.sh"
set +u # registry_lib.sh reads unset variables; the bench does not rely on -u past here

cs() { "$cstore" --root "$1" "${@:2}"; }
# a fresh registry (its storage removed): REG_ADDR, REG_LOG, REG_DIR
# (registry_stop ends with `wait` on a killed pid: non-zero, which set -e would take for a failure)
fresh_registry() { registry_stop || true; rm -rf "$work/registry"; registry_start plain >/dev/null; }
# blob bytes uploaded since access-log line $1: sizes of the blobs whose upload completed
bytes_since() {
    local d sum=0
    for d in $(tail -n +"$1" "$REG_LOG" | grep -oE '"PUT /v2/[^ ]*/blobs/uploads/[^ ]*digest=sha256(:|%3A)[0-9a-f]{64}' |
        grep -oE '[0-9a-f]{64}$'); do
        sum=$((sum + $(stat -c %s "$REG_DIR/data/docker/registry/v2/blobs/sha256/${d:0:2}/$d/data")))
    done
    echo "$sum"
}
# "WALL CPU" seconds of a command that must succeed (CPU: user + system of the client process and
# its children; lib.sh's wall ignores failures)
timed() {
    /usr/bin/time -f '%e %U %S' -o "$work/time" "$@" >/dev/null 2>"$work/last.err" ||
        { log "failed: $*"; cat "$work/last.err" >&2; exit 1; }
    awk '{ printf "%s %.3f\n", $1, $2 + $3 }' "$work/time"
}
# measure NAME CMD...: adds CMD's wall time to NAME's samples, its CPU time to NAME_cpu's (the bench
# stops if it fails)
measure() {
    local name=$1 t
    shift
    t=$(timed "$@")
    add "$name" "${t% *}"
    add "${name}_cpu" "${t#* }"
}
lines() { echo $(($(wc -l <"$REG_LOG") + 1)); }
setmsg() { sed -i "s/fmt.Println(.*)/fmt.Println(\"$2\")/" "$1/app.go"; }

# ---- the store: hello-go built once (v1), copied for every run ----
base=$work/base
proj=$work/hello-go
cp -r "$src/examples/hello-go" "$proj"
cs "$base" load "$bases/golang.docker.tar" >/dev/null
cs "$base" load "$bases/busybox.docker.tar" >/dev/null
log "building hello-go"
cs "$base" build --progress quiet --network none -t hello:1 "$proj" >/dev/null
nlayers=$(cs "$base" inspect hello:1 | jq '.layers | length')

declare -A S # samples: "name" -> "v1 v2 ..."
add() { S[$1]="${S[$1]:-} $2"; }
for ((i = 1; i <= runs; i++)); do
    log "run $i/$runs"
    r=$work/run
    rm -rf "$r" "$work/oci1" "$work/oci2"
    cp -a "$base" "$r"
    setmsg "$proj" "Hello, World!"
    # cstore
    fresh_registry
    n=$(lines)
    measure cs_first "$cstore" --root "$r" push --progress quiet hello:1 "$REG_ADDR/bench/hello:1"
    add cs_first_bytes "$(bytes_since "$n")"
    n=$(lines)
    measure cs_again "$cstore" --root "$r" push --progress quiet hello:1 "$REG_ADDR/bench/hello:1"
    add cs_again_bytes "$(bytes_since "$n")"
    setmsg "$proj" "Hello, push $i!"
    cs "$r" build --progress quiet --network none -t hello:2 "$proj" >/dev/null
    n=$(lines)
    measure cs_change "$cstore" --root "$r" push --progress quiet hello:2 "$REG_ADDR/bench/hello:2"
    add cs_change_bytes "$(bytes_since "$n")"
    # a first push again, into a new registry: the layer digests are cached now
    fresh_registry
    n=$(lines)
    measure cs_cached "$cstore" --root "$r" push --progress quiet hello:1 "$REG_ADDR/bench/hello:1"
    add cs_cached_bytes "$(bytes_since "$n")"
    # skopeo from OCI layouts of the same images (exported outside the timing)
    cs "$r" export hello:1 -o "$work/oci1" --format oci-dir
    cs "$r" export hello:2 -o "$work/oci2" --format oci-dir
    fresh_registry
    sk=(skopeo copy -q --dest-tls-verify=false)
    n=$(lines)
    measure sk_first "${sk[@]}" "oci:$work/oci1" "docker://$REG_ADDR/bench/hello:1"
    add sk_first_bytes "$(bytes_since "$n")"
    n=$(lines)
    measure sk_again "${sk[@]}" "oci:$work/oci1" "docker://$REG_ADDR/bench/hello:1"
    add sk_again_bytes "$(bytes_since "$n")"
    n=$(lines)
    measure sk_change "${sk[@]}" "oci:$work/oci2" "docker://$REG_ADDR/bench/hello:2"
    add sk_change_bytes "$(bytes_since "$n")"
done
registry_stop || true

med() { printf '%s\n' ${S[$1]} | median; }
# "123 ms (110-140)": median and range of the samples of $1 (seconds)
ms() {
    local lo hi
    lo=$(printf '%s\n' ${S[$1]} | sort -g | head -n1)
    hi=$(printf '%s\n' ${S[$1]} | sort -g | tail -n1)
    printf '%.0f ms (%.0f-%.0f)' "$(echo "$(med "$1") * 1000" | bc -l)" \
        "$(echo "$lo * 1000" | bc -l)" "$(echo "$hi * 1000" | bc -l)"
}

echo "# Push benchmark: examples/hello-go's image to a loopback registry, cstore vs skopeo"
echo
echo "- date: $(date -u +%Y-%m-%dT%H:%MZ)"
echo "- machine: $(. /etc/os-release; echo "$PRETTY_NAME"), kernel $(uname -r), $(nproc) cores, $(free -g | awk '/Mem/ {print $2}') GiB"
echo "- versions: cstore $(git -C "$src" rev-parse --short HEAD) (Release build), $(skopeo --version), docker-registry $(dpkg-query -W -f '${Version}' docker-registry 2>/dev/null)"
echo "- image: hello:1 ($nlayers layers: busybox + the binary), built with --network none; one-line change: the message in app.go (hello:2)"
echo "- load average (1/5/15 min) at start: $load_start, at end: $(cut -d" " -f1-3 /proc/loadavg) (other work on the machine shows here)"
echo "- runs: $runs, medians (min-max) of wall time and of the client's CPU time (user + system, /usr/bin/time); bytes: blob bytes whose upload the registry completed (access log + blob sizes)"
echo "- cstore: \`cstore push --progress quiet\` from a copy of the store where the image was built (gzip digests not yet cached); skopeo: \`skopeo copy oci:DIR docker://...\` from \`cstore export --format oci-dir\` layouts (export not timed); a fresh registry per tool and run"
echo
echo "| push | cstore: wall | CPU | bytes | skopeo copy: wall | CPU | bytes |"
echo "|---|---|---|---|---|---|---|"
for c in first cached again change; do
    case $c in first) name="first push" ;; cached) name="first push, layer digests already cached (cstore: an earlier push or export)" ;; again) name="re-push, nothing changed" ;; change) name="after a one-line change in app.go" ;; esac
    if [ "$c" = cached ]; then
        echo "| $name | $(ms cs_$c) | $(ms cs_${c}_cpu) | $(med cs_${c}_bytes) | - | - | - |"
    else
        echo "| $name | $(ms cs_$c) | $(ms cs_${c}_cpu) | $(med cs_${c}_bytes) | $(ms sk_$c) | $(ms sk_${c}_cpu) | $(med sk_${c}_bytes) |"
    fi
done
