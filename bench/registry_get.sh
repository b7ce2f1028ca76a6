#!/bin/bash
# registry_get.sh - blob download speed of the registry client (tests/tools/regtool) against curl,
# from Debian's docker-registry on loopback seeded with the golang base (tests/mkbase.sh).
#   bash bench/registry_get.sh [RUNS]      (default 5; prints medians, MB/s)
# Needs: docker-registry, skopeo, curl, jq; a build in build/ (regtool); $CSTORE_BASES.
set -u -o pipefail
src=$(cd "$(dirname "$0")/.." && pwd)
CSTORE_SRC=$src
CSTORE_BASES=${CSTORE_BASES:-$src/out/bases}
REGTOOL=${REGTOOL:-$src/build/tests/regtool}
RUNS=${1:-5}
. "$src/tests/integration/need.sh"
T=$(mktemp -d)
_cleanup() { :; }
. "$src/tests/integration/registry_lib.sh"
trap 'registry_stop; rm -rf "$T"' EXIT
registry_start plain >/dev/null || exit 1
registry_seed bench/golang:1 golang || exit 1
m=$("$REGTOOL" manifest "$REG_ADDR/bench/golang:1" | tail -n +2)
mapfile -t layers < <(jq -r '.layers[].digest' <<<"$m")
total=$(jq '[.layers[].size] | add' <<<"$m")
big=$(jq -r '.layers | max_by(.size) | .digest' <<<"$m")
bigsize=$(jq '.layers | max_by(.size) | .size' <<<"$m")

median() { sort -n | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}'; }
timeit() { local t0 t1; t0=$(date +%s.%N); "$@" >/dev/null || return 1; t1=$(date +%s.%N); echo "$t1 - $t0" | awk '{print $1 - $3}'; }
all_regtool() { for l in "${layers[@]}"; do "$REGTOOL" blob "$REG_ADDR/bench/golang:1" "$l" || return 1; done; }
all_curl() { for l in "${layers[@]}"; do curl -sf "http://$REG_ADDR/v2/bench/golang/blobs/$l" || return 1; done; }
par_regtool() { "$REGTOOL" parallel "$REG_ADDR/bench/golang:1" "$big" 4; }
par_curl() { for i in 1 2 3 4; do curl -sf -o /dev/null "http://$REG_ADDR/v2/bench/golang/blobs/$big" & done; wait; }

report() { # NAME BYTES CMD...
    local name=$1 bytes=$2 s
    shift 2
    s=$(for ((i = 0; i < RUNS; i++)); do timeit "$@"; done | median)
    printf '%-34s %8.3f s %8.1f MB/s\n' "$name" "$s" "$(awk -v b="$bytes" -v s="$s" 'BEGIN {print b / s / 1e6}')"
}
echo "golang: ${#layers[@]} layers, $total bytes; biggest $bigsize; median of $RUNS runs"
report "regtool blob, every layer" "$total" all_regtool
report "curl, every layer" "$total" all_curl
report "regtool parallel 4 x biggest" "$((bigsize * 4))" par_regtool
report "curl 4 x biggest at once" "$((bigsize * 4))" par_curl
