# lib.sh - the setup every bench script shares (sourced by bench_*.sh): strict mode, the paths
# ($src, $cstore, $bases), a work dir removed at exit, the base images, and median/wall/bah.
set -euo pipefail
export LC_ALL=C
src=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cstore=${CSTORE:-$src/build/cstore}
bases=${CSTORE_BASES:-$src/out/bases}

# bench_init NAME: makes $work (/var/tmp/cstore-bench-NAME.XXXXXX), removed at exit, and checks
# that cstore is built. A script that starts daemons defines bench_stop: it runs first at exit.
bench_init() {
    work=$(mktemp -d "/var/tmp/cstore-bench-$1.XXXXXX")
    trap bench_cleanup EXIT
    [ -x "$cstore" ] || { echo "bench: build first: $cstore missing" >&2; exit 1; }
}

bench_cleanup() {
    if declare -F bench_stop >/dev/null; then bench_stop; fi
    # buildah and dockerd may leave overlays mounted: unmount before removing
    grep -o " $work[^ ]*" /proc/mounts | sort -r | xargs -r -n1 umount -l 2>/dev/null || true
    rm -rf "$work"
}

# bench_bases: the base images of tests/mkbase.sh in $bases (made once, cached).
bench_bases() { bash "$src/tests/mkbase.sh" "$bases" >&2; }

# bench_hello_roots NAME...: for each NAME, a store $work/root-NAME made by $work/cs-NAME with
# golang and busybox loaded and examples/hello-go (copied to $proj) built twice: the second build
# on golang unpacks it (auto snapshotter), as every build a one-line change bench measures.
bench_hello_roots() {
    proj=$work/proj
    cp -r "$src/examples/hello-go" "$proj"
    local b i
    for b in "$@"; do
        "$work/cs-$b" --root "$work/root-$b" load "$bases/golang.oci.tar" -t golang >/dev/null
        "$work/cs-$b" --root "$work/root-$b" load "$bases/busybox.oci.tar" -t busybox >/dev/null
        for i in 1 2; do
            sed -i "s/fmt.Println(.*)/fmt.Println(\"warm $i $RANDOM\")/" "$proj/app.go"
            "$work/cs-$b" --root "$work/root-$b" build --network none -t hello "$proj" >/dev/null 2>&1
        done
    done
}

# bench_ab RUNS FN FIELDS: RUNS rounds of `FN base` then `FN new`, 0.3 s apart (what a build
# leaves to finish in the background does not fall on the next one), each one's output line
# appended to $work/NAME.txt; when one fails, the tail of perf script -F FIELDS of its
# $work/p.data goes to stderr and the script exits 1.
bench_ab() {
    local i b
    : >"$work/base.txt"
    : >"$work/new.txt"
    for i in $(seq "$1"); do
        for b in base new; do
            sleep 0.3
            "$2" "$b" >>"$work/$b.txt" || {
                echo "bench: a build failed ($b):" >&2
                perf script -i "$work/p.data" -F "$3" 2>&1 | tail -5 >&2
                exit 1
            }
        done
    done
}

median() { sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
# seconds of wall time of a command (stdout/stderr discarded)
wall() {
    local t0 t1
    t0=$EPOCHREALTIME
    "$@" >/dev/null 2>&1
    t1=$EPOCHREALTIME
    echo "$t1 - $t0" | bc -l
}
# wall_sync CMD...: like wall, after `sync` (no tool pays for what earlier steps left dirty), CMD's
# output in $work/last.log; a failure prints its tail and returns 1.
wall_sync() {
    local t0 t1
    sync
    # bash's clock: no `date` process inside the interval (two forks, ~3 ms on a no-op)
    t0=$EPOCHREALTIME
    if ! "$@" >"$work/last.log" 2>&1; then
        echo "bench: failed: $*" >&2
        tail -20 "$work/last.log" >&2
        return 1
    fi
    t1=$EPOCHREALTIME
    echo "$t1 - $t0" | bc -l
}
# buildah on its own store under $work
bah() { buildah --root "$work/bah/root" --runroot "$work/bah/run" --storage-driver overlay "$@"; }

# Debian's dockerd with its own data root ($work/docker), exec root, pid file and socket under $work
# (overlay2, --bridge=none --iptables=false): bench_dockerd_start waits for it (false, its last log
# line on stderr, when it does not come up), bench_dockerd_stop stops it; dk is its client (Debian's
# /usr/bin/docker unless $DOCKER: another may come first in PATH).
docker_bin=${DOCKER:-/usr/bin/docker}
dk() { "$docker_bin" -H "unix://$work/docker.sock" "$@"; }
bench_dockerd_start() {
    dockerd --data-root "$work/docker" --exec-root "$work/docker-exec" --pidfile "$work/dockerd.pid" \
        -H "unix://$work/docker.sock" --storage-driver overlay2 --bridge=none --iptables=false \
        --ip-masq=false >"$work/dockerd.log" 2>&1 &
    for _ in $(seq 120); do dk version >/dev/null 2>&1 && return 0; sleep 0.5; done
    echo "bench: dockerd did not start: $(tail -1 "$work/dockerd.log")" >&2
    return 1
}
bench_dockerd_stop() {
    local pid
    pid=$(cat "$work/dockerd.pid" 2>/dev/null) || return 0
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    kill -9 "$pid" 2>/dev/null || true
    rm -f "$work/dockerd.pid"
}
