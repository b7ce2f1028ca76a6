#!/usr/bin/env bash
# bench_cache_fleet.sh - eight machines on one registry (issue 9): eight empty store roots (the
# golang and busybox bases loaded) build examples/hello-go IN PARALLEL, each with a different
# one-line change in app.go, each with --cache-from and --cache-to (mode=max) the same registry
# repository and tag (Debian's docker-registry on loopback). Then a ninth empty root builds the
# eight variants with --cache-from only. Two phases: "cold" (the registry has no cache yet: every
# machine finds it empty and pushes the bases' packs) and "seeded" (a first machine exported the
# unchanged project's cache before; not counted). Bytes moved per machine from the registry's access log
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
# parallel_builds FLAGS...: the N builds at once (@HOST@ in FLAGS: the registry as the machine
# reaches it); fails when one fails
parallel_builds() {
    local k f flags pids=() rc=0
    for ((k = 1; k <= N; k++)); do
        flags=()
        for f in "$@"; do flags+=("${f//@HOST@/$(fleet_host "$k")}"); done
        cs_at "$k" build -q -t app "${flags[@]}" "$work/ctx$k" >"$work/out$k" 2>&1 &
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

declare -A R # R[phase.what] = the runs' figures, space separated
rec() { R[$1]+="$2 "; }
# ninth REPO PHASE: the ninth, empty machine builds the N variants with --cache-from only
ninth() {
    local k out cached=0 steps=0 failed=0 t0 mark nine=$((N + 1))
    rm -rf "$work/m$nine"
    mark=$(fleet_mark)
    t0=$(now)
    for ((k = 1; k <= N; k++)); do
        out=$("$cstore" --root "$work/m$nine" build --progress plain -t "v$k" \
            --cache-from "type=registry,ref=$(fleet_host $nine)/$1:cache" "$work/ctx$k" 2>&1) || {
            failed=$((failed + 1))
            echo "bench: the ninth machine's build of variant $k failed:" >&2
            tail -n 3 <<<"$out" >&2
        }
        cached=$((cached + $(grep -cE '^#[0-9]+ CACHED$' <<<"$out" || true)))
        steps=$((steps + $(grep -cE '^#[0-9]+ \[[^]]*\] (WORKDIR|COPY|ADD|RUN)' <<<"$out" || true)))
    done
    rec "$2.t9" "$(secs "$t0" "$(now)")"
    rec "$2.d9" "$(fleet_down $nine "$mark")"
    R[$2.c9]+="$cached/$steps$( ((failed == 0)) || echo "($failed failed)") "
}
# fleet_phase REPO PHASE: the N machines (fresh roots) build at once, sharing REPO; then ninth
fleet_phase() {
    local k spec="type=registry,ref=@HOST@/$1:cache" mark t0 su=0 sd=0 u d
    fresh_roots
    mark=$(fleet_mark)
    t0=$(now)
    parallel_builds --cache-from "$spec" --cache-to "$spec,mode=max"
    rec "$2.t" "$(secs "$t0" "$(now)")"
    for ((k = 1; k <= N; k++)); do
        u=$(fleet_up "$k" "$mark" "$1") d=$(fleet_down "$k" "$mark")
        rec "$2.up$k" "$u"
        rec "$2.down$k" "$d"
        su=$((su + u)) sd=$((sd + d))
    done
    ninth "$1" "$2"
    rec "$2.up" "$su"
    rec "$2.down" "$((sd + $(fleet_down $((N + 1)) "$mark")))"
}
variants() { # RUN: each machine's context, app.go's message its one-line change
    local k
    for ((k = 1; k <= N; k++)); do
        rm -rf "$work/ctx$k"
        cp -r "$src/examples/hello-go" "$work/ctx$k"
        sed -i "s/fmt.Println(.*)/fmt.Println(\"Hello from machine $k, run $1\")/" "$work/ctx$k/app.go"
    done
}

for ((i = 1; i <= RUNS; i++)); do
    variants "$i"
    fresh_roots
    t0=$(now)
    parallel_builds
    rec base.t "$(secs "$t0" "$(now)")"
    # cold: the registry has no cache yet; every machine finds it empty
    fleet_phase "fleet/cold$i" cold
    # seeded: one machine first exported the unchanged project's cache (not counted)
    rm -rf "$work/seed"
    cp -a "$work/tmpl" "$work/seed"
    "$cstore" --root "$work/seed" build -q -t app \
        --cache-to "type=registry,ref=$REG_ADDR/fleet/seeded$i:cache,mode=max" "$src/examples/hello-go" >/dev/null 2>&1
    fleet_phase "fleet/seeded$i" seeded
done

m() { # KEY: the median of R[KEY]
    # shellcheck disable=SC2086 # one word per run
    printf '%s\n' ${R[$1]} | median
}
echo "cstore fleet cache: $N machines, examples/hello-go, medians of $RUNS runs; $(nproc) cores," \
    "$(uname -r); load $(cut -d' ' -f1-3 /proc/loadavg); $(date -u +%FT%RZ)"
echo "baseline (same run): the $N builds at once without cache flags: $(m base.t) s"
for ph in cold seeded; do
    echo "$ph registry: the $N builds at once with --cache-from/--cache-to (mode=max): $(m "$ph.t") s"
    for ((k = 1; k <= N; k++)); do
        printf '  machine %d: %s bytes up, %s bytes down\n' "$k" "$(m "$ph.up$k")" "$(m "$ph.down$k")"
    done
    echo "  ninth (empty; the $N variants, --cache-from): $(m "$ph.d9") bytes down, $(m "$ph.t9") s;" \
        "steps CACHED per run: ${R[$ph.c9]}"
    echo "  total: $(m "$ph.up") bytes up, $(m "$ph.down") bytes down (the ninth's included)"
done
