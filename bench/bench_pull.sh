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
_cleanup() { bench_cleanup; }
. "$src/tests/integration/registry_lib.sh"
set -u
registry_start plain >&2
registry_seed lib/golang:1 golang >&2
ref=$REG_ADDR/lib/golang:1

cs_pull() { # JOBS: one pull into an empty store
    rm -rf "$work/cs"
    CSTORE_PULL_JOBS=$1 wall "$cstore" --root "$work/cs" pull --progress quiet "$ref"
}
bah_pull() {
    rm -rf "$work/bah"
    wall bah pull --tls-verify=false -q "docker://$ref"
}
run_median() { for _ in $(seq "$runs"); do "$@"; done | median; }

cs4=$(run_median cs_pull 4)
cs1=$(run_median cs_pull 1)
bh=$(run_median bah_pull)
dk=
if [ "${BENCH_DOCKER:-0}" = 1 ] && command -v dockerd >/dev/null; then
    mkdir -p "$work/docker"
    dockerd --data-root "$work/docker/root" --exec-root "$work/docker/exec" \
        --pidfile "$work/docker/pid" --host "unix://$work/docker/sock" --bridge=none \
        --iptables=false --insecure-registry "$REG_ADDR" >"$work/docker/log" 2>&1 &
    dpid=$!
    bench_stop() { kill "$dpid" 2>/dev/null; wait "$dpid" 2>/dev/null; registry_stop; }
    for _ in $(seq 100); do docker -H "unix://$work/docker/sock" info >/dev/null 2>&1 && break; sleep 0.2; done
    dk_pull() {
        docker -H "unix://$work/docker/sock" rmi -f "$ref" >/dev/null 2>&1 || true
        docker -H "unix://$work/docker/sock" builder prune -af >/dev/null 2>&1 || true
        wall docker -H "unix://$work/docker/sock" pull -q "$ref"
    }
    dk=$(run_median dk_pull)
fi
size=$(du -sb "$REG_DIR/data" | cut -f1)
ratio() { printf '%.2f' "$(echo "$2 / $1" | bc -l)"; }

cat <<EOT
# cstore pull benchmark

- date: $(date -u +%Y-%m-%dT%H:%MZ)
- machine: $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')), $(free -g | awk '/Mem:/ {print $2}') GiB
- versions: cstore $(git -C "$src" rev-parse --short HEAD), $(buildah --version)
- image: golang from \$CSTORE_BASES pushed by skopeo to docker-registry 2.8 on loopback ($((size / 1000000)) MB in the registry); runs: $runs, medians; every pull into an empty store
- command: \`bash bench/bench_pull.sh $runs\`

| puller | wall time | cstore faster by |
|---|---|---|
| cstore pull (4 parallel downloads) | ${cs4} s | |
| cstore pull (CSTORE_PULL_JOBS=1) | ${cs1} s | $(ratio "$cs4" "$cs1")x |
| buildah pull (overlay) | ${bh} s | $(ratio "$cs4" "$bh")x |
EOT
[ -n "$dk" ] && echo "| docker pull | ${dk} s | $(ratio "$cs4" "$dk")x |"
exit 0
