#!/usr/bin/env bash
# bench_cache_fleet.sh - eight machines on one registry (issue 9): eight empty store roots (the
# golang and busybox bases loaded) build examples/hello-go IN PARALLEL, each with a different
# one-line change in app.go, each with --cache-from and --cache-to (mode=max) the same registry
# repository and tag (Debian's docker-registry on loopback). Then a ninth empty root builds the
# eight variants with --cache-from only. Bytes moved per machine from the registry's access log
# (uploaded: the blobs whose upload the machine completed plus its manifest PUTs at the mean stored
# manifest size; downloaded: its GET bodies; machines told apart by source address through
# tests/integration/src_relay.py, see tests/integration/fleet_lib.sh), and wall times. In the same
# run, the baseline: the same eight parallel builds with no cache flags (what a fleet without a
# shared cache does). Medians of RUNS runs, each on fresh roots and a fresh repository.
#
#   bash bench/bench_cache_fleet.sh                 (one command; prints the results)
#   CSTORE (default build/cstore), CSTORE_BASES (default out/bases), RUNS (default 3), N (8)
. "$(dirname "$0")/lib.sh"
RUNS=${RUNS:-3}
N=${N:-8}
bench_init fleet
CSTORE=$cstore CSTORE_SRC=$src CSTORE_BASES=$bases T=$work
export CSTORE CSTORE_SRC CSTORE_BASES
_cleanup() { bench_cleanup; }
. "$src/tests/integration/need.sh"
. "$src/tests/integration/registry_lib.sh"
. "$src/tests/integration/fleet_lib.sh"
registry_start plain >/dev/null
fleet_relays $((N + 1))
trap 'echo "bench: line $LINENO: $BASH_COMMAND failed" >&2' ERR
# the machines' starting point: a root with both bases loaded, copied (cp -a) for each machine
"$cstore" --root "$work/tmpl" load "$bases/busybox.docker.tar" >/dev/null
"$cstore" --root "$work/tmpl" load "$bases/golang.docker.tar" >/dev/null

cs_at() { "$cstore" --root "$work/m$1" "${@:2}"; }
fresh_roots() { # the N machines (and the ninth: empty)
    local k
    rm -rf "$work"/m*
    for ((k = 1; k <= N; k++)); do cp -a "$work/tmpl" "$work/m$k"; done
}
now() { date +%s.%N; }
secs() { echo "$2 - $1" | bc -l; }
# parallel_builds RUN FLAGS...: the N builds at once; fails when one fails
parallel_builds() {
    local run=$1 k pids=() rc=0
    shift
    for ((k = 1; k <= N; k++)); do
        # shellcheck disable=SC2001 # the ref's host differs per machine: fill it in
        cs_at "$k" build -q -t app $(sed "s/@HOST@/$(fleet_host "$k")/g" <<<"$*") \
            "$work/ctx$k" >"$work/out$k" 2>&1 &
        pids+=($!)
    done
    for ((k = 1; k <= N; k++)); do
        wait "${pids[k - 1]}" || {
            echo "bench: machine $k failed:" >&2
            tail -n 5 "$work/out$k" >&2
            rc=1
        }
    done
    return $rc
}

declare -A up down
declare -a t_base t_fleet t_nine d_nine c_nine tot_up tot_down
for ((i = 1; i <= RUNS; i++)); do
    for ((k = 1; k <= N; k++)); do
        rm -rf "$work/ctx$k"
        cp -r "$src/examples/hello-go" "$work/ctx$k"
        sed -i "s/fmt.Println(.*)/fmt.Println(\"Hello from machine $k, run $i\")/" "$work/ctx$k/app.go"
    done
    fresh_roots
    t0=$(now)
    parallel_builds "$i"
    t_base+=("$(secs "$t0" "$(now)")")

    fresh_roots
    repo=fleet/run$i
    spec="type=registry,ref=@HOST@/$repo:cache"
    mark=$(fleet_mark)
    t0=$(now)
    parallel_builds "$i" --cache-from "$spec" --cache-to "$spec,mode=max"
    t_fleet+=("$(secs "$t0" "$(now)")")
    su=0 sd=0
    for ((k = 1; k <= N; k++)); do
        up[$k]+="$(fleet_up "$k" "$mark" "$repo") " down[$k]+="$(fleet_down "$k" "$mark") "
        su=$((su + $(fleet_up "$k" "$mark" "$repo"))) sd=$((sd + $(fleet_down "$k" "$mark")))
    done

    # the ninth machine: empty, builds the eight variants from the shared cache
    mark=$(fleet_mark)
    cached=0 steps=0 failed=0
    t0=$(now)
    for ((k = 1; k <= N; k++)); do
        out=$("$cstore" --root "$work/m$((N + 1))" build --progress plain -t "v$k" \
            --cache-from "type=registry,ref=$(fleet_host $((N + 1)))/$repo:cache" "$work/ctx$k" 2>&1) || {
            failed=$((failed + 1))
            echo "bench: the ninth machine's build of variant $k failed:" >&2
            tail -n 3 <<<"$out" >&2
        }
        echo "$out" >"$work/nine$k"
        cached=$((cached + $(grep -cE '^#[0-9]+ CACHED$' <<<"$out" || true)))
        steps=$((steps + $(grep -cE '^#[0-9]+ \[[^]]*\] (WORKDIR|COPY|ADD|RUN)' <<<"$out" || true)))
    done
    t_nine+=("$(secs "$t0" "$(now)")")
    d_nine+=("$(fleet_down $((N + 1)) "$mark")")
    c_nine+=("$cached/$steps$( ((failed == 0)) || echo " ($failed builds failed)")")
    tot_up+=("$su") tot_down+=("$((sd + $(fleet_down $((N + 1)) "$mark")))")
done

m() { printf '%s\n' "$@" | median; }
echo "cstore fleet cache: $N machines, examples/hello-go, runs: $RUNS (medians); $(nproc) cores," \
    "$(uname -r); load $(cut -d' ' -f1-3 /proc/loadavg); $(date -u +%FT%RZ)"
for ((k = 1; k <= N; k++)); do
    # shellcheck disable=SC2086 # the runs' figures, one word each
    printf '  machine %d: %s bytes up, %s bytes down\n' "$k" "$(m ${up[$k]})" "$(m ${down[$k]})"
done
echo "  ninth (empty, $N variants with --cache-from): $(m "${d_nine[@]}") bytes down, $(m "${t_nine[@]}") s; steps CACHED per run: ${c_nine[*]}"
echo "  total: $(m "${tot_up[@]}") bytes up, $(m "${tot_down[@]}") bytes down (ninth included)"
echo "  wall, $N parallel builds: $(m "${t_fleet[@]}") s with --cache-from/--cache-to; $(m "${t_base[@]}") s without cache flags (baseline, same run)"
