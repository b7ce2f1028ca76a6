#!/usr/bin/env bash
# bench_pull.sh - issue 8's pull benchmark: golang (~470 MB of layers) from Debian's
# docker-registry on loopback into an empty store, cstore against `buildah pull` in the same run
# (and `docker pull` when BENCH_DOCKER=1 and dockerd can be started).
#
#   bash bench/bench_pull.sh [RUNS]      (default 3; medians are reported)
#
# Needs a Release build in build/, the base images of tests/mkbase.sh, docker-registry, skopeo
# and buildah. Prints a Markdown report on stdout (bench/RESULTS-registry.md holds the last one).
. "$(dirname "$0")/lib.sh"
runs=${1:-3}
bench_init pull
bench_bases
# The test's registry helpers: they need need/skip, $T and a _cleanup to chain to.
set +u
. "$src/tests/integration/need.sh"
T=$work
CSTORE_SRC=$src
CSTORE_BASES=$bases
_cleanup() {
    local rc=$?
    bench_cleanup
    exit "$rc"
}
. "$src/tests/integration/registry_lib.sh"
set -u
trap 'set +e; _reg_exit' EXIT # its `kill && wait` must not trip set -e
registry_start plain >&2
registry_seed lib/golang:1 golang >&2
ref=$REG_ADDR/lib/golang:1

# timed CMD...: appends "wall cpu" (seconds; cpu = user + sys of the command and its children) to
# the file $1 (command output discarded)
timed() {
    local out=$1
    shift
    /usr/bin/time -f '%e %U %S' -o "$work/t" "$@" >/dev/null 2>&1 || { echo "bench: $* failed" >&2; exit 1; }
    awk '{ printf "%s %.2f\n", $1, $2 + $3 }' "$work/t" >>"$out"
}
cs_pull() { # JOBS: one pull into an empty store
    rm -rf "$work/cs"
    CSTORE_PULL_JOBS=$1 timed "$work/cs$1" "$cstore" --root "$work/cs" pull --progress quiet "$ref"
}
bah_pull() {
    rm -rf "$work/bah"
    timed "$work/bah.t" buildah --root "$work/bah/root" --runroot "$work/bah/run" \
        --storage-driver overlay pull --tls-verify=false -q "docker://$ref"
}
dsock=unix://$work/docker/sock
# CPU seconds dockerd and its children (containerd, decompressors) used so far
dk_cpu() {
    local p
    for p in $dpid $(pgrep -P "$dpid"); do
        awk '{ print $14 + $15 + $16 + $17 }' "/proc/$p/stat"
    done | awk -v hz="$(getconf CLK_TCK)" '{ s += $1 } END { printf "%.2f\n", s / hz }'
}
dk_pull() {
    docker -H "$dsock" rmi -f "$ref" >/dev/null 2>&1 || true
    local c0
    c0=$(dk_cpu)
    timed "$work/dk.c" docker -H "$dsock" pull -q "$ref"
    # the daemon's CPU added to the client's
    tail -n 1 "$work/dk.c" | awk -v d="$(echo "$(dk_cpu) - $c0" | bc -l)" '{ printf "%s %.2f\n", $1, $2 + d }' >>"$work/dk.t"
}
have_docker=0
if [ "${BENCH_DOCKER:-0}" = 1 ] && command -v dockerd >/dev/null; then
    mkdir -p "$work/docker"
    dockerd --data-root "$work/docker/root" --exec-root "$work/docker/exec" \
        --pidfile "$work/docker/pid" --host "$dsock" --bridge=none --iptables=false \
        --insecure-registry "$REG_ADDR" >"$work/docker/log" 2>&1 &
    dpid=$!
    bench_stop() { kill "$dpid" 2>/dev/null; wait "$dpid" 2>/dev/null; registry_stop; }
    for _ in $(seq 100); do
        docker -H "$dsock" info >/dev/null 2>&1 && have_docker=1 && break
        sleep 0.2
    done
    [ $have_docker = 1 ] || { echo "bench: dockerd did not start:" >&2; tail -5 "$work/docker/log" >&2; }
fi
# Interleaved (one of each per round) so that other load on the machine hits all alike.
for _ in $(seq "$runs"); do
    cs_pull 4
    cs_pull 1
    bah_pull
    [ $have_docker = 0 ] || dk_pull
done
med() { cut -d' ' -f"$2" "$work/$1" | median; }
size=$(du -sb "$REG_DIR/data" | cut -f1)
ratio() { printf '%.2f' "$(echo "$2 / $1" | bc -l)"; }
row() { # NAME FILE
    echo "| $1 | $(med "$2" 1) s | $(ratio "$(med cs4 1)" "$(med "$2" 1)")x | $(med "$2" 2) s | $(ratio "$(med cs4 2)" "$(med "$2" 2)")x |"
}

cat <<EOT
# cstore pull benchmark

- date: $(date -u +%Y-%m-%dT%H:%MZ)
- machine: $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')), $(free -g | awk '/Mem:/ {print $2}') GiB; load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)
- versions: cstore $(git -C "$src" rev-parse --short HEAD), $(buildah --version)
- image: golang from \$CSTORE_BASES pushed by skopeo to docker-registry 2.8 on loopback ($((size / 1000000)) MB in the registry); runs: $runs, interleaved, medians; every pull into an empty store
- command: \`$([ $have_docker = 1 ] && echo "BENCH_DOCKER=1 ")bash bench/bench_pull.sh $runs\`

| puller | wall time | cstore (4 downloads) faster by | CPU (user+sys) | cstore uses less CPU by |
|---|---|---|---|---|
EOT
row "cstore pull (4 parallel downloads)" cs4
row "cstore pull (CSTORE_PULL_JOBS=1)" cs1
row "buildah pull (overlay)" bah.t
[ $have_docker = 0 ] || row "docker pull (CPU: client + dockerd and its children)" dk.t
exit 0
