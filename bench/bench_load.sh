#!/usr/bin/env bash
# bench_load.sh - issue 11's load goal in one run: `cstore load` of the golang docker-archive into
# a fresh store against `docker load` of the same file into an emptied data root (Debian's dockerd,
# started and stopped here, as bench_compare.sh does), and against an older cstore binary (the
# baseline: main's, same run), medians of RUNS, the three interleaved in every round, each timed
# command after `sync`. Also: user and system CPU seconds of each cstore load (how many cores it
# keeps busy), the store's size on disk, and `fsck` of every store.
#
#   bash bench/bench_load.sh [RUNS]                          (default 5)
#   CSTORE_BEFORE=/work/main/build/cstore bash bench/bench_load.sh [RUNS]
#   CSTORE_LOAD_IMAGE=busybox bash bench/bench_load.sh       (another base of $CSTORE_BASES)
#
# Needs root, docker.io (dockerd + /usr/bin/docker), bc, a Release build in build/ and the bases
# of tests/mkbase.sh in $CSTORE_BASES (default out/bases). Prints a Markdown section on stdout
# (bench/RESULTS-compare.md holds the ones recorded); progress on stderr.
. "$(dirname "$0")/lib.sh"
runs=${1:-5}
image=${CSTORE_LOAD_IMAGE:-golang}
before=${CSTORE_BEFORE:-}
load_start=$(cut -d" " -f1-3 /proc/loadavg)
log() { echo "bench: $*" >&2; }

bench_stop() { bench_dockerd_stop; }
bench_init load
trap 'exit 130' INT TERM
for t in bc dockerd "$docker_bin"; do
    command -v "$t" >/dev/null || { echo "bench: '$t' not found" >&2; exit 1; }
done
[ -z "$before" ] || [ -x "$before" ] || { echo "bench: CSTORE_BEFORE '$before' not executable" >&2; exit 1; }
archive=$bases/$image.docker.tar
[ -f "$archive" ] || bench_bases

declare -A S
addv() { S[$1]+=" $2"; }
# cs_load KEY BINARY: one load into a fresh store: wall, user and system seconds, disk, fsck
cs_load() {
    local k=$1 bin=$2 r=$work/store-$1 t0 t1 ru
    rm -rf "$r"
    sync
    t0=$EPOCHREALTIME
    # bash's `time` keyword: the child's user and system seconds, no process of its own
    ru=$( { TIMEFORMAT='%U %S'; time "$bin" --root "$r" load "$archive" >"$work/last.log" 2>&1; } 2>&1) || {
        log "failed: $bin load"; tail -5 "$work/last.log" >&2; exit 1; }
    t1=$EPOCHREALTIME
    addv "${k}_wall" "$(echo "$t1 - $t0" | bc -l)"
    addv "${k}_user" "${ru% *}"
    addv "${k}_sys" "${ru#* }"
    addv "${k}_disk" "$(du -sbx "$r" | cut -f1)"
    "$cstore" --root "$r" fsck >/dev/null || { log "fsck of the store loaded by $bin failed"; exit 1; }
    rm -rf "$r"
}

bench_dockerd_start
for i in $(seq "$runs"); do
    log "round $i/$runs"
    cs_load new "$cstore"
    [ -z "$before" ] || cs_load old "$before"
    dk image rm -f $(dk image ls -aq) >/dev/null 2>&1 || true
    dk builder prune -af >/dev/null 2>&1 || true
    addv dk_wall "$(wall_sync dk load -i "$archive")"
done
bench_dockerd_stop

med() { printf '%s\n' ${S[$1]} | median; }
span() { printf '%s\n' ${S[$1]} | sort -g | awk 'NR==1 {lo=$1} {hi=$1} END {printf "%.2f-%.2f", lo, hi}'; }
row() { # LABEL KEY
    [ -n "${S[${2}_wall]:-}" ] || return 0
    local cpu
    cpu=$(echo "$(med "${2}_user") + $(med "${2}_sys")" | bc -l)
    printf '| %s | %.2f s (%s) | %.2f + %.2f s | %.2f | %s | %.2fx |\n' "$1" "$(med "${2}_wall")" "$(span "${2}_wall")" \
        "$(med "${2}_user")" "$(med "${2}_sys")" "$(echo "$cpu / $(med "${2}_wall")" | bc -l)" \
        "$([ -n "${S[${2}_disk]:-}" ] && printf '%.0f MB' "$(echo "$(med "${2}_disk") / 1000000" | bc -l)" || echo -)" \
        "$(echo "$(med dk_wall) / $(med "${2}_wall")" | bc -l)"
}
S[dk_user]=0 S[dk_sys]=0
goal=$(echo "$(med dk_wall) >= 6 * $(med new_wall)" | bc -l)
cat <<EOF
## load $image: cstore vs docker load ($(date -u +%Y-%m-%dT%H:%MZ))

- command: \`$([ -n "$before" ] && echo "CSTORE_BEFORE=$before ")bash bench/bench_load.sh $runs\` (one command; dockerd started and stopped by it)
- machine: $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')), $(free -g | awk '/Mem:/ {print $2}') GiB, $(df -T "$work" | awk 'NR==2 {print $2}') under /var/tmp, kernel $(uname -r); load average at start $load_start, at end $(cut -d" " -f1-3 /proc/loadavg)
- input: $archive ($(printf '%.0f' "$(echo "$(stat -c %s "$archive") / 1000000" | bc -l)") MB); cstore into a fresh store, docker load into a data root emptied of images; medians of $runs rounds (min-max), interleaved, each after \`sync\`
- versions: cstore $(git -C "$src" describe --always --dirty) (Release)$([ -n "$before" ] && echo ", baseline $before ($(git -C "$(dirname "$before")/.." describe --always 2>/dev/null || echo '?'))"), docker.io $("$docker_bin" --version | cut -d' ' -f3 | tr -d ,)

| tool | wall | user + sys CPU | cores busy (CPU / wall) | store on disk | docker load / this |
|---|---|---|---|---|---|
$(row "cstore load (this tree)" new)
$(row "cstore load (baseline \`CSTORE_BEFORE\`)" old)
| docker load | $(printf '%.2f s (%s)' "$(med dk_wall)" "$(span dk_wall)") | - | - | - | 1.00x |

Goal (issue 11: at least 6x docker load): $([ "$goal" = 1 ] && echo met || echo "**not met**") ($(printf '%.2f' "$(echo "$(med dk_wall) / $(med new_wall)" | bc -l)")x).
EOF
