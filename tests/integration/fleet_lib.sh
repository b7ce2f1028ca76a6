# shellcheck shell=bash
# fleet_lib.sh - many "machines" (store roots) on one registry, each request in the registry's
# access log attributed to its machine (t_cache_fleet.sh, bench/bench_cache_fleet.sh). Source it
# after registry_lib.sh and registry_start plain.
#
# Machine K talks to the registry through tests/integration/src_relay.py, which listens on
# 127.0.0.(10+K):PORT (the registry's own port; the registry listens on 127.0.0.1 only) and
# connects to the registry from 127.0.0.(10+K): the access log's first field is then the machine.
# The registry and the repository are the same for every machine; only the host in the ref
# differs (127.0.0.x is plain HTTP for cstore like 127.0.0.1).
#
#   fleet_relays N         starts relays for machines 1..N
#   fleet_host K           127.0.0.(10+K):PORT, the registry as machine K reaches it
#   fleet_src K            127.0.0.(10+K), machine K's address in the access log
#   fleet_mark             the access log's current line count (a phase's start, for FROM below)
#   fleet_down K [FROM]    bytes machine K downloaded: the sum of its GET response bodies
#   fleet_up K [FROM]      bytes machine K uploaded: the sum of the sizes of the blobs whose upload
#                          it completed (PUT ...?digest=, 201; a blob's POST/PATCH/PUT bodies add
#                          up to its size) plus its manifest PUTs' bodies (fleet_manifest_bytes)
#   fleet_manifest_puts K [FROM]   its manifest PUTs (201)
#   fleet_wire K           raw bytes through machine K's relay, "UP DOWN" (HTTP headers included)
#   fleet_stop             stops the relays (also done at exit)
#   fleet_manifest_mean REPO  the mean size of REPO's stored manifest revisions
# The access log records no request bodies and not which revision a manifest PUT wrote: fleet_up
# counts each of a machine's manifest PUTs as the mean revision size (a few hundred bytes; the
# blobs are exact).

FLEET_PIDS=()
FLEET_PORT=

fleet_relays() {
    local n=$1 k
    FLEET_PORT=${REG_ADDR##*:}
    for ((k = 1; k <= n; k++)); do
        python3 "$CSTORE_SRC/tests/integration/src_relay.py" --listen "$(fleet_host "$k")" \
            --upstream "$REG_ADDR" --source "$(fleet_src "$k")" --log "$REG_DIR/relay.$k.log" \
            2>"$REG_DIR/relay.$k.err" &
        FLEET_PIDS+=($!)
        : >"$REG_DIR/relay.$k.log"
    done
    for ((k = 1; k <= n; k++)); do
        local i
        for ((i = 0; i < 100; i++)); do
            curl -s -o /dev/null "http://$(fleet_host "$k")/v2/" && break
            sleep 0.1
        done
        : >"$REG_DIR/relay.$k.log"
    done
}

fleet_src() { echo "127.0.0.$((10 + $1))"; }
fleet_host() { echo "$(fleet_src "$1"):$FLEET_PORT"; }
fleet_mark() { wc -l <"$REG_LOG"; }

# _fleet_lines K FROM: machine K's access-log lines after line FROM
_fleet_lines() { tail -n +"$((${2:-0} + 1))" "$REG_LOG" | awk -v a="$(fleet_src "$1")" '$1 == a'; }

fleet_down() { _fleet_lines "$1" "${2:-0}" | awk '$6 == "\"GET" {s += $10} END {print s + 0}'; }

_fleet_blob_size() {
    local h=$1
    stat -c %s "$REG_DIR/data/docker/registry/v2/blobs/sha256/${h:0:2}/$h/data"
}

fleet_manifest_puts() {
    _fleet_lines "$1" "${2:-0}" | awk '$6 == "\"PUT" && $7 ~ /\/manifests\// && $9 == 201' | wc -l
}

# fleet_manifest_mean REPO: the mean size of REPO's stored manifest revisions
fleet_manifest_mean() {
    local d=$REG_DIR/data/docker/registry/v2/repositories/$1/_manifests/revisions/sha256 h s=0 n=0
    [ -d "$d" ] || {
        echo 0
        return
    }
    for h in "$d"/*; do
        s=$((s + $(_fleet_blob_size "${h##*/}")))
        n=$((n + 1))
    done
    echo $((n ? s / n : 0))
}

# fleet_up K [FROM [REPO]]: REPO (default fleet/app) for the manifests' size
fleet_up() {
    local h s=0
    for h in $(_fleet_lines "$1" "${2:-0}" |
        awk '$6 == "\"PUT" && $7 ~ /\/blobs\/uploads\// && $9 == 201' |
        grep -oE 'digest=sha256%3A[0-9a-f]{64}' | cut -c17-); do
        s=$((s + $(_fleet_blob_size "$h")))
    done
    echo $((s + $(fleet_manifest_puts "$1" "${2:-0}") * $(fleet_manifest_mean "${3:-fleet/app}")))
}

fleet_wire() { awk '{u += $1; d += $2} END {print u + 0, d + 0}' "$REG_DIR/relay.$1.log"; }

fleet_stop() {
    local p
    for p in "${FLEET_PIDS[@]}"; do
        kill "$p" 2>/dev/null && { wait "$p" 2>/dev/null || true; }
    done
    FLEET_PIDS=()
    return 0
}

_fleet_exit() {
    local rc=$?
    set +e # (a bench's errexit: registry_stop's wait returns the registry's signal status)
    fleet_stop
    (exit "$rc")
    _reg_exit
}
trap _fleet_exit EXIT
